"""The model's one entry point: a batch of recipes in, every predicted metric out.

:func:`predict` chains the stages (milling -> kinetics -> expansion -> cycle life). It only predicts: how a campaign
scores a prediction is the objective's business (``flows/objective.py``). What to predict (currents, cycles,
temperature, and the optional *target* condition an objective asks for) is a :class:`PredictionRequest`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields

import numpy as np

from surrogate import cycle_life, expansion
from surrogate.composition import theoretical_capacity_mAh_per_g
from surrogate.kinetics import RateCapacity, capacity_at_current, exchange_currents
from surrogate.milling import Microstructure, microstructure
from surrogate.parameters import ModelParameters
from surrogate.recipe import Recipes

ELECTRODE_EXPANSION_CYCLES = 1000  # the study's post-mortem thickness is after 1000 cycles


# The flat names of Prediction.scalar_metrics that carry a condition: a rate-test capacity at a current and a
# capacity after a number of cycles (the one place that writes them, below, and every reader of them)
AT_CURRENT = re.compile(r"^capacity_at_([0-9.]+)_A_per_g_mAh_per_g$")
AT_CYCLE = re.compile(r"^capacity_at_cycle_([0-9]{1,9})_mAh_per_g$")  # more digits: no cycle count, an unknown name


@dataclass(frozen=True)
class PredictionRequest:
    """What to predict: rate currents, cycling current and cycles, temperature, and optionally a target condition
    (capacity at ``target_current_A_per_g`` after ``target_cycle`` test cycles at ``target_temperature_C``), the
    quantity a capacity objective scores."""

    currents_A_per_g: tuple[float, ...] = (0.17, 0.42, 0.84, 1.7, 4.2)
    cycling_current_A_per_g: float = 1.7
    cycles: tuple[int, ...] = (1, 400, 1000, 12000)
    temperature_C: float = 25.0
    target_current_A_per_g: float | None = None
    target_cycle: int | None = None
    target_temperature_C: float | None = None
    retention_cycles: tuple[int, ...] = ()  # extra test cycles of the cycling curve (a retention objective's grid)


@dataclass(frozen=True)
class Prediction:
    """Predicted metrics of N recipes. Arrays have length N; per-current and per-cycle ones are (N, M)."""

    request: PredictionRequest
    theoretical_capacity_mAh_per_g: np.ndarray
    reversible_capacity_mAh_per_g: np.ndarray
    hc_share_of_reversible_capacity_mAh_per_g: np.ndarray
    initial_coulombic_efficiency_pct: np.ndarray
    capacity_at_current_mAh_per_g: np.ndarray
    capacity_at_cycle_mAh_per_g: np.ndarray
    particle_expansion_pct: np.ndarray
    electrode_expansion_after_1000_cycles_pct: np.ndarray
    activation_energy_kJ_per_mol: np.ndarray
    target_capacity_mAh_per_g: np.ndarray | None  # at the request's target condition (None without one)
    sn_linear_strain: np.ndarray  # strain of Sn domains at the cycling current (drives damage)
    microstructure: Microstructure = field(repr=False)
    retention_capacity_mAh_per_g: np.ndarray | None = None  # (N, len(request.retention_cycles)) at the cycling current

    def take(self, rows) -> "Prediction":
        """The prediction of some recipes only (``rows``: a slice or an index into the batch)."""
        def part(value):
            if isinstance(value, np.ndarray) and value.ndim:
                return value[rows]
            if isinstance(value, Microstructure):
                return Microstructure(**{f.name: part(getattr(value, f.name)) for f in fields(value)})
            return value

        return Prediction(**{f.name: part(getattr(self, f.name)) for f in fields(self)})

    def scalar_metrics(self) -> dict[str, np.ndarray]:
        """Flat name -> array(N) view for logging and tables; names carry units and conditions."""
        metrics = {
            name: getattr(self, name)
            for name in ("theoretical_capacity_mAh_per_g", "reversible_capacity_mAh_per_g",
                         "initial_coulombic_efficiency_pct", "particle_expansion_pct",
                         "electrode_expansion_after_1000_cycles_pct", "activation_energy_kJ_per_mol",
                         "sn_linear_strain")
        }
        for j, current in enumerate(self.request.currents_A_per_g):
            metrics[f"capacity_at_{current:g}_A_per_g_mAh_per_g"] = self.capacity_at_current_mAh_per_g[:, j]
        for k, cycle in enumerate(self.request.cycles):
            metrics[f"capacity_at_cycle_{cycle}_mAh_per_g"] = self.capacity_at_cycle_mAh_per_g[:, k]
        for name in ("milling_dose", "sn_size_nm", "hc_size_um", "sn_anchoring", "interface_density"):
            metrics[name] = getattr(self.microstructure, name)
        return metrics

    def record(self, i: int, current_labels=None) -> dict:
        """The metrics of recipe i as plain JSON-ready numbers (the ``snhc predict --json`` shape)."""
        current_labels = current_labels or [f"{c:g}" for c in self.request.currents_A_per_g]
        return {
            "theoretical_capacity_mAh_per_g": float(self.theoretical_capacity_mAh_per_g[i]),
            "reversible_capacity_mAh_per_g": float(self.reversible_capacity_mAh_per_g[i]),
            "initial_coulombic_efficiency_pct": float(self.initial_coulombic_efficiency_pct[i]),
            "capacity_at_current_mAh_per_g": {
                label: float(v) for label, v in zip(current_labels, self.capacity_at_current_mAh_per_g[i])},
            "capacity_at_cycle_mAh_per_g": {
                str(c): float(v) for c, v in zip(self.request.cycles, self.capacity_at_cycle_mAh_per_g[i])},
            "particle_expansion_pct": float(self.particle_expansion_pct[i]),
            "electrode_expansion_after_1000_cycles_pct": float(self.electrode_expansion_after_1000_cycles_pct[i]),
            "activation_energy_kJ_per_mol": float(self.activation_energy_kJ_per_mol[i]),
        }


@dataclass(frozen=True)
class _Regime:
    """Cycling at one current and temperature: fresh capacity, Sn strain, degradation law."""

    fresh: RateCapacity
    strain: np.ndarray
    law: cycle_life.DegradationLaw

    def step(self, cycles) -> cycle_life.CyclingStep:
        return cycle_life.CyclingStep(self.law, cycles)

    def capacity_in(self, state: cycle_life.CycledState) -> np.ndarray:
        """Capacity (N, M) at this regime's current in a cycled state (a history ending with this regime's cycles)."""
        sn_share = self.fresh.sn_mAh_per_g / np.maximum(self.fresh.total_mAh_per_g, 1e-9)
        return self.fresh.total_mAh_per_g[:, None] * cycle_life.capacity_retention(state, sn_share)


class _Regimes:
    """The regimes of one prediction, each computed once (the rate steps and the cycling share currents)."""

    def __init__(self, recipes: Recipes, micro: Microstructure, p: ModelParameters):
        self.recipes, self.micro, self.p = recipes, micro, p
        self._memo: dict[tuple[float, float], _Regime] = {}

    def at(self, current_A_per_g: float, temperature_C: float) -> _Regime:
        key = (float(current_A_per_g), float(temperature_C))
        if key not in self._memo:
            fresh = capacity_at_current(self.recipes.sn_mass_fraction, self.micro, current_A_per_g, temperature_C,
                                        self.p)
            strain = expansion.local_sn_linear_strain(fresh.sn_na_per_sn, self.micro, self.p)
            law = cycle_life.degradation_law(strain, self.micro.sn_volume_fraction, self.p)
            self._memo[key] = _Regime(fresh, strain, law)
        return self._memo[key]

    def formation(self, temperature_C: float) -> cycle_life.CyclingStep:
        """The formation cycles every test starts with, at the formation current's own strain."""
        return self.at(self.p.formation_current_A_per_g, temperature_C).step(float(self.p.formation_cycles))

    def rate_step_capacity(self, current_A_per_g: float, temperature_C: float) -> np.ndarray:
        """Capacity (N,) at the first cycle of a rate step, with the test run as the study ran it: formation, then
        ``rate_test_cycles_per_step`` cycles at each of the protocol's currents below this one, rising."""
        p = self.p
        history = [self.formation(temperature_C)]
        if p.rate_test_cycles_per_step > 0:  # 0: each point right after formation, no lower steps to solve
            history += [self.at(lower, temperature_C).step(float(p.rate_test_cycles_per_step))
                        for lower in sorted(p.rate_test_currents_A_per_g) if lower < current_A_per_g]
        regime = self.at(current_A_per_g, temperature_C)
        return regime.capacity_in(cycle_life.cycled_state(history + [regime.step(0.0)], temperature_C, p))[:, 0]

    def cycling(self, current_A_per_g: float, test_cycles, temperature_C: float):
        """Capacity (N, M) at test cycles 1.. of a long-cycling test after formation, and the state behind it."""
        regime = self.at(current_A_per_g, temperature_C)
        elapsed = np.maximum(np.asarray(test_cycles, dtype=float) - 1.0, 0.0)
        state = cycle_life.cycled_state([self.formation(temperature_C), regime.step(elapsed)], temperature_C, self.p)
        return regime.capacity_in(state), state


def predict(recipes: Recipes, p: ModelParameters, request: PredictionRequest | None = None) -> Prediction:
    """Predict every metric of a batch of recipes.

    Examples
    --------
    >>> from surrogate.calibration import calibrated_parameters
    >>> p = calibrated_parameters()
    >>> r = Recipes(sn_mass_fraction=[2 / 3], milling_time_h=[10], milling_speed_rpm=[400], ball_to_powder_ratio=[20])
    >>> round(float(predict(r, p).theoretical_capacity_mAh_per_g[0]), 1)
    664.7
    """
    request = request or PredictionRequest()
    micro = microstructure(recipes, p)
    w_sn = recipes.sn_mass_fraction
    temperature = request.temperature_C

    regimes = _Regimes(recipes, micro, p)
    first = regimes.at(p.formation_current_A_per_g, temperature).fresh
    ice = cycle_life.initial_coulombic_efficiency_pct(w_sn, first.total_mAh_per_g, micro, p)
    particle = expansion.particle_expansion_pct(w_sn, first.sn_na_per_sn, micro, p)
    activation = exchange_currents(w_sn, micro, temperature, p).apparent_activation_energy_kJ_per_mol

    # Rate capability: each current's step of the rate test, run as the study ran it.
    rate = np.column_stack([regimes.rate_step_capacity(current, temperature)
                            for current in request.currents_A_per_g]) \
        if request.currents_A_per_g else np.zeros((recipes.size, 0))

    # Long cycling at the cycling current; cycle 1 is the first test cycle after formation.
    test_cycles = np.concatenate([np.asarray(request.cycles, dtype=float),
                                  np.asarray(request.retention_cycles, dtype=float), [ELECTRODE_EXPANSION_CYCLES]])
    cycling, state = regimes.cycling(request.cycling_current_A_per_g, test_cycles, temperature)
    n_cycles = len(request.cycles)
    strain = regimes.at(request.cycling_current_A_per_g, temperature).strain
    electrode = expansion.electrode_expansion_pct(w_sn, particle, state.electrode_damage[:, -1], micro, p)

    target = None
    if request.target_current_A_per_g is not None:
        target_temperature = request.target_temperature_C if request.target_temperature_C is not None else temperature
        target = regimes.cycling(request.target_current_A_per_g, [request.target_cycle], target_temperature)[0][:, 0]
    return Prediction(
        request=request,
        theoretical_capacity_mAh_per_g=theoretical_capacity_mAh_per_g(w_sn, p),
        reversible_capacity_mAh_per_g=first.total_mAh_per_g,
        hc_share_of_reversible_capacity_mAh_per_g=first.hc_mAh_per_g,
        initial_coulombic_efficiency_pct=ice,
        capacity_at_current_mAh_per_g=rate,
        capacity_at_cycle_mAh_per_g=cycling[:, :n_cycles],
        particle_expansion_pct=particle,
        electrode_expansion_after_1000_cycles_pct=electrode,
        activation_energy_kJ_per_mol=activation,
        target_capacity_mAh_per_g=target,
        sn_linear_strain=strain,
        microstructure=micro,
        retention_capacity_mAh_per_g=cycling[:, n_cycles:-1] if request.retention_cycles else None,
    )
