"""Evaluate a batch of recipes without letting one bad recipe stop a campaign.

The whole batch goes through the vectorised surrogate at once. If that raises, each recipe is retried alone so
that only the culprit is marked FAILED; a non-finite objective is a failure too. Failures carry their reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from surrogate.objective import PredictionRequest, evaluate
from surrogate.parameters import ModelParameters
from surrogate.recipe import Recipes

FINISHED, FAILED = "FINISHED", "FAILED"


@dataclass(frozen=True)
class Evaluation:
    """One evaluated recipe: status, objective (NaN when failed), metrics, failure reason, and its source:
    ``model`` (the surrogate) or ``lab`` (a measured result)."""

    recipe: dict[str, float]
    status: str
    objective: float
    metrics: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    source: str = "model"

    @property
    def ok(self) -> bool:
        return self.status == FINISHED


def evaluate_batch(recipes: list[dict[str, float]], p: ModelParameters,
                   request: PredictionRequest | None = None) -> list[Evaluation]:
    """Objective and metrics of each recipe; never raises for a model failure."""
    try:
        return _from_metrics(recipes, evaluate(Recipes.from_records(recipes), p, request).scalar_metrics())
    except Exception:  # isolate the failing recipe(s) below
        return [_evaluate_alone(recipe, p, request) for recipe in recipes]


def _evaluate_alone(recipe: dict[str, float], p: ModelParameters, request) -> Evaluation:
    try:
        return _from_metrics([recipe], evaluate(Recipes.from_records([recipe]), p, request).scalar_metrics())[0]
    except Exception as error:
        return Evaluation(recipe, FAILED, float("nan"), reason=f"{type(error).__name__}: {error}")


def _from_metrics(recipes, metrics: dict[str, np.ndarray]) -> list[Evaluation]:
    results = []
    for i, recipe in enumerate(recipes):
        values = {name: float(array[i]) for name, array in metrics.items()}
        objective = values["objective"]
        if np.isfinite(objective):
            results.append(Evaluation(recipe, FINISHED, objective, values))
        else:
            bad = sorted(name for name, value in values.items() if not np.isfinite(value))
            results.append(Evaluation(recipe, FAILED, float("nan"), values, reason=f"non-finite metrics: {bad}"))
    return results
