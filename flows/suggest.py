"""Next experiments out: the Q recipes the lab should make next, with predicted metrics and uncertainty.

The optimiser is told everything known (a campaign's saved evaluations and/or lab results); recipes still in the lab
(pending rows of the lab file) are told as "liars" at the best value so far, so the batch steers away from them.
No suggestion duplicates a done or pending recipe.

The optimiser's surrogate is the physics-informed GP (``flows/physics_gp.py``) unless the campaign chooses a forest
(``optimiser.surrogate: RF`` or ``ET``): on lab data the model is the prior and the GP learns the lab's discrepancy.
Each suggestion shows the model's own prediction, the correction the lab data taught it, and the combined mean and sd.
"""

from __future__ import annotations

import pandas as pd
from skopt.learning import GaussianProcessRegressor
from skopt.utils import cook_estimator

from flows.campaign import Campaign
from flows.evaluation import LAB, Evaluation, campaign_parameters, evaluate_batch
from flows.search import make_optimizer, point_of, recipe_of, surrogate_prediction, tell_known
from surrogate.recipe import recipe_key
from surrogate.status import Status


def suggest(campaign: Campaign, batch_size: int) -> pd.DataFrame:
    """Q new recipes with the model's predicted metrics and the optimiser surrogate's mean and sd."""
    config = campaign.config
    p, _ = campaign_parameters(config)
    if config.recalibrate_on_observations and campaign.lab and campaign.lab.measured:
        from flows.recalibration import recalibrate

        p = recalibrate(config, campaign.lab).parameters  # the model taught by the lab rows is the prior
    optimizer = make_optimizer(config, p, surrogate=lab_surrogate(config))
    tell_known(optimizer, config, list(zip(campaign.points, campaign.evaluations)))
    pending = campaign.lab.pending if campaign.lab else []
    if pending:
        liar = min(optimizer.yi) if optimizer.yi else 0.0
        tell_known(optimizer, config, [(point_of(r, config), Evaluation(r, Status.PENDING, float("nan"), source=LAB))
                                       for r in pending], liar)
    taken = {recipe_key(e.recipe) for e in campaign.evaluations} | {recipe_key(r) for r in pending}

    suggestions: list[dict] = []
    attempts = 0
    while len(suggestions) < batch_size and attempts < 10:
        for point in optimizer.ask(n_points=batch_size - len(suggestions)):
            recipe = recipe_of(point, config)
            if recipe_key(recipe) not in taken:
                taken.add(recipe_key(recipe))
                suggestions.append(recipe)
        attempts += 1
    mean_std = _uncertainty(optimizer, config, suggestions)
    rows = []
    for recipe, evaluation, (mean, std) in zip(suggestions, evaluate_batch(suggestions, p, config.objective),
                                               mean_std):
        rows.append({**recipe, "predicted_objective": evaluation.objective,
                     "learned_correction_objective": mean - evaluation.objective, "surrogate_mean_objective": mean,
                     "surrogate_std_objective": std, **{k: v for k, v in evaluation.metrics.items()
                                                        if k.endswith(("_mAh_per_g", "_pct"))}})
    return pd.DataFrame(rows)


def lab_surrogate(config) -> str:
    """The surrogate for lab data: the physics-informed GP in place of the plain GP (forests stay as chosen)."""
    return "physics_gp" if config.optimiser.surrogate == "GP" else config.optimiser.surrogate


def _uncertainty(optimizer, config, recipes) -> list[tuple[float, float]]:
    """Surrogate mean and sd of the objective at each recipe; a GP is fitted here if the optimiser has none yet."""
    points = [point_of(r, config) for r in recipes]
    if optimizer.models:
        return [surrogate_prediction(optimizer, point) for point in points]
    if len(optimizer.yi) < 2:
        return [(float("nan"), float("nan"))] * len(points)
    model: GaussianProcessRegressor = cook_estimator("GP", space=optimizer.space,
                                                     random_state=config.optimiser.seed)
    model.fit(optimizer.space.transform(optimizer.Xi), optimizer.yi)
    mean, std = model.predict(optimizer.space.transform(points), return_std=True)
    return [(float(-m), float(s)) for m, s in zip(mean, std)]
