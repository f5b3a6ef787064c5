"""Multi-objective campaigns (flows/pareto.py): the front, its hypervolume, ParEGO and the recommended point."""

import numpy as np
import pandas as pd
import pytest

from flows.campaign import Campaign
from flows.config import ConfigError, load_config
from flows.evaluation import evaluate_batch
from flows.pareto import (chebyshev, choose_on_front, hypervolume, non_dominated, oriented_matrix, pareto_table,
                          run_pareto_search)

SMALL = {"optimiser": {"n_calls": 10, "n_initial_points": 6, "batch_size": 2, "seed": 3}}


def brute_force_non_dominated(values):
    keep = []
    for i, row in enumerate(values):
        dominated = np.any(np.all(values <= row, axis=1) & np.any(values < row, axis=1))
        duplicate_before = np.any(np.all(values[:i] == row, axis=1))
        keep.append(not dominated and not duplicate_before)
    return np.array(keep)


def test_non_dominated_matches_brute_force():
    rng = np.random.default_rng(0)
    values = np.round(rng.uniform(size=(300, 3)), 1)  # rounding makes ties and duplicates
    np.testing.assert_array_equal(non_dominated(values), brute_force_non_dominated(values))


def test_hypervolume_is_exact_against_boxes_and_monte_carlo():
    assert hypervolume(np.array([[0.5, 0.5]]), np.ones(2)) == pytest.approx(0.25)
    assert hypervolume(np.array([[0.0, 0.5], [0.5, 0.0]]), np.ones(2)) == pytest.approx(0.75)
    rng = np.random.default_rng(1)
    points = rng.uniform(size=(12, 3))
    samples = rng.uniform(size=(200_000, 3))
    dominated = np.zeros(len(samples), bool)
    for point in points:
        dominated |= np.all(samples >= point, axis=1)
    assert hypervolume(points, np.ones(3)) == pytest.approx(dominated.mean(), abs=0.005)
    assert hypervolume(np.array([[2.0, 0.0, 0.0]]), np.ones(3)) == 0.0  # beyond the reference


def test_augmented_chebyshev_weighs_the_worst_weighted_objective():
    values = np.array([[0.2, 0.8], [0.5, 0.5]])
    scores = chebyshev(values, np.array([0.5, 0.5]), rho=0.0)
    np.testing.assert_allclose(scores, [0.4, 0.25])


@pytest.fixture(scope="module")
def pareto_campaign(params):
    config = load_config("configs/pareto.yaml", SMALL)
    campaign = Campaign.new(config)
    run_pareto_search(campaign, lambda recipes: evaluate_batch(recipes, params, config.scoring()))
    return campaign


def test_parego_spends_its_budget_and_its_front_is_non_dominated(pareto_campaign):
    campaign = pareto_campaign
    assert campaign.model_evaluations() == 10
    front = pareto_table(campaign)
    scoring = campaign.config.scoring()
    everything = oriented_matrix([e for e in campaign.evaluations if e.ok], scoring)
    on_front = scoring.oriented(front)
    for row in on_front:  # nothing evaluated dominates a front point
        assert not np.any(np.all(everything <= row, axis=1) & np.any(everything < row, axis=1))
    for row in everything:  # and every evaluated point is on the front or dominated by it
        assert np.any(np.all(on_front <= row, axis=1))
    assert set(scoring.names) <= set(front.columns)


def test_objectives_that_follow_from_the_recipe_are_computed_not_learned(params, pareto_campaign, monkeypatch):
    """Milling time (and energy) are known for any recipe before it is evaluated: ParEGO scores them exactly at every
    candidate, with no GP (here one GP fewer than objectives), and the batch's milling times are the asked ones."""
    import flows.pareto as pareto
    from flows.search import ExactOutput

    fitted, batches = [], []
    real_plain_gp, real_batch = pareto.plain_gp, pareto.monte_carlo_batch

    def counted_gp(*args):
        fitted.append(args)
        return real_plain_gp(*args)

    def spy(models, candidates, *args):
        batches.append((models, candidates))
        return real_batch(models, candidates, *args)

    monkeypatch.setattr(pareto, "plain_gp", counted_gp)
    monkeypatch.setattr(pareto, "monte_carlo_batch", spy)
    config = pareto_campaign.config
    campaign = Campaign.new(config)
    run_pareto_search(campaign, lambda recipes: evaluate_batch(recipes, params, config.scoring()))
    scoring = config.scoring()
    assert [o.recipe_only for o in scoring.objectives] == [False, True, False]
    assert len(fitted) == 2 * len(batches) and batches
    models, candidates = batches[-1]
    exact = models[1]
    assert isinstance(exact, ExactOutput) and not isinstance(models[0], ExactOutput)
    # the exact output is the candidates' milling time, normalised as the evaluations before that batch were
    space = pareto.Space(pareto.normalize_dimensions(pareto.search_dimensions(config)))
    times = np.array([recipe[1] for recipe in space.inverse_transform(candidates[:50])])
    before = [e.recipe["milling_time_h"] for e in campaign.evaluations[:-config.optimiser.batch_size] if e.ok]
    np.testing.assert_allclose(exact.predict(candidates[:50]),
                               (times - min(before)) / (max(before) - min(before)), rtol=1e-9)


def test_parego_is_reproducible(params, pareto_campaign):
    config = pareto_campaign.config
    again = Campaign.new(config)
    run_pareto_search(again, lambda recipes: evaluate_batch(recipes, params, config.scoring()))
    pd.testing.assert_frame_equal(again.table(), pareto_campaign.table())


def test_front_choice_by_knee_weights_and_limits(pareto_campaign):
    scoring = pareto_campaign.config.scoring()
    front = pd.DataFrame({"capacity_mAh_per_g": [350.0, 300.0, 200.0], "milling_time_h": [40.0, 5.0, 0.5],
                          "particle_expansion_pct": [300.0, 120.0, 40.0]})
    settings = pareto_campaign.config.recommendation.model_copy(update={"limits": {}})
    row, rule = choose_on_front(front, scoring, settings)
    assert row == 1 and "knee" in rule
    weighted = settings.model_copy(update={"rule": "weights", "weights": {"capacity_mAh_per_g": 1.0}})
    assert choose_on_front(front, scoring, weighted)[0] == 0
    limited = settings.model_copy(update={"limits": {"capacity_mAh_per_g": 320.0}})
    row, rule = choose_on_front(front, scoring, limited)
    # one point meets the limit: it is named as the only one, not as the knee of a set of one
    assert row == 0 and "the only front point of 3 with capacity_mAh_per_g >= 320" in rule and "smallest sum" not in rule
    two = settings.model_copy(update={"limits": {"capacity_mAh_per_g": 250.0}})
    row, rule = choose_on_front(front, scoring, two)
    assert row == 1 and "over the 2 of 3 front points with capacity_mAh_per_g >= 250" in rule
    # limits no front point meets: the nearest miss (each shortfall relative to its limit), not the knee of all
    unmet = settings.model_copy(update={"limits": {"capacity_mAh_per_g": 320.0, "particle_expansion_pct": 100.0}})
    row, rule = choose_on_front(front, scoring, unmet)
    assert row == 1 and "no front point meets the limits" in rule and "closest to them" in rule


def test_a_front_gets_its_first_objectives_optimum_reported_and_nothing_added(params, pareto_campaign):
    """A multi-objective campaign reports the dense optimum of its first objective, adds no evaluation and runs no
    cheapest-equivalent search (a front has no single recipe to be cheaper than)."""
    from dataclasses import replace

    from flows.model_optimum import add_model_optimum, dense_optimum

    campaign = replace(pareto_campaign, points=list(pareto_campaign.points),
                       evaluations=list(pareto_campaign.evaluations), batches=list(pareto_campaign.batches))
    found = add_model_optimum(campaign, params, lambda recipes: pytest.fail("a front evaluates nothing more"))
    config = campaign.config
    assert (found.recipe, found.objective) == dense_optimum(config, params, seed=config.optimiser.seed)
    assert found.cheapest_recipe is None and found.cheapest_objective is None
    assert len(campaign.evaluations) == len(pareto_campaign.evaluations)


def test_the_front_carries_each_predicted_objectives_interval_and_flag(params, pareto_campaign):
    """pareto.csv gives every model-predicted objective of each front recipe its 90 % interval and extrapolation
    flag, by the functions the recommendation's intervals and flags come from (batch_intervals, scoring_flags);
    milling time, exact, gets neither. The figure draws the intervals as error bars."""
    from flows.evaluation import batch_intervals, campaign_parameters, scoring_flags
    from flows.metrics import extrapolated_column, interval_columns
    from flows.pareto import front_files, with_uncertainty
    from surrogate.uncertainty import build_ensemble

    campaign = pareto_campaign
    scoring = campaign.config.scoring()
    p, calibration = campaign_parameters(campaign.config)
    ensemble = build_ensemble(p, calibration)
    front = with_uncertainty(campaign, pareto_table(campaign), ensemble)
    assert interval_columns("milling_time_h")[0] not in front and extrapolated_column("milling_time_h") not in front
    for name in ("capacity_mAh_per_g", "particle_expansion_pct"):
        low, high = (front[c].to_numpy(float) for c in interval_columns(name))
        assert np.all(low <= front[name]) and np.all(front[name] <= high) and np.all(high > low)
        assert front[extrapolated_column(name)].dtype == bool
    row = front.iloc[0]
    recipe = campaign.evaluations[int(row["evaluation"])].recipe
    band = batch_intervals([recipe], ensemble, scoring, scoring.request(currents_A_per_g=()))[0]["capacity_mAh_per_g"]
    assert [row[c] for c in interval_columns("capacity_mAh_per_g")] == pytest.approx(band, rel=1e-9)
    flag = scoring_flags(recipe, ensemble.domain, scoring, scoring.names)["particle_expansion_pct"]
    assert row[extrapolated_column("particle_expansion_pct")] == flag
    figure = front_files(campaign, front, 0)["pareto.png"]
    assert any(c.get_label() == "90 % interval" for axis in figure.axes for c in axis.containers)


def test_parego_goes_on_space_filling_while_every_evaluation_has_failed(params):
    """With no finished evaluation there is nothing to model: ParEGO keeps asking space-filling points (it crashed
    reshaping an empty front) and the campaign spends its budget, each failure recorded."""
    from flows.evaluation import Evaluation, Status

    config = load_config("configs/pareto.yaml", overrides=SMALL)
    campaign = Campaign.new(config)
    failed = lambda recipes: [Evaluation(r, Status.FAILED, float("nan"), reason="the cell shorted")  # noqa: E731
                              for r in recipes]
    run_pareto_search(campaign, failed)
    assert campaign.model_evaluations() == 10 and campaign.failed() == 10
    points = [tuple(p) for p in campaign.points]
    assert len(set(points)) == 10  # new points after the start, not the start again


def test_a_mill_or_batch_beyond_any_real_one_is_refused():
    """A 1e-320 g batch gave every recipe an infinite milling energy; a mill's constants have real lower bounds."""
    from flows.config import ConfigError

    for field, value in (("batch_mass_g", 1e-320), ("mill_rated_power_W", 0.5), ("mill_rated_speed_rpm", 1.0)):
        with pytest.raises(ConfigError, match=field):
            load_config("configs/pareto.yaml", overrides={"objectives": [
                {"kind": "capacity"}, {"kind": "milling_energy", field: value}]})



def test_parego_samples_part_of_its_candidates_around_the_front():
    """with_local_samples, as ParEGO calls it (a numpy Generator): the configured share of the candidates lies within
    a few sd of the front's points, inside the box; the rest stay uniform."""
    from skopt.space import Space
    from skopt.utils import normalize_dimensions

    from flows.search import search_dimensions, with_local_samples

    config = load_config("configs/pareto.yaml")
    space = Space(normalize_dimensions(search_dimensions(config)))
    rng = np.random.default_rng(0)
    uniform = space.transform(space.rvs(n_samples=2000, random_state=1))
    front = np.array([[0.6, 0.9, 0.5, 0.1], [0.3, 0.2, 0.7, 0.8]])
    mixed = with_local_samples(space, uniform, front, 0.5, 0.02, rng)
    near = np.min(np.linalg.norm(mixed[:, None, :] - front[None], axis=2), axis=1) < 0.02 * 6 * 2
    assert near[:1000].all() and near[1000:].mean() < 0.05
    assert np.array_equal(mixed[1000:], uniform[1000:]) and mixed.min() >= 0.0 and mixed.max() <= 1.0


@pytest.mark.parametrize("anchor_points", [0, 1, 2, 3])
def test_the_last_points_of_a_batch_anchor_the_first_modelled_objective(params, monkeypatch, anchor_points):
    """The last ``anchor_points`` points of each ParEGO batch maximise the first modelled objective's improvement
    alone (capacity: milling time, first of the recipe-only ones in another order, is skipped); the others take
    random weights, which are still drawn for every point (the stream does not depend on the setting). Never the
    first: as many anchors as points had quietly made the campaign single-objective (a hostile-input helper), and
    more anchors than points are refused."""
    import flows.pareto as pareto
    from flows.pareto import CHEBYSHEV_RHO

    losses = []

    def spy(models, candidates, X, outputs, n_points, loss_for, rng):
        losses.append([loss_for(k) for k in range(n_points)])
        return real(models, candidates, X, outputs, n_points, loss_for, rng)

    real = pareto.monte_carlo_batch
    monkeypatch.setattr(pareto, "monte_carlo_batch", spy)
    objectives = [{"kind": "milling_time"}, {"kind": "capacity", "current_A_per_g": 1.7, "cycle": 1000},
                  {"kind": "particle_expansion"}]
    config = load_config("configs/pareto.yaml", SMALL | {"objectives": objectives, "optimiser": SMALL["optimiser"] | {
        "batch_size": 3, "n_calls": 9, "anchor_points": anchor_points}})
    campaign = Campaign.new(config)
    run_pareto_search(campaign, lambda recipes: evaluate_batch(recipes, params, config.scoring()))
    outputs = np.random.default_rng(0).uniform(size=(50, 3))
    capacity_alone = (1.0 + CHEBYSHEV_RHO) * outputs[:, 1]  # the weights (0, 1, 0): capacity, second here
    assert losses
    for batch in losses:
        anchored = [np.allclose(loss(outputs), capacity_alone) for loss in batch]
        assert anchored == [0 < k >= len(batch) - anchor_points for k in range(len(batch))]
    if anchor_points == 3:
        with pytest.raises(ConfigError, match=r"anchor_points \(4\) must not exceed batch_size \(3\)"):
            load_config("configs/pareto.yaml", SMALL | {"objectives": objectives, "optimiser": SMALL["optimiser"]
                                                        | {"batch_size": 3, "n_calls": 9, "anchor_points": 4}})
