"""Building and solving the PyBaMM model: one build per rounded radius pair, cached per thread, all discharges of
a build in one multi-input IDAKLU call; failures are results (:class:`PhysicsResult` FAILED with the reason)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Sequence

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")  # before pybamm is imported

import numpy as np
import pybamm

from surrogate.kinetics import FARADAY_C_PER_MOL
from surrogate.parameters import ModelParameters
from surrogate.recipe import Recipes
from surrogate.status import Status

from surrogate.physics.design import ElectrodeDesign, electrode_design, max_concentrations_mol_per_m3, rounded_radius_m
from surrogate.physics.model import (_CONTACT, _CURRENT, _HC_DIFFUSIVITY_FACTOR, _HC_EXCHANGE_FACTOR, _HC_FRACTION,
                                     _HC_INITIAL, _INITIAL_TEMPERATURE, _SN_DIFFUSIVITY, _SN_EXCHANGE, _SN_FRACTION,
                                     _SN_INITIAL, _TEMPERATURE, _pybamm_parameter_values, model_options)
from surrogate.physics.ocp import initial_stoichiometries

MODEL_CLASSES = ("SPM", "SPMe", "DFN")

# Values of configs/model_parameters.yaml that shape a built simulation (the rest enter as inputs).
_BUILD_PARAMETERS = ("sn_capacity_mAh_per_g", "hc_capacity_mAh_per_g", "sn_density_g_per_cm3", "hc_density_g_per_cm3",
                     "sn_plateau_potentials_V", "sn_plateau_end_na_per_sn", "lower_cutoff_V", "sn_volume_per_na_A3",
                     "sn_volume_per_atom_A3", "hc_expansion_pct", "reference_temperature_C", "charge_transfer_coefficient",
                     "overpotential_spread_V", "electrolyte_activation_energy_kJ_per_mol",
                     "counter_activation_energy_kJ_per_mol")

# Outputs read from each solution.
_VOLTAGE = "Voltage [V]"
_HC_STOICHIOMETRY = "Positive electrode primary volume-averaged concentration"
_SN_STOICHIOMETRY = "Positive electrode secondary volume-averaged concentration"
_SN_DISPLACEMENT = "X-averaged positive secondary particle surface displacement [m]"
_THICKNESS_CHANGE = "Positive electrode thickness change [m]"
_OUTPUT_VARIABLES = (_VOLTAGE, _HC_STOICHIOMETRY, _SN_STOICHIOMETRY, _SN_DISPLACEMENT, _THICKNESS_CHANGE)


@dataclass
class _Built:
    """A built simulation and the geometry it was built for."""

    simulation: pybamm.Simulation
    sn_radius_m: float
    hc_radius_m: float
    sn_initial_stoichiometry: float
    hc_initial_stoichiometry: float


_local = threading.local()
_build_lock = threading.Lock()  # PyBaMM's model processing is not known to be thread-safe: one build at a time
_builds = 0


def build_count() -> int:
    """Simulations built in this process so far (all threads): shows how well batches share builds."""
    return _builds


def clear_simulation_cache() -> None:
    """Forget this thread's built simulations (the next evaluation rebuilds)."""
    _local.simulations = OrderedDict()


def _build_key(sn_radius_m: float, hc_radius_m: float, p: ModelParameters, q: ModelParameters) -> tuple:
    static = json.dumps({"q": q.digest(exclude_tag="fitted"), "p": {n: p[n].value for n in _BUILD_PARAMETERS}},
                        sort_keys=True)
    return (float(sn_radius_m), float(hc_radius_m), hashlib.sha256(static.encode()).hexdigest())


def _simulation(sn_radius_m: float, hc_radius_m: float, p: ModelParameters, q: ModelParameters) -> _Built:
    """This thread's simulation for a pair of (rounded) radii, built on first use (least recently used evicted)."""
    global _builds
    cache = getattr(_local, "simulations", None)
    if cache is None:
        cache = _local.simulations = OrderedDict()
    key = _build_key(sn_radius_m, hc_radius_m, p, q)
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    if q.pybamm_model not in MODEL_CLASSES:
        raise ValueError(f"physics_parameters.pybamm_model={q.pybamm_model!r}: expected one of {MODEL_CLASSES}")
    with _build_lock:
        model = getattr(pybamm.lithium_ion, q.pybamm_model)(model_options())
        points = dict(model.default_var_pts)
        points.update({"x_s": int(q.electrolyte_mesh_points), "x_p": int(q.electrolyte_mesh_points),
                       "r_p_prim": int(q.particle_mesh_points), "r_p_sec": int(q.particle_mesh_points)})
        solver = pybamm.IDAKLUSolver(rtol=q.solver_relative_tolerance, atol=q.solver_absolute_tolerance,
                                     output_variables=list(_OUTPUT_VARIABLES),
                                     options={"num_threads": int(q.solver_threads),
                                              "silence_sundials_errors": True})  # failures go into the results
        simulation = pybamm.Simulation(model, solver=solver, var_pts=points,
                                       parameter_values=_pybamm_parameter_values(sn_radius_m, hc_radius_m, p, q))
        simulation.build()
        _builds += 1
    sn_initial, hc_initial = initial_stoichiometries(p, q)
    cache[key] = built = _Built(simulation, float(sn_radius_m), float(hc_radius_m), sn_initial, hc_initial)
    while len(cache) > int(q.simulation_cache_size):
        cache.popitem(last=False)
    return built


# --- results -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PhysicsResult:
    """Rate capability of one recipe from the PyBaMM model.

    Arrays are per current (same order as ``currents_A_per_g``); capacities are per g of active material. A current
    whose discharge failed has NaN values and its reason in ``reason``; then ``status`` is ``"FAILED"``.
    """

    status: Status  # FINISHED or FAILED
    reason: str  # "" when OK
    currents_A_per_g: tuple[float, ...]
    capacity_mAh_per_g: np.ndarray  # sodiation capacity down to the cut-off (the reversible capacity here)
    sn_capacity_mAh_per_g: np.ndarray  # the Sn phase's part
    hc_capacity_mAh_per_g: np.ndarray  # the HC phase's part
    sn_swelling_pct: np.ndarray  # Sn-phase volume change at the end of sodiation, vs Na-free Sn
    electrode_thickness_change_pct: np.ndarray  # PyBaMM's thickness change over the sodiation, no pore buffering
    termination: tuple[str, ...]  # why each discharge stopped
    theoretical_capacity_mAh_per_g: float
    sn_radius_m: float  # radii from the milling model (the build used the rounded ones)
    hc_radius_m: float
    failed_currents_A_per_g: tuple[float, ...] = field(default=())
    failure_by_current: tuple[str, ...] = field(default=())  # why each current failed ("" where it did not)

    def failure_at(self, current_A_per_g: float) -> str:
        """Why the solve at one of the currents failed ("" if it did not; the whole reason if none is recorded)."""
        by_current = dict(zip(self.currents_A_per_g, self.failure_by_current))
        return by_current.get(current_A_per_g, self.reason)

    @property
    def ok(self) -> bool:
        return self.status == Status.FINISHED

    @property
    def capacity_by_current(self) -> dict[float, float]:
        """current (A/g) -> capacity (mAh/g)."""
        return {c: float(v) for c, v in zip(self.currents_A_per_g, self.capacity_mAh_per_g)}

    def record(self) -> dict:
        """JSON-ready view."""
        def listed(values):
            return [None if not np.isfinite(v) else float(v) for v in values]

        return {
            "status": self.status.value, "reason": self.reason,
            "currents_A_per_g": list(self.currents_A_per_g),
            "capacity_mAh_per_g": listed(self.capacity_mAh_per_g),
            "sn_capacity_mAh_per_g": listed(self.sn_capacity_mAh_per_g),
            "hc_capacity_mAh_per_g": listed(self.hc_capacity_mAh_per_g),
            "sn_swelling_pct": listed(self.sn_swelling_pct),
            "electrode_thickness_change_pct": listed(self.electrode_thickness_change_pct),
            "termination": list(self.termination),
        }


@dataclass
class _Outcome:
    """One discharge: capacity and outputs, or a failure reason."""

    capacity_mAh_per_g: float = np.nan
    sn_mAh_per_g: float = np.nan
    hc_mAh_per_g: float = np.nan
    sn_swelling_pct: float = np.nan
    thickness_change_pct: float = np.nan
    termination: str = ""
    failure: str = ""


def _discharge_inputs(design: ElectrodeDesign, i: int, current_A_per_g: float, built: _Built) -> dict:
    sn_c_max = built.simulation.parameter_values["Secondary: Maximum concentration in positive electrode [mol.m-3]"]
    hc_c_max = built.simulation.parameter_values["Primary: Maximum concentration in positive electrode [mol.m-3]"]
    # Exact similarity rescaling from the true radius to the built one: D ~ R^2, j0 ~ R.
    sn_ratio = built.sn_radius_m / design.sn_radius_m[i]
    hc_ratio = built.hc_radius_m / design.hc_radius_m[i]
    return {
        _CURRENT: current_A_per_g * design.active_mass_g_per_m2[i],
        _CONTACT: design.contact_resistance_ohm_m2[i],
        _TEMPERATURE: design.temperature_K,
        _INITIAL_TEMPERATURE: design.temperature_K,
        _HC_FRACTION: design.hc_volume_fraction[i],
        _SN_FRACTION: design.sn_volume_fraction[i],
        _HC_INITIAL: built.hc_initial_stoichiometry * hc_c_max,
        _SN_INITIAL: built.sn_initial_stoichiometry * sn_c_max,
        _SN_DIFFUSIVITY: design.sn_diffusivity_m2_per_s[i] * sn_ratio**2,
        _SN_EXCHANGE: design.sn_exchange_current_A_per_m2[i] * sn_ratio,
        _HC_DIFFUSIVITY_FACTOR: design.hc_diffusivity_factor[i] * hc_ratio**2,
        _HC_EXCHANGE_FACTOR: design.hc_exchange_current_factor[i] * hc_ratio,
    }


def _time_limit_s(design: ElectrodeDesign, i: int, current_A_per_g: float, q: ModelParameters) -> float:
    return q.time_limit_factor * 3.6 * design.theoretical_capacity_mAh_per_g[i] / current_A_per_g


# The failure of a discharge that reaches the cut-off at once or nearly (a capacity of about 0 at that current), as
# opposed to one that never reaches it or a solver error, which say nothing of the capacity
CANNOT_CARRY = "the current is beyond what the electrode carries"


def _read_outcome(solution, design: ElectrodeDesign, i: int, current_A_per_g: float, built: _Built,
                  p: ModelParameters, q: ModelParameters) -> _Outcome:
    """Capacity and outputs of one solved discharge, or why it does not count."""
    termination = str(getattr(solution, "termination", ""))
    if "event" not in termination:
        return _Outcome(termination=termination, failure=(
            f"did not reach the {p.lower_cutoff_V:g} V cut-off within {q.time_limit_factor:g}x the theoretical "
            f"discharge time ({termination or 'no termination reported'})"))
    end_s = float(solution.t[-1])
    capacity = current_A_per_g * end_s / 3.6  # constant current: Q = I t
    sn_c_max, hc_c_max = max_concentrations_mol_per_m3(p)
    area_to_gram = q.electrode_thickness_um * 1e-6 * FARADAY_C_PER_MOL / 3.6 / design.active_mass_g_per_m2[i]
    sn_sto = float(solution[_SN_STOICHIOMETRY].entries[-1])
    hc_sto = float(solution[_HC_STOICHIOMETRY].entries[-1])
    sn_part = (sn_sto - built.sn_initial_stoichiometry) * sn_c_max * design.sn_volume_fraction[i] * area_to_gram
    hc_part = (hc_sto - built.hc_initial_stoichiometry) * hc_c_max * design.hc_volume_fraction[i] * area_to_gram
    swelling = 300.0 * float(solution[_SN_DISPLACEMENT].entries[-1]) / built.sn_radius_m
    thickness = 100.0 * float(solution[_THICKNESS_CHANGE].entries[-1]) / (q.electrode_thickness_um * 1e-6)
    values = np.array([capacity, sn_part, hc_part, swelling, thickness])
    if not np.all(np.isfinite(values)):
        return _Outcome(termination=termination, failure="the solution contains non-finite values")
    minimum = q.failed_capacity_fraction * design.theoretical_capacity_mAh_per_g[i]
    if capacity < minimum:
        return _Outcome(capacity, sn_part, hc_part, swelling, thickness, termination, failure=(
            f"reached the {p.lower_cutoff_V:g} V cut-off after only {capacity:.3g} mAh/g (< "
            f"{100 * q.failed_capacity_fraction:g} % of theoretical): {CANNOT_CARRY}"))
    return _Outcome(capacity, sn_part, hc_part, swelling, thickness, termination)


def _describe(error: Exception) -> str:
    """One-line reason for a failed solve; PyBaMM's long dump of the inputs is left out."""
    text = " ".join(str(error).split())
    text = re.sub(r" with inputs \{.*", "", text)
    if "non-positive at initial conditions" in text:
        return f"the voltage is below the cut-off from the start: {CANNOT_CARRY} ({type(error).__name__}: {text[:200]})"
    return f"{type(error).__name__}: {text[:300]}" if text else type(error).__name__


def _solve_jobs(built: _Built, jobs: list[tuple[int, float]], design: ElectrodeDesign, p: ModelParameters,
                q: ModelParameters) -> dict[tuple[int, float], _Outcome]:
    """Solve the discharges that share one build: one multi-input IDAKLU call, then one by one if that fails."""
    inputs = [_discharge_inputs(design, i, current, built) for i, current in jobs]
    limits = [_time_limit_s(design, i, current, q) for i, current in jobs]
    outcomes: dict[tuple[int, float], _Outcome] = {}
    try:
        end = max(limits)
        solutions = built.simulation.solve([0.0, end], inputs=inputs, t_interp=np.array([0.0, end]))
        solutions = solutions if isinstance(solutions, list) else [solutions]
        for job, solution, limit in zip(jobs, solutions, limits):
            outcome = _read_outcome(solution, design, job[0], job[1], built, p, q)
            if not outcome.failure and solution.t[-1] > limit:
                outcome = _Outcome(termination=outcome.termination, failure=(
                    f"did not reach the {p.lower_cutoff_V:g} V cut-off within {q.time_limit_factor:g}x the "
                    "theoretical discharge time"))
            outcomes[job] = outcome
        return outcomes
    except Exception:  # noqa: BLE001 - one bad discharge fails the joint call: isolate it below
        pass
    for job, single, limit in zip(jobs, inputs, limits):
        try:
            solution = built.simulation.solve([0.0, limit], inputs=single, t_interp=np.array([0.0, limit]))
            outcomes[job] = _read_outcome(solution, design, job[0], job[1], built, p, q)
        except Exception as error:  # noqa: BLE001 - a failed solve is a result, never an exception to the caller
            outcomes[job] = _Outcome(termination="solver error", failure=_describe(error))
    return outcomes


def evaluate_physics(recipes: Recipes, currents_A_per_g: Sequence[float], p: ModelParameters,
                     temperature_C: float = 25.0, *, physics_parameters: ModelParameters) -> list[PhysicsResult]:
    """Reversible capacity vs current of each recipe from the PyBaMM half-cell model.

    Parameters
    ----------
    recipes
        A batch of recipes; recipes whose rounded particle radii coincide share one built simulation.
    currents_A_per_g
        Galvanostatic sodiation currents per g of active material.
    p
        The surrogate's model parameters with fitted values (``surrogate.calibration.calibrated_parameters()``).
    temperature_C
        Cell temperature (Arrhenius factors on exchange currents and diffusivities).
    physics_parameters
        Parameters of this model, fitted values included: the model is handed them and never fits itself
        (``surrogate.physics.calibration.calibrated_physics_parameters`` fits or reads the cached fit).

    Returns
    -------
    list of PhysicsResult
        One per recipe, in order. Never raises for a failed solve: the result is ``FAILED`` with the reason.
    """
    q = physics_parameters
    currents = tuple(float(c) for c in currents_A_per_g)
    n = recipes.size
    results: list[PhysicsResult | None] = [None] * n
    try:
        if not currents or any(not np.isfinite(c) or c <= 0 for c in currents):
            raise ValueError(f"currents must be positive and finite, got {list(currents)}")
        design = electrode_design(recipes, p, q, temperature_C)
        points = q.radius_grid_points_per_decade
        sn_built = rounded_radius_m(design.sn_radius_m, points)
        hc_built = rounded_radius_m(design.hc_radius_m, points)
    except Exception as error:  # noqa: BLE001
        return [_failed_result(currents, f"cannot set up the model: {_describe(error)}") for _ in range(n)]

    outcomes: dict[tuple[int, float], _Outcome] = {}
    groups: dict[tuple[float, float], list[int]] = {}
    for i in range(n):
        groups.setdefault((float(sn_built[i]), float(hc_built[i])), []).append(i)
    for (sn_radius, hc_radius), members in groups.items():
        try:
            built = _simulation(sn_radius, hc_radius, p, q)
        except Exception as error:  # noqa: BLE001
            for i in members:
                results[i] = _failed_result(currents, f"cannot build the PyBaMM model: {_describe(error)}",
                                            design, i)
            continue
        outcomes.update(_solve_jobs(built, [(i, c) for i in members for c in currents], design, p, q))

    for i in range(n):
        if results[i] is None:
            results[i] = _result(currents, [outcomes[(i, c)] for c in currents], design, i)
    return results


def _result(currents, outcomes: list[_Outcome], design: ElectrodeDesign, i: int) -> PhysicsResult:
    failed = [(c, o.failure) for c, o in zip(currents, outcomes) if o.failure]
    reason = "; ".join(f"{c:g} A/g: {why}" for c, why in failed)

    def column(name):
        return np.array([np.nan if o.failure else getattr(o, name) for o in outcomes], dtype=float)

    swelling = column("sn_swelling_pct")
    if design.sn_mass_fraction[i] <= 0.0:
        swelling[:] = np.nan  # only the negligible placeholder Sn phase swells: nothing to report

    return PhysicsResult(
        status=Status.FAILED if failed else Status.FINISHED, reason=reason, currents_A_per_g=tuple(currents),
        capacity_mAh_per_g=column("capacity_mAh_per_g"), sn_capacity_mAh_per_g=column("sn_mAh_per_g"),
        hc_capacity_mAh_per_g=column("hc_mAh_per_g"), sn_swelling_pct=swelling,
        electrode_thickness_change_pct=column("thickness_change_pct"),
        termination=tuple(o.termination for o in outcomes),
        theoretical_capacity_mAh_per_g=float(design.theoretical_capacity_mAh_per_g[i]),
        sn_radius_m=float(design.sn_radius_m[i]), hc_radius_m=float(design.hc_radius_m[i]),
        failed_currents_A_per_g=tuple(c for c, _ in failed),
        failure_by_current=tuple(o.failure or "" for o in outcomes))


def _failed_result(currents, reason: str, design: ElectrodeDesign | None = None, i: int = 0) -> PhysicsResult:
    nan = np.full(len(currents), np.nan)
    return PhysicsResult(
        status=Status.FAILED, reason=reason, currents_A_per_g=tuple(currents), capacity_mAh_per_g=nan,
        sn_capacity_mAh_per_g=nan.copy(), hc_capacity_mAh_per_g=nan.copy(), sn_swelling_pct=nan.copy(),
        electrode_thickness_change_pct=nan.copy(), termination=("not solved",) * len(currents),
        theoretical_capacity_mAh_per_g=float(design.theoretical_capacity_mAh_per_g[i]) if design else np.nan,
        sn_radius_m=float(design.sn_radius_m[i]) if design else np.nan,
        hc_radius_m=float(design.hc_radius_m[i]) if design else np.nan,
        failed_currents_A_per_g=tuple(currents), failure_by_current=(reason,) * len(currents))
