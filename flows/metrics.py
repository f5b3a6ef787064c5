"""The metric catalogue: every metric name the product reports, with its label and unit, in one place.

Names are the model's (``surrogate/model.py: Prediction.scalar_metrics``) and the objective's
(``flows/objective.py``); lab CSV columns, console tables, MLflow metrics and what-if tables all use these names.
Metrics at a current or a cycle follow two patterns, e.g. ``capacity_at_4.2_A_per_g_mAh_per_g`` and
``capacity_at_cycle_1000_mAh_per_g``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class MetricInfo:
    name: str
    label: str  # short column header
    unit: str
    non_negative: bool = True


_FIXED = (
    MetricInfo("objective", "objective", "mAh/g", non_negative=False),
    MetricInfo("objective_capacity_mAh_per_g", "target capacity", "mAh/g"),
    MetricInfo("expansion_penalty_mAh_per_g", "penalty", "mAh/g"),
    MetricInfo("theoretical_capacity_mAh_per_g", "theoretical", "mAh/g"),
    MetricInfo("reversible_capacity_mAh_per_g", "reversible", "mAh/g"),
    MetricInfo("initial_coulombic_efficiency_pct", "ICE", "%"),
    MetricInfo("particle_expansion_pct", "swell", "%"),
    MetricInfo("electrode_expansion_after_1000_cycles_pct", "electrode +", "%"),
    MetricInfo("activation_energy_kJ_per_mol", "Ea", "kJ/mol"),
)
METRICS: dict[str, MetricInfo] = {m.name: m for m in _FIXED}
AT_CURRENT = re.compile(r"^capacity_at_([0-9.]+)_A_per_g_mAh_per_g$")
AT_CYCLE = re.compile(r"^capacity_at_cycle_([0-9]+)_mAh_per_g$")

# What a person sees first about a recipe.
HEADLINE = ("objective", "objective_capacity_mAh_per_g", "reversible_capacity_mAh_per_g",
            "capacity_at_4.2_A_per_g_mAh_per_g", "capacity_at_cycle_1000_mAh_per_g",
            "initial_coulombic_efficiency_pct", "particle_expansion_pct", "electrode_expansion_after_1000_cycles_pct")


def info(name: str) -> MetricInfo | None:
    """The catalogue entry of a metric name (None if the product does not know it)."""
    if name in METRICS:
        return METRICS[name]
    if match := AT_CURRENT.match(name):
        return MetricInfo(name, f"Q@{match.group(1)} A/g", "mAh/g")
    if match := AT_CYCLE.match(name):
        return MetricInfo(name, f"Q@cycle {match.group(1)}", "mAh/g")
    return None


def headline(metrics: dict[str, float]) -> dict[str, float]:
    """The headline metrics present in ``metrics``, in catalogue order."""
    return {k: metrics[k] for k in HEADLINE if k in metrics}


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


AFTER_CYCLES = re.compile(r"^capacity_at_([0-9.]+)_A_per_g_after_([0-9]+)_cycles_mAh_per_g$")
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
