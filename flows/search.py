"""Bayesian optimisation with scikit-optimize: the campaign's search space, ask/tell loop and recommendation.

The loop knows nothing of Prefect or MLflow: it is handed a function that evaluates a batch of recipes and an
optional callback per batch. The Prefect flow and the bare benchmark loop run the very same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
from skopt import Optimizer
from skopt.space import Real

from flows.config import CampaignConfig
from flows.evaluation import Evaluation

EvaluateBatch = Callable[[list[dict[str, float]]], list[Evaluation]]


def search_dimensions(config: CampaignConfig) -> list[Real]:
    """scikit-optimize dimensions of the searched (not fixed) recipe fields."""
    space = config.search_space
    return [
        Real(getattr(space, name).low, getattr(space, name).high,
             prior="log-uniform" if getattr(space, name).log_scale else "uniform", name=name)
        for name in space.searched()
    ]


def make_optimizer(config: CampaignConfig) -> Optimizer:
    settings = config.optimiser
    return Optimizer(
        search_dimensions(config),
        base_estimator=settings.surrogate,
        n_initial_points=settings.n_initial_points,
        initial_point_generator="lhs",
        acq_func=settings.acquisition,
        random_state=settings.seed,
    )


def recipe_of(point, config: CampaignConfig) -> dict[str, float]:
    """Full recipe from a point of the searched dimensions plus the fixed ones."""
    searched = dict(zip(config.search_space.searched(), (float(np.asarray(v).item()) for v in point)))
    fixed = config.search_space.fixed_values()
    return {name: searched[name] if name in searched else fixed[name] for name in
            ("sn_mass_fraction", "milling_time_h", "milling_speed_rpm", "ball_to_powder_ratio")}


@dataclass
class SearchState:
    """Everything evaluated so far, in order."""

    points: list[list[float]]
    evaluations: list[Evaluation]
    batches: list[int]

    @classmethod
    def from_known(cls, known: list[tuple[list[float], Evaluation, int]]) -> "SearchState":
        """State holding evaluations from before: (point, evaluation, batch) triples."""
        return cls([p for p, _, _ in known], [e for _, e, _ in known], [b for _, _, b in known])

    def best_index(self) -> int | None:
        finished = [i for i, e in enumerate(self.evaluations) if e.ok]
        return max(finished, key=lambda i: self.evaluations[i].objective) if finished else None

    def best_objective(self) -> float:
        best = self.best_index()
        return self.evaluations[best].objective if best is not None else float("nan")

    def model_evaluations(self) -> int:
        """Evaluations by the model (lab observations do not use up the budget)."""
        return sum(e.source == "model" for e in self.evaluations)

    def table(self) -> pd.DataFrame:
        """The evaluation table: one row per evaluation with recipe, status, objective and every metric."""
        rows = []
        for i, (evaluation, batch) in enumerate(zip(self.evaluations, self.batches)):
            rows.append({"evaluation": i, "batch": batch, "source": evaluation.source, **evaluation.recipe,
                         "status": evaluation.status, "objective": evaluation.objective,
                         "failure_reason": evaluation.reason,
                         **{k: v for k, v in evaluation.metrics.items() if k != "objective"}})
        return pd.DataFrame(rows)


def point_of(recipe: dict[str, float], config: CampaignConfig) -> list[float]:
    """The search-space point of a recipe (its searched dimensions)."""
    return [float(recipe[name]) for name in config.search_space.searched()]


def loss_of(evaluation: Evaluation, config: CampaignConfig) -> float:
    """What the optimiser is told: scikit-optimize minimises -objective; a failure is -failure_penalty."""
    return -evaluation.objective if evaluation.ok else -config.optimiser.failure_penalty


def tell_known(optimizer: Optimizer, config: CampaignConfig, known: list[tuple[list[float], Evaluation]],
               loss: float | None = None) -> int:
    """Tell the optimiser results it did not ask for (a resumed campaign, lab data); returns how many it took.

    Points outside the search space (or off a fixed dimension) cannot be told and are skipped. ``loss`` tells every
    point the same value (a liar for recipes still pending).
    """
    fixed = config.search_space.fixed_values()
    usable = [(point, e) for point, e in known
              if point in optimizer.space and all(abs(e.recipe[k] - v) < 1e-9 for k, v in fixed.items())]
    if usable:
        optimizer.tell([p for p, _ in usable],
                       [loss_of(e, config) if loss is None else loss for _, e in usable])
    return len(usable)


def run_search(config: CampaignConfig, evaluate_batch: EvaluateBatch,
               on_batch: Callable[[int, list[Evaluation], SearchState], None] | None = None,
               known: list[tuple[list[float], Evaluation, int]] | None = None) -> tuple[Optimizer, SearchState]:
    """Ask a batch, evaluate it, tell the results; repeat until ``n_calls`` model evaluations are done.

    ``known`` are evaluations from before (a resumed run, lab observations): they are told first, never evaluated
    again, and stay at the head of the state.
    """
    settings = config.optimiser
    optimizer = make_optimizer(config)
    known = known or []
    state = SearchState.from_known(known)
    tell_known(optimizer, config, [(p, e) for p, e, _ in known])
    batch_number = max([b + 1 for b in state.batches], default=0)
    while state.model_evaluations() < settings.n_calls:
        n_points = min(settings.batch_size, settings.n_calls - state.model_evaluations())
        points = [[float(np.asarray(v).item()) for v in point] for point in optimizer.ask(n_points=n_points)]
        evaluations = evaluate_batch([recipe_of(point, config) for point in points])
        optimizer.tell(points, [loss_of(e, config) for e in evaluations])
        state.points += points
        state.evaluations += evaluations
        state.batches += [batch_number] * len(points)
        if on_batch:
            on_batch(batch_number, evaluations, state)
        batch_number += 1
    return optimizer, state


def surrogate_prediction(optimizer: Optimizer, point: list[float]) -> tuple[float, float]:
    """The optimiser's surrogate (GP by default) mean and standard deviation of the objective at a point."""
    if not optimizer.models:
        return float("nan"), float("nan")
    model = optimizer.models[-1]
    mean, std = model.predict(optimizer.space.transform([point]), return_std=True)
    return float(-mean[0]), float(std[0])
