"""Bayesian optimisation with scikit-optimize: the campaign's search space, ask/tell loop and recommendation.

The loop knows nothing of Prefect or MLflow: it is handed a function that evaluates a batch of recipes and an
optional callback per batch. The Prefect flow and the bare benchmark loop run the very same code.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, Callable, ContextManager

import numpy as np
from skopt import Optimizer
from skopt.space import Categorical, Real

from flows.config import CampaignConfig
from flows.evaluation import Evaluation
from surrogate.recipe import FIELD_NAMES, FIELDS, same_value

if TYPE_CHECKING:
    from flows.campaign import Campaign

EvaluateBatch = Callable[[list[dict[str, Any]]], list[Evaluation]]


def search_dimensions(config: CampaignConfig) -> list[Real | Categorical]:
    """scikit-optimize dimensions of the searched (not fixed) recipe fields, from the recipe schema."""
    space = config.search_space
    dimensions = []
    for name in space.searched():
        dimension = getattr(space, name)
        if FIELDS[name].categorical:
            dimensions.append(Categorical(list(dimension.choices), name=name))
        else:
            dimensions.append(Real(dimension.low, dimension.high,
                                   prior="log-uniform" if dimension.log_scale else "uniform", name=name))
    return dimensions


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


def _plain(value):
    """A point coordinate as a plain Python value (scikit-optimize hands out numpy scalars)."""
    value = np.asarray(value).item()
    return value if isinstance(value, str) else float(value)


def recipe_of(point, config: CampaignConfig) -> dict[str, Any]:
    """Full recipe from a point of the searched dimensions plus the fixed ones."""
    searched = dict(zip(config.search_space.searched(), (_plain(v) for v in point)))
    fixed = config.search_space.fixed_values()
    return {name: searched[name] if name in searched else fixed[name] for name in FIELD_NAMES}


def point_of(recipe: dict[str, Any], config: CampaignConfig) -> list:
    """The search-space point of a recipe (its searched dimensions)."""
    return [_plain(recipe[name]) for name in config.search_space.searched()]


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
              if point in optimizer.space and on_fixed_values(e.recipe, fixed)]
    if usable:
        optimizer.tell([p for p, _ in usable],
                       [loss_of(e, config) if loss is None else loss for _, e in usable])
    return len(usable)


def on_fixed_values(recipe: dict[str, Any], fixed: dict[str, Any]) -> bool:
    """Whether a recipe sits on the campaign's fixed fields (by the one sameness rule)."""
    return all(same_value(name, recipe[name], value) for name, value in fixed.items())


def run_search(campaign: "Campaign", evaluate_batch: EvaluateBatch,
               on_batch: Callable[[int, list[Evaluation]], None] | None = None,
               atomic: Callable[[], ContextManager] = nullcontext) -> Optimizer:
    """Ask a batch, evaluate it, add it to the campaign, tell the results; repeat until the campaign's budget of
    model evaluations is spent.

    The campaign's evaluations from before (a resumed run, lab observations) are told first and never evaluated
    again. ``atomic`` wraps evaluating and recording a batch (the flow defers Ctrl-C there, so a batch is either
    saved whole or not at all); asking and telling, the optimiser's own work, stay interruptible.
    """
    config = campaign.config
    settings = config.optimiser
    optimizer = make_optimizer(config)
    tell_known(optimizer, config, list(zip(campaign.points, campaign.evaluations)))
    while campaign.model_evaluations() < settings.n_calls:
        n_points = min(settings.batch_size, settings.n_calls - campaign.model_evaluations())
        points = [[_plain(v) for v in point] for point in optimizer.ask(n_points=n_points)]
        with atomic():
            evaluations = evaluate_batch([recipe_of(point, config) for point in points])
            batch = campaign.add_batch(points, evaluations)
            if on_batch:
                on_batch(batch, evaluations)
        optimizer.tell(points, [loss_of(e, config) for e in evaluations])
    return optimizer


def surrogate_prediction(optimizer: Optimizer, point: list) -> tuple[float, float]:
    """The optimiser's surrogate (its regressor, a GP by default) mean and standard deviation of the objective at a
    point. This is the optimiser's belief about a deterministic model, not the model's own error."""
    if not optimizer.models:
        return float("nan"), float("nan")
    model = optimizer.models[-1]
    mean, std = model.predict(optimizer.space.transform([point]), return_std=True)
    return float(-mean[0]), float(std[0])
