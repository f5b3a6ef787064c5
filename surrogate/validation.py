"""Leave-out validation: refit on part of the study's data, predict the rest, and say whether the 90 % interval
covers the measurement (``snhc calibrate --validate``).

Why: a model that meets every calibration point may still extrapolate badly; the only honest test without new data
is to hide the points a user would extrapolate to (higher currents, later cycles, other materials) and predict
them. Each study refits the calibration and rebuilds the uncertainty ensemble from the remaining rows only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from surrogate.calibration import fit, load_observations, model_values
from surrogate.parameters import ModelParameters
from surrogate.paths import config_dir
from surrogate.recipe import load_materials
from surrogate.uncertainty import UncertaintySettings, build_ensemble


@dataclass(frozen=True)
class LeaveOut:
    """One study: which rows are hidden from the fit (a predicate on a row of the data table)."""

    name: str
    fitted: str  # what the fit still sees, in words
    hidden: Callable[[pd.Series], bool]


def _rate(row) -> bool:
    return row["quantity"] == "capacity_at_current_mAh_per_g" and row["material"] == "Sn@HC-2-1"


def _cycling_after(row, cycle: int) -> bool:
    return row["quantity"] == "capacity_at_cycle_mAh_per_g" and not pd.isna(row["cycle"]) and row["cycle"] > cycle


STUDIES = (
    LeaveOut("rate 4.2 A/g from <= 1.7 A/g", "rate points up to 1.7 A/g",
             lambda r: _rate(r) and r["current_A_per_g"] > 1.7),
    LeaveOut("rate 1.7 and 4.2 A/g from <= 0.84 A/g", "rate points up to 0.84 A/g",
             lambda r: _rate(r) and r["current_A_per_g"] > 0.84),
    LeaveOut("cycle 12000 from <= 400", "cycling points up to cycle 400", lambda r: _cycling_after(r, 400)),
    LeaveOut("HC at 1.7 A/g (not fitted)", "every row but HC's capacity at 1.7 A/g",
             lambda r: r["material"] == "HC" and r["quantity"] == "capacity_at_cycle_mAh_per_g"),
    LeaveOut("nano-Sn electrode expansion (not fitted)", "every row but nano-Sn's electrode expansion",
             lambda r: r["material"] == "nano-Sn" and r["quantity"] == "electrode_expansion_after_1000_cycles_pct"),
    *(LeaveOut(f"{material} first-cycle efficiency (not fitted)", f"every row but {material}'s ICE",
               lambda r, m=material: r["material"] == m and r["quantity"] == "initial_coulombic_efficiency_pct")
      for material in ("Sn@HC-2-1", "nano-Sn", "HC")),
    *(LeaveOut(f"{material} particle expansion (not fitted)", f"every row but {material}'s particle expansion",
               lambda r, m=material: r["material"] == m and r["quantity"] == "particle_expansion_pct")
      for material in ("Sn@HC-2-1", "nano-Sn")),
)


def _label(row) -> str:
    parts = [row["material"], row["quantity"]]
    if not pd.isna(row["current_A_per_g"]):
        parts.append(f"{row['current_A_per_g']:g} A/g")
    if not pd.isna(row["cycle"]):
        parts.append(f"cycle {int(row['cycle'])}")
    return ", ".join(parts)


def validate(p: ModelParameters | None = None, data_path: str | Path | None = None,
             studies=STUDIES, settings: UncertaintySettings | None = None) -> list[dict]:
    """Run every leave-out study; one row per hidden measurement.

    Each row: ``name`` (study and point), ``fitted`` (what the fit saw), ``predicted``, ``measured``, ``error_pct``,
    ``interval_90`` ([low, high]), ``covered`` and ``half_width_pct`` (half the interval over the prediction). A
    hidden quantity is scattered as ``snhc predict`` scatters it (:meth:`surrogate.uncertainty.Ensemble.scattered`),
    with the model-form error by its material's distance from the materials the fit saw it on.
    """
    p = p or ModelParameters.load()
    settings = settings or UncertaintySettings.load()
    materials = load_materials(config_dir() / "materials.yaml")
    observations = load_observations(data_path, materials)
    probability = settings.interval_probability
    tail = 50.0 * (1.0 - probability)
    rows = []
    for study in studies:
        hidden = observations.apply(study.hidden, axis=1) & observations["fit"]
        if not hidden.any():
            continue
        table = observations.copy()
        table.loc[hidden, "fit"] = False
        calibration = fit(p, data_path, observations=table)
        ensemble = build_ensemble(p, calibration, data_path, observations=table, settings=settings)
        targets = table[hidden]
        predicted = model_values(ensemble.central, targets, materials)
        members = np.vstack([model_values(m, targets, materials) for m in ensemble.members])
        theoretical = targets.assign(quantity="theoretical_capacity_mAh_per_g")
        ceilings = [model_values(m, theoretical, materials) for m in ensemble.members]
        records = [materials[m].to_records()[0] for m in targets["material"]]
        weights = np.array([ensemble.form_weights([r], q)[0] for r, q in zip(records, targets["quantity"])])
        distances = [ensemble.domain.current_distance(r, float(c)) if q == "capacity_at_current_mAh_per_g" else 0.0
                     for r, q, c in zip(records, targets["quantity"], targets["current_A_per_g"])]
        scattered = np.array([[float(ensemble.scattered(k, q, members[k, j], weights[j], ceilings[k][j], distances[j]))
                               for j, q in enumerate(targets["quantity"])] for k in range(len(ensemble.members))])
        low, high = np.percentile(scattered, [tail, 100.0 - tail], axis=0)
        for k, (_, row) in enumerate(targets.iterrows()):
            lo, hi = float(min(low[k], predicted[k])), float(max(high[k], predicted[k]))
            measured = float(row["value"])
            rows.append({
                "name": f"{study.name}: {_label(row)}", "fitted": study.fitted,
                "predicted": float(predicted[k]), "measured": measured,
                "error_pct": float(100.0 * (predicted[k] - measured) / measured),
                "interval_90": [lo, hi], "covered": bool(lo <= measured <= hi),
                "half_width_pct": float(50.0 * (hi - lo) / max(abs(predicted[k]), 1e-12)),
                "effective_ensemble_size": ensemble.effective_size,
            })
    return rows


def report_text(rows: list[dict]) -> str:
    """The validation table as text: one line per hidden measurement."""
    table = pd.DataFrame([{**r, "interval_90": f"[{r['interval_90'][0]:.4g}-{r['interval_90'][1]:.4g}]"}
                          for r in rows])
    shown = table[["name", "predicted", "measured", "error_pct", "interval_90", "covered", "half_width_pct"]]
    covered = sum(r["covered"] for r in rows)
    return (shown.to_string(index=False, float_format=lambda v: f"{v:.4g}")
            + f"\n{covered} of {len(rows)} hidden measurements inside their 90 % interval")
