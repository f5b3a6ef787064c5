"""The batch ask of flows.search: q distinct points inside the space, one surrogate fit per told batch, the liar
conditioning, and same seed -> same points."""

import numpy as np
import pytest
from sklearn.gaussian_process import GaussianProcessRegressor as SklearnGP

from flows.config import ConfigError, load_config
from flows.search import BatchOptimizer, make_optimizer, run_search

SMALL = {"n_calls": 40, "n_initial_points": 8, "batch_size": 4, "seed": 5}


def config_with(**optimiser):
    return load_config(overrides={"optimiser": SMALL | optimiser})


def loss(point) -> float:
    """A smooth bowl in the search space (cheap stand-in for the model: these tests are about the optimiser)."""
    sn, time_h, speed_rpm, bpr = point
    return (sn - 0.6) ** 2 + (np.log(time_h / 8.0)) ** 2 / 10 + ((speed_rpm - 450) / 450) ** 2 + ((bpr - 20) / 35) ** 2


def told(optimizer, batches: int, q: int = 4):
    for _ in range(batches):
        points = optimizer.ask(n_points=q)
        optimizer.tell(points, [loss(x) for x in points])
    return optimizer


@pytest.mark.parametrize("acquisition,acq_optimizer", [("EI", "sampling"), ("LCB", "lbfgs"), ("gp_hedge", "sampling")])
def test_batch_ask_gives_q_distinct_points_inside_the_space(acquisition, acq_optimizer):
    optimizer = told(make_optimizer(config_with(acquisition=acquisition, acq_optimizer=acq_optimizer,
                                                acquisition_samples=500)), 3)
    assert optimizer.models, "the surrogate leads after the initial points"
    for q in (1, 4, 6):
        points = optimizer.ask(n_points=q)
        assert len(points) == q
        assert all(point in optimizer.space for point in points)
        unit = optimizer.space.transform(points + optimizer.Xi)
        distances = np.linalg.norm(unit[:, None, :] - unit[None, :, :], axis=-1)[:q]
        np.fill_diagonal(distances, np.inf)
        assert distances.min() > 1e-6, "no point repeats another of the batch or an evaluated one"


def test_one_surrogate_fit_per_told_batch(monkeypatch):
    """Hyperparameter searches happen in tell only (gp_restarts + 1 of them per fit), never in ask."""
    searches = []
    original = SklearnGP._constrained_optimization
    monkeypatch.setattr(SklearnGP, "_constrained_optimization",
                        lambda self, *a, **k: searches.append(1) or original(self, *a, **k))
    config = config_with(acquisition="EI", acq_optimizer="sampling", acquisition_samples=500, gp_restarts=1)
    optimizer = told(make_optimizer(config), 2)  # the 8 initial points: the second tell fits the first model
    assert len(optimizer.models) == 1 and len(searches) == 2
    for batch in range(3):
        points = optimizer.ask(n_points=4)
        assert len(searches) == 2 * (batch + 1), "asking a batch searches no hyperparameters"
        optimizer.tell(points, [loss(x) for x in points])
        assert len(optimizer.models) == batch + 2
        assert len(searches) == 2 * (batch + 2)


def test_the_gp_fit_tolerance_reaches_the_hyperparameter_search(monkeypatch):
    """optimiser.gp_fit_tolerance stops the likelihood search sooner when looser, on the same points."""
    evaluations = []
    original = SklearnGP.log_marginal_likelihood
    monkeypatch.setattr(SklearnGP, "log_marginal_likelihood",
                        lambda self, *a, **k: evaluations.append(1) or original(self, *a, **k))
    counts = {}
    for tolerance in (1e-12, 1e-2):
        evaluations.clear()
        told(make_optimizer(config_with(gp_fit_tolerance=tolerance, acquisition_samples=500, gp_restarts=0)), 2)
        counts[tolerance] = len(evaluations)
    assert 0 < counts[1e-2] < counts[1e-12]


def test_liar_points_are_conditioned_on_with_the_fitted_kernel():
    # A fixed, small noise: with a fitted one the liar is believed only as far as the fitted noise allows, and twelve
    # points cannot tell a noise of 1e-5 from 0.02 (their likelihoods differ by 0.06)
    optimizer = told(make_optimizer(config_with(acquisition="EI", acq_optimizer="sampling", acquisition_samples=500,
                                                gp_noise=1e-6)), 3)
    model = optimizer.models[-1]
    X = optimizer.space.transform(optimizer.Xi)
    liar_point = optimizer.space.transform([[0.3, 2.0, 300.0, 30.0]])
    lie = float(np.min(optimizer.yi))
    before_mean, before_std = model.predict(liar_point, return_std=True)
    conditioned = optimizer._conditioned(model, np.vstack([X, liar_point]), np.append(optimizer.yi, lie))
    mean, std = conditioned.predict(liar_point, return_std=True)
    assert before_std[0] > 10 * std[0], "the liar point is no longer uncertain"
    assert mean[0] == pytest.approx(lie, abs=0.05 * abs(before_mean[0] - lie) + 1e-6)
    assert conditioned.kernel_.get_params()["k1"] == model.kernel_.get_params()["k1"], "same fitted hyperparameters"


def test_same_seed_same_points_and_another_seed_other_points():
    def points(seed):
        optimizer = told(make_optimizer(config_with(seed=seed, acquisition_samples=500)), 3)
        return optimizer.Xi + optimizer.ask(n_points=4)

    assert points(5) == points(5)
    assert points(5) != points(6)


def test_initial_batches_take_the_initial_design_in_order_then_random_points():
    optimizer = make_optimizer(config_with(n_initial_points=6, initial_point_generator="lhs"))
    assert isinstance(optimizer, BatchOptimizer)
    design = [list(x) for x in optimizer._initial_samples]
    first = optimizer.ask(n_points=4)
    assert [list(x) for x in first] == design[:4]
    assert optimizer.ask(n_points=4) == first, "asking again before a tell gives the same batch"
    optimizer.tell(first, [loss(x) for x in first])
    second = optimizer.ask(n_points=4)
    assert [list(x) for x in second[:2]] == design[4:6]
    assert all(x in optimizer.space for x in second[2:]) and second[2] != second[3]


@pytest.mark.parametrize("noise", [0.0, 2.0, "loud"])
def test_gp_noise_out_of_range_names_the_field(noise):
    with pytest.raises(ConfigError, match="optimiser.gp_noise"):
        config_with(gp_noise=noise)


def test_warped_surrogate_predicts_in_the_losses_own_units():
    optimizer = told(make_optimizer(config_with(output_warping="yeo-johnson", gp_noise=1e-8,
                                                acquisition_samples=500)), 3)
    mean, std = optimizer.models[-1].predict(optimizer.space.transform(optimizer.Xi), return_std=True)
    np.testing.assert_allclose(mean, optimizer.yi, atol=1e-3 * np.ptp(optimizer.yi))
    assert np.all(std >= 0) and np.all(np.isfinite(std))
    assert len(optimizer.ask(n_points=4)) == 4


def test_local_candidates_step_from_the_best_evaluated_points_and_keep_categorical_choices():
    """With local_candidates_share 1 every acquisition sample lies a few sd from one of the best evaluated points
    (on the optimiser's unit axes), and a categorical field keeps that point's choice."""
    overrides = {"optimiser": SMALL | {"local_candidates_share": 1.0, "local_candidates_scale": 0.02,
                                       "acquisition_samples": 400},
                 "search_space": {"milling_atmosphere": {"choices": ["argon", "air"]}}}
    optimizer = make_optimizer(load_config(overrides=overrides))
    for _ in range(3):
        points = optimizer.ask(n_points=4)
        optimizer.tell(points, [loss(x[:4]) for x in points])
    X, y = optimizer.space.transform(optimizer.Xi), np.asarray(optimizer.yi)
    candidates = optimizer._candidates(X, y)
    centres = X[np.argsort(y)[:5]]
    distances = np.abs(candidates[:, None, :] - centres[None, :, :])  # (candidate, centre, column)
    nearest = distances.max(-1).argmin(1)
    assert distances.max(-1).min(1).max() < 0.02 * 6  # six sd: every candidate is local
    atmosphere = [d.name for d in optimizer.space.dimensions].index("milling_atmosphere")
    assert np.array_equal(candidates[:, atmosphere], centres[nearest, atmosphere])
    uniform = make_optimizer(load_config(overrides={"optimiser": SMALL | {"acquisition_samples": 400}}))
    spread = uniform.space.transform(uniform.space.rvs(400, random_state=1))
    assert spread.std(0).min() > 0.2  # uniform samples, by contrast, fill the cube


def test_local_steps_of_a_scale_range_span_it_from_fine_to_coarse():
    """local_candidates_scale [low, high] (configs/pareto.yaml): each step's sd is drawn log-uniformly between them,
    so a batch's candidates hold both refinements near a centre and moves far from it; a single scale keeps one sd."""
    from skopt.space import Space
    from skopt.utils import normalize_dimensions

    from flows.search import search_dimensions, with_local_samples

    space = Space(normalize_dimensions(search_dimensions(load_config())))  # the optimiser's unit axes
    centre = np.full((1, len(space.dimensions)), 0.5)
    steps = {}
    for scale in (0.02, (0.005, 0.2)):
        local = with_local_samples(space, np.zeros((20000, centre.shape[1])), centre, 1.0, scale,
                                   np.random.default_rng(0))
        steps[scale] = np.abs(local - 0.5).max(axis=1)
    fine, coarse = np.quantile(steps[(0.005, 0.2)], [0.1, 0.9])
    assert fine < 0.02 and coarse > 0.2  # a tenth of the steps finer than 2 %, a tenth coarser than 20 % of a range
    assert np.quantile(steps[0.02], 0.9) < 0.06  # one sd of 2 %: no coarse moves
    assert np.all((steps[(0.005, 0.2)] <= 0.5))  # clipped to the space


@pytest.mark.parametrize("setting", [{"local_candidates_share": 1.5}, {"local_candidates_scale": 0.0},
                                     {"local_candidates_scale": [0.2, 0.01]}])
def test_local_candidate_settings_out_of_range_name_the_field(setting):
    with pytest.raises(ConfigError, match=next(iter(setting))):
        config_with(**setting)


def test_composite_optimiser_models_each_objective_input_and_falls_back_without_them(params):
    """With optimiser.composite (the default) the plain GP campaign fits one GP per objective input (capacity, expansion) on every
    told point and asks distinct points inside the space; a told point without its inputs (a failure) turns the
    composite off, back to the GP on the losses. Physics-informed campaigns never use it."""
    from flows.campaign import Campaign
    from flows.evaluation import evaluate_batch
    from flows.objective import CAPACITY, EXPANSION

    config = config_with(composite=True, n_calls=12, n_initial_points=8)
    optimizer = run_search(Campaign.new(config), lambda recipes: evaluate_batch(recipes, params, config.objective),
                           p=params)
    assert optimizer._composite is not None and set(optimizer._composite) == {CAPACITY, EXPANSION}
    assert len(optimizer._inputs) == len(optimizer.Xi) == 12
    points = optimizer.ask(n_points=4)
    assert all(point in optimizer.space for point in points)
    unit = optimizer.space.transform(points)
    assert min(np.linalg.norm(a - b) for i, a in enumerate(unit) for b in unit[i + 1:]) > 1e-6
    optimizer.tell(points[0], 0.0, inputs=[None])  # a failure: no inputs to model
    assert optimizer._composite is None and len(optimizer._inputs) == len(optimizer.Xi)
    assert make_optimizer(config, params, surrogate="physics_gp").composite is None
    assert make_optimizer(config_with(composite=False)).composite is None
    assert make_optimizer(config_with()).composite is not None  # the default


def test_only_the_gp_that_does_not_choose_points_is_warm_started(params):
    """In a composite campaign the input GPs choose the points and keep their random restarts; the GP on the losses
    only reports, so from its second fit on it starts from its last hyperparameters without restarts. Without the
    composite, the GP on the losses chooses the points and keeps its restarts."""
    from flows.campaign import Campaign
    from flows.evaluation import evaluate_batch

    config = config_with(composite=True, n_calls=16, n_initial_points=8)
    optimizer = run_search(Campaign.new(config), lambda recipes: evaluate_batch(recipes, params, config.objective),
                           p=params)
    restarts = config.optimiser.gp_restarts
    assert [m.n_restarts_optimizer for m in optimizer.models] == [restarts, 0, 0]  # fits at 8, 12 and 16 points
    assert all(gp.n_restarts_optimizer == restarts for gp in optimizer._composite.values())
    first, warm = optimizer.models[:2]
    assert warm.kernel.get_params()["k2__noise_level"] == pytest.approx(first.noise_)  # started from the last fit
    plain = config_with(composite=False, n_calls=16, n_initial_points=8)
    optimizer = run_search(Campaign.new(plain), lambda recipes: evaluate_batch(recipes, params, plain.objective),
                           p=params)
    assert [m.n_restarts_optimizer for m in optimizer.models] == [restarts] * 3


def _searched_space(config):
    from skopt.space import Space
    from skopt.utils import normalize_dimensions

    from flows.search import search_dimensions

    return Space(normalize_dimensions(search_dimensions(config)))


def test_the_dose_feature_is_one_value_for_recipes_of_equal_dose_and_the_map_loses_nothing():
    from flows.search import dose_features

    space = _searched_space(config_with())
    matrix = dose_features(space)
    dose = 20.0 * 4.0 * 400.0**3  # BPR t rpm^3
    recipes = [[0.6, 4.0, 400.0, 20.0], [0.6, 16.0, 400.0 / 4 ** (1 / 3), 20.0], [0.6, 2.0, 400.0, 40.0]]
    assert [r[3] * r[1] * r[2] ** 3 for r in recipes] == pytest.approx([dose] * 3)
    features = space.transform(recipes) @ matrix.T
    assert np.ptp(features[:, 2]) < 1e-12  # the speed's axis now carries the dose
    assert np.ptp(features[:, 1]) > 0.1 and np.ptp(features[:, 3]) > 0.1  # time and BPR still tell them apart
    assert abs(np.linalg.det(matrix)) > 0.1
    unit_box = np.array(np.meshgrid(*[[0.0, 1.0]] * 4)).reshape(4, -1).T
    assert (unit_box @ matrix.T).min() >= -1e-12 and (unit_box @ matrix.T).max() <= 1 + 1e-12


def test_a_gp_on_dose_features_predicts_what_a_gp_fitted_on_the_mapped_points_predicts():
    from flows.search import MappedKernel, dose_features, plain_gp

    config = config_with()
    space = _searched_space(config)
    matrix = dose_features(space)
    mapped = plain_gp(space, 0, config.optimiser)
    plain = plain_gp(space, 0, config.optimiser.model_copy(update={"gp_features": "recipe"}))
    assert isinstance(mapped.kernel.k2, MappedKernel) and not isinstance(plain.kernel.k2, MappedKernel)
    rng = np.random.default_rng(1)
    X, X_new = rng.random((30, 4)), rng.random((5, 4))
    y = np.sin(6 * (X @ matrix.T)[:, 2]) + X[:, 0]
    mapped.fit(X, y)
    plain.fit(X @ matrix.T, y)
    for a, b in zip(mapped.predict(X_new, return_std=True), plain.predict(X_new @ matrix.T, return_std=True)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
    # the L-BFGS acquisition's gradient, through the features (central differences)
    x, step = X_new[0], 1e-6
    kernel = mapped.kernel_.k1.k2  # fitted: (amplitude x mapped Matern) + white noise
    assert isinstance(kernel, MappedKernel)
    analytic = kernel.gradient_x(x, X)
    numeric = np.stack([(kernel(np.atleast_2d(x + step * e), X) - kernel(np.atleast_2d(x - step * e), X))[0]
                        / (2 * step) for e in np.eye(4)], axis=-1)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-4, atol=1e-6)


def test_dose_features_need_time_speed_and_bpr_on_log_axes():
    from flows.search import dose_features

    linear = load_config(overrides={"search_space": {
        "milling_speed_rpm": {"low": 150.0, "high": 600.0, "log_scale": False},
        "ball_to_powder_ratio": {"low": 5.0, "high": 40.0, "log_scale": False}}})
    assert dose_features(_searched_space(linear)) is None
    assert dose_features(_searched_space(load_config("configs/pareto.yaml"))) is not None  # log axes there too


def test_the_composite_gps_serve_only_the_capacity_objective(tmp_path):
    """The composite GPs model the capacity objective's inputs and score them with its formula; a campaign whose
    'objectives' is one other objective (particle expansion) had its search steered by that formula instead."""
    assert make_optimizer(load_config()).composite is not None
    path = tmp_path / "expansion.yaml"
    path.write_text("name: expansion\nobjectives:\n  - kind: particle_expansion\n")
    assert make_optimizer(load_config(path)).composite is None
