"""The model's own optimum over a campaign's search space, and the cheapest recipe as good as it, by dense search.

The surrogate evaluates tens of thousands of recipes in a fraction of a second, so the optimum of the *model* can be
found by brute force: a scrambled Sobol sample of the search space (log-spaced where the campaign searches a log
scale), then differential evolution (scipy, ``vectorized=True``: one model call per generation) started from the
best samples. Because the model's optimum is a ridge of nearly equal recipes, a second search finds the cheapest
recipe within the recommendation's tolerance of it (shortest milling time, then lowest milling energy: the rule of
:func:`flows.recommendation.cheapest_equivalent`).

The default objective has near-equal local optima on that ridge (e.g. 342.78 mAh/g at 457 rpm, BPR 5 and 342.62 at
296 rpm, BPR 18, both at 40 h): the search returns one or the other by its seed (4 of 5 seeds tried found the first,
seed 42 the second; a larger population or an L-BFGS-B polish did not change that). They differ by 0.05 %, well inside the
recommendation's tolerance, and their cheapest equivalents by 4 % in milling time.

Campaigns report the optimum and the Bayesian optimisation's regret against it, and a surrogate-only campaign adds
both recipes to its candidates (:func:`add_model_optimum`); the optimiser benchmark counts evaluations
until the best so far is within 1 % of it. A campaign starts the search when it starts (:func:`in_background`): it
needs only the config and the parameters, and runs beside the optimiser.
"""

from __future__ import annotations

import itertools
import threading
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, ContextManager

import numpy as np
from scipy.optimize import differential_evolution
from scipy.stats import qmc

from flows.config import CampaignConfig
from flows.evaluation import DENSE_SEARCH, MODELLED, model_objective
from flows.objective import MillingEnergyObjective
from flows.search import EvaluateBatch, point_of, recipe_of
from surrogate.parameters import ModelParameters
from surrogate.recipe import FIELDS, Recipes, recipe_key

if TYPE_CHECKING:
    from flows.campaign import Campaign

DENSE_SAMPLES = 2**15  # 32 768 Sobol recipes: enough to land in the optimum's basin, which the evolution then climbs
ELITE = 48  # the evolution's population: the best Sobol samples (several basins near the top)
GENERATIONS = 400  # at most; it stops earlier once the population agrees to CONVERGENCE_TOLERANCE
# Relative spread of the population's objectives (or milling costs) at which the evolution stops: far below the 1 %
# that matters. 1e-9 moved the cheapest recipe's milling time by < 0.002 % and its objective by < 1e-6 relative (3
# seeds), at twice the generations (the cheapest search ran into GENERATIONS).
CONVERGENCE_TOLERANCE = 1e-6
ENERGY_TIE_BREAK = 1e-6  # cheapest search: milling energy (relative to its maximum) only breaks ties in time
COST_CEILING = 1e12  # cheapest search: above any milling cost, where an infeasible point's loss starts


@dataclass(frozen=True)
class ModelOptimum:
    """The model's best recipe and the cheapest recipe within ``tolerance_pct`` of it (full recipes, fixed
    dimensions included; objectives in the objective's unit). A multi-objective campaign's report has no cheapest
    recipe (None): it never adds it to its candidates."""

    recipe: dict
    objective: float
    cheapest_recipe: dict | None
    cheapest_objective: float | None
    tolerance_pct: float


def _real_searched(config: CampaignConfig) -> list[str]:
    return [name for name in config.search_space.searched() if not FIELDS[name].categorical]


def _bounds(config: CampaignConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Low and high of each searched real dimension (log10 where it is searched on a log scale), and the log mask."""
    space = config.search_space
    dims = [getattr(space, name) for name in _real_searched(config)]
    log = np.array([d.log_scale for d in dims], dtype=bool)
    low = np.array([np.log10(d.low) if d.log_scale else d.low for d in dims])
    high = np.array([np.log10(d.high) if d.log_scale else d.high for d in dims])
    return low, high, log


def _points_of_unit(unit: np.ndarray, config: CampaignConfig) -> np.ndarray:
    """Points of the searched dimensions (rows, in their own units) from points of the unit cube."""
    space = config.search_space
    low, high, log = _bounds(config)
    scaled = low + np.clip(unit, 0.0, 1.0) * (high - low)
    points = scaled.copy()
    points[:, log] = 10.0 ** scaled[:, log]
    dims = [getattr(space, name) for name in _real_searched(config)]
    return np.clip(points, [d.low for d in dims], [d.high for d in dims])  # 10**log10(x) may overshoot x by an ulp


def _recipes_of_unit(unit: np.ndarray, config: CampaignConfig, categories: dict) -> dict[str, np.ndarray]:
    points = _points_of_unit(unit, config)
    return (dict(zip(_real_searched(config), points.T)) | config.search_space.fixed_values() | categories)


def _objective_of_unit(unit: np.ndarray, config: CampaignConfig, p: ModelParameters,
                       categories: dict | None = None) -> np.ndarray:
    """Model objective of points of the unit cube (rows) at fixed choices of the categorical fields: the campaign's
    score (``config.scoring()``: its objective, or the first of its ``objectives`` signed so that larger is better,
    as the campaign's evaluations are); a non-finite objective counts as -inf. Only what the objective needs is
    predicted (no rate table)."""
    columns = _recipes_of_unit(unit, config, categories or {})
    objective = model_objective(Recipes(**columns), p, config.scoring())
    return np.where(np.isfinite(objective), objective, -np.inf)


def _cost_of_unit(unit: np.ndarray, config: CampaignConfig, categories: dict) -> np.ndarray:
    """Milling cost of points of the unit cube, smaller is cheaper: milling time, ties broken by milling energy."""
    columns = _recipes_of_unit(unit, config, categories)
    n = unit.shape[0]
    time_h = np.broadcast_to(np.asarray(columns["milling_time_h"], dtype=float), (n,))
    energy = np.broadcast_to(MillingEnergyObjective().energy_kWh_per_kg(
        columns["milling_time_h"], columns["milling_speed_rpm"], columns["ball_to_powder_ratio"],
        columns.get("pause_duty_cycle", 1.0)), (n,))
    return time_h * (1.0 + ENERGY_TIE_BREAK * energy / max(float(np.max(energy)), 1e-300))


def _category_choices(config: CampaignConfig) -> list[dict]:
    names = [name for name in config.search_space.searched() if FIELDS[name].categorical]
    choices = [getattr(config.search_space, name).choices for name in names]
    return [dict(zip(names, combination)) for combination in itertools.product(*choices)]


def _evolve(loss_of_unit, population: np.ndarray, seed: int) -> tuple[np.ndarray, float]:
    """Differential evolution over the unit cube from ``population`` (rows), one vectorised call per generation."""
    result = differential_evolution(lambda u: loss_of_unit(u.T), bounds=[(0.0, 1.0)] * population.shape[1],
                                    init=population, vectorized=True, updating="deferred", polish=False,
                                    maxiter=GENERATIONS, tol=CONVERGENCE_TOLERANCE, atol=0.0, rng=seed)
    return np.clip(result.x, 0.0, 1.0), float(result.fun)


def _elite(unit: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """The ELITE rows of lowest loss (at least 5, as differential evolution needs)."""
    return unit[np.argsort(loss, kind="stable")[:max(ELITE, 5)]]


def _full_recipe(unit_point: np.ndarray, config: CampaignConfig, categories: dict) -> dict:
    reals = dict(zip(_real_searched(config), _points_of_unit(unit_point[None, :], config)[0].tolist()))
    point = [categories[name] if name in categories else reals[name] for name in config.search_space.searched()]
    return recipe_of(point, config)


def sobol_recipes(config: CampaignConfig, n: int, seed: int = 0) -> list[dict]:
    """``n`` full recipes spread over the campaign's search space: a scrambled Sobol sample of the searched real
    fields (log-spaced where searched on a log scale), the categorical choices taken in turn."""
    low, _, _ = _bounds(config)
    unit = qmc.Sobol(d=low.size, scramble=True, seed=seed).random_base2(int(np.ceil(np.log2(max(n, 2)))))[:n]
    choices = _category_choices(config)
    return [_full_recipe(row, config, choices[i % len(choices)]) for i, row in enumerate(unit)]


def _searches(config: CampaignConfig, p: ModelParameters, n: int, seed: int) -> list[tuple]:
    """Per combination of the categorical choices: (choices, Sobol samples, their objectives, best point, its
    objective), the best point found by evolving the best samples."""
    low, _, _ = _bounds(config)
    searches = []
    for categories in _category_choices(config):
        unit = qmc.Sobol(d=low.size, scramble=True, seed=seed).random_base2(int(np.ceil(np.log2(max(n, 2)))))
        objective = _objective_of_unit(unit, config, p, categories)
        best, loss = _evolve(lambda u, c=categories: -_objective_of_unit(u, config, p, c), _elite(unit, -objective),
                             seed)
        searches.append((categories, unit, objective, best, -loss))
    return searches


def _cheapest(searches: list[tuple], config: CampaignConfig, p: ModelParameters, floor: float, seed: int,
              incumbent: tuple) -> tuple:
    """The cheapest point scoring at least ``floor`` (choices, point, objective, cost), or ``incumbent``."""
    cheapest = incumbent
    for categories, unit, objective, best, _ in searches:
        def loss(u, c=categories):
            score = _objective_of_unit(u, config, p, c)
            # an infeasible point ranks behind every feasible one, by its shortfall
            return np.where(score >= floor, _cost_of_unit(u, config, c),
                            COST_CEILING * (1.0 + (floor - score) / max(abs(floor), 1.0)))

        start = np.vstack([best[None, :], unit[objective >= floor], _elite(unit, -objective)])
        point, cost = _evolve(loss, _elite(start, loss(start)), seed)
        score = float(_objective_of_unit(point[None, :], config, p, categories)[0])
        if score >= floor and cost < cheapest[3]:
            cheapest = (categories, point, score, cost)
    return cheapest


def model_optimum(config: CampaignConfig, p: ModelParameters, n: int = DENSE_SAMPLES, seed: int = 0,
                  tolerance_pct: float | None = None, reached: float | None = None) -> ModelOptimum:
    """The model's best recipe over the campaign's search space, and the cheapest recipe within ``tolerance_pct``
    (default ``recommendation.tolerance_pct``) of its objective, or of ``reached`` when that is higher.

    Parameters
    ----------
    config : the campaign (its search space, fixed dimensions included)
    p : model parameters of the campaign (``flows.evaluation.campaign_parameters``)
    n : number of Sobol samples (rounded up to a power of two)
    seed : scrambling seed of the Sobol sequence and the evolution's seed: same seed, same result
    tolerance_pct : how far below the optimum the cheapest recipe may score, in % of the optimum
    reached : an objective a campaign already reached (None: none). The recommendation measures its tolerance from
        the best objective evaluated, and the cheapest recipe sits on the tolerance's edge by construction: a
        campaign point above the dense optimum (its near-equal local optima differ by ~0.05 %) would push that
        recipe out, and a longer milling would be recommended.
    """
    tolerance_pct = config.recommendation.tolerance_pct if tolerance_pct is None else tolerance_pct
    searches = _searches(config, p, n, seed)
    categories, _, _, best, optimum = max(searches, key=lambda s: s[4])
    best_known = optimum if reached is None else max(optimum, reached)
    floor = best_known - abs(best_known) * tolerance_pct / 100.0
    incumbent = (categories, best, optimum, float(_cost_of_unit(best[None, :], config, categories)[0]))
    cheap_categories, cheap, cheap_objective, _ = _cheapest(searches, config, p, floor, seed, incumbent)
    return ModelOptimum(_full_recipe(best, config, categories), optimum, _full_recipe(cheap, config, cheap_categories),
                        cheap_objective, tolerance_pct)


def dense_optimum(config: CampaignConfig, p: ModelParameters, n: int = DENSE_SAMPLES,
                  seed: int = 0) -> tuple[dict[str, float], float]:
    """Best recipe of the model over the campaign's search space and its objective (see :func:`model_optimum`)."""
    categories, _, _, best, objective = max(_searches(config, p, n, seed), key=lambda s: s[4])
    return _full_recipe(best, config, categories), objective


@dataclass(frozen=True)
class LimitsReach:
    """Whether some recipe of the search space meets every limit of ``recommendation.limits`` under the model, and
    the objectives' values at the recipe that comes closest (meets them all, when ``met``)."""

    met: bool
    closest: dict[str, float]


def limits_reach(config: CampaignConfig, p: ModelParameters, n: int = DENSE_SAMPLES, seed: int = 0) -> LimitsReach:
    """Can the model meet the recommendation's limits together anywhere in the search space?

    Each limit's shortfall is scaled by the limit's own size (at least 1 in its unit) and summed: zero is a recipe
    that meets them all. A scrambled Sobol sample is scored (one vectorised model call per choice of the categorical
    fields); if no sample meets them, differential evolution minimises the summed shortfall from the closest
    samples. Limits that each fit the search space may still exclude one another (a capacity only Sn-rich recipes
    reach, a swelling only Sn-poor ones keep): a campaign would search, then find no front point within them.
    """
    from flows.evaluation import model_metrics

    scoring = config.scoring()
    limits = config.recommendation.limits
    names = list(limits)
    signs = np.array([scoring[name].sign for name in names], dtype=float)
    bounds = np.array([limits[name] for name in names], dtype=float)
    scales = np.maximum(np.abs(bounds), 1.0)

    def values_of_unit(unit: np.ndarray, categories: dict) -> np.ndarray:
        metrics = model_metrics(Recipes(**_recipes_of_unit(unit, config, categories)), p, scoring)
        return np.column_stack([np.asarray(metrics[name], dtype=float) for name in names])

    def shortfall(unit: np.ndarray, categories: dict) -> np.ndarray:
        values = values_of_unit(unit, categories)
        short = np.maximum(signs * (bounds - values), 0.0) / scales  # >0 where a limit is missed
        return np.where(np.all(np.isfinite(values), axis=1), short.sum(axis=1), np.inf)

    low, _, _ = _bounds(config)
    unit = qmc.Sobol(d=low.size, scramble=True, seed=seed).random_base2(int(np.ceil(np.log2(max(n, 2)))))
    closest = (np.inf, None, None)
    for categories in _category_choices(config):
        loss = shortfall(unit, categories)
        i = int(np.argmin(loss))
        if loss[i] == 0.0:
            return LimitsReach(True, dict(zip(names, values_of_unit(unit[i:i + 1], categories)[0].tolist())))
        point, value = _evolve(lambda u, c=categories: shortfall(u, c), _elite(unit, loss), seed)
        if value < closest[0]:
            closest = (value, point, categories)
    value, point, categories = closest
    return LimitsReach(value == 0.0, dict(zip(names, values_of_unit(point[None, :], categories)[0].tolist())))


def campaign_optimum(config: CampaignConfig, p: ModelParameters, reached: float | None = None) -> ModelOptimum:
    """What a campaign reports of the model's optimum: :func:`model_optimum` at the optimiser's seed (its cheapest
    recipe within the tolerance of ``reached`` when the campaign reached more than the dense optimum); a
    multi-objective campaign only the optimum of its first objective (a front has no single optimum, and the
    cheapest-equivalent search, ~1 s, would go unused)."""
    if config.multi_objective:
        recipe, objective = dense_optimum(config, p, seed=config.optimiser.seed)
        return ModelOptimum(recipe, objective, None, None, config.recommendation.tolerance_pct)
    return model_optimum(config, p, seed=config.optimiser.seed, reached=reached)


def in_background(config: CampaignConfig, p: ModelParameters) -> Callable[[], ModelOptimum]:
    """Start :func:`campaign_optimum` in a thread and return a function that waits for its result (and raises
    its error).

    The dense search needs only the config and the parameters, not the optimiser's evaluations, so it runs while the
    optimiser searches: its large vectorised model calls release the GIL and use the second core. The thread is a
    daemon, so Ctrl-C never waits for it.
    """
    outcome: dict[str, object] = {}

    def search() -> None:
        try:
            outcome["found"] = campaign_optimum(config, p)
        except BaseException as error:  # noqa: BLE001 - handed to whoever waits for the result
            outcome["error"] = error

    thread = threading.Thread(target=search, name="dense-search", daemon=True)
    thread.start()

    def result() -> ModelOptimum:
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["found"]

    return result


def add_model_optimum(campaign: "Campaign", p: ModelParameters, evaluate: EvaluateBatch,
                      on_batch: Callable[[int, list], None] | None = None,
                      atomic: Callable[[], ContextManager] = nullcontext,
                      pending: Callable[[], ModelOptimum] | None = None) -> ModelOptimum | None:
    """Add the model's optimum and the cheapest recipe within ``recommendation.tolerance_pct`` of it to a
    surrogate-only campaign, as ``dense_search`` evaluations outside the optimiser's budget; returns what the dense
    search found. With lab results that is the optimum of the lab's model (the model the campaign searches,
    ``flows.optimise.teach_lab_parameters``), not of the lab's material.

    The physics check and the recommendation then weigh them beside the optimiser's candidates, so a campaign never
    recommends a recipe the model itself knows to be worse than one two seconds of dense search find. A
    multi-objective campaign only gets the optimum of its first objective reported (a front has no single optimum).
    When the campaign already scored above the dense optimum, the cheapest recipe is searched again within the
    tolerance of the campaign's best, which the recommendation measures from. Recipes the campaign already holds
    are not evaluated again; ``evaluate``, ``on_batch`` and ``atomic`` are those
    of :func:`flows.search.run_search`; ``pending`` is a search already started for this campaign and ``p``
    (:func:`in_background`).
    """
    config = campaign.config
    if not any(e.ok for e in campaign.evaluations):
        return None
    found = pending() if pending is not None else campaign_optimum(config, p)
    if found.cheapest_recipe is None:  # multi-objective: reported, not added
        return found
    reached = campaign.best_objective(MODELLED)
    floor = reached - abs(reached) * found.tolerance_pct / 100.0
    if reached > found.objective and found.cheapest_objective < floor:
        # the campaign beat the dense search, and the cheapest recipe (on the tolerance's edge by construction)
        # fell out of the recommendation's tolerance: found again from the campaign's best, if any recipe clears it
        again = campaign_optimum(config, p, reached=reached)
        if again.cheapest_objective >= floor:
            found = again
    held = {recipe_key(e.recipe) for e in campaign.evaluations}
    recipes = list({recipe_key(r): r for r in (found.recipe, found.cheapest_recipe)
                    if recipe_key(r) not in held}.values())
    if recipes:
        with atomic():  # evaluated and saved together, like a batch
            evaluations = [replace(e, source=DENSE_SEARCH) for e in evaluate(recipes)]
            batch = campaign.add_batch([point_of(r, config) for r in recipes], evaluations)
            if on_batch:
                on_batch(batch, evaluations)
    return found
