"""Calibration of the PyBaMM model: contact resistance and capacity utilisation fitted to the composite's rate data,
cached on a hash. The model does not call this: callers fit (or read the cache) and hand the values in."""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")  # before pybamm is imported

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from surrogate.calibration import cached_fit, model_source_digest
from surrogate.parameters import ModelParameters
from surrogate.paths import cache_dir, config_dir, read_cached, write_cached
from surrogate.recipe import Recipes

from surrogate.physics.parameters import _file_stamp, load_physics_parameters
from surrogate.physics.simulation import evaluate_physics

CALIBRATION_MATERIAL = "Sn@HC-2-1"

# --- calibration ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PhysicsCalibration:
    """The physics model's fit: fitted values, a residual table and the digests that identify what it was fitted to."""

    fitted_values: dict[str, float]
    report: pd.DataFrame  # current_A_per_g, measured/model capacity (mAh/g), residual (mAh/g and %)
    data_sha256: str
    parameters_sha256: str

    @property
    def mape_pct(self) -> float:
        """Mean absolute percentage error over the rate points."""
        return float(self.report["residual_pct"].abs().mean())

    def apply(self, q: ModelParameters) -> ModelParameters:
        return q.with_values(**self.fitted_values)

    def report_text(self) -> str:
        lines = [self.report.to_string(index=False, float_format=lambda v: f"{v:.4g}"), "",
                 f"MAPE {self.mape_pct:.2f} %", "fitted physics parameters:"]
        lines += [f"  {name} = {value:.6g}" for name, value in self.fitted_values.items()]
        return "\n".join(lines)


def rate_observations(data_path: str | Path | None = None) -> pd.DataFrame:
    """Sn@HC-2-1's rate-capability rows of the calibration data (current, capacity, sigma)."""
    from surrogate.calibration import default_data_path

    data = _file_stamp(Path(data_path or default_data_path()))
    return _rate_observations(data, _file_stamp(config_dir() / "materials.yaml")).copy()


@functools.lru_cache(maxsize=8)
def _rate_observations(data: tuple[str, int, int], materials: tuple[str, int, int]) -> pd.DataFrame:
    from surrogate.calibration import load_observations

    table = load_observations(data[0])
    rows = table[(table["material"] == CALIBRATION_MATERIAL)
                 & (table["quantity"] == "capacity_at_current_mAh_per_g") & table["fit"]]
    return rows[["current_A_per_g", "value", "sigma_pct"]].sort_values("current_A_per_g").reset_index(drop=True)


def _digests(p: ModelParameters, q: ModelParameters, observations: pd.DataFrame) -> tuple[str, str]:
    data = hashlib.sha256(observations.to_json(orient="records").encode()).hexdigest()
    parameters = hashlib.sha256((p.digest() + q.digest(exclude_tag="fitted")).encode()).hexdigest()
    return data, parameters


def _calibration_material() -> Recipes:
    from surrogate.recipe import load_materials

    return load_materials(config_dir() / "materials.yaml")[CALIBRATION_MATERIAL]


def _rate_report(p: ModelParameters, q: ModelParameters, observations: pd.DataFrame) -> pd.DataFrame:
    currents = observations["current_A_per_g"].to_numpy(float)
    result = evaluate_physics(_calibration_material(), currents, p, physics_parameters=q)[0]
    report = pd.DataFrame({"current_A_per_g": currents,
                           "measured_mAh_per_g": observations["value"].to_numpy(float),
                           "model_mAh_per_g": result.capacity_mAh_per_g})
    report["residual_mAh_per_g"] = report["model_mAh_per_g"] - report["measured_mAh_per_g"]
    report["residual_pct"] = 100.0 * report["residual_mAh_per_g"] / report["measured_mAh_per_g"]
    return report


def fit_physics(p: ModelParameters | None = None, physics_parameters: ModelParameters | None = None,
                data_path: str | Path | None = None, refit: bool = False) -> PhysicsCalibration:
    """Fit the physics model's 'fitted' parameters to Sn@HC-2-1's rate data by least squares, with a cache.

    Residuals are (model - measured) / (sigma_pct x measured), as in :mod:`surrogate.calibration`. A failed
    discharge counts as zero capacity: a large, finite residual, so the optimiser steers away instead of crashing.
    The fit is cached as JSON in :func:`surrogate.paths.cache_dir`, keyed on the SHA-256 of the rate data and of
    every parameter value it depends on (all of ``p``, the non-fitted ones of the physics parameters).

    Parameters
    ----------
    p
        The surrogate's parameters with fitted values; default ``calibrated_parameters()``.
    physics_parameters
        Default ``configs/physics_parameters.yaml``; its 'fitted' values are the starting guess.
    data_path
        Calibration data (default ``configs/calibration/li2025.yaml``).
    refit
        Fit even if a cached fit exists.
    """
    from surrogate.calibration import calibrated_parameters

    p = p if p is not None else calibrated_parameters()
    q = physics_parameters if physics_parameters is not None else load_physics_parameters()
    observations = rate_observations(data_path)
    fitted, data_sha, parameters_sha = _fitted_values(p, q, observations, refit)
    report = _rate_report(p, q.with_values(**fitted), observations)
    return PhysicsCalibration(fitted, report, data_sha, parameters_sha)


_fits_in_memory: dict[tuple[Path, str], dict[str, float]] = {}  # skips re-reading the JSON on every evaluation


def _fitted_values(p: ModelParameters, q: ModelParameters, observations: pd.DataFrame,
                   refit: bool = False) -> tuple[dict[str, float], str, str]:
    """Fitted values from the cache, or from a new fit that is then cached."""
    data_sha, parameters_sha = _digests(p, q, observations)
    # the numpy model's source too: the physics model reads its kinetics and microstructure
    sources = model_source_digest() + model_source_digest(Path(__file__).parent)
    key = hashlib.sha256((data_sha + parameters_sha + sources).encode()).hexdigest()[:20]
    cache_file = cache_dir() / f"physics-calibration-{key}.json"
    if not refit and (cache_file, key) in _fits_in_memory:
        return dict(_fits_in_memory[(cache_file, key)]), data_sha, parameters_sha
    cached = None if refit else read_cached(cache_file)
    if cached is not None:
        try:
            fitted = cached_fit(q, cached)
            _fits_in_memory[(cache_file, key)] = dict(fitted)
            return fitted, data_sha, parameters_sha
        except (KeyError, TypeError, ValueError):  # a damaged or edited file: fit again and rewrite it
            pass
    fitted = _least_squares(p, q, observations)
    _fits_in_memory[(cache_file, key)] = dict(fitted)
    write_cached(cache_file, {"data_sha256": data_sha, "parameters_sha256": parameters_sha, "fitted_values": fitted})
    return fitted, data_sha, parameters_sha


def _least_squares(p: ModelParameters, q: ModelParameters, observations: pd.DataFrame) -> dict[str, float]:
    """Grid search over the fitted parameters' box, then trust-region least squares from the best grid point.

    The grid is needed because plateau drop-out makes capacity a steep function of polarisation: started on the
    wrong side of a drop, a local method stalls. Parameters are mapped onto [0, 1] (log scale for ranges of 50x or
    more), so finite-difference steps are a fixed share of each range.
    """
    names = q.names("fitted")
    if not names:
        return {}
    bounds = np.array([q[n].bounds for n in names], dtype=float)
    logarithmic = (bounds[:, 0] > 0) & (bounds[:, 1] / np.maximum(bounds[:, 0], 1e-300) >= 50)
    low = np.where(logarithmic, np.log10(np.maximum(bounds[:, 0], 1e-300)), bounds[:, 0])
    span = np.where(logarithmic, np.log10(np.maximum(bounds[:, 1], 1e-300)), bounds[:, 1]) - low

    def to_values(x):
        scaled = low + np.clip(x, 0.0, 1.0) * span
        return np.clip(np.where(logarithmic, 10.0**scaled, scaled), bounds[:, 0], bounds[:, 1])

    measured = observations["value"].to_numpy(float)
    sigma = observations["sigma_pct"].to_numpy(float) / 100.0 * measured
    currents = observations["current_A_per_g"].to_numpy(float)
    material = _calibration_material()

    def residuals(x):
        trial = q.with_values(**dict(zip(names, to_values(x).tolist())))
        model = evaluate_physics(material, currents, p, physics_parameters=trial)[0].capacity_mAh_per_g
        return (np.nan_to_num(model, nan=0.0) - measured) / sigma

    grid = np.linspace(0.0, 1.0, int(q.fit_grid_points_per_parameter))
    candidates = [np.array(point) for point in itertools.product(grid, repeat=len(names))]
    start = min(candidates, key=lambda x: float(np.sum(residuals(x) ** 2)))
    # Finite-difference steps of 0.5 % of each range: well above the ODE solver's tolerance, below a plateau's drop.
    solution = least_squares(residuals, start, bounds=(0.0, 1.0), x_scale=1.0, diff_step=5e-3, max_nfev=200)
    best = solution.x if solution.cost <= 0.5 * np.sum(residuals(start) ** 2) else start
    return dict(zip(names, to_values(best).tolist()))


def calibrated_physics_parameters(p: ModelParameters | None = None,
                                  physics_parameters: ModelParameters | None = None,
                                  data_path: str | Path | None = None) -> ModelParameters:
    """Physics parameters with the fitted values filled in (fits once, then reads the cache)."""
    from surrogate.calibration import calibrated_parameters

    p = p if p is not None else calibrated_parameters()
    q = physics_parameters if physics_parameters is not None else load_physics_parameters()
    fitted, _, _ = _fitted_values(p, q, rate_observations(data_path))
    return q.with_values(**fitted)
