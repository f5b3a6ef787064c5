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
