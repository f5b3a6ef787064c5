"""The metric catalogue: every metric name the product reports, with its label and unit, in one place.

Names are the model's (``surrogate/model.py: Prediction.scalar_metrics``) and the objective's
(``flows/objective.py``); lab CSV columns, console tables, MLflow metrics and what-if tables all use these names.
Metrics at a current or a cycle follow two patterns, e.g. ``capacity_at_4.2_A_per_g_mAh_per_g`` and
``capacity_at_cycle_1000_mAh_per_g``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from surrogate.calibration import QUANTITY_UNITS
from surrogate.limits import MAX_CURRENT_A_PER_G, MAX_CYCLE
from surrogate.model import AT_CURRENT, AT_CYCLE


@dataclass(frozen=True)
class MetricInfo:
    name: str
    label: str  # short column header
    unit: str
    non_negative: bool = True
    most: float = math.inf  # the largest value a measurement can physically have (surrogate.calibration)


_MOST_CAPACITY = QUANTITY_UNITS["capacity_at_current_mAh_per_g"][1]
_FIXED = (
    MetricInfo("objective", "objective", "mAh/g", non_negative=False, most=_MOST_CAPACITY),
    MetricInfo("objective_capacity_mAh_per_g", "target capacity", "mAh/g", most=_MOST_CAPACITY),
    MetricInfo("expansion_penalty_mAh_per_g", "penalty", "mAh/g"),
    *(MetricInfo(name, label, QUANTITY_UNITS[name][0], most=QUANTITY_UNITS[name][1]) for name, label in (
        ("theoretical_capacity_mAh_per_g", "theoretical"), ("reversible_capacity_mAh_per_g", "reversible"),
        ("initial_coulombic_efficiency_pct", "ICE"), ("particle_expansion_pct", "swell"),
        ("electrode_expansion_after_1000_cycles_pct", "electrode +"), ("activation_energy_kJ_per_mol", "Ea"))),
)
METRICS: dict[str, MetricInfo] = {m.name: m for m in _FIXED}

# What a person sees first about a recipe.
HEADLINE = ("objective", "objective_capacity_mAh_per_g", "reversible_capacity_mAh_per_g",
            "capacity_at_4.2_A_per_g_mAh_per_g", "capacity_at_cycle_1000_mAh_per_g",
            "initial_coulombic_efficiency_pct", "particle_expansion_pct", "electrode_expansion_after_1000_cycles_pct")


def info(name: str) -> MetricInfo | None:
    """The catalogue entry of a metric name (None if the product does not know it)."""
    if name in METRICS:
        return METRICS[name]
    if match := AT_CURRENT.match(name):
        return MetricInfo(name, f"Q@{match.group(1)} A/g", "mAh/g", most=_MOST_CAPACITY)
    if match := AT_CYCLE.match(name):
        return MetricInfo(name, f"Q@cycle {match.group(1)}", "mAh/g", most=_MOST_CAPACITY)
    return None


def condition_out_of_range(name: str) -> str | None:
    """Why the condition a metric name carries cannot be a test's (a current of 0 or above what a campaign allows,
    a cycle of 0 or beyond its last), or None.

    >>> condition_out_of_range("capacity_at_cycle_0_mAh_per_g")
    'cycle 0 is out of range: allowed 1 to 100000'
    >>> condition_out_of_range("capacity_at_1.7_A_per_g_mAh_per_g") is None
    True
    """
    if (match := AT_CURRENT.match(name)) and not 0 < _parsed(match.group(1)) <= MAX_CURRENT_A_PER_G:
        return f"current {match.group(1)} A/g is out of range: allowed above 0 up to {MAX_CURRENT_A_PER_G:g}"
    if (match := AT_CYCLE.match(name)) and not 1 <= int(match.group(1)) <= MAX_CYCLE:
        return f"cycle {int(match.group(1))} is out of range: allowed 1 to {MAX_CYCLE}"
    # one spelling per condition, the model's (1.7, not 1.70 or 01.7; 400, not 0400): another spelling matches no
    # predicted metric, so the value would never be compared, and two spellings could hold one quantity twice
    if (match := AT_CURRENT.match(name)) and match.group(1) != (current := f"{float(match.group(1)):g}"):
        return f"write the current as {current} (capacity_at_{current}_A_per_g_mAh_per_g)"
    if (match := AT_CYCLE.match(name)) and match.group(1) != (cycle := str(int(match.group(1)))):
        return f"write the cycle as {cycle} (capacity_at_cycle_{cycle}_mAh_per_g)"
    return None


def _parsed(number: str) -> float:
    try:
        return float(number)
    except ValueError:  # "1.2.3"
        return math.nan


def headline(metrics: dict[str, float], objectives: tuple[str, ...] = ()) -> dict[str, float]:
    """The headline metrics present in ``metrics``, in catalogue order; with a multi-objective campaign's
    ``objectives`` (their names), those first and no single ``objective`` score (it is only the first of them)."""
    first = {k: metrics[k] for k in objectives if k in metrics}
    return first | {k: metrics[k] for k in HEADLINE if k in metrics and k not in first
                    and not (objectives and k == "objective")}


def header(name: str) -> str:
    """A short column header with its unit, e.g. 'swell %'."""
    entry = info(name)
    return f"{entry.label} {entry.unit}" if entry else name


# Units read off a name's suffix (names carry their units), longest suffix first.
_UNIT_SUFFIXES = (("_mAh_per_g", "mAh/g"), ("_kJ_per_mol", "kJ/mol"), ("_A_per_g", "A/g"), ("_pct", "%"),
                  ("_rpm", "rpm"), ("_h", "h"), ("_C", "°C"), ("_fraction", "mass fraction"), ("_ratio", "mass ratio"))


def unit_of(name: str) -> str:
    """The unit a name carries (catalogue first, then its suffix); '' for a dimensionless or unknown name.

    Examples
    --------
    >>> unit_of("milling_time_h"), unit_of("capacity_at_cycle_1000_mAh_per_g"), unit_of("ball_to_powder_ratio")
    ('h', 'mAh/g', 'mass ratio')
    """
    entry = info(name)
    if entry is not None:
        return entry.unit
    return next((unit for suffix, unit in _UNIT_SUFFIXES if name.endswith(suffix)), "")


def display_number(value, digits: int = 4) -> str:
    """A number for people: ``digits`` significant digits (exact values stay in params and JSON)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:.{digits}g}"


# Fixed-definition metrics of a what-if study: the same definition in every row, whatever a scenario's objective.
RETENTION_END_OF_LIFE_PCT = 80.0  # the usual end-of-life criterion of a cell: 80 % of its first-cycle capacity


def capacity_after_cycles_name(current_A_per_g: float, cycle: int) -> str:
    """e.g. ``capacity_at_1.7_A_per_g_after_1000_cycles_mAh_per_g``: the condition is in the name."""
    return f"capacity_at_{current_A_per_g:g}_A_per_g_after_{cycle}_cycles_mAh_per_g"


def cycles_to_retention_name(current_A_per_g: float, retention_pct: float = RETENTION_END_OF_LIFE_PCT) -> str:
    """e.g. ``cycles_to_80pct_retention_at_1.7_A_per_g``."""
    return f"cycles_to_{retention_pct:g}pct_retention_at_{current_A_per_g:g}_A_per_g"


AFTER_CYCLES = re.compile(r"^capacity_at_([0-9.]+)_A_per_g_after_([0-9]{1,9})_cycles_mAh_per_g$")
TO_RETENTION = re.compile(r"^cycles_to_([0-9.]+)pct_retention_at_([0-9.]+)_A_per_g$")


_WORDS = {"objective": "campaign objective (penalised capacity)",
          "objective_capacity_mAh_per_g": "capacity at the objective's current and cycle",
          "expansion_penalty_mAh_per_g": "expansion penalty", "reversible_capacity_mAh_per_g": "reversible capacity",
          "theoretical_capacity_mAh_per_g": "theoretical capacity",
          "initial_coulombic_efficiency_pct": "initial Coulombic efficiency",
          "electrode_expansion_after_1000_cycles_pct": "electrode expansion after 1000 cycles",
          "activation_energy_kJ_per_mol": "apparent activation energy"}


def words(name: str) -> str:
    """A metric or recipe name in words, with its condition and without its unit.

    Examples
    --------
    >>> words("capacity_at_1.7_A_per_g_after_1000_cycles_mAh_per_g"), words("capacity_at_cycle_400_mAh_per_g")
    ('capacity at 1.7 A/g after 1000 cycles', 'capacity at cycle 400')
    """
    if match := AFTER_CYCLES.match(name):
        return f"capacity at {match.group(1)} A/g after {match.group(2)} cycles"
    if match := TO_RETENTION.match(name):
        return f"cycles to {match.group(1)} % retention at {match.group(2)} A/g"
    if match := AT_CURRENT.match(name):
        return f"capacity at {match.group(1)} A/g"
    if match := AT_CYCLE.match(name):
        return f"capacity at cycle {match.group(1)}"
    if name in _WORDS:
        return _WORDS[name]
    stem = next((name[: -len(suffix)] for suffix, _ in _UNIT_SUFFIXES if name.endswith(suffix)
                 and suffix not in ("_fraction", "_ratio")), name)
    return stem.replace("_", " ")


def axis_label(name: str) -> str:
    """A plot axis label: the quantity in words with its condition, and the unit in brackets.

    Examples
    --------
    >>> axis_label("capacity_at_1.7_A_per_g_after_1000_cycles_mAh_per_g")
    'capacity at 1.7 A/g after 1000 cycles [mAh/g]'
    >>> axis_label("cycles_to_80pct_retention_at_1.7_A_per_g")
    'cycles to 80 % retention at 1.7 A/g [cycles]'
    """
    unit = "cycles" if TO_RETENTION.match(name) else unit_of(name)
    return f"{words(name)} [{unit}]" if unit else words(name)


# Tables (a what-if's comparison, a front's pareto.csv) carry a predicted value's 90 % interval and its extrapolation
# flag in columns beside it, named by one rule
INTERVAL = "interval_90"


def interval_columns(metric: str) -> tuple[str, str]:
    """The table columns of a metric's 90 % interval: ``(<metric>_interval_90_low, ..._high)``."""
    return f"{metric}_{INTERVAL}_low", f"{metric}_{INTERVAL}_high"


def extrapolated_column(metric: str) -> str:
    """The table column of a metric's flag: True where its value lies beyond the study's data (a recipe beyond the
    calibration's materials, a temperature other than the measured ones, cycles past the measured fade), by the rule
    ``snhc predict`` flags with."""
    return f"{metric}_extrapolated"
