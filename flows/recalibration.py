"""Recalibration from lab results: the model's free parameters refitted on the study's data plus a lab's rows.

The study's calibration (``surrogate/calibration.py``) fits the ``fitted`` parameters to the study's measurements.
Lab rows are more measurements of the same quantities at other recipes: here they join the study's rows in the same
weighted least squares (each residual divided by its uncertainty: the study's ``sigma_pct``, and for lab rows the
campaign's ``lab_uncertainty_pct``), started from the study's fit. The result reports how each parameter and each lab
prediction moved, so a researcher sees what the lab taught the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from flows.config import CampaignConfig
from flows.evaluation import campaign_parameters
from flows.observations import LabData, lab_predictions, scatter_scale
from surrogate.calibration import FIT_TOLERANCE, LeastSquaresProblem, load_observations, on_bound
from surrogate.parameters import ModelParameters
from surrogate.paths import config_dir
from surrogate.recipe import load_materials

MAX_FUNCTION_EVALUATIONS = 400  # the start is the study's fit: a few hundred model runs settle the lab's part


@dataclass(frozen=True)
class Recalibration:
    """The refit: parameters before and after, and the model's predictions at the lab rows before and after."""

    parameters: ModelParameters
    parameter_moves: pd.DataFrame
    prediction_moves: pd.DataFrame
    study_chi2: tuple[float, float] = (float("nan"), float("nan"))  # the study's rows, before and after the refit
    study_worst_sd: float = float("nan")  # the study's largest residual after the refit, in its sigmas
    study_rows: int = 0
    on_bound: tuple[str, ...] = ()  # fitted parameters the refit left on a bound of their range

    def report_text(self) -> str:
        fmt = lambda v: f"{v:.4g}"  # noqa: E731
        before, after = self.study_chi2
        return "\n".join(["fitted parameters, study only -> study + lab rows:",
                          self.parameter_moves.to_string(index=False, float_format=fmt), "",
                          "lab rows, measured vs model before and after:",
                          self.prediction_moves.to_string(index=False, float_format=fmt), "",
                          f"the study's own {self.study_rows} rows: chi-square {before:.1f} -> {after:.1f}, largest "
                          f"residual {self.study_worst_sd:.1f} sd after (a large rise: the lab rows disagree with the "
                          f"study rather than add to it: the lab's mill, powders or cells differ from the study's, "
                          f"which the study's fitted parameters should not absorb; teach the lab's own instead "
                          f"(the config's lab_parameters, as snhc suggest and snhc optimise --observations do with "
                          f"recalibrate_on_observations: false), or check the rows' units and lab_uncertainty_pct)",
                          "parameters on a bound after the refit: " + (", ".join(self.on_bound) or "none")
                          + (" (the data push them past their range: the refit's value there is the range's, not "
                             "the data's)" if self.on_bound else "")])

    def metrics(self) -> dict[str, float]:
        """MLflow metrics: each parameter's new value and its move, and the lab error before and after."""
        out = {f"recalibrated.{r.parameter}": float(r.after) for r in self.parameter_moves.itertuples()}
        out |= {f"recalibrated.{r.parameter}.change_pct": float(r.change_pct)
                for r in self.parameter_moves.itertuples()}
        errors = self.prediction_moves
        if len(errors):
            out["recalibrated.lab_mape_pct.before"] = float(np.nanmean(np.abs(errors["error_before_pct"])))
            out["recalibrated.lab_mape_pct.after"] = float(np.nanmean(np.abs(errors["error_after_pct"])))
        out["recalibrated.study_chi2.before"], out["recalibrated.study_chi2.after"] = self.study_chi2
        return out


def _lab_rows(lab: LabData) -> list[tuple[int, str, float]]:
    """(row index, metric, measured value) of every measured number of the lab file, the objective excepted (it is
    a score, not a measurement the model predicts under that name)."""
    return [(i, name, value) for i, e in enumerate(lab.measured) for name, value in e.metrics.items()
            if name != "objective"]


def _magnitudes(rows) -> np.ndarray:
    """The size each row's stated scatter is a share of (:func:`flows.observations.scatter_scale`), the typical
    size of a metric being the median of its values."""
    values = np.array([v for _, _, v in rows], dtype=float)
    names = [name for _, name, _ in rows]
    typical = {name: float(np.median([abs(v) for n, v in zip(names, values) if n == name])) for name in set(names)}
    return scatter_scale(values, [typical[n] for n in names])


def _lab_values(p: ModelParameters, lab: LabData, config: CampaignConfig, rows) -> np.ndarray:
    predictions = lab_predictions(lab, p, config)
    return np.array([predictions[i].metrics.get(name, np.nan) for i, name, _ in rows], dtype=float)


def recalibrate(config: CampaignConfig, lab: LabData, data_path=None) -> Recalibration:
    """The campaign's model refitted on the study's data plus the lab's measured rows."""
    before, _ = campaign_parameters(config)
    materials = load_materials(config_dir() / "materials.yaml")
    observations = load_observations(data_path, materials)
    study = LeastSquaresProblem(before, observations, materials)  # the study's part: the calibration's own residuals
    rows = [r for r in _lab_rows(lab)]
    lab_measured = np.array([v for _, _, v in rows], dtype=float)
    lab_sigma = config.lab_uncertainty_pct / 100.0 * _magnitudes(rows)
    known = np.isfinite(_lab_values(before, lab, config, rows))  # metrics the model predicts
    transform = study.transform
    low, high = transform.box()
    trial_of = study.parameters

    def residuals(x):
        lab_part = (_lab_values(trial_of(x), lab, config, rows)[known] - lab_measured[known]) / lab_sigma[known]
        return np.concatenate([study.residuals(x), np.nan_to_num(lab_part, nan=1e3)])

    start = np.clip(transform.forward(np.array([before[n].value for n in transform.names], float)), low, high)
    solution = least_squares(residuals, start, bounds=(low, high), x_scale="jac", ftol=FIT_TOLERANCE,
                             xtol=FIT_TOLERANCE, max_nfev=MAX_FUNCTION_EVALUATIONS)
    after = trial_of(solution.x)
    study_before, study_after = study.residuals(start), study.residuals(solution.x)
    bounded = on_bound(transform.names, solution.x, low, high)
    moves = pd.DataFrame([{"parameter": n, "before": before[n].value, "after": after[n].value,
                           "change_pct": 100.0 * (after[n].value - before[n].value) / before[n].value
                           if before[n].value else float("nan")} for n in transform.names])
    model_before, model_after = _lab_values(before, lab, config, rows), _lab_values(after, lab, config, rows)
    predictions = pd.DataFrame([{"line": lab.measured_lines[i], "metric": name, "measured": value,
                                 "model_before": b, "model_after": a,
                                 "error_before_pct": 100.0 * (b - value) / value if value else float("nan"),
                                 "error_after_pct": 100.0 * (a - value) / value if value else float("nan")}
                                for (i, name, value), b, a in zip(rows, model_before, model_after)])
    chi2 = (float(study_before @ study_before), float(study_after @ study_after))
    return Recalibration(after, moves, predictions, chi2, float(np.max(np.abs(study_after))), int(study_after.size),
                         bounded)
