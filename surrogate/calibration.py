"""Fit the free ('fitted') model parameters to the study's data by weighted least squares, and cache the fit.

The data (``configs/calibration/li2025.yaml``) are read into a pandas table; each row names a material, a model
output and its conditions. Residuals are (model - measured) / (sigma_pct x measured), so each point counts by its
stated uncertainty. The fit is cached on the SHA-256 of the data file and of every non-fitted parameter: it reruns
only when either changes (a what-if that alters an assumption gets its own, consistent calibration).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from surrogate.limits import MAX_CURRENT_A_PER_G, MAX_CYCLE
from surrogate.model import PredictionRequest, predict
from surrogate.parameters import ModelParameters
from surrogate.paths import cache_dir, config_dir, read_cached, write_cached
from surrogate.recipe import Recipes, load_materials
from surrogate.yaml_safety import YamlInputError, excerpt, finite_as_float, non_finite_number, read_yaml_file

QUANTITIES = (
    "theoretical_capacity_mAh_per_g", "reversible_capacity_mAh_per_g", "hc_share_of_reversible_capacity_mAh_per_g",
    "initial_coulombic_efficiency_pct", "capacity_at_current_mAh_per_g", "capacity_at_cycle_mAh_per_g",
    "activation_energy_kJ_per_mol", "particle_expansion_pct", "electrode_expansion_after_1000_cycles_pct",
)
COLUMNS = ("material", "quantity", "current_A_per_g", "cycle", "value", "unit", "tag", "sigma_pct", "fit")
# quantities the model computes at no current (model_values reads a row's current for the rate and cycling
# quantities; the first-cycle ones are the formation cycle's, stated at the study's 0.08 A/g)
WITHOUT_CURRENT = ("theoretical_capacity_mAh_per_g", "activation_energy_kJ_per_mol", "particle_expansion_pct")
DATA_TAGS = ("measured", "derived", "literature")
TOP_LEVEL_KEYS = ("source", "description", "observations")
# What a value of each quantity can physically be, in its unit: a row outside is a typing or unit error, not data.
# Capacities: above 0, at most 1000 mAh/g (Na15Sn4 gives Sn 847; hard carbon ~300); a share of the first cycle's
# capacity, an efficiency: up to 100 %; an expansion: Sn's own ~420 % volume swelling, agglomerated particles
# reaching 685 % in the study, so up to 2000 %; an activation energy: up to 200 kJ/mol.
QUANTITY_UNITS = {
    "theoretical_capacity_mAh_per_g": ("mAh/g", 1000.0), "reversible_capacity_mAh_per_g": ("mAh/g", 1000.0),
    "hc_share_of_reversible_capacity_mAh_per_g": ("mAh/g", 1000.0),
    "initial_coulombic_efficiency_pct": ("%", 100.0), "capacity_at_current_mAh_per_g": ("mAh/g", 1000.0),
    "capacity_at_cycle_mAh_per_g": ("mAh/g", 1000.0), "activation_energy_kJ_per_mol": ("kJ/mol", 200.0),
    "particle_expansion_pct": ("%", 2000.0), "electrode_expansion_after_1000_cycles_pct": ("%", 2000.0),
}
# The smallest value a measurement of each unit can state: a capacity is read to about 1 mAh/g, an efficiency or an
# expansion to 0.01 %, an activation energy to 0.01 kJ/mol. A smaller positive value is a typing or unit error, and
# its stated % scatter would weight it without bound (1e-300 mAh/g made the fit's residuals overflow).
SMALLEST_VALUE = {"mAh/g": 1.0, "%": 0.01, "kJ/mol": 0.01}
SIGMA_PCT_RANGE = (0.01, 100.0)  # a stated scatter below 0.01 % would weight one row beyond any other's reach


# The fit stops when the cost or the step changes by less than this share. Directions the data barely see (the
# calibration is ill-conditioned, see ``snhc calibrate``) make the default 1e-8 crawl for thousands of iterations
# while the cost moves in its third digit; the uncertainty ensemble, not the last digits of the optimum, carries
# what those directions leave open.
FIT_TOLERANCE = 1e-6
FIT_MAX_EVALUATIONS = 1000  # residual evaluations, besides the Jacobian's


class CalibrationDataError(ValueError):
    """A broken calibration data file; the message names the file, the row and the field."""


def default_data_path() -> Path:
    return config_dir() / "calibration" / "li2025.yaml"


def load_observations(path: str | Path | None = None, materials: dict[str, Recipes] | None = None) -> pd.DataFrame:
    """Read and check the calibration data into a table (one row per observation)."""
    path = Path(path) if path else default_data_path()
    materials = materials if materials is not None else load_materials(config_dir() / "materials.yaml")
    try:
        document = read_yaml_file(path, "calibration data file")
    except YamlInputError as error:
        raise CalibrationDataError(str(error)) from None
    rows = document.get("observations") if isinstance(document, dict) else None
    if not isinstance(rows, list) or not rows:
        raise CalibrationDataError(f"{path}: not a calibration file: expected a non-empty 'observations' list")
    unknown_keys = sorted(map(str, set(document) - set(TOP_LEVEL_KEYS)))
    if unknown_keys:
        raise CalibrationDataError(f"{path}: unknown key(s) {unknown_keys}; allowed {list(TOP_LEVEL_KEYS)}")
    found = non_finite_number(rows)
    if found is not None:
        raise CalibrationDataError(f"{path}: observations{found[0]}={found[1]!r} is not a finite number")
    for i, row in enumerate(rows, start=1):
        where = f"{path}: observation {i}"
        if not isinstance(row, dict):
            raise CalibrationDataError(f"{where}: expected a mapping of fields, got {excerpt(row)}")
        unknown = set(row) - set(COLUMNS)
        if unknown:
            raise CalibrationDataError(f"{where}: unknown field(s) {sorted(unknown)}; allowed {list(COLUMNS)}")
        if not _is_key(row.get("material")) or row.get("material") not in materials:
            raise CalibrationDataError(f"{where}: material {excerpt(row.get('material'))} not in {sorted(materials)}")
        if not _is_key(row.get("quantity")) or row.get("quantity") not in QUANTITIES:
            raise CalibrationDataError(f"{where}: quantity {excerpt(row.get('quantity'))} not in {list(QUANTITIES)}")
        if not _is_key(row.get("tag")) or row.get("tag") not in DATA_TAGS:
            raise CalibrationDataError(f"{where}: tag {excerpt(row.get('tag'))} not in {list(DATA_TAGS)}")
        for name in ("value", "sigma_pct"):
            value = row.get(name)
            if (isinstance(value, bool) or not isinstance(value, (int, float)) or not finite_as_float(value)
                    or value <= 0):
                raise CalibrationDataError(f"{where}: {name}={excerpt(value)} must be a positive, finite number")
        current, cycle = row.get("current_A_per_g"), row.get("cycle")
        if current is not None and (isinstance(current, bool) or not isinstance(current, (int, float))
                                    or not finite_as_float(current) or current <= 0):
            raise CalibrationDataError(f"{where}: current_A_per_g={excerpt(current)} must be a positive, finite "
                                       f"number")
        if cycle is not None and (isinstance(cycle, bool) or not isinstance(cycle, int) or cycle < 1):
            raise CalibrationDataError(f"{where}: cycle={excerpt(cycle)} must be a positive integer")
        if not isinstance(row.get("fit", True), bool):
            raise CalibrationDataError(f"{where}: fit={excerpt(row.get('fit'))} must be true or false")
        unit, most = QUANTITY_UNITS[row["quantity"]]
        if row.get("unit") != unit:
            raise CalibrationDataError(f"{where}: unit={excerpt(row.get('unit'))}: {row['quantity']} is in {unit}")
        least = SMALLEST_VALUE[unit]
        if not least <= row["value"] <= most:
            raise CalibrationDataError(f"{where}: value={row['value']:g} is out of range: {row['quantity']} allowed "
                                       f"{least:g} to {most:g} {unit}")
        if not SIGMA_PCT_RANGE[0] <= row["sigma_pct"] <= SIGMA_PCT_RANGE[1]:
            raise CalibrationDataError(f"{where}: sigma_pct={row['sigma_pct']:g} is out of range: allowed "
                                       f"{SIGMA_PCT_RANGE[0]:g} to {SIGMA_PCT_RANGE[1]:g}")
        if current is not None and current > MAX_CURRENT_A_PER_G:
            raise CalibrationDataError(f"{where}: current_A_per_g={current:g} is out of range: allowed above 0 up "
                                       f"to {MAX_CURRENT_A_PER_G:g}")
        if cycle is not None and cycle > MAX_CYCLE:
            raise CalibrationDataError(f"{where}: cycle={excerpt(cycle)} is out of range: allowed 1 to {MAX_CYCLE}")
        needs_current = row["quantity"] in ("capacity_at_current_mAh_per_g", "capacity_at_cycle_mAh_per_g")
        if needs_current and not isinstance(row.get("current_A_per_g"), (int, float)):
            raise CalibrationDataError(f"{where}: {row['quantity']} needs current_A_per_g")
        if row["quantity"] == "capacity_at_cycle_mAh_per_g" and not isinstance(row.get("cycle"), int):
            raise CalibrationDataError(f"{where}: capacity_at_cycle_mAh_per_g needs an integer cycle")
        # a condition the model does not read would be fitted as if it were not there: refused, not ignored
        if cycle is not None and row["quantity"] != "capacity_at_cycle_mAh_per_g":
            raise CalibrationDataError(f"{where}: cycle={cycle}: only capacity_at_cycle_mAh_per_g is read at a "
                                       f"cycle; {row['quantity']} takes none (leave cycle out)")
        if current is not None and row["quantity"] in WITHOUT_CURRENT:
            raise CalibrationDataError(f"{where}: current_A_per_g={current:g}: {row['quantity']} is not read at a "
                                       f"current (leave current_A_per_g out)")
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    table["fit"] = table["fit"].fillna(True).astype(bool)
    condition = ["material", "quantity", "current_A_per_g", "cycle"]
    repeated = table[table[condition].astype(str).duplicated()]
    if len(repeated):
        row = repeated.iloc[0]
        raise CalibrationDataError(f"{path}: observation {int(repeated.index[0]) + 1}: {row['material']} "
                                   f"{row['quantity']} at the same condition as an earlier one: give each once")
    if not table["fit"].any():
        raise CalibrationDataError(f"{path}: no observation has fit: true, so there is nothing to calibrate on")
    return table


def _is_key(value) -> bool:
    """A value that can be looked up in a table of names (a list or mapping cannot)."""
    return isinstance(value, str)


def data_digest(path: str | Path | None = None) -> str:
    """SHA-256 of the calibration data file's bytes."""
    path = Path(path or default_data_path())
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:  # missing, a folder, unreadable: the reader names the problem in one line
        load_observations(path)
        raise


def model_values(p: ModelParameters, observations: pd.DataFrame, materials: dict[str, Recipes]) -> np.ndarray:
    """The model's value for every observation row (one batched evaluation per cycling current)."""
    names = list(dict.fromkeys(observations["material"]))
    batch = Recipes.from_records([materials[n].to_records()[0] for n in names])
    row_of = {n: i for i, n in enumerate(names)}
    rate_rows = observations["quantity"] == "capacity_at_current_mAh_per_g"
    currents = tuple(sorted(set(observations.loc[rate_rows, "current_A_per_g"])))
    cycling = observations["quantity"].isin(["capacity_at_cycle_mAh_per_g",
                                             "electrode_expansion_after_1000_cycles_pct"])
    cycling_currents = sorted(set(observations.loc[cycling, "current_A_per_g"].dropna())) or [1.7]
    cycles = tuple(sorted(set(int(c) for c in observations["cycle"].dropna()))) or (1,)

    predictions = {
        current: predict(batch, p, PredictionRequest(currents, current, cycles, p.reference_temperature_C))
        for current in cycling_currents
    }
    values = np.empty(len(observations))
    for k, obs in enumerate(observations.itertuples(index=False)):
        i = row_of[obs.material]
        cycling_current = obs.current_A_per_g if obs.current_A_per_g in predictions else cycling_currents[0]
        pred = predictions[cycling_current]
        if obs.quantity == "capacity_at_current_mAh_per_g":
            values[k] = pred.capacity_at_current_mAh_per_g[i, currents.index(obs.current_A_per_g)]
        elif obs.quantity == "capacity_at_cycle_mAh_per_g":
            values[k] = pred.capacity_at_cycle_mAh_per_g[i, cycles.index(int(obs.cycle))]
        else:
            values[k] = getattr(pred, obs.quantity)[i]
    return values


@dataclass(frozen=True)
class Calibration:
    """A fit: the fitted values, the fit report and the digests that identify what it was fitted to."""

    fitted_values: dict[str, float]
    report: pd.DataFrame
    data_sha256: str
    parameters_sha256: str

    def apply(self, p: ModelParameters) -> ModelParameters:
        return p.with_values(**self.fitted_values)

    def report_text(self) -> str:
        """Each data point, its model value and residual, then the fitted values."""
        table = self.report.copy()
        table["condition"] = [_condition(r) for r in table.itertuples(index=False)]
        shown = table[["material", "quantity", "condition", "measured", "model", "residual", "residual_pct", "fit"]]
        lines = [shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"), "", "fitted parameters:"]
        lines += [f"  {name} = {value:.6g}" for name, value in self.fitted_values.items()]
        lines.append(f"data sha256 {self.data_sha256[:16]}, parameters sha256 {self.parameters_sha256[:16]}")
        return "\n".join(lines)


def _condition(row) -> str:
    parts = []
    if not pd.isna(row.current_A_per_g):
        parts.append(f"{row.current_A_per_g:g} A/g")
    if not pd.isna(row.cycle):
        parts.append(f"cycle {int(row.cycle)}")
    return ", ".join(parts) or "-"


def model_source_digest(folder: Path | None = None) -> str:
    """SHA-256 of a model's source (the ``*.py`` of ``folder``, default ``surrogate/``): a fit cached by an older
    model is never reused."""
    digest = hashlib.sha256()
    for source in sorted((folder or Path(__file__).parent).glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()


def _cache_key(data_sha: str, parameters_sha: str) -> str:
    return hashlib.sha256((data_sha + parameters_sha + model_source_digest()).encode()).hexdigest()[:20]


class ParameterTransform:
    """Maps bounded parameters (the fitted ones unless ``names`` are given) to the scale a fit searches: log10 for
    wide positive ranges, linear otherwise."""

    def __init__(self, p: ModelParameters, names: list[str] | None = None):
        self.names = p.names("fitted") if names is None else list(names)
        self.bounds = np.array([p[n].bounds for n in self.names], dtype=float).reshape(-1, 2)
        self.log = (self.bounds[:, 0] > 0) & (self.bounds[:, 1] / np.maximum(self.bounds[:, 0], 1e-300) >= 50)

    def forward(self, values):
        return np.where(self.log, np.log10(np.maximum(values, 1e-300)), values)

    def backward(self, x):
        x = np.asarray(x, dtype=float)
        values = np.where(self.log, 10.0 ** np.where(self.log, x, 0.0), x)  # no power of a linear-scale value
        return np.clip(values, self.bounds[:, 0], self.bounds[:, 1])  # 10**log10(b) can round past a bound

    def box(self):
        return self.forward(self.bounds[:, 0]), self.forward(self.bounds[:, 1])


class LeastSquaresProblem:
    """The fit's weighted residuals, (model - measured) / sigma, as a function of the transformed fitted parameters.

    One owner for what a fit minimises: :func:`fit` solves it, ``surrogate/uncertainty.py`` takes its Jacobian.
    """

    def __init__(self, p: ModelParameters, observations: pd.DataFrame, materials: dict[str, Recipes]):
        self.p = p
        self.rows = observations[observations["fit"]]
        self.materials = materials
        self.measured = self.rows["value"].to_numpy(float)
        self.sigma = self.rows["sigma_pct"].to_numpy(float) / 100.0 * self.measured
        self.transform = ParameterTransform(p)

    def parameters(self, x, base: ModelParameters | None = None) -> ModelParameters:
        """``base`` (default the problem's parameters) with the fitted values at transformed point x."""
        return (self.p if base is None else base).with_values(**dict(zip(self.transform.names, self.transform.backward(x).tolist())))

    def residuals(self, x, base: ModelParameters | None = None) -> np.ndarray:
        return (model_values(self.parameters(x, base), self.rows, self.materials) - self.measured) / self.sigma


def fit(p: ModelParameters, data_path: str | Path | None = None,
        observations: pd.DataFrame | None = None) -> Calibration:
    """Fit the 'fitted' parameters of ``p`` to the data (trust-region reflective least squares).

    ``observations`` replaces the data file's table (a leave-out study marks rows ``fit = False``).
    """
    materials = load_materials(config_dir() / "materials.yaml")
    observations = observations if observations is not None else load_observations(data_path, materials)
    problem = LeastSquaresProblem(p, observations, materials)
    transform = problem.transform
    low, high = transform.box()
    start = np.clip(transform.forward(np.array([p[n].value for n in transform.names], float)), low, high)
    solution = least_squares(problem.residuals, start, bounds=(low, high), x_scale="jac", ftol=FIT_TOLERANCE,
                             xtol=FIT_TOLERANCE, max_nfev=FIT_MAX_EVALUATIONS)
    fitted_values = dict(zip(transform.names, transform.backward(solution.x).tolist()))
    return _calibration(p, fitted_values, observations, materials, data_path)


def _calibration(p, fitted_values, observations, materials, data_path) -> Calibration:
    model = model_values(p.with_values(**fitted_values), observations, materials)
    report = observations[["material", "quantity", "current_A_per_g", "cycle", "fit"]].copy()
    report["measured"] = observations["value"].to_numpy(float)
    report["model"] = model
    report["residual"] = report["model"] - report["measured"]
    report["residual_pct"] = 100.0 * report["residual"] / report["measured"]
    return Calibration(fitted_values, report, data_digest(data_path), p.digest(exclude_tag="fitted"))


@dataclass(frozen=True)
class FitDiagnostics:
    """How far the data determine the fit: what a sceptical modeller asks before trusting a calibration.

    ``degrees_of_freedom`` = fitted rows - fitted parameters; ``met_by_construction`` names the rows the fit meets to
    within round-off (a parameter that only serves that row, so the row checks nothing); ``correlated`` the
    parameter pairs whose estimates correlate beyond ``CORRELATION_REPORTED``; ``condition_number`` that of the
    scaled J^T J (columns normalised, so units do not count); ``on_bound`` the parameters the fit pushed to a bound.
    """

    degrees_of_freedom: int
    met_by_construction: tuple[str, ...]
    correlated: tuple[tuple[str, str, float], ...]
    condition_number: float
    on_bound: tuple[str, ...]

    def text(self) -> str:
        lines = [f"degrees of freedom: {self.degrees_of_freedom} (fitted rows - fitted parameters)",
                 f"condition number of the scaled J^T J: {self.condition_number:.3g}",
                 "rows met by construction (|residual| < 1e-6 sigma): " + (", ".join(self.met_by_construction) or "none"),
                 "parameters on a bound: " + (", ".join(self.on_bound) or "none")]
        lines.append(f"parameter correlations beyond {CORRELATION_REPORTED:g}:" + ("" if self.correlated else " none"))
        lines += [f"  {a} ~ {b}: {r:+.2f}" for a, b, r in self.correlated]
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"degrees_of_freedom": self.degrees_of_freedom, "met_by_construction": list(self.met_by_construction),
                "correlated": [{"a": a, "b": b, "correlation": r} for a, b, r in self.correlated],
                "condition_number": self.condition_number, "on_bound": list(self.on_bound)}


CORRELATION_REPORTED = 0.9  # |correlation| above which a pair of fitted parameters is reported as not separated
MET_BY_CONSTRUCTION_SIGMA = 1e-6  # |residual| in sigmas below which a row is met by construction, not by fit
JACOBIAN_STEP_PER_RANGE = 1e-4  # finite-difference step of the diagnostics' Jacobian, as a share of the range


# A fitted parameter within this share of its (fit-scale) range from a bound sits on it: a bounded least-squares fit
# stops short of a bound it presses against (the interface activation energy ends at 3.007 of [3, 10.4], 1e-3 of
# the range, and an exact comparison reported no parameter on a bound)
BOUND_SHARE = 2e-3


def on_bound(names, x, low, high) -> tuple[str, ...]:
    """The names whose fit-scale value ``x`` lies within :data:`BOUND_SHARE` of its range from ``low`` or ``high``."""
    span = np.maximum(np.asarray(high, float) - np.asarray(low, float), 1e-12)
    near = (np.abs(np.asarray(x, float) - low) <= BOUND_SHARE * span) | (np.abs(high - np.asarray(x, float))
                                                                          <= BOUND_SHARE * span)
    return tuple(n for n, flag in zip(names, near) if flag)


def diagnostics(p: ModelParameters, calibration: Calibration, data_path: str | Path | None = None) -> FitDiagnostics:
    """Identifiability of a calibration of ``p``: dof, rows met by construction, correlations, conditioning, bounds."""
    materials = load_materials(config_dir() / "materials.yaml")
    problem = LeastSquaresProblem(calibration.apply(p), load_observations(data_path, materials), materials)
    names, transform = problem.transform.names, problem.transform
    low, high = transform.box()
    span = np.maximum(high - low, 1e-12)
    x0 = transform.forward(np.array([problem.p[n].value for n in names], float))
    r0 = problem.residuals(x0)
    step = np.where(x0 + JACOBIAN_STEP_PER_RANGE * span <= high, 1.0, -1.0) * JACOBIAN_STEP_PER_RANGE * span
    jacobian = np.column_stack([(problem.residuals(x0 + step[j] * np.eye(x0.size)[j]) - r0) / step[j]
                                for j in range(x0.size)])
    norms = np.linalg.norm(jacobian, axis=0)
    scaled = jacobian / np.where(norms > 0, norms, 1.0)
    information = scaled.T @ scaled
    covariance = np.linalg.pinv(information)
    sd = np.sqrt(np.maximum(np.diag(covariance), 1e-300))
    correlation = covariance / np.outer(sd, sd)
    pairs = [(names[i], names[j], float(correlation[i, j])) for i in range(len(names)) for j in range(i + 1, len(names))
             if abs(correlation[i, j]) > CORRELATION_REPORTED]
    rows = problem.rows
    met = tuple(f"{row.material} {row.quantity}" + (f" at {row.current_A_per_g:g} A/g" if not pd.isna(row.current_A_per_g) else "")
                for row, r in zip(rows.itertuples(index=False), r0) if abs(r) < MET_BY_CONSTRUCTION_SIGMA)
    singular = np.linalg.svd(scaled, compute_uv=False)
    condition = float((singular[0] / singular[-1]) ** 2) if singular[-1] > 0 else float("inf")
    return FitDiagnostics(len(r0) - x0.size, met, tuple(sorted(pairs, key=lambda t: -abs(t[2]))), condition,
                          on_bound(names, x0, low, high))


def calibrate(p: ModelParameters | None = None, data_path: str | Path | None = None, refit: bool = False) -> Calibration:
    """The calibration for these parameters and data: from the cache when both are unchanged, else a new fit."""
    p = p or ModelParameters.load()
    data_sha, parameters_sha = data_digest(data_path), p.digest(exclude_tag="fitted")
    cache_file = cache_dir() / f"calibration-{_cache_key(data_sha, parameters_sha)}.json"
    cached = None if refit else read_cached(cache_file)
    if cached is not None:
        materials = load_materials(config_dir() / "materials.yaml")
        try:
            return _calibration(p, cached_fit(p, cached), load_observations(data_path, materials), materials,
                                data_path)
        except (KeyError, TypeError, ValueError):  # a damaged or edited file: fit again and rewrite it
            pass
    calibration = fit(p, data_path)
    write_cached(cache_file, {"data_sha256": data_sha, "parameters_sha256": parameters_sha,
                              "fitted_values": calibration.fitted_values})
    return calibration


def cached_fit(p: ModelParameters, cached: dict) -> dict[str, float]:
    """The fitted values of a cache file, checked: every fitted parameter of ``p`` and no other, each a finite
    number within its bounds (``ModelParameters.with_values`` raises ParameterError, a ValueError, otherwise)."""
    fitted = cached["fitted_values"]
    if not isinstance(fitted, dict) or set(fitted) != set(p.names("fitted")):
        raise ValueError("the cached fit names other parameters")
    p.with_values(**fitted)
    return {name: float(value) for name, value in fitted.items()}


def calibrated_parameters(p: ModelParameters | None = None, data_path: str | Path | None = None) -> ModelParameters:
    """Model parameters with the fitted values filled in."""
    p = p or ModelParameters.load()
    return calibrate(p, data_path).apply(p)
