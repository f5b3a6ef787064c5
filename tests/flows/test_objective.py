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


# --- pickable objectives (issue 12) ------------------------------------------------------------------------------

from dataclasses import replace  # noqa: E402

from flows.config import validate_config  # noqa: E402
from flows.objective import (MINIMISE, MAXIMISE, MillingEnergyObjective, ObjectiveSet,  # noqa: E402
                             OBJECTIVE_KINDS, cycles_to_fraction)

ALL_KINDS = [{"kind": kind} for kind in OBJECTIVE_KINDS]


def test_every_objective_declares_name_unit_and_direction():
    scoring = validate_config({"objectives": ALL_KINDS}).scoring()
    assert scoring.names == ["capacity_mAh_per_g", "particle_expansion_pct",
                             "electrode_expansion_after_1000_cycles_pct", "cycles_to_80pct_retention",
                             "milling_time_h", "milling_energy_kWh_per_kg"]
    assert [o.direction for o in scoring.objectives] == [MAXIMISE, MINIMISE, MINIMISE, MAXIMISE, MINIMISE, MINIMISE]
    assert [o.unit for o in scoring.objectives] == ["mAh/g", "%", "%", "cycles", "h", "kWh/kg"]


def test_milling_energy_is_mill_power_times_running_time_per_kg_of_powder():
    mill = MillingEnergyObjective(mill_rated_power_W=500.0, mill_rated_speed_rpm=500.0,
                                  mill_rated_ball_to_powder_ratio=20.0, batch_mass_g=25.0)
    # At the rated speed and BPR the mill draws 500 W: 10 h is 5 kWh for 0.025 kg of powder = 200 kWh/kg.
    assert mill.energy_kWh_per_kg(10.0, 500.0, 20.0) == pytest.approx(200.0)
    assert mill.energy_kWh_per_kg(10.0, 500.0, 20.0, 0.5) == pytest.approx(100.0)  # paused half the time
    assert mill.energy_kWh_per_kg(10.0, 250.0, 20.0) == pytest.approx(200.0 / 8)  # power ~ rpm^3
    assert mill.energy_kWh_per_kg(10.0, 500.0, 40.0) == pytest.approx(400.0)  # power ~ ball load


def test_objective_set_reads_recipe_objectives_from_the_recipe(params):
    scoring = ObjectiveSet([OBJECTIVE_KINDS["milling_time"](), OBJECTIVE_KINDS["milling_energy"]()])
    recipes = Recipes(0.6, [2.0, 8.0], 400.0, 20.0)
    metrics = model_metrics(recipes, params, scoring)
    np.testing.assert_allclose(metrics["milling_time_h"], [2.0, 8.0])
    np.testing.assert_allclose(metrics["milling_energy_kWh_per_kg"],
                               MillingEnergyObjective().energy_kWh_per_kg(np.array([2.0, 8.0]), 400.0, 20.0))
    np.testing.assert_allclose(metrics[SCORE], [-2.0, -8.0])  # the first objective, larger is better


def test_cycles_to_retention_is_where_the_models_curve_crosses_it(params, materials):
    objective = OBJECTIVE_KINDS["cycles_to_retention"](retention_pct=80.0)
    recipes = materials["Sn@HC-2-1"]
    life = model_metrics(recipes, params, ObjectiveSet([objective]))["cycles_to_80pct_retention"][0]
    assert 10 < life < 10_000
    request = replace(objective.request(), cycles=(1, int(life * 0.9), int(life * 1.1)), retention_cycles=())
    check = predict(recipes, params, request)
    first, before, after = check.capacity_at_cycle_mAh_per_g[0]
    assert before / first > 0.8 > after / first


def test_cycles_to_fraction_is_vectorised_and_censored():
    cycles = np.array([1.0, 10.0, 100.0, 1000.0])
    retention = np.array([[1.0, 0.95, 0.85, 0.75], [1.0, 0.99, 0.98, 0.97], [1.0, 0.7, 0.6, 0.5]])
    life = cycles_to_fraction(cycles, retention, 0.8)
    assert life[0] == pytest.approx(10 ** (2 + 0.5))
    assert life[1] == 1000.0  # never below 80 %: the longest life looked for
    assert life[2] == pytest.approx(10 ** (2 / 3))
    np.testing.assert_allclose([cycles_to_fraction(cycles, retention[i:i + 1], 0.8)[0] for i in range(3)], life)


def test_a_lab_row_scores_like_the_prediction_for_every_objective(params, materials):
    scoring = validate_config({"objectives": ALL_KINDS}).scoring()
    metrics = model_metrics(materials["Sn@HC-2-1"], params, scoring)
    row = {name: float(metrics[name][0]) for name in scoring.names}
    assert scoring.score(row) == pytest.approx({name: row[name] for name in scoring.names} | {SCORE: row[scoring.names[0]]})


def test_an_objectives_axis_label_states_the_conditions_it_is_read_at():
    """pareto.png's axes: a capacity is "at 4.2 A/g after 500 cycles, 25 °C", not a bare capacity_mAh_per_g; a life
    or a thickening names its cycling current; a recipe's own quantity needs none."""
    from flows.objective import (CapacityAtCycleObjective, CyclesToRetentionObjective, ElectrodeThickeningObjective,
                                 MillingTimeObjective)

    assert CapacityAtCycleObjective(current_A_per_g=4.2, cycle=500).label() == (
        "capacity_mAh_per_g at 4.2 A/g after 500 cycles, 25 °C (mAh/g)")
    assert "cycling at 0.84 A/g" in CyclesToRetentionObjective(current_A_per_g=0.84).label()
    assert "cycling at 0.84 A/g" in ElectrodeThickeningObjective(current_A_per_g=0.84).label()
    assert MillingTimeObjective().label() == "milling_time_h (h)"
