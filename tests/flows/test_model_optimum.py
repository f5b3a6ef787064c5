"""flows.model_optimum: the dense search finds the model's optimum over the campaign's search space."""

import numpy as np

from flows.config import load_config
from flows.evaluation import campaign_parameters, model_metrics
from flows.model_optimum import dense_optimum
from flows.search import make_optimizer, recipe_of
from surrogate.recipe import Recipes


def objective_of(recipes, p, config):
    return model_metrics(Recipes.from_records(recipes), p, config.objective)["objective"]


def test_dense_optimum_beats_random_recipes_and_is_reproducible():
    config = load_config()
    p, _ = campaign_parameters(config)
    recipe, objective = dense_optimum(config, p, n=2**12, seed=1)
    assert objective == objective_of([recipe], p, config)[0]
    random = make_optimizer(config).space.rvs(2000, random_state=7)
    assert objective >= objective_of([recipe_of(x, config) for x in random], p, config).max()
    for name in config.search_space.searched():
        assert getattr(config.search_space, name).low <= recipe[name] <= getattr(config.search_space, name).high
    assert dense_optimum(config, p, n=2**12, seed=1) == (recipe, objective)


def test_dense_optimum_keeps_fixed_dimensions():
    config = load_config(overrides={"search_space": {"milling_speed_rpm": {"value": 300.0}}})
    p, _ = campaign_parameters(config)
    recipe, objective = dense_optimum(config, p, n=2**10)
    assert recipe["milling_speed_rpm"] == 300.0
    assert np.isfinite(objective)
