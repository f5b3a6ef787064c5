"""The conditions a prediction may be asked for: beyond them a number is a typing error, not a question.

One owner for the limits that the calibration data, lab files, campaign objectives and command-line options all
check against. Constants only, so ``snhc --help`` can state them without importing the model.
"""

# The largest test current and cycle a measurement, a lab row or a campaign's objective (flows.objective) may name:
# 1000 A/g is seconds per charge, 100 000 cycles decades of daily use.
MAX_CURRENT_A_PER_G, MAX_CYCLE = 1000.0, 100_000
# Cell temperatures, C: the span of liquid Na-ion electrolytes' use and test chambers (below -40 C the ether
# electrolyte freezes, above 80 C the SEI and separator degrade); the study measured 25 C and its EIS range.
CELL_TEMPERATURE_RANGE_C = (-40.0, 80.0)
