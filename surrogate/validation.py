"""Leave-out validation: refit on part of the study's data, predict the rest, and say whether the 90 % interval
covers the measurement (``snhc calibrate --validate``).

Why: a model that meets every calibration point may still extrapolate badly; the only honest test without new data
is to hide the points a user would extrapolate to (higher currents, later cycles, other materials) and predict
them. Each study refits the calibration and rebuilds the uncertainty ensemble from the remaining rows only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from surrogate.calibration import fit, load_observations, model_values
from surrogate.parameters import ModelParameters
from surrogate.paths import config_dir
from surrogate.recipe import load_materials
from surrogate.uncertainty import (FORM_ERROR_FOLLOWS, Ensemble, UncertaintySettings, build_ensemble,
                                   measurement_family)


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
    drawn: list[_Drawn] = []  # per row: what its interval was drawn from, for the nested check
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
        for k, (_, row) in enumerate(targets.iterrows()):
            draw = _Drawn(ensemble, row["quantity"], members[:, k], float(weights[k]),
                          [ceiling[k] for ceiling in ceilings], float(distances[k]), float(predicted[k]),
                          _label(row))
            lo, hi = draw.interval(tail)
            drawn.append(draw)
            measured = float(row["value"])
            rows.append({
                "name": f"{study.name}: {_label(row)}", "fitted": study.fitted,
                "predicted": float(predicted[k]), "measured": measured,
                "error_pct": float(100.0 * (predicted[k] - measured) / measured),
                "interval_90": [lo, hi], "covered": bool(lo <= measured <= hi),
                "half_width_pct": float(50.0 * (hi - lo) / max(abs(predicted[k]), 1e-12)),
                "effective_ensemble_size": ensemble.effective_size,
            })
    return _with_nested(rows, drawn, tail)


@dataclass(frozen=True)
class _Drawn:
    """What one hidden measurement's interval is drawn from: the study's ensemble, each member's value, and the
    row's model-form weight, ceilings (theoretical capacities) and current distance (e-folds above the currents
    its material was measured at)."""

    ensemble: Ensemble
    quantity: str
    member_values: np.ndarray
    form_weight: float
    ceilings: list
    current_distance: float
    predicted: float
    point: str  # the measurement (material, quantity, condition): two studies may hide the same one

    @property
    def form_family(self) -> str | None:
        """The family whose model-form sigma this row's interval carries (its own, or the one it follows), if any."""
        family = measurement_family(self.quantity)
        sigmas = self.ensemble.settings.model_form_sigma_pct
        family = family if family in sigmas else FORM_ERROR_FOLLOWS.get(family, (None,))[0]
        return family if family in sigmas and self.form_weight > 0 else None

    def interval(self, tail: float, ensemble: Ensemble | None = None) -> tuple[float, float]:
        """5th-95th percentile of the members' values as measurements would scatter (the rule of snhc predict),
        widened to hold the prediction; ``ensemble``: the same members under other settings."""
        ensemble = ensemble or self.ensemble
        values = [float(ensemble.scattered(k, self.quantity, self.member_values[k], self.form_weight,
                                           self.ceilings[k], self.current_distance))
                  for k in range(len(ensemble.members))]
        low, high = np.percentile(values, [tail, 100.0 - tail])
        return float(min(low, self.predicted)), float(max(high, self.predicted))


RATE_EXTRAPOLATION = "rate_extrapolation"  # the nested check's name for the rate model's form error per e-fold


def _with_nested(rows: list[dict], drawn: list[_Drawn], tail: float) -> list[dict]:
    """Each row scored again with the model-form error it carries measured without it (``interval_90_nested``,
    ``covered_nested``, ``nested_form_error``).

    Why: configs/uncertainty.yaml sets the form-error sigmas (particle expansion, first-cycle efficiency, the rate
    extrapolation per e-fold) from these very leave-outs' errors, so the plain coverage partly checks itself. Here a
    row's sigma is the RMS of the errors of the *other* rows of its kind that measure another point (log errors; an
    efficiency's on its irreversible loss; a rate row's error relative to its prediction per e-fold of
    extrapolation, as the term scatters it), with as many degrees of freedom as there are of them; a row with no
    other of its kind has no nested interval (None): both rate studies hide the composite's 449 mAh/g at 4.2 A/g,
    so neither can measure the other's term. A row without such a term keeps its interval."""
    def log_error(i: int) -> float:
        row, family = rows[i], measurement_family(drawn[i].quantity)
        if family == "efficiency":
            return float(np.log((100.0 - row["measured"]) / (100.0 - row["predicted"])))
        return float(np.log(row["measured"] / row["predicted"]))

    kinds = [RATE_EXTRAPOLATION if d.current_distance > 0 else d.form_family for d in drawn]
    own = [measurement_family(d.quantity) if d.form_weight > 0 else None for d in drawn]  # errors a sigma is of
    out = []
    for i, (row, draw, kind) in enumerate(zip(rows, drawn, kinds)):
        if kind is None:
            out.append(row | {"interval_90_nested": row["interval_90"], "covered_nested": row["covered"],
                              "nested_form_error": None})
            continue
        others = [j for j in range(len(rows)) if drawn[j].point != draw.point]
        if kind == RATE_EXTRAPOLATION:
            errors = [(rows[j]["measured"] / rows[j]["predicted"] - 1.0) / drawn[j].current_distance
                      for j in others if kinds[j] == RATE_EXTRAPOLATION]
        else:
            errors = [log_error(j) for j in others if own[j] == kind]
        nested = {"family": kind, "sigma_pct": float(100.0 * np.sqrt(np.mean(np.square(errors)))) if errors
                  else None, "from_rows": len(errors)}
        if not errors:
            out.append(row | {"interval_90_nested": None, "covered_nested": None, "nested_form_error": nested})
            continue
        settings = draw.ensemble.settings
        if kind == RATE_EXTRAPOLATION:
            settings = replace(settings, rate_extrapolation_sigma_pct_per_e_fold=nested["sigma_pct"])
        else:
            settings = replace(settings, model_form_sigma_pct={**settings.model_form_sigma_pct,
                                                               kind: nested["sigma_pct"]},
                               model_form_errors={**settings.model_form_errors, kind: len(errors)})
        low, high = draw.interval(tail, replace(draw.ensemble, settings=settings))
        out.append(row | {"interval_90_nested": [low, high], "covered_nested": bool(low <= row["measured"] <= high),
                          "nested_form_error": nested})
    return out


def report_text(rows: list[dict]) -> str:
    """The validation table as text: one line per hidden measurement."""
    table = pd.DataFrame([{**r, "interval_90": f"[{r['interval_90'][0]:.4g}-{r['interval_90'][1]:.4g}]"}
                          for r in rows])
    shown = table[["name", "predicted", "measured", "error_pct", "interval_90", "covered", "half_width_pct"]]
    covered = sum(r["covered"] for r in rows)
    nested = [r for r in rows if r.get("nested_form_error")]
    lines = [f"{covered} of {len(rows)} hidden measurements inside their 90 % interval"]
    if nested:  # the form-error sigmas were set from these rows: the check that does not use a row's own error
        lines.append(f"nested (each model-form error measured without the row it scores): {len(nested)} rows carry "
                     f"one; " + "; ".join(
                         f"{r['name'].split(':')[0]} ({r['measured']:.4g}): "
                         + (f"[{r['interval_90_nested'][0]:.4g}-{r['interval_90_nested'][1]:.4g}] "
                            f"{'covers' if r['covered_nested'] else 'MISSES'} it"
                            if r["interval_90_nested"] else "no other row of its kind measures another point")
                         for r in nested))
    return shown.to_string(index=False, float_format=lambda v: f"{v:.4g}") + "\n" + "\n".join(lines)
