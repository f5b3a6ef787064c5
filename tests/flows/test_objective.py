"""The objective stage (flows/objective.py): one formula for model predictions, lab rows and physics results."""

import numpy as np
import pytest

from flows.evaluation import model_metrics
from flows.objective import CAPACITY, EXPANSION, PENALTY, SCORE, CapacityObjective
from surrogate.model import predict
from surrogate.recipe import Recipes


def score(recipes, params, objective=None):
    return model_metrics(recipes, params, objective or CapacityObjective())[SCORE]


def test_objective_has_an_interior_maximum_in_tin_fraction(params):
    fractions = np.linspace(0.0, 1.0, 41)
    objective = score(Recipes(fractions, 10.0, 400.0, 20.0), params)
    best = int(np.argmax(objective))
    assert 0 < best < fractions.size - 1
    assert objective[best] > objective[0] + 50 and objective[best] > objective[-1] + 50


def test_objective_has_an_interior_maximum_in_milling_dose(params):
    hours = np.geomspace(0.1, 100.0, 41)  # dose 0.01 .. 10 at the reference speed and BPR
    objective = score(Recipes(2 / 3, hours, 400.0, 20.0), params)
    best = int(np.argmax(objective))
    assert 0 < best < hours.size - 1
    assert objective[best] > objective[0] + 50 and objective[best] > objective[-1] + 5


def test_score_is_capacity_after_target_cycles_minus_the_expansion_penalty(params, materials):
    objective = CapacityObjective()
    metrics = model_metrics(materials["nano-Sn"], params, objective)
    excess = metrics[EXPANSION][0] - objective.expansion_allowance_pct
    assert excess > 0
    assert metrics[PENALTY][0] == pytest.approx(excess * objective.expansion_penalty_mAh_per_g_per_pct)
    assert metrics[SCORE][0] == pytest.approx(metrics[CAPACITY][0] - metrics[PENALTY][0])


def test_the_target_capacity_is_the_models_capacity_at_the_target_current_and_cycle(params, materials):
    objective = CapacityObjective(current_A_per_g=4.2, cycle=400)
    metrics = model_metrics(materials["Sn@HC-2-1"], params, objective)
    direct = predict(materials["Sn@HC-2-1"], params, objective.request((4.2,), 4.2, (400,)))
    assert metrics[CAPACITY][0] == pytest.approx(direct.capacity_at_cycle_mAh_per_g[0, 0], rel=1e-12)


def test_a_lab_row_and_a_prediction_with_the_same_numbers_score_the_same(params, materials):
    objective = CapacityObjective(expansion_allowance_pct=100.0)
    metrics = model_metrics(materials["Sn@HC-2-1"], params, objective)
    row = {CAPACITY: float(metrics[CAPACITY][0]), EXPANSION: float(metrics[EXPANSION][0])}
    assert objective.score(row)[SCORE] == pytest.approx(float(metrics[SCORE][0]))


def test_no_measured_expansion_means_no_penalty_and_a_missing_capacity_cannot_be_scored():
    objective = CapacityObjective(expansion_allowance_pct=0.0)
    assert objective.score({CAPACITY: 300.0}) == {PENALTY: 0.0, SCORE: 300.0}
    with pytest.raises(KeyError):
        objective.score({EXPANSION: 10.0})


def test_a_colder_objective_scores_lower(params):
    recipe = Recipes(2 / 3, 10.0, 400.0, 20.0)
    assert score(recipe, params, CapacityObjective(temperature_C=-10.0))[0] < score(recipe, params)[0]


def test_scores_are_vectorised(params):
    rng = np.random.default_rng(3)
    batch = Recipes(rng.uniform(0, 1, 20), rng.uniform(0, 40, 20), rng.uniform(150, 600, 20), rng.uniform(5, 40, 20))
    together = score(batch, params)
    alone = np.array([score(batch.take([i]), params)[0] for i in range(batch.size)])
    np.testing.assert_allclose(together, alone, rtol=1e-12)
