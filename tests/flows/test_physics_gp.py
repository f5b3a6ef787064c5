"""flows/physics_gp.py: the physics-informed surrogate learns how far to trust its prior."""

import warnings

import numpy as np
import pytest

from flows.physics_gp import PhysicsInformedGP


def lab(X):
    """A toy lab objective (loss) on the unit square: a bowl whose minimum is at (0.7, 0.3)."""
    return (X[:, 0] - 0.7) ** 2 + 0.5 * (X[:, 1] - 0.3) ** 2


def right_model(X):  # the lab's shape, on another scale and offset: what a calibrated model may give
    return 3.0 * lab(X) + 1.0


def wrong_model(X):  # a model whose optimum sits in the opposite corner
    return (X[:, 0] - 0.1) ** 2 + (X[:, 1] - 0.9) ** 2


def points(n, seed):
    return np.random.default_rng(seed).uniform(size=(n, 2))


def rmse(model, X):
    return float(np.sqrt(np.mean((model.predict(X) - lab(X)) ** 2)))


def test_a_wrong_prior_loses_its_weight_and_the_data_decide():
    X, test = points(25, 0), points(200, 1)
    physics = PhysicsInformedGP(prior=wrong_model, random_state=0).fit(X, lab(X))
    plain = PhysicsInformedGP(prior=None, random_state=0).fit(X, lab(X))
    assert physics.weight_ < 0.3  # the model's trend is mostly overridden
    assert rmse(physics, test) < 1.5 * rmse(plain, test) + 1e-3  # no worse than no prior, within noise
    best = test[np.argmin(physics.predict(test))]
    assert np.linalg.norm(best - [0.7, 0.3]) < 0.15  # its optimum is the lab's, not the model's


def test_a_right_prior_is_learned_from_few_points():
    X, test = points(5, 2), points(200, 3)
    physics = PhysicsInformedGP(prior=right_model, random_state=0).fit(X, lab(X))
    plain = PhysicsInformedGP(prior=None, random_state=0).fit(X, lab(X))
    assert abs(physics.weight_ - 1 / 3) < 0.05  # the scale of the model relative to the lab
    assert rmse(physics, test) < 0.2 * rmse(plain, test)


def test_two_points_do_not_weigh_the_model():
    """Through two points a slope and an offset fit exactly: the model keeps weight 1 and the offset is the mean
    difference; a third point that agrees with the slope lets the data set the weight."""
    X = points(3, 6)
    two = PhysicsInformedGP(prior=right_model, random_state=0).fit(X[:2], lab(X[:2]))
    assert two.weight_ == 1.0
    assert two.offset_ == pytest.approx(np.mean(lab(X[:2]) - right_model(X[:2])))
    three = PhysicsInformedGP(prior=right_model, random_state=0).fit(X, lab(X))
    assert three.weight_ < 0.6  # towards the true 1/3, shrunk towards 1 by one pseudo-point


def test_decomposition_adds_up_and_the_sd_grows_away_from_data():
    X = points(12, 4)
    model = PhysicsInformedGP(prior=wrong_model, random_state=0).fit(X, lab(X))
    parts = model.decompose(np.vstack([X[:1], [[0.999, 0.001]]]))
    np.testing.assert_allclose(parts["model"] + parts["correction"], parts["mean"])
    np.testing.assert_allclose(parts["model"], wrong_model(np.vstack([X[:1], [[0.999, 0.001]]])))
    assert parts["std"][0] < parts["std"][1]


def test_conditioning_keeps_what_was_learned():
    X = points(12, 5)
    model = PhysicsInformedGP(prior=wrong_model, random_state=0).fit(X, lab(X))
    lie = np.array([[0.5, 0.5]])
    told = model.conditioned(np.vstack([X, lie]), np.append(lab(X), -1.0))
    assert told.weight_ == model.weight_ and told.gp_.kernel_ == model.gp_.kernel_
    assert told.predict(lie)[0] < model.predict(lie)[0] - 0.1  # pulled towards the liar value
    _, std = told.predict(lie, return_std=True)
    assert std[0] < model.predict(lie, return_std=True)[1][0]


def test_a_campaign_optimiser_with_physics_gp_uses_the_model_as_prior():
    """make_optimizer(surrogate="physics_gp"): its regressor's model part is the campaign's model objective."""
    from flows.config import load_config
    from flows.evaluation import campaign_parameters, evaluate_batch
    from flows.search import make_optimizer, recipe_of

    config = load_config()
    p, _ = campaign_parameters(config)
    optimizer = make_optimizer(config, p, surrogate="physics_gp")
    points = optimizer.ask(n_points=config.optimiser.physics_initial_points)
    points = [[float(v) if not isinstance(v, str) else v for v in point] for point in points]
    evaluations = evaluate_batch([recipe_of(point, config) for point in points], p, config.objective)
    optimizer.tell(points, [-e.objective for e in evaluations])
    model = optimizer.models[-1]
    assert isinstance(model, PhysicsInformedGP)
    parts = model.decompose(optimizer.space.transform(points))
    np.testing.assert_allclose(-parts["model"], [e.objective for e in evaluations], rtol=1e-9)
    np.testing.assert_allclose(parts["mean"], [-e.objective for e in evaluations], atol=2.0)  # fits its data


def test_a_physics_gp_leads_from_its_first_result():
    """A lab with no results gets the space-filling design; one with two results (fewer than the design's points)
    gets suggestions that follow what was measured, not the rest of the same design whatever the results say."""
    from flows.config import load_config
    from flows.evaluation import campaign_parameters
    from flows.search import ACQUISITION, INITIAL_DESIGN, make_optimizer

    config = load_config()
    p, _ = campaign_parameters(config)
    assert config.optimiser.physics_initial_points > 2
    fresh = make_optimizer(config, p, surrogate="physics_gp")
    design = fresh.ask(n_points=2)
    assert fresh.asked_by_ == [INITIAL_DESIGN] * 2
    batches = []
    for measured in ([300.0, 200.0], [200.0, 300.0]):  # the same two recipes, opposite results
        optimizer = make_optimizer(config, p, surrogate="physics_gp")
        optimizer.tell([list(point) for point in design], [-v for v in measured])
        batches.append(optimizer.ask(n_points=2))
        assert optimizer.models and ACQUISITION in optimizer.asked_by_
    assert batches[0] != batches[1]


def test_model_prior_runs_the_model_once_per_point():
    """An ask scores a pool, then candidates drawn from it, then the data: the prior remembers each point's loss, so
    the model sees only points it has not scored, and the values are those of a fresh evaluation."""
    from skopt.space import Real, Space
    from skopt.utils import normalize_dimensions

    from flows.physics_gp import ModelPrior

    seen = []

    def losses(points):
        seen.append(len(points))
        return np.array([sum(p) for p in points], dtype=float)

    space = Space(normalize_dimensions([Real(0.0, 2.0), Real(1.0, 3.0)]))  # the optimiser's unit square
    prior = ModelPrior(space, losses)
    pool = np.random.default_rng(0).uniform(size=(50, 2))
    first = prior(pool)
    again = prior(np.vstack([pool[10:20], np.array([[0.5, 0.5]])]))
    assert seen == [50, 1]
    np.testing.assert_allclose(again[:10], first[10:20])
    np.testing.assert_allclose(again[10], 1.0 + 2.0)  # (0.5, 0.5) of the unit square is (1, 2)


def test_lab_parameters_span_their_ranges_around_the_project_values():
    """x = 0 is the project's model, the box is the allowed range, and a wide positive range is searched in log."""
    from flows.physics_gp import LabParameters
    from surrogate.parameters import ModelParameters

    p = ModelParameters.load()
    lab = LabParameters(p, ["sn_welding_at_reference", "hc_amorphisation_rate"])
    assert lab.values(np.zeros(2)) == pytest.approx({"sn_welding_at_reference": p.sn_welding_at_reference,
                                                     "hc_amorphisation_rate": p.hc_amorphisation_rate}, rel=1e-12)
    low, high = lab.box()
    at_low, at_high = lab.values(low), lab.values(high)
    for name in lab.names:
        assert np.isclose(at_low[name], p[name].bounds[0]) and np.isclose(at_high[name], p[name].bounds[1])
    assert high[0] - low[0] == 4.0 and high[1] - low[1] == 4.0  # the range is +-2 sd
    # log scale for the amorphisation rate (0.01 to 1): one sd up multiplies it by 10**0.5
    assert np.isclose(lab.values(np.array([0.0, 1.0]))["hc_amorphisation_rate"], p.hc_amorphisation_rate * 10**0.5)


def _lab_prior_and_points(config, p, n, seed):
    from flows.search import make_optimizer

    optimizer = make_optimizer(config, p, surrogate="physics_gp")
    points = optimizer.space.rvs(n_samples=n, random_state=seed)
    return optimizer.base_estimator_.prior, optimizer.space, points


def test_the_lab_prior_learns_the_parameters_a_lab_changed():
    """A lab whose mill cold-welds Sn ten times more: from 16 random recipes' results the prior's parameters move
    towards the lab's, and the prior predicts the lab's results at other recipes better than the project's model.
    (22 parameters from 16 results: the move is partial, measured 0.06 and 1.8, and the error falls to 0.65.)"""
    from flows.config import load_config
    from flows.evaluation import campaign_parameters
    from flows.physics_gp import LabCalibratedPrior
    from flows.search import model_losses

    config = load_config(overrides={"lab_uncertainty_pct": 0.5})
    p, _ = campaign_parameters(config)
    p_lab = p.with_values(sn_welding_at_reference=0.2, welding_contact_loss=3.0)
    prior, space, points = _lab_prior_and_points(config, p, 16, seed=0)
    assert isinstance(prior, LabCalibratedPrior)
    prior.fit(space.transform(points), model_losses(config, p_lab)(points))
    estimate = prior.estimate()
    assert estimate["sn_welding_at_reference"] > 0.04  # from 0.02 towards the lab's 0.2
    assert estimate["welding_contact_loss"] > 1.3  # from 1 towards the lab's 3
    held_out = space.rvs(n_samples=200, random_state=1)
    truth = model_losses(config, p_lab)(held_out)
    error_after = np.sqrt(np.mean((prior(space.transform(held_out)) - truth) ** 2))
    error_before = np.sqrt(np.mean((model_losses(config, p)(held_out) - truth) ** 2))
    assert error_after < 0.8 * error_before


@pytest.mark.parametrize("changed, group", [
    ({"sn_welding_at_reference": 0.2, "welding_contact_loss": 3.0}, "mill"),
    ({"hc_amorphisation_rate": 1.0, "hc_plateau_fraction": 0.6}, "powders"),  # one of them on its bound at 0
    ({"critical_strain": 0.85, "catastrophic_life_cycles": 250.0}, "cells"),
    ({"limiting_current_mA_per_cm2": 12.0, "counter_exchange_current_mA_per_cm2": 0.8}, "cells"),
])
def test_the_lab_results_free_the_group_of_parameters_that_differs(changed, group):
    """What differs in a lab is chosen by the evidence among nothing, each group and every group: a lab whose mill
    differs frees the mill's parameters, one whose cells differ (a binder that cracks sooner, a slower electrolyte)
    the cells' (freeing every parameter at once had explained a cell lab with its mill, and the search followed the
    wrong lab). The parameters left out keep the project's values, unspread."""
    from flows.config import load_config
    from flows.evaluation import campaign_parameters
    from flows.search import model_losses

    config = load_config(overrides={"lab_uncertainty_pct": 0.5})
    p, _ = campaign_parameters(config)
    p_lab = p.with_values(**changed)
    prior, space, points = _lab_prior_and_points(config, p, 24, seed=3)
    prior.fit(space.transform(points), model_losses(config, p_lab)(points))
    assert prior.hypothesis_ == group
    for name, value in changed.items():  # the freed parameters moved towards the lab's values
        assert abs(prior.estimate()[name] - value) < abs(p[name].value - value), name
    left_out = [i for i, name in enumerate(prior.lab_parameters.names) if name not in config.lab_parameters[group]]
    assert np.all(prior.x_[left_out] == 0.0)
    assert not np.any(prior.covariance_[left_out])
    # the intervals' draws name the freed parameters only: the others keep the study ensemble's own spread
    assert set(prior.posterior_values(8)[3]) == set(config.lab_parameters[group])


def test_a_lab_that_agrees_with_the_model_leaves_its_parameters_alone():
    from flows.config import load_config
    from flows.evaluation import campaign_parameters
    from flows.search import model_losses

    config = load_config()
    p, _ = campaign_parameters(config)
    prior, space, points = _lab_prior_and_points(config, p, 12, seed=2)
    prior.fit(space.transform(points), model_losses(config, p)(points))
    for name, value in prior.estimate().items():
        assert np.isclose(value, p[name].value, rtol=1e-6, atol=1e-9), name
    assert prior.hypothesis_ == "nothing"  # no group is said to differ, though some tie with nothing
    for label, fit in prior.fits_.items():  # and no hypothesis' own fit wandered off
        assert np.all(np.abs(fit.estimate) < 0.01), label


def test_the_lab_parameters_uncertainty_shrinks_as_results_come_in():
    """What the lab parameters are still unsure of is shown with a suggestion, averaged over what may differ: some
    spread after 4 results that the project's model explains (nothing differs, most likely), the widest once 12
    results free the mill, narrower after 24; the combined sd a suggestion reports is never below the discrepancy
    GP's."""
    from flows.config import load_config
    from flows.evaluation import campaign_parameters
    from flows.search import model_losses

    config = load_config(overrides={"lab_uncertainty_pct": 0.5})
    p, _ = campaign_parameters(config)
    p_lab = p.with_values(sn_welding_at_reference=0.2, welding_contact_loss=3.0)
    prior, space, points = _lab_prior_and_points(config, p, 24, seed=3)
    shown = space.transform(space.rvs(n_samples=20, random_state=4))
    spread, chosen = {}, {}
    for n in (4, 12, 24):
        prior.fit(space.transform(points[:n]), model_losses(config, p_lab)(points[:n]))
        spread[n], chosen[n] = float(np.median(prior.sd(shown))), prior.hypothesis_
    assert chosen == {4: "nothing", 12: "mill", 24: "mill"}
    assert 0 < spread[4] < spread[12] and spread[24] < 0.7 * spread[12]
    model = PhysicsInformedGP(prior=prior, random_state=0).fit(space.transform(points),
                                                               model_losses(config, p_lab)(points))
    parts = model.decompose(shown)
    assert np.all(parts["total_std"] >= parts["std"]) and np.all(parts["parameter_std"] > 0)


def test_a_batch_the_estimate_explains_skips_the_refit_and_one_it_does_not_refits():
    from flows.config import load_config
    from flows.evaluation import campaign_parameters
    from flows.search import model_losses

    config = load_config(overrides={"lab_uncertainty_pct": 0.5})
    p, _ = campaign_parameters(config)
    prior, space, points = _lab_prior_and_points(config, p, 20, seed=5)
    agree = model_losses(config, p)  # results the project's model explains exactly
    X = space.transform(points)
    prior.fit(X[:12], agree(points[:12]))
    assert (prior.refits_, prior.skipped_refits_) == (1, 0)
    prior.fit(X[:16], agree(points[:16]))  # four more, explained within the stated scatter: the estimate stands
    assert (prior.refits_, prior.skipped_refits_) == (1, 1)
    prior.fit(X[:16], agree(points[:16]))  # nothing new: nothing to do
    assert (prior.refits_, prior.skipped_refits_) == (1, 1)
    welding = model_losses(config, p.with_values(sn_welding_at_reference=0.2, welding_contact_loss=3.0))
    y = np.concatenate([agree(points[:16]), welding(points[16:])])  # four the estimate cannot explain
    prior.fit(X, y)
    assert prior.refits_ == 2
    assert prior.estimate()["sn_welding_at_reference"] > p.sn_welding_at_reference


def test_a_warm_started_fit_recovers_the_hyperparameters_without_restarts():
    from sklearn.base import clone

    X = points(30, 6)
    first = PhysicsInformedGP(prior=right_model, random_state=0).fit(X, lab(X))
    warm = clone(first)
    warm.warm_start_from(first)
    warm.fit(X, lab(X))
    assert warm.gp_.n_restarts_optimizer == 0 and first.gp_.n_restarts_optimizer == 2
    # started at the optimum the restarts found, L-BFGS stays there (or climbs): no worse fit for a third of the work
    assert warm.gp_.log_marginal_likelihood_value_ >= first.gp_.log_marginal_likelihood_value_ - 1e-6
    test = points(50, 7)
    assert np.allclose(warm.predict(test), first.predict(test), atol=1e-3 * np.ptp(lab(test)))


def test_a_lab_parameter_draw_spreads_with_their_uncertainty():
    from flows.config import load_config
    from flows.evaluation import campaign_parameters
    from flows.physics_gp import ModelPrior
    from flows.search import model_losses

    config = load_config(overrides={"lab_uncertainty_pct": 0.5})
    p, _ = campaign_parameters(config)
    welding = model_losses(config, p.with_values(sn_welding_at_reference=0.2, welding_contact_loss=3.0))
    prior, space, points = _lab_prior_and_points(config, p, 8, seed=8)
    X = space.transform(points)
    model = PhysicsInformedGP(prior=prior, random_state=0).fit(X, welding(points))
    shown = space.transform(space.rvs(n_samples=50, random_state=9))
    one, other = (model.parameter_draw(shown, np.random.default_rng(seed)) for seed in (0, 1))
    assert np.max(np.abs(one - other)) > 1.0  # 22 parameters from 8 results: draws disagree by mAh/g
    # a posterior with nothing left to learn: the draw is the mean
    fit = prior.fits_[prior.hypothesis_]
    prior.fits_ = {prior.hypothesis_: fit._replace(covariance=1e-16 * np.eye(fit.free.size))}
    assert np.allclose(model.parameter_draw(shown, np.random.default_rng(0)), model.predict(shown), atol=0.01)
    plain = PhysicsInformedGP(prior=ModelPrior(space, model_losses(config, p)), random_state=0).fit(X, welding(points))
    assert plain.parameter_draw(shown, np.random.default_rng(0)) is None  # no lab parameters, nothing to draw


def test_a_batch_ends_with_the_best_recipe_of_a_lab_parameter_draw():
    from flows.config import load_config
    from flows.evaluation import campaign_parameters
    from flows.search import make_optimizer, model_losses

    config = load_config(overrides={"lab_uncertainty_pct": 0.5})
    p, _ = campaign_parameters(config)
    welding = model_losses(config, p.with_values(sn_welding_at_reference=0.2, welding_contact_loss=3.0))
    batches = {}
    for draws in (0, 1):
        optimizer = make_optimizer(config, p, surrogate="physics_gp")
        optimizer.draw_points = draws
        told = optimizer.space.rvs(n_samples=8, random_state=10)
        optimizer.tell(told, list(welding(told)))
        batches[draws] = optimizer.ask(n_points=4)
    assert batches[0][:3] == batches[1][:3]  # expected improvement chooses the first points either way
    assert batches[0][3] != batches[1][3] and batches[1][3] in optimizer.space


def test_pending_recipes_are_believed_at_the_surrogates_mean_not_told_a_value():
    """A lab's pending recipes (made, not yet measured) are no result: the optimiser's data and the lab parameters'
    estimate stay as told, and the batch steers away from them. Told at the best value so far (the old liar), a
    pending recipe read as a lab result far above the model, and the batch crowded next to it."""
    from flows.config import load_config
    from flows.evaluation import campaign_parameters
    from flows.search import make_optimizer, model_losses

    config = load_config(overrides={"lab_uncertainty_pct": 0.5})
    p, _ = campaign_parameters(config)
    welding = model_losses(config, p.with_values(sn_welding_at_reference=0.2, welding_contact_loss=3.0))
    optimizer = make_optimizer(config, p, surrogate="physics_gp")
    told = optimizer.space.rvs(n_samples=8, random_state=10)
    optimizer.tell(told, list(welding(told)))
    alone = optimizer.ask(n_points=3)
    estimate = optimizer.models[-1].prior.estimate()
    optimizer = make_optimizer(config, p, surrogate="physics_gp")
    optimizer.tell(told, list(welding(told)))
    optimizer.pending_ = [alone[0]]  # the first suggestion went to the lab
    batch = optimizer.ask(n_points=3)
    assert len(optimizer.yi) == 8 and optimizer.models[-1].prior.estimate() == estimate
    space = optimizer.space
    nearest = np.min(np.linalg.norm(space.transform(batch) - space.transform([alone[0]]), axis=1))
    assert nearest > 0.05  # neither the pending recipe nor a near-repeat of it
    assert batch != alone


def test_the_fast_mean_and_sd_are_the_gps_own():
    from flows.physics_gp import condition_gp, gp_mean_std

    X = points(20, 11)
    model = PhysicsInformedGP(prior=wrong_model, random_state=0).fit(X, lab(X))
    test = np.vstack([points(500, 12), X[:5]])  # at the data the variance rounds to about 0
    for gp in (model.gp_, condition_gp(model.gp_, model._inputs(X[:12], wrong_model(X[:12])), lab(X[:12]))):
        inputs = model._inputs(test, wrong_model(test))
        with warnings.catch_warnings():  # skopt warns where it rounds a variance below 0 to 0
            warnings.simplefilter("ignore")
            mean, std = gp.predict(inputs, return_std=True)
        fast_mean, fast_std = gp_mean_std(gp, inputs)
        scale = gp.y_train_std_
        prior_variance = gp.kernel_.diag(inputs) * scale**2
        assert np.allclose(fast_mean, mean, rtol=1e-10, atol=1e-10 * scale)
        # the same variance up to round-off, which a nearly noise-free GP's K^-1 amplifies to ~1e-6 of the prior's
        assert np.all(np.abs(fast_std**2 - std**2) <= 1e-5 * prior_variance)
        assert np.median(std) > 1e-3 * scale  # a real spread away from the data, not only round-off


def test_the_posterior_mean_for_plots_is_the_gps_own_mean_and_sd():
    """The partial-dependence figure reads a plain GP through PosteriorMean: the same mean, and the GP's own sd."""
    from flows.physics_gp import PosteriorMean

    X = points(20, 11)
    model = PhysicsInformedGP(prior=wrong_model, random_state=0).fit(X, lab(X))
    gp = model.gp_
    test = points(300, 12)
    inputs = model._inputs(test, wrong_model(test))
    fast = PosteriorMean(gp)
    scale = gp.y_train_std_
    assert np.allclose(fast.predict(inputs), gp.predict(inputs), rtol=1e-10, atol=1e-10 * scale)
    assert np.ptp(fast.predict(inputs)) > 1e-3 * scale  # a mean that varies, not a constant
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert all(np.array_equal(a, b) for a, b in zip(fast.predict(inputs, return_std=True),
                                                         gp.predict(inputs, return_std=True)))


def test_a_lab_parameter_driven_to_an_end_of_its_range_is_marked_on_a_bound(params):
    """The lab-parameter table says which estimates sit at an end of their range (the results pull past it, so the
    'moved (sd)' understates the pull), by the calibration's one on-bound rule; the console shows them too."""
    from types import SimpleNamespace

    from flows.config import load_config
    from flows.physics_gp import LabParameters
    from flows.suggest import prior_parameter_table

    lab = LabParameters(params, load_config().lab_parameter_names[:3])
    low, high = lab.box()
    x = np.array([low[0], 0.3, high[2]])
    prior = SimpleNamespace(x_=x, covariance_=np.eye(3), lab_parameters=lab, estimate=lambda: lab.values(x),
                            hypothesis_="lab parameters")  # a list is one group, and the results freed it
    table = prior_parameter_table(prior)
    assert table["on_bound"].tolist() == [True, False, True]


def test_each_measured_metric_is_fitted_not_only_the_score_they_make():
    """A lab's reference recipe reads 200 mAh/g where the model says 341, at the 250 % swelling the model expects.
    Its parameters are fitted to each measured metric against the model's own value of it. Fitted to the score alone
    (capacity minus the swelling penalty), the fit cannot tell which of the two missed: it met the score half by
    inventing swelling (315 %) and left the capacity 33 % high."""
    from flows.config import load_config
    from flows.evaluation import LAB, Evaluation, campaign_parameters, evaluate_batch
    from flows.objective import CAPACITY, EXPANSION
    from flows.physics_gp import LabCalibratedPrior, LabParameters
    from flows.search import lab_calibrated_prior, loss_of, model_losses, point_of
    from surrogate.status import Status

    config = load_config()  # the lab parameters as one list, the same in both fits compared
    config = config.model_copy(update={"lab_parameters": config.lab_parameter_names})
    p, _ = campaign_parameters(config)
    recipe = {"sn_mass_fraction": 0.6667, "milling_time_h": 10.0, "milling_speed_rpm": 400.0,
              "ball_to_powder_ratio": 20.0, "milling_atmosphere": "argon", "pause_duty_cycle": 1.0}
    measured = {CAPACITY: 200.0, EXPANSION: 250.0}
    lab = [Evaluation(recipe, Status.FINISHED, config.objective.score(measured)["objective"], measured, "", LAB)]
    by_metrics = lab_calibrated_prior(config, p, lab)
    by_score = LabCalibratedPrior(by_metrics.space, lambda q: model_losses(config, q),
                                  LabParameters(p, config.lab_parameters), config.lab_uncertainty_pct)
    by_score.fit(by_score.space.transform([point_of(recipe, config)]), np.array([loss_of(lab[0], config)]))

    def error(prior, name):
        taught, = evaluate_batch([recipe], prior.lab_parameters.parameters(prior.x_), config.objective)
        return abs(taught.metrics[name] - measured[name])

    assert error(by_metrics, CAPACITY) < 0.6 * error(by_score, CAPACITY)
    assert error(by_metrics, EXPANSION) < error(by_score, EXPANSION)


def test_a_score_is_fitted_unless_the_row_measured_what_it_is_made_of():
    """A row's own score stays in the lab fit beside an ICE (it is the quantity searched); beside the capacity and
    the swelling it is made of, it and its penalty would count them twice and are left out."""
    from flows.config import load_config
    from flows.evaluation import campaign_parameters
    from flows.objective import CAPACITY, EXPANSION, PENALTY, SCORE

    config = load_config()
    p, _ = campaign_parameters(config)
    prior, space, points = _lab_prior_and_points(config, p, 3, seed=7)
    X = space.transform(points)
    prior.remember_measurements(X, [{SCORE: 300.0, "initial_coulombic_efficiency_pct": 80.0},
                                    {SCORE: 300.0, CAPACITY: 310.0, EXPANSION: 260.0, PENALTY: 10.0},
                                    {SCORE: 300.0, CAPACITY: 310.0}])
    assert [set(prior.measured_[x.tobytes()]) for x in X] == [
        {SCORE, "initial_coulombic_efficiency_pct"}, {CAPACITY, EXPANSION}, {SCORE, CAPACITY}]


def test_suggestions_take_the_lab_taught_ensemble_of_the_optimisers_own_prior():
    """snhc suggest predicts with the model its optimiser learned (the lab-taught estimate) and takes its intervals
    from that same prior's ensemble (the lab posterior's draws, weighted by the rows); a surrogate that infers no
    lab parameters gives the model's own."""
    from flows.config import load_config
    from flows.evaluation import campaign_parameters
    from flows.search import make_optimizer, model_losses
    from flows.suggest import lab_ensemble, lab_taught_parameters
    from surrogate.uncertainty import build_ensemble

    config = load_config(overrides={"lab_uncertainty_pct": 0.5})
    p, calibration = campaign_parameters(config)
    optimizer = make_optimizer(config, p, surrogate="physics_gp")
    points = optimizer.space.rvs(n_samples=6, random_state=2)
    optimizer.tell(points, list(model_losses(config, p.with_values(sn_welding_at_reference=0.2))(points)))
    prior = optimizer.models[-1].prior
    assert lab_taught_parameters(optimizer, p).digest() == prior.estimated_parameters().digest() != p.digest()
    taught = lab_ensemble(optimizer, p, config)
    assert taught.central.digest() == prior.estimated_parameters().digest()
    assert [m.digest() for m in taught.members] == [m.digest() for m in prior.taught_ensemble(calibration).members]
    plain = make_optimizer(config, p)
    plain.tell(points, list(model_losses(config, p)(points)))
    assert lab_taught_parameters(plain, p) is p
    assert [m.digest() for m in lab_ensemble(plain, p, config).members] == [
        m.digest() for m in build_ensemble(p, calibration).members]


def test_the_lab_rows_weigh_the_members_of_the_lab_taught_ensemble(tmp_path):
    """Members drawn from the lab parameters' Laplace posterior beside the study's spread are importance-weighted
    by the lab's rows: a member whose values miss the rows weighs less. A lab whose 2:1 cells keep 200 and 210
    mAh/g after 1000 cycles (the study's keep 341): unweighted, the lab-taught model's interval there was 153-300;
    weighted, it is narrower and still holds the cells' mean."""
    from flows.config import load_config
    from flows.evaluation import batch_intervals, campaign_parameters
    from flows.observations import read_observations
    from flows.search import lab_calibrated_prior
    from surrogate.uncertainty import build_ensemble

    config = load_config()
    p, calibration = campaign_parameters(config)
    path = tmp_path / "lab.csv"
    path.write_text("sample_id,sn_mass_fraction,milling_time_h,milling_speed_rpm,ball_to_powder_ratio,"
                    "objective_capacity_mAh_per_g,capacity_at_cycle_1000_mAh_per_g\n"
                    "C-1,0.6667,10,400,20,200,200\nC-2,0.6667,10,400,20,210,210\nC-3,0.5,10,400,20,230,230\n")
    lab = read_observations(path, config)
    prior = lab_calibrated_prior(config, p, lab.measured)
    drawn = build_ensemble(prior.estimated_parameters(), calibration, assumed_draws=prior.posterior_values)
    assert np.ptp(prior.log_weights(drawn.members)) > 10.0  # the rows tell the members apart
    weighted = prior.taught_ensemble(calibration)
    assert len(weighted.members) == len(drawn.members) and weighted.effective_size < 8 * len(drawn.members)
    name = "capacity_at_cycle_1000_mAh_per_g"

    def band(ensemble):
        return batch_intervals([lab.measured[0].recipe], ensemble, config.objective)[0][name]

    (low_w, high_w), (low_d, high_d) = band(weighted), band(drawn)
    assert high_w - low_w < 0.6 * (high_d - low_d)
    assert low_w <= 205.0 <= high_w


def test_every_lab_prior_knows_its_objectives_cycle():
    """The lab prior a search builds (snhc suggest's) and the one a campaign estimates before it searches know the
    cycle a row's objective capacity was measured after: suggest's had not, so near a row every cycle read as
    measured (cycle 1 and 12 000 unflagged where snhc predict flagged them)."""
    from flows.config import load_config
    from flows.physics_gp import LabCalibratedPrior
    from flows.search import make_optimizer

    config = load_config(overrides={"objective": {"cycle": 700}})
    prior = make_optimizer(config, surrogate="physics_gp").base_estimator_.prior
    assert isinstance(prior, LabCalibratedPrior) and prior.target_cycle == 700
