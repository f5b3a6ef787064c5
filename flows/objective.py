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

from typing import Any, ClassVar, Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from surrogate.model import Prediction, PredictionRequest

CAPACITY = "objective_capacity_mAh_per_g"  # capacity at the objective's target condition
EXPANSION = "particle_expansion_pct"
PENALTY = "expansion_penalty_mAh_per_g"
SCORE = "objective"


class CapacityObjective(BaseModel):
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

    current_A_per_g: float = Field(1.7, gt=0.0, le=1000.0, description="target current (A/g)")
    cycle: int = Field(1000, ge=1, le=100_000, description="test cycles before the capacity counts")
    expansion_allowance_pct: float = Field(250.0, ge=0.0, le=1000.0, description="swelling allowed free (%)")
    expansion_penalty_mAh_per_g_per_pct: float = Field(1.0, ge=0.0, le=100.0,
                                                       description="score lost per % of swelling above it")
    temperature_C: float = Field(25.0, ge=-40.0, le=80.0, description="cell temperature (C)")

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
    def inputs(prediction: Prediction) -> dict[str, np.ndarray]:
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
