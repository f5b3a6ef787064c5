"""The objective: one formula that scores a model prediction, a lab row and a physics result alike.

Like PyBOP's costs and BayBE's objectives, the objective is its own stage: the model only predicts
(``surrogate/model.py``), and this module says what a campaign wants from the prediction. The objective asks the
model for the quantity it needs (:meth:`CapacityObjective.request`), reads it from any source as plain metrics
(:meth:`CapacityObjective.inputs`), and scores it (:meth:`CapacityObjective.score`):

    objective = capacity at the target current after the target cycles
                - penalty x max(particle expansion - allowance, 0)          (mAh/g, maximised)

A lab row gives the capacity as ``objective_capacity_mAh_per_g`` and, if measured, ``particle_expansion_pct``; the
physics fidelity gives PyBaMM's capacity with the model's ageing and swelling. All three meet in :meth:`score`.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal, Mapping

import numpy as np
from pydantic import ConfigDict, Field, field_validator

from flows.inputs import NumbersNotBooleans
from surrogate.limits import CELL_TEMPERATURE_RANGE_C, MAX_CURRENT_A_PER_G, MAX_CYCLE
from surrogate.composition import theoretical_capacity_mAh_per_g
from surrogate.model import Prediction, PredictionRequest
from surrogate.recipe import FIELDS

# The largest magnitude a score can have, mAh/g: a capacity (at most ~1000) less a penalty of a few mAh/g per % of
# swelling over the allowance; a lab's stated objective or a failure penalty beyond it is a typing error.
OBJECTIVE_SPAN = 1.0e4
CAPACITY = "objective_capacity_mAh_per_g"  # capacity at the objective's target condition
EXPANSION = "particle_expansion_pct"
PENALTY = "expansion_penalty_mAh_per_g"
SCORE = "objective"


class CapacityObjective(NumbersNotBooleans):
    """Capacity at a target current after target cycles, penalised for particle expansion above an allowance.

    The defaults are the project's assumed objective (configs/default.yaml says why): the study's long-cycling
    current, capacity after 1000 cycles, and the swelling of the study's best composite as the allowance.

    Examples
    --------
    >>> objective = CapacityObjective()
    >>> objective.score({"objective_capacity_mAh_per_g": 400.0, "particle_expansion_pct": 260.0})["objective"]
    390.0
    >>> objective.score({"objective_capacity_mAh_per_g": 400.0})["objective"]  # swelling not measured: no penalty
    400.0
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ClassVar[str] = SCORE
    unit: ClassVar[str] = "mAh/g"
    direction: ClassVar[str] = "maximise"

    current_A_per_g: float = Field(1.7, gt=0.0, le=MAX_CURRENT_A_PER_G, description="target current (A/g)")
    cycle: int = Field(1000, ge=1, le=MAX_CYCLE, description="test cycles before the capacity counts")
    expansion_allowance_pct: float = Field(250.0, ge=0.0, le=1000.0, description="swelling allowed free (%)")
    expansion_penalty_mAh_per_g_per_pct: float = Field(1.0, ge=0.0, le=100.0,
                                                       description="score lost per % of swelling above it")
    temperature_C: float = Field(25.0, ge=CELL_TEMPERATURE_RANGE_C[0], le=CELL_TEMPERATURE_RANGE_C[1],
                                  description="cell temperature (C)")

    def request(self, currents_A_per_g: tuple[float, ...] | None = None, cycling_current_A_per_g: float | None = None,
                cycles: tuple[int, ...] | None = None) -> PredictionRequest:
        """What the model must predict for this objective, plus the report's currents and cycles (by default the
        model's usual ones) at the objective's temperature."""
        defaults = PredictionRequest()
        return PredictionRequest(
            currents_A_per_g=defaults.currents_A_per_g if currents_A_per_g is None else currents_A_per_g,
            cycling_current_A_per_g=(defaults.cycling_current_A_per_g if cycling_current_A_per_g is None
                                     else cycling_current_A_per_g),
            cycles=defaults.cycles if cycles is None else cycles,
            temperature_C=self.temperature_C, target_current_A_per_g=self.current_A_per_g, target_cycle=self.cycle,
            target_temperature_C=self.temperature_C)

    @staticmethod
    def inputs(prediction: Prediction, recipes=None) -> dict[str, np.ndarray]:
        """The objective's inputs from a model prediction made with :meth:`request`."""
        return {CAPACITY: prediction.target_capacity_mAh_per_g, EXPANSION: prediction.particle_expansion_pct}

    def score(self, metrics: Mapping[str, Any]) -> dict[str, Any]:
        """Penalty and score from the objective's inputs (floats or arrays); a missing expansion means no penalty.

        Raises ``KeyError`` when the capacity is missing: without it nothing can be scored.
        """
        capacity = metrics[CAPACITY]
        expansion = metrics.get(EXPANSION)
        if expansion is None:
            penalty = np.zeros_like(np.asarray(capacity, dtype=float))
        else:
            excess = np.maximum(np.asarray(expansion, dtype=float) - self.expansion_allowance_pct, 0.0)
            penalty = self.expansion_penalty_mAh_per_g_per_pct * excess
        score = np.asarray(capacity, dtype=float) - penalty
        if np.ndim(score) == 0:
            return {PENALTY: float(penalty), SCORE: float(score)}
        return {PENALTY: penalty, SCORE: score}

    def describe(self) -> str:
        """One line for reports: what is maximised."""
        return (f"capacity at {self.current_A_per_g:g} A/g after {self.cycle} cycles at {self.temperature_C:g} C "
                f"- {self.expansion_penalty_mAh_per_g_per_pct:g} mAh/g per % of particle expansion above "
                f"{self.expansion_allowance_pct:g} %")


# --- objectives a user picks and combines (config key ``objectives:``) ------------------------------------------------
# Each kind says what it measures (name with unit), which way is better, the range its values can take (limits
# must fall inside it), what it needs the model to predict (request), where it reads its value (inputs: the model's
# prediction or the recipe itself) and how a metrics row turns into its value (score). A lab row, a prediction and a
# physics result meet in score() as for CapacityObjective.

MAXIMISE, MINIMISE = "maximise", "minimise"
OBJECTIVE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_\-./]*")  # what MLflow takes as a metric name, and a table column
OBJECTIVE_NAME_MAX = 100
# Names an objective must not take unless it is its kind's own: the model's metrics and the evaluation table's columns
RESERVED_NAMES = frozenset(Prediction.__dataclass_fields__) | {
    "objective", "objective_capacity_mAh_per_g", "model_objective", "capacity_mAh_per_g", "particle_expansion_pct",
    "electrode_expansion_after_1000_cycles_pct", "cycles_to_80pct_retention", "milling_time_h",
    "milling_energy_kWh_per_kg", "status", "source", "failure_reason",
    "evaluation", "batch"} | set(FIELDS)  # and the recipe's fields: pareto.csv had held capacities in sn_mass_fraction
RESERVED_PREFIXES = ("capacity_at_", "physics.", "fidelity.")
# every reported metric's band and flag are logged under these (flows.metrics.interval_columns, extrapolated_column)
RESERVED_SUFFIXES = ("_interval_90_low", "_interval_90_high", "_extrapolated")


class _Objective(NumbersNotBooleans):
    """Common shape of the pickable objectives; subclasses set kind, unit, direction, value range and metric."""

    # dumped as written: a saved config (resume, the config.yaml artifact, a what-if's base) must load again
    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True)

    unit: ClassVar[str] = ""
    direction: ClassVar[str] = MAXIMISE
    value_range: ClassVar[tuple[float, float]] = (0.0, float("inf"))  # what the objective's value can be
    default_name: ClassVar[str] = ""
    recipe_only: ClassVar[bool] = False  # its value follows from the recipe alone, known before any evaluation
    recipe_fields: ClassVar[tuple[str, ...]] = ()  # a recipe-only objective's fields (none: it is predicted)

    name_: str | None = Field(None, alias="name", min_length=1, max_length=OBJECTIVE_NAME_MAX,
                              description="name in tables and in weights/limits (default: the kind's metric name)")

    @field_validator("name_")
    @classmethod
    def _usable_name(cls, name: str | None) -> str | None:
        """A name becomes an MLflow metric and a table column: MLflow's characters only, and not a metric or a
        recipe field the campaign already reports under that name (it would overwrite it: a capacity named
        particle_expansion_pct had hidden the expansion, one named sn_mass_fraction the recipe)."""
        if name is None:
            return name
        if not OBJECTIVE_NAME.fullmatch(name) or ".." in name:
            raise ValueError("use letters, digits and _ - . / (starting with a letter), no '..'")
        if name != cls.default_name and (name in RESERVED_NAMES or name.startswith(RESERVED_PREFIXES)
                                         or name.endswith(RESERVED_SUFFIXES)):
            raise ValueError(f"{name!r} is a metric or recipe field the campaign already reports; choose another name")
        return name

    @property
    def name(self) -> str:
        return self.name_ or self.default_name

    @property
    def sign(self) -> float:
        """+1 when larger is better, -1 when smaller is better."""
        return 1.0 if self.direction == MAXIMISE else -1.0

    def label(self) -> str:
        """Axis label: name, the conditions it is read at (a capacity's current, cycles and temperature) and unit."""
        return f"{self.name}{self.condition_text()} ({self.unit})"

    def condition_text(self) -> str:
        """The conditions the value is read at, for labels (none by default: a recipe's or a material's own)."""
        return ""

    def conditions(self) -> dict[str, Any]:
        """The prediction conditions this objective needs (PredictionRequest fields); none by default."""
        return {}

    def request(self) -> PredictionRequest:
        """What the model must predict for this objective (the model's usual report otherwise)."""
        return PredictionRequest(**self.conditions())

    def inputs(self, prediction: Prediction, recipes=None) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def score(self, metrics: Mapping[str, Any]) -> dict[str, Any]:
        """The objective's value from a metrics row or arrays (a missing input raises ``KeyError``)."""
        value = metrics[self.name]
        return {self.name: float(value) if np.ndim(value) == 0 else np.asarray(value, dtype=float)}

    def describe(self) -> str:
        return f"{self.direction} {self.label()}"

    def reach(self, dimension_of, p) -> tuple[float, float] | None:
        """The least and the most this objective can be over a search space (``dimension_of(field) -> (low,
        high)``) with model parameters ``p``, where that follows from the recipe alone; None where it takes the
        model (a limit is then checked against :attr:`value_range` only)."""
        return None


class CapacityAtCycleObjective(_Objective):
    """Capacity at a target current after N test cycles (mAh/g, maximised), no penalty: swelling is its own
    objective."""

    kind: Literal["capacity"] = "capacity"
    unit: ClassVar[str] = "mAh/g"
    value_range: ClassVar[tuple[float, float]] = (0.0, 1000.0)
    default_name: ClassVar[str] = "capacity_mAh_per_g"

    current_A_per_g: float = Field(1.7, gt=0.0, le=MAX_CURRENT_A_PER_G, description="target current (A/g)")
    cycle: int = Field(1000, ge=1, le=MAX_CYCLE, description="test cycles before the capacity counts")
    temperature_C: float = Field(25.0, ge=CELL_TEMPERATURE_RANGE_C[0], le=CELL_TEMPERATURE_RANGE_C[1],
                                  description="cell temperature (C)")

    def conditions(self) -> dict[str, Any]:
        return {"temperature_C": self.temperature_C, "target_current_A_per_g": self.current_A_per_g,
                "target_cycle": self.cycle, "target_temperature_C": self.temperature_C}

    def inputs(self, prediction: Prediction, recipes=None) -> dict[str, np.ndarray]:
        return {self.name: prediction.target_capacity_mAh_per_g}

    def describe(self) -> str:
        return (f"maximise capacity at {self.current_A_per_g:g} A/g after {self.cycle} cycles at "
                f"{self.temperature_C:g} C (mAh/g)")

    def condition_text(self) -> str:
        return f" at {self.current_A_per_g:g} A/g after {self.cycle} cycles, {self.temperature_C:g} °C"

    def reach(self, dimension_of, p) -> tuple[float, float]:
        """At most the theoretical capacity of the search space's Sn fractions (no recipe stores more)."""
        ends = [float(theoretical_capacity_mAh_per_g(w, p)) for w in dimension_of("sn_mass_fraction")]
        return 0.0, max(ends)


class ParticleExpansionObjective(_Objective):
    """Apparent particle expansion at full sodiation (%, minimised)."""

    kind: Literal["particle_expansion"] = "particle_expansion"
    unit: ClassVar[str] = "%"
    direction: ClassVar[str] = MINIMISE
    value_range: ClassVar[tuple[float, float]] = (0.0, 2000.0)
    default_name: ClassVar[str] = EXPANSION

    def inputs(self, prediction: Prediction, recipes=None) -> dict[str, np.ndarray]:
        return {self.name: prediction.particle_expansion_pct}


class ElectrodeThickeningObjective(_Objective):
    """Irreversible electrode thickening after 1000 cycles at the cycling current (%, minimised)."""

    kind: Literal["electrode_thickening"] = "electrode_thickening"
    unit: ClassVar[str] = "%"
    direction: ClassVar[str] = MINIMISE
    value_range: ClassVar[tuple[float, float]] = (0.0, 5000.0)
    default_name: ClassVar[str] = "electrode_expansion_after_1000_cycles_pct"

    current_A_per_g: float = Field(1.7, gt=0.0, le=MAX_CURRENT_A_PER_G, description="cycling current (A/g)")

    def conditions(self) -> dict[str, Any]:
        return {"cycling_current_A_per_g": self.current_A_per_g}

    def condition_text(self) -> str:
        return f" cycling at {self.current_A_per_g:g} A/g"

    def inputs(self, prediction: Prediction, recipes=None) -> dict[str, np.ndarray]:
        return {self.name: prediction.electrode_expansion_after_1000_cycles_pct}


class CyclesToRetentionObjective(_Objective):
    """Test cycles until the capacity at the cycling current falls to ``retention_pct`` of its first test cycle
    (cycles, maximised), read off the model's retention curve on a log-spaced grid and interpolated in log N.
    A recipe that never falls that far within ``max_cycles`` scores ``max_cycles`` (censored)."""

    kind: Literal["cycles_to_retention"] = "cycles_to_retention"
    unit: ClassVar[str] = "cycles"
    value_range: ClassVar[tuple[float, float]] = (0.0, 1.0e6)
    default_name: ClassVar[str] = "cycles_to_80pct_retention"

    retention_pct: float = Field(80.0, gt=0.0, lt=100.0, description="end-of-life capacity share (%)")
    current_A_per_g: float = Field(1.7, gt=0.0, le=MAX_CURRENT_A_PER_G, description="cycling current (A/g)")
    max_cycles: int = Field(100_000, ge=10, le=1_000_000, description="longest life looked for")
    grid_points: int = Field(121, ge=10, le=2000, description="log-spaced cycle numbers of the retention curve")

    @property
    def name(self) -> str:
        return self.name_ or f"cycles_to_{self.retention_pct:g}pct_retention"

    def condition_text(self) -> str:
        return f" cycling at {self.current_A_per_g:g} A/g"

    def cycle_grid(self) -> tuple[int, ...]:
        return tuple(int(c) for c in np.unique(np.round(np.geomspace(1, self.max_cycles, self.grid_points))))

    def conditions(self) -> dict[str, Any]:
        return {"cycling_current_A_per_g": self.current_A_per_g, "retention_cycles": self.cycle_grid()}

    def inputs(self, prediction: Prediction, recipes=None) -> dict[str, np.ndarray]:
        grid = np.asarray(prediction.request.retention_cycles, dtype=float)
        curve = prediction.retention_capacity_mAh_per_g
        return {self.name: cycles_to_fraction(grid, curve / curve[:, :1], self.retention_pct / 100.0)}


def cycles_to_fraction(cycles: np.ndarray, retention: np.ndarray, fraction: float) -> np.ndarray:
    """First crossing of ``fraction`` by each row of a retention curve (N, M) on increasing ``cycles`` (M),
    interpolated linearly in log(cycles); ``cycles[-1]`` where a row never falls below it. Vectorised over rows.

    Examples
    --------
    >>> import numpy as np
    >>> cycles_to_fraction(np.array([1.0, 10.0, 100.0]), np.array([[1.0, 0.9, 0.7], [1.0, 1.0, 0.99]]), 0.8)
    array([ 31.6227766, 100.       ])
    """
    below = retention < fraction
    crossed = below.any(axis=1)
    j = np.where(crossed, np.argmax(below, axis=1), cycles.size - 1)
    j = np.maximum(j, 1)
    rows = np.arange(retention.shape[0])
    r0, r1 = retention[rows, j - 1], retention[rows, j]
    log0, log1 = np.log(cycles[j - 1]), np.log(cycles[j])
    share = np.clip((r0 - fraction) / np.where(r0 - r1 == 0, np.inf, r0 - r1), 0.0, 1.0)
    return np.where(crossed, np.exp(log0 + share * (log1 - log0)), cycles[-1])


class MillingTimeObjective(_Objective):
    """Milling time: how long the batch occupies the mill, pauses included (h, minimised)."""

    kind: Literal["milling_time"] = "milling_time"
    unit: ClassVar[str] = "h"
    direction: ClassVar[str] = MINIMISE
    value_range: ClassVar[tuple[float, float]] = (0.0, 100.0)
    default_name: ClassVar[str] = "milling_time_h"
    recipe_only: ClassVar[bool] = True
    recipe_fields: ClassVar[tuple[str, ...]] = ("milling_time_h",)  # all fixed: the same value for every recipe

    def inputs(self, prediction: Prediction, recipes=None) -> dict[str, np.ndarray]:
        return {self.name: np.asarray(recipes.milling_time_h, dtype=float)}

    def reach(self, dimension_of, p) -> tuple[float, float]:
        return dimension_of("milling_time_h")


class MillingEnergyObjective(_Objective):
    """Milling energy per kg of powder (kWh/kg, minimised): mill power x running time / batch mass.

    The mill's power draw grows like the milling power, BPR x rpm^3 (science.md 3.7), from its rated power at a
    rated speed and BPR; the motor runs only the duty cycle's share of the time. The mill constants are assumed
    (science.md 3.7: hundreds of W for lab planetary mills) and live here in the config. W h / g is kWh / kg.
    """

    kind: Literal["milling_energy"] = "milling_energy"
    unit: ClassVar[str] = "kWh/kg"
    direction: ClassVar[str] = MINIMISE
    value_range: ClassVar[tuple[float, float]] = (0.0, 1.0e6)
    default_name: ClassVar[str] = "milling_energy_kWh_per_kg"
    recipe_only: ClassVar[bool] = True
    recipe_fields: ClassVar[tuple[str, ...]] = ("milling_time_h", "milling_speed_rpm", "ball_to_powder_ratio",
                                                "pause_duty_cycle")

    mill_rated_power_W: float = Field(400.0, ge=1.0, le=100_000.0,
                                      description="assumed: power draw at the rated speed and BPR (lab planetary "
                                                  "mills: hundreds of W)")
    # lower bounds a real mill has (a 1e-320 g batch gave every recipe an infinite energy and failed the search)
    mill_rated_speed_rpm: float = Field(600.0, ge=10.0, le=2000.0, description="assumed: speed of the rated power")
    mill_rated_ball_to_powder_ratio: float = Field(40.0, ge=0.1, le=200.0,
                                                   description="assumed: ball load (BPR) of the rated power")
    batch_mass_g: float = Field(10.0, ge=0.1, le=100_000.0, description="assumed: powder per batch (g)")

    def inputs(self, prediction: Prediction, recipes=None) -> dict[str, np.ndarray]:
        return {self.name: self.energy_kWh_per_kg(recipes.milling_time_h, recipes.milling_speed_rpm,
                                                  recipes.ball_to_powder_ratio, recipes.pause_duty_cycle)}

    def reach(self, dimension_of, p) -> tuple[float, float]:
        """From every milling field at its lowest to every one at its highest: the energy grows with each (a
        limit below the least had run a whole campaign, then been ignored)."""
        ends = [dimension_of(name) for name in self.recipe_fields]  # in energy_kWh_per_kg's order
        return (float(self.energy_kWh_per_kg(*(low for low, _ in ends))),
                float(self.energy_kWh_per_kg(*(high for _, high in ends))))

    def energy_kWh_per_kg(self, milling_time_h, milling_speed_rpm, ball_to_powder_ratio, pause_duty_cycle=1.0):
        """Energy per kg of powder of a milling recipe (arrays or floats)."""
        power_W = (self.mill_rated_power_W * (np.asarray(milling_speed_rpm) / self.mill_rated_speed_rpm) ** 3
                   * np.asarray(ball_to_powder_ratio) / self.mill_rated_ball_to_powder_ratio)
        return power_W * np.asarray(milling_time_h) * np.asarray(pause_duty_cycle) / self.batch_mass_g


OBJECTIVE_KINDS = {cls.model_fields["kind"].default: cls for cls in (
    CapacityAtCycleObjective, ParticleExpansionObjective, ElectrodeThickeningObjective, CyclesToRetentionObjective,
    MillingTimeObjective, MillingEnergyObjective)}


class ObjectiveSet:
    """Several objectives scored together: one prediction request, every objective's value, and ``objective`` =
    the first objective signed so that larger is better (what a single-objective optimiser maximises and what
    tables sort by). Duck-types :class:`CapacityObjective` for the evaluation stage."""

    name = SCORE

    def __init__(self, objectives):
        self.objectives = tuple(objectives)
        names = [o.name for o in self.objectives]
        if len(set(names)) != len(names):
            duplicate = next(n for n in names if names.count(n) > 1)
            raise ValueError(f"two objectives are named {duplicate!r}: give one of them a 'name'")
        settings = [(o.kind, tuple(sorted((k, v) for k, v in o.model_dump().items() if k not in ("name", "name_"))))
                    for o in self.objectives]
        if len(set(settings)) != len(settings):  # the same quantity twice: a front over two copies of one objective
            repeated = next(s for s in settings if settings.count(s) > 1)[0]
            raise ValueError(f"two objectives of kind {repeated!r} with the same settings: the second repeats the "
                             f"first; keep one")
        self._merged = self._merge_requests()

    @property
    def names(self) -> list[str]:
        return [o.name for o in self.objectives]

    def __getitem__(self, name: str):
        return next(o for o in self.objectives if o.name == name)

    def _merge_requests(self) -> PredictionRequest:
        """One request for every objective; two objectives wanting different conditions cannot share it."""
        values: dict[str, Any] = {}
        for objective in self.objectives:
            for key, value in objective.conditions().items():
                if key in values and values[key] != value:
                    raise ValueError(f"objectives ask for two different {key} ({values[key]} and {value}): a "
                                     f"campaign predicts one condition of each kind")
                values[key] = value
        return PredictionRequest(**values)

    def request(self, currents_A_per_g=None, cycling_current_A_per_g=None, cycles=None) -> PredictionRequest:
        """The merged request, with the report's currents and cycles (and the cycling current, unless an objective
        fixes it) replaced where given."""
        from dataclasses import replace

        changes = {k: v for k, v in (("currents_A_per_g", currents_A_per_g), ("cycles", cycles)) if v is not None}
        fixed = {key for o in self.objectives for key in o.conditions()}
        if cycling_current_A_per_g is not None and "cycling_current_A_per_g" not in fixed:
            changes["cycling_current_A_per_g"] = cycling_current_A_per_g
        return replace(self._merged, **changes)

    def inputs(self, prediction: Prediction, recipes=None) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for objective in self.objectives:
            out |= objective.inputs(prediction, recipes)
        return out

    def score(self, metrics: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for objective in self.objectives:
            out |= objective.score(metrics)
        first = self.objectives[0]
        out[SCORE] = first.sign * out[first.name]
        return out

    def oriented(self, rows) -> np.ndarray:
        """Objective values of rows (mapping of name -> array, or a table) as a minimisation matrix (N, M)."""
        return np.column_stack([-o.sign * np.asarray(rows[o.name], dtype=float) for o in self.objectives])

    def describe(self) -> str:
        return "; ".join(o.describe() for o in self.objectives)
