"""flows/physics_gp.py: the physics-informed surrogate learns how far to trust its prior."""

import numpy as np

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
