"""Bayesian optimisation with scikit-optimize: the campaign's search space, ask/tell loop and recommendation.

The loop knows nothing of Prefect or MLflow: it is handed a function that evaluates a batch of recipes and an
optional callback per batch. The Prefect flow and the bare benchmark loop run the very same code.
"""

from __future__ import annotations

import itertools

import warnings
from contextlib import nullcontext
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, ContextManager

import numpy as np
from scipy.optimize import fmin_l_bfgs_b
from sklearn.base import clone
from sklearn.gaussian_process.kernels import Hyperparameter, Kernel
from sklearn.preprocessing import PowerTransformer
from threadpoolctl import threadpool_limits

from skopt import Optimizer
from skopt.acquisition import _gaussian_acquisition, gaussian_acquisition_1D
from skopt.learning import GaussianProcessRegressor
from skopt.learning.gaussian_process.kernels import Product
from skopt.space import Categorical, Real, Space
from skopt.utils import cook_estimator, is_2Dlistlike, normalize_dimensions

from flows.config import CampaignConfig
from flows.evaluation import LAB, Evaluation, evaluate_batch, model_objective
from flows.observations import metrics_request
from flows.objective import CAPACITY, EXPANSION, SCORE
from flows.physics_gp import (LabCalibratedPrior, LabParameters, ModelPrior, PhysicsInformedGP, condition_gp,
                              gp_mean_std, warm_kernel)
from surrogate.milling import DOSE_EXPONENTS
from surrogate.recipe import FIELD_NAMES, FIELDS, Recipes, same_value, shown_value

if TYPE_CHECKING:
    from flows.campaign import Campaign

EvaluateBatch = Callable[[list[dict[str, Any]]], list[Evaluation]]


def fit_hyperparameters(obj_func, initial_theta: np.ndarray, bounds, tolerance: float) -> tuple[np.ndarray, float]:
    """The GP's hyperparameter search: scikit-learn's own (L-BFGS-B on the negative log marginal likelihood), stopped
    once a step changes it by less than the share ``tolerance`` (``optimiser.gp_fit_tolerance``). scipy's default,
    2.2e-9, spends about half of its iterations below 1e-4, where the length scales no longer move the acquisition;
    those fits were two thirds of the optimiser's CPU."""
    from scipy.optimize import minimize

    result = minimize(obj_func, initial_theta, method="L-BFGS-B", jac=True, bounds=bounds,
                      options={"ftol": tolerance})
    return result.x, result.fun


def plain_gp(space, random_state: int, settings) -> GaussianProcessRegressor:
    """scikit-optimize's GP (Matern 5/2 with a length scale per dimension, constant amplitude, fitted or fixed
    noise) on ``space`` (normalised dimensions), with the noise, restarts, fit tolerance and features of
    ``settings`` (``config.optimiser``; ``gp_features: milling_dose`` gives the length scales to the dose's axis,
    :class:`MappedKernel`)."""
    model = cook_estimator("GP", space=space, random_state=random_state, noise=settings.gp_noise,
                           n_restarts_optimizer=settings.gp_restarts)
    matrix = dose_features(Space(space)) if settings.gp_features == "milling_dose" else None
    if matrix is not None:  # amplitude x Matern on the features instead of the axes
        model.set_params(kernel=Product(model.kernel.k1, MappedKernel(model.kernel.k2, matrix)))
    return model.set_params(optimizer=partial(fit_hyperparameters, tolerance=settings.gp_fit_tolerance))


class MappedKernel(Kernel):
    """A kernel on linear features of the points, ``kernel(X M^T, Y M^T)``: an ARD kernel's length scales then
    belong to the features' axes instead of the search space's.

    Why: the milling laws are power laws in time, speed and BPR, and the impacts' dose BPR t rpm^3 drives most of
    the microstructure (science.md 3.4), so on the log axes the objective changes fastest along one diagonal and
    least across it. Axis-aligned length scales must then be short on all three axes; with the dose as a feature
    (:func:`dose_features`), one short length scale on it and long ones across can describe the same surface.
    """

    def __init__(self, kernel, matrix):
        self.kernel = kernel
        self.matrix = matrix

    def get_params(self, deep=True):
        params = dict(kernel=self.kernel, matrix=self.matrix)
        if deep:
            params.update(("kernel__" + k, v) for k, v in self.kernel.get_params().items())
        return params

    @property
    def hyperparameters(self):
        return [Hyperparameter("kernel__" + h.name, h.value_type, h.bounds, h.n_elements)
                for h in self.kernel.hyperparameters]

    @property
    def theta(self):
        return self.kernel.theta

    @theta.setter
    def theta(self, theta):
        self.kernel.theta = theta

    @property
    def bounds(self):
        return self.kernel.bounds

    def __eq__(self, other):
        return (type(self) is type(other) and self.kernel == other.kernel
                and np.array_equal(self.matrix, other.matrix))

    def __repr__(self):
        return f"Mapped({self.kernel!r})"

    def _features(self, X):
        return None if X is None else np.asarray(X, dtype=float) @ np.asarray(self.matrix, dtype=float).T

    def __call__(self, X, Y=None, eval_gradient=False):
        return self.kernel(self._features(X), self._features(Y), eval_gradient=eval_gradient)

    def diag(self, X):
        return self.kernel.diag(self._features(X))

    def is_stationary(self):
        return self.kernel.is_stationary()

    def gradient_x(self, x, X_train):
        """d k(x, X_train) / dx, for scikit-optimize's L-BFGS acquisition (chain rule through the features)."""
        return self.kernel.gradient_x(self._features(np.atleast_2d(x))[0], self._features(X_train)) @ self.matrix


def dose_features(space) -> np.ndarray | None:
    """The matrix M of :class:`MappedKernel` that replaces the milling speed's axis by the log of the dose
    BPR t rpm^3 (scaled to [0, 1] over the box), in the optimiser's transformed space; None unless time, speed and
    BPR are all searched on log axes (then the dose is not a plane there). M is invertible: no information is lost,
    only the axes the length scales belong to change."""
    names = [d.name for d in space.dimensions]
    fields = tuple(DOSE_EXPONENTS)
    if not all(name in names for name in fields):
        return None
    columns, start = {}, 0
    for dimension in space.dimensions:
        columns[dimension.name] = start
        start += dimension.transformed_size
    dims = {d.name: d for d in space.dimensions}
    if not all(isinstance(dims[n], Real) and dims[n].prior == "log-uniform" for n in fields):
        return None
    spans = {n: np.log10(dims[n].high) - np.log10(dims[n].low) for n in fields}
    total = sum(DOSE_EXPONENTS[n] * spans[n] for n in fields)
    matrix = np.eye(start)
    row = columns["milling_speed_rpm"]
    matrix[row] = 0.0
    for n in fields:
        matrix[row, columns[n]] = DOSE_EXPONENTS[n] * spans[n] / total
    return matrix


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


BLAS_THREADS = 1  # the GP's matrices are ~100 x 100: BLAS threads only add overhead (measured: tell CPU 10x)
DUPLICATE_DISTANCE = 1e-6  # points closer than this in the optimiser's unit cube are the same recipe
LIARS = {"cl_min": np.min, "cl_mean": np.mean, "cl_max": np.max}
COMPOSITE_INPUTS = (CAPACITY, EXPANSION)  # what the single objective's formula scores (flows/objective.py)
MONTE_CARLO_SAMPLES = 128  # posterior draws per candidate, for the Monte Carlo expected improvement (composite, ParEGO)
LOCAL_CENTRES = 5  # local acquisition samples step from the best few evaluated points, not only the best one
# How a point of an ask was chosen (BatchOptimizer.asked_by_, shown with each suggestion)
INITIAL_DESIGN, ACQUISITION, PARAMETER_DRAW = "initial design", "expected improvement", "lab-parameter draw"
# Of the acquisition's samples, those a lab-parameter draw scores: one model run over them, 0.03 s for 2000 (0.11 s
# for all 10 000; measured, process time), a tenth of an ask's CPU or less. Chosen for cost, not tuned.
DRAW_CANDIDATES = 2000


class BatchOptimizer(Optimizer):
    """scikit-optimize's Optimizer with a batch ask that costs one surrogate fit per told batch.

    scikit-optimize's ``ask(n_points=q)`` copies the optimiser (one fit) and tells it each constant-liar point with a
    full refit (q more), and every ``tell`` optimises the acquisition for all three ``gp_hedge`` candidates whether
    or not anything is asked. Here ``tell`` only fits the surrogate (hyperparameters included), and ``ask`` does the
    acquisition work: the first point maximises the acquisition of that model; each later point of the batch is
    taken after conditioning the fitted GP on the points already chosen, told at the liar value, with the fitted
    kernel hyperparameters kept (a Cholesky factorisation, no hyperparameter search). Non-GP surrogates are refitted
    for each liar point instead (they have no fixed-kernel update).

    Both run with BLAS on one thread: on matrices this small, threads cost more than they give.

    ``ask(n_points=None)`` returns one point as in scikit-optimize; ``gp_hedge`` chooses one acquisition per batch
    with the same gains as scikit-optimize's. ``pending_`` (points, as asked) are recipes being made elsewhere, a
    lab's pending rows: an ask conditions the surrogate on them at its own predicted mean (kriging believer; the
    composite GPs, which no lab campaign uses, ignore them), so a batch neither repeats them nor is drawn to them by
    an invented value. While initial points remain, a batch takes them in order and fills any remainder with random
    points (no model has been fitted yet); with ``design_until_told`` the design ends at the first told result.
    """

    def __init__(self, *args, output_warping: str = "none", local_share: float = 0.0, local_scale: float = 0.02,
                 composite=None, draw_points: int = 0, design_until_told: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self._seed = kwargs.get("random_state")  # each ask's random stream derives from it (see ask)
        # True: the initial design is a first batch for a search that knows nothing yet; from the first told result
        # on the surrogate leads (the physics-informed GP, whose prior is the model, needs no more random points)
        self.design_until_told = design_until_told
        self.draw_points = draw_points  # last points of a batch taken by a lab-parameter draw (physics_gp)
        self.asked_by_: list[str] = []  # how each point of the last ask was chosen: INITIAL_DESIGN, ACQUISITION, ...
        self.composite = composite  # the objective whose inputs get a GP each (None: one GP on the losses)
        self._inputs: list[dict[str, float] | None] = []  # each told point's objective inputs, in the order of Xi
        self._composite = None  # {input name: fitted GP} of the last fit, when every told point has its inputs
        self.output_warping = output_warping
        self.local_share, self.local_scale = local_share, local_scale
        self._fitted = None  # (model of the warped losses, warp or None, warped losses) of the last fit
        self.pending_: list[list] = []  # points in progress elsewhere (a lab's pending recipes): see _ask_batch

    def tell(self, x, y, fit=True, inputs=None):
        """scikit-optimize's tell; ``inputs`` (one dict per point, or None) are the objective's inputs of each
        point, which a composite optimiser models instead of the loss."""
        many = is_2Dlistlike(x)
        rows = list(inputs) if inputs is not None else [None] * (len(x) if many else 1)
        self._inputs.extend(rows if many else rows[:1])
        return super().tell(x, y, fit=fit)

    def _tell(self, x, y, fit=True):
        with threadpool_limits(limits=BLAS_THREADS, user_api="blas"):
            return self._tell_and_fit(x, y, fit)

    def _fit_composite(self):
        """One GP per objective input on every told point, or None when some point lacks a finite input."""
        names = COMPOSITE_INPUTS
        rows = self._inputs
        if (self.composite is None or len(rows) != len(self.Xi)
                or not all(r is not None and all(np.isfinite(r.get(n, np.nan)) for n in names) for r in rows)):
            return None
        X = self.space.transform(self.Xi)
        models = {}
        for name in names:
            model = clone(self.base_estimator_)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(X, np.array([r[name] for r in rows], dtype=float))
            models[name] = model
        return models

    @staticmethod
    def _warm(model, previous):
        """A scikit-optimize GP about to be fitted, started from ``previous``'s fitted hyperparameters with no random
        restarts (a batch more data moves them little); other surrogates, or no previous fit, unchanged. Only for
        a GP that does not choose points: on the GPs that do, no restarts measured 4 seeds of 10 missing the target
        (benchmarks/optimiser_efficiency.py) against 1 with them."""
        kernel = warm_kernel(previous) if isinstance(previous, GaussianProcessRegressor) else None
        if isinstance(model, GaussianProcessRegressor) and kernel is not None:
            model.set_params(kernel=kernel, n_restarts_optimizer=0)
        return model

    def _tell_and_fit(self, x, y, fit):
        result = super()._tell(x, y, fit=False)
        if self.design_until_told:
            self._n_initial_points = min(self._n_initial_points, 0)
        if fit and self._n_initial_points <= 0 and self.base_estimator_ is not None:
            composite = self._fit_composite()
            model = clone(self.base_estimator_)
            if self.models and hasattr(model, "warm_start_from"):  # from the last fit's hyperparameters
                model.warm_start_from(self.models[-1])
            elif composite is not None and self._fitted is not None and self.output_warping == "none":
                # the composite GPs choose the points; the GP on the losses only reports (the optimiser's belief
                # at the recommendation, the partial-dependence plots): warm-started, it does not need restarts
                model = self._warm(model, self._fitted[0])
            losses = np.asarray(self.yi, dtype=float)
            warp = None
            if self.output_warping == "yeo-johnson":
                warp = PowerTransformer(method="yeo-johnson").fit(losses[:, None])
                losses = warp.transform(losses[:, None]).ravel()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(self.space.transform(self.Xi), losses)
            self._fitted = (model, warp, losses)
            self._composite = composite
            if self.acq_func == "gp_hedge" and getattr(self, "next_xs_", None):
                self.gains_ -= model.predict(np.vstack(self.next_xs_))
            if self.max_model_queue_size is not None and len(self.models) >= self.max_model_queue_size:
                self.models.pop(0)
            self.models.append(model if warp is None else Unwarped(model, warp))
            self.next_xs_ = []
        return result

    def ask(self, n_points=None, strategy="cl_min"):
        if n_points is not None and not (isinstance(n_points, int) and n_points > 0):
            raise ValueError(f"n_points should be int > 0, got {n_points}")
        if strategy not in LIARS:
            raise ValueError(f"strategy must be one of {', '.join(LIARS)}, got {strategy!r}")
        key = (n_points, strategy)
        if key not in self.cache_:  # asking again before a tell gives the same points, as in scikit-optimize
            if isinstance(self._seed, (int, np.integer)):
                # A stream of its own per ask, fixed by the seed and the number of results told, not one stream run
                # on through every earlier ask: a resumed campaign (told its saved batches again, batch by batch)
                # then asks what the uninterrupted one asked.
                self.rng = np.random.RandomState(np.random.SeedSequence([int(self._seed), len(self.Xi)])
                                                 .generate_state(1)[0])
            with threadpool_limits(limits=BLAS_THREADS, user_api="blas"):
                self.cache_ = {key: self._ask_batch(n_points or 1, strategy)}
        points = self.cache_[key]
        return points[0] if n_points is None else points

    def _ask_batch(self, n_points: int, strategy: str) -> list[list]:
        initial = max(0, self._n_initial_points)
        if initial > 0 or self._fitted is None:
            points = [self.space.rvs(random_state=self.rng)[0] if self._initial_samples is None
                      else self._initial_samples[len(self._initial_samples) - initial + i]
                      for i in range(min(n_points, initial))]
            remaining = n_points - len(points)
            self.asked_by_ = [INITIAL_DESIGN] * n_points
            return points + (self.space.rvs(n_samples=remaining, random_state=self.rng) if remaining else [])
        model, _, y = self._fitted
        X = self.space.transform(self.Xi)
        candidates = self._candidates(X, y)
        self.asked_by_ = [ACQUISITION] * n_points
        if self._composite is not None:
            return self._composite_batch(candidates, X, n_points)
        if self.pending_:  # told at the model's own mean (kriging believer): no value is invented for them
            P = self.space.transform(self.pending_)
            X, y = np.vstack([X, P]), np.append(y, np.asarray(model.predict(P), dtype=float))
            model = self._conditioned(model, X, y)
        lie = float(LIARS[strategy](y))
        acquisition = self._hedged_acquisition(model, candidates, X, y) if self.acq_func == "gp_hedge" else None
        chosen: list[np.ndarray] = []
        fitted = model
        for k in range(n_points):
            if 0 < k and n_points - k <= self.draw_points:
                x = self._parameter_draw_point(fitted, candidates, np.vstack([X, *chosen]))
                if x is not None:
                    chosen.append(x)
                    self.asked_by_[k] = PARAMETER_DRAW
                    continue
            if k > 0:
                model = self._conditioned(model, np.vstack([X, *chosen]), np.append(y, [lie] * k))
            if k == 0 and acquisition is not None:
                x = acquisition[1]
            else:
                x = self._acquisition_optimum(model, candidates, acquisition[0] if acquisition else self.acq_func,
                                              float(min(y.min(), lie) if k else y.min()), np.vstack([X, *chosen]))
            chosen.append(x)
        return [self.space.inverse_transform(x.reshape(1, -1))[0] for x in chosen]

    def _composite_batch(self, candidates: np.ndarray, X: np.ndarray, n_points: int) -> list[list]:
        """A batch by Monte Carlo expected improvement of the objective scored on draws of its inputs' GPs
        (composite BO, Astudillo & Frazier 2019; :func:`monte_carlo_batch`)."""
        names = list(self._composite)
        told = np.array([[row[name] for name in names] for row in self._inputs], dtype=float)

        def losses(outputs: np.ndarray) -> np.ndarray:  # the objective's own formula, on arrays of its inputs
            return -np.asarray(self.composite.score({n: outputs[..., j] for j, n in enumerate(names)})[SCORE])

        chosen = monte_carlo_batch([self._composite[n] for n in names], candidates, X, told, n_points,
                                   lambda _: losses, self.rng)
        return [self.space.inverse_transform(x.reshape(1, -1))[0] for x in chosen]

    def _parameter_draw_point(self, model, candidates: np.ndarray, taken: np.ndarray) -> np.ndarray | None:
        """Thompson sampling of the lab parameters: the best of ``DRAW_CANDIDATES`` of the candidates under one draw
        of their posterior (the fitted model, not the batch's liars), or None when the surrogate has no lab
        parameters. EI trusts the estimated parameters; this point asks where the optimum would be if they were
        otherwise, as far as the lab's results allow."""
        if not hasattr(model, "parameter_draw"):
            return None
        pool = candidates[self.rng.choice(len(candidates), size=min(DRAW_CANDIDATES, len(candidates)), replace=False)]
        losses = model.parameter_draw(pool, self.rng)
        if losses is None:
            return None
        for i in np.argsort(losses, kind="stable"):
            if np.min(np.linalg.norm(taken - pool[i], axis=1)) > DUPLICATE_DISTANCE:
                return pool[i]
        return None

    def _candidates(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Points (transformed space) the acquisition is evaluated on: uniform samples, a share ``local_share`` of
        them replaced by steps from the best evaluated points (:func:`with_local_samples`)."""
        candidates = self.space.transform(self.space.rvs(n_samples=self.n_points, random_state=self.rng))
        centres = X[np.argsort(y, kind="stable")[:LOCAL_CENTRES]]
        return with_local_samples(self.space, candidates, centres, self.local_share, self.local_scale, self.rng)

    def _hedged_acquisition(self, model, candidates, X, y) -> tuple[str, np.ndarray]:
        """gp_hedge: every candidate acquisition's optimum (kept for the gains), one chosen by their softmax."""
        self.next_xs_ = [self._acquisition_optimum(model, candidates, name, float(y.min()), X)
                         for name in self.cand_acq_funcs_]
        logits = np.array(self.gains_) - np.max(self.gains_)
        probabilities = np.exp(self.eta * logits) / np.sum(np.exp(self.eta * logits))
        index = int(np.argmax(self.rng.multinomial(1, probabilities)))
        return self.cand_acq_funcs_[index], self.next_xs_[index]

    def _acquisition_optimum(self, model, candidates: np.ndarray, acq_func: str, y_opt: float,
                             taken: np.ndarray) -> np.ndarray:
        """Minimiser of the acquisition (transformed space) that is not an already taken point."""
        values = _gaussian_acquisition(X=candidates, model=model, y_opt=y_opt, acq_func=acq_func,
                                       acq_func_kwargs=self.acq_func_kwargs)
        order = np.argsort(values)
        options: list[tuple[float, np.ndarray]] = []
        if self.acq_optimizer == "lbfgs":
            bounds = np.array(self.space.transformed_bounds)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for start in candidates[order[:self.n_restarts_optimizer]]:
                    x, value, _ = fmin_l_bfgs_b(gaussian_acquisition_1D, start,
                                                args=(model, y_opt, acq_func, self.acq_func_kwargs),
                                                bounds=self.space.transformed_bounds, approx_grad=False, maxiter=20)
                    options.append((float(np.ravel(value)[0]), np.clip(x, bounds[:, 0], bounds[:, 1])))
            options.sort(key=lambda option: option[0])
        options += [(float(values[i]), candidates[i]) for i in order]
        for _, x in options:
            if np.min(np.linalg.norm(taken - x, axis=1)) > DUPLICATE_DISTANCE:
                return x
        return self.space.transform(self.space.rvs(random_state=self.rng))[0]

    def _conditioned(self, model, X: np.ndarray, y: np.ndarray):
        """The surrogate told (X, y): a GP (plain or physics-informed) keeps its fitted hyperparameters; other
        surrogates are refitted."""
        if hasattr(model, "conditioned"):
            return model.conditioned(X, y)
        if not isinstance(model, GaussianProcessRegressor):
            refit = clone(self.base_estimator_)
            return refit.fit(X, y)
        return condition_gp(model, X, y)


def with_local_samples(space: Space, candidates: np.ndarray, centres: np.ndarray, share: float,
                       scale: float | tuple[float, float], rng) -> np.ndarray:
    """``candidates`` (transformed space) with a share ``share`` of them replaced by Gaussian steps of sd ``scale``
    (of each range; a pair ``(low, high)``: each step's sd drawn log-uniformly between them) from ``centres`` drawn
    at random (real dimensions only; categorical columns keep the centre's choice): a thin optimum ridge, or a Pareto
    front, is rarely hit by uniform samples. ``rng``: numpy's ``RandomState`` or ``Generator``."""
    n_local = int(round(share * len(candidates)))
    if n_local == 0 or not len(centres):
        return candidates
    pick = rng.randint if hasattr(rng, "randint") else rng.integers
    real = np.concatenate([np.full(d.transformed_size, isinstance(d, Real)) for d in space.dimensions])
    local = centres[pick(len(centres), size=n_local)].astype(float)
    low, high = np.array(space.transformed_bounds, dtype=float)[real].T
    if isinstance(scale, tuple):  # one sd per step: fine refinements and coarse moves in one batch's candidates
        scale = np.exp(rng.uniform(np.log(scale[0]), np.log(scale[1]), size=(n_local, 1)))
        steps = rng.normal(0.0, 1.0, size=(n_local, int(real.sum()))) * scale * (high - low)
    else:
        steps = rng.normal(0.0, scale, size=(n_local, int(real.sum()))) * (high - low)
    local[:, real] = np.clip(local[:, real] + steps, low, high)
    candidates = candidates.copy()
    candidates[:n_local] = local
    return candidates


class Unwarped:
    """A model fitted to warped losses, predicting in the losses' own units (mean back-transformed, sd by the
    slope of the back-transform): what ``optimizer.models`` holds, so reports read mAh/g."""

    def __init__(self, model, warp: PowerTransformer):
        self.model, self.warp = model, warp

    def _inverse(self, z: np.ndarray) -> np.ndarray:
        return self.warp.inverse_transform(np.asarray(z, dtype=float)[:, None]).ravel()

    def predict(self, X, return_std: bool = False):
        z, z_std = self.model.predict(X, return_std=True)
        mean = self._inverse(z)
        if not return_std:
            return mean
        step = 1e-4
        slope = (self._inverse(z + step) - self._inverse(z - step)) / (2 * step)
        return mean, np.abs(slope) * z_std


class ExactOutput:
    """An output computed exactly at any point, with no uncertainty: an objective that is a function of the recipe
    alone (milling time, milling energy). :func:`monte_carlo_batch` reads it as a GP with zero sd and never
    conditions it: a GP fitted to it could only blur what is known before any evaluation."""

    def __init__(self, values_at: Callable[[np.ndarray], np.ndarray]):
        self.values_at = values_at  # points of the transformed space (N, D) -> values (N,)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.values_at(X), dtype=float)


def _mean_std(model, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predictive mean and sd of a fitted GP or an :class:`ExactOutput` (sd 0) at X."""
    if isinstance(model, ExactOutput):
        return model.predict(X), np.zeros(len(X))
    return gp_mean_std(model, X)


def monte_carlo_batch(models: list, candidates: np.ndarray, X: np.ndarray, outputs: np.ndarray, n_points: int,
                      loss_for: Callable[[int], Callable[[np.ndarray], np.ndarray]], rng) -> list[np.ndarray]:
    """A batch of candidates (transformed space) by Monte Carlo expected improvement of a loss of several GP outputs.

    ``models`` are fitted GPs, one per column of ``outputs`` (their values at ``X``); ``loss_for(k)`` is the loss of
    batch point k, mapping outputs (..., M) to losses (...): the objective's formula (composite BO) or a random
    scalarisation per point (ParEGO). Each point maximises the mean improvement over the best loss so far of
    ``MONTE_CARLO_SAMPLES`` posterior draws, the same standard-normal draws for every candidate, so the ranking
    carries no Monte Carlo noise (independent posteriors across outputs). Each chosen point is told to the GPs at
    their mean (kriging believer, fitted hyperparameters kept, :func:`condition_gp`), so the batch spreads; a point
    already taken is never chosen again.
    """
    chosen: list[np.ndarray] = []
    taken, outputs = X, np.asarray(outputs, dtype=float)
    for k in range(n_points):
        loss = loss_for(k)
        best = float(np.min(loss(outputs)))
        predictions = [_mean_std(model, candidates) for model in models]
        mean = np.stack([m for m, _ in predictions], axis=-1)  # (candidates, outputs)
        std = np.stack([s for _, s in predictions], axis=-1)
        base = rng.standard_normal((MONTE_CARLO_SAMPLES, 1, len(models)))
        improvement = np.maximum(best - loss(mean[None] + std[None] * base), 0.0).mean(0)
        order = np.argsort(-improvement, kind="stable")
        x = next((candidates[i] for i in order
                  if np.min(np.linalg.norm(taken - candidates[i], axis=1)) > DUPLICATE_DISTANCE), candidates[order[0]])
        chosen.append(x)
        taken = np.vstack([taken, x])
        outputs = np.vstack([outputs, [model.predict(x[None])[0] for model in models]])
        models = [model if isinstance(model, ExactOutput) else condition_gp(model, taken, outputs[:, j])
                  for j, model in enumerate(models)]
    return chosen


def make_optimizer(config: CampaignConfig, p=None, surrogate: str | None = None) -> BatchOptimizer:
    """The campaign's optimiser: settings from ``config.optimiser`` (chosen by benchmarks/optimiser_efficiency.py).

    ``surrogate`` overrides ``config.optimiser.surrogate`` (``snhc suggest`` asks for ``physics_gp``); the
    physics-informed surrogate uses the model with parameters ``p`` (the campaign's own when not given) as its prior.
    """
    settings = config.optimiser
    surrogate = surrogate or settings.surrogate
    dimensions = search_dimensions(config)
    estimator = surrogate
    if surrogate == "GP":  # scikit-optimize's GP (Matern 5/2, ARD), with the configured noise
        estimator = plain_gp(normalize_dimensions(dimensions), settings.seed, settings)
    elif surrogate == "physics_gp":  # the model as prior mean, a GP on the lab's discrepancy (flows/physics_gp.py)
        dimensions = normalize_dimensions(dimensions)  # the unit cube, as scikit-optimize's own GP
        estimator = PhysicsInformedGP(n_restarts_optimizer=settings.gp_restarts, random_state=settings.seed)
    optimizer = BatchOptimizer(
        dimensions,
        base_estimator=estimator,
        n_initial_points=settings.physics_initial_points if surrogate == "physics_gp" else settings.n_initial_points,
        initial_point_generator=settings.initial_point_generator,
        acq_func=settings.acquisition,
        acq_optimizer=settings.acq_optimizer if surrogate == "GP" else "sampling",
        acq_optimizer_kwargs={"n_points": settings.acquisition_samples,
                              "n_restarts_optimizer": settings.acquisition_restarts},
        random_state=settings.seed,
        output_warping=settings.output_warping,
        local_share=settings.local_candidates_share if surrogate in ("GP", "physics_gp") else 0.0,
        local_scale=settings.local_candidates_scale,
        # the composite GPs model the capacity objective's inputs: a campaign with 'objectives' has other ones
        composite=config.objective if settings.composite and surrogate == "GP" and not config.objectives else None,
        draw_points=settings.parameter_draw_points if surrogate == "physics_gp" else 0,
        design_until_told=surrogate == "physics_gp",
    )
    if surrogate == "physics_gp":
        if p is None:
            from flows.evaluation import campaign_parameters

            p, _ = campaign_parameters(config)
        # The lab's own values of some assumed parameters, inferred from its results. Not from PyBaMM's
        # (fidelity: physics): it shares the numpy model's milling and microstructure, so what it adds is
        # electrochemistry, which the prior weight and the discrepancy GP learn.
        if config.lab_parameters and config.fidelity == "model":
            prior = new_lab_prior(config, p, optimizer.space)
        else:
            prior = ModelPrior(optimizer.space, model_losses(config, p))
        optimizer.base_estimator_.set_params(prior=prior)
    return optimizer


def lab_calibrated_prior(config: CampaignConfig, p, measured: list[Evaluation]) -> LabCalibratedPrior | None:
    """The lab parameters (``config.lab_parameters``) estimated from measured lab results alone, as the
    physics-informed GP estimates them (:class:`flows.physics_gp.LabCalibratedPrior`: maximum a posteriori, each
    result weighted by ``lab_uncertainty_pct``); None when there is nothing to estimate or nothing to estimate it
    from (no lab parameters, the PyBaMM fidelity, no measured row inside the search space)."""
    if not config.lab_parameters or config.fidelity != "model":
        return None
    space = Space(normalize_dimensions(search_dimensions(config)))
    usable = [(point_of(e.recipe, config), e) for e in teaching_rows(config, measured)]
    if not usable:
        return None
    prior = new_lab_prior(config, p, space)
    X = space.transform([point for point, _ in usable])
    prior.remember_measurements(X, [e.metrics for _, e in usable])
    prior.fit(X, np.array([loss_of(e, config) for _, e in usable]))
    return prior


def new_lab_prior(config: CampaignConfig, p, space) -> LabCalibratedPrior:
    """A campaign's :class:`flows.physics_gp.LabCalibratedPrior` with no lab results yet: its lab parameters and
    their scatter, its model's losses and metrics, and its objective's cycle and temperature (what a row's objective
    capacity was measured after, and at)."""
    request = config.scoring().request()
    return LabCalibratedPrior(space, lambda q: model_losses(config, q), LabParameters(p, config.lab_parameters),
                              config.lab_uncertainty_pct, lambda q: model_metric_values(config, q),
                              request.target_cycle, request.temperature_C)


def teaching_rows(config: CampaignConfig, measured: list[Evaluation]) -> list[Evaluation]:
    """The measured lab rows that teach a campaign's model (its lab parameters, and the lab-taught intervals near
    them): those inside its search space, on its fixed fields. A row outside was never told to the model, so it
    must not narrow an interval either."""
    space = Space(normalize_dimensions(search_dimensions(config)))
    return [e for e in measured if in_search_space(e.recipe, config, space)]


def model_losses(config: CampaignConfig, p) -> Callable[[list[list]], np.ndarray]:
    """The model's loss (what the optimiser is told) at a list of points, vectorised: the physics prior."""
    penalty = -config.optimiser.failure_penalty

    def losses(points: list[list]) -> np.ndarray:
        try:
            objective = model_objective(recipes_of_points(points, config), p, config.scoring())
        except Exception:  # a batch the model cannot take whole: recipe by recipe, failures at the penalty
            return np.array([loss_of(e, config) for e in
                             evaluate_batch([recipe_of(point, config) for point in points], p, config.scoring())])
        return np.where(np.isfinite(objective), -np.asarray(objective, dtype=float), penalty)

    return losses


def model_metric_values(config: CampaignConfig, p) -> Callable[[list[list], list[str]], dict[str, np.ndarray]]:
    """The model's metrics at a list of points: ``values(points, names)`` predicts what ``names`` need (their
    currents and cycles, :func:`flows.observations.metrics_request`) and returns every metric (arrays); a recipe the
    model cannot take is NaN throughout. What a lab's measured metrics are fitted against."""
    def values(points: list[list], names: list[str]) -> dict[str, np.ndarray]:
        recipes = [recipe_of(point, config) for point in points]
        rows = [e.metrics if e.ok else {} for e in evaluate_batch(recipes, p, config.scoring(),
                                                                    metrics_request(names, config))]
        return {name: np.array([row.get(name, np.nan) for row in rows], dtype=float) for name in names}

    return values


def _plain(value):
    """A point coordinate as a plain Python value (scikit-optimize hands out numpy scalars)."""
    value = np.asarray(value).item()
    return value if isinstance(value, str) else float(value)


def recipe_of(point, config: CampaignConfig) -> dict[str, Any]:
    """Full recipe from a point of the searched dimensions plus the fixed ones."""
    searched = dict(zip(config.search_space.searched(), (_plain(v) for v in point)))
    fixed = config.search_space.fixed_values()
    return {name: searched[name] if name in searched else fixed[name] for name in FIELD_NAMES}


def recipes_of_points(points: list[list], config: CampaignConfig) -> Recipes:
    """Full recipes (one column per field, vectorised) from points of the searched dimensions plus the fixed ones."""
    names = config.search_space.searched()
    columns = {name: np.asarray([point[i] for point in points]) for i, name in enumerate(names)}
    return Recipes(**(columns | config.search_space.fixed_values()))


def point_of(recipe: dict[str, Any], config: CampaignConfig) -> list:
    """The search-space point of a recipe (its searched dimensions)."""
    return [_plain(recipe[name]) for name in config.search_space.searched()]


def loss_of(evaluation: Evaluation, config: CampaignConfig) -> float:
    """What the optimiser is told: scikit-optimize minimises -objective; a failure is -failure_penalty."""
    return -evaluation.objective if evaluation.ok else -config.optimiser.failure_penalty


def tell_known(optimizer: Optimizer, config: CampaignConfig, known: list[tuple[list[float], Evaluation]],
               batches: list[int] | None = None) -> int:
    """Tell the optimiser results it did not ask for (a resumed campaign, lab data); returns how many it took.

    Points outside the search space (or off a fixed dimension) cannot be told and are skipped. ``batches`` (one
    number per result): told batch by batch, in order, as the search told them, so a resumed campaign's optimiser
    fits what the interrupted one fitted (each fit starts from the last one's hyperparameters).
    """
    numbers = batches if batches is not None else [0] * len(known)
    usable = [(point, e, b) for (point, e), b in zip(known, numbers)
              if in_search_space(e.recipe, config, optimizer.space)]
    prior = getattr(getattr(optimizer, "base_estimator_", None), "prior", None)
    lab = [(point, e) for point, e, _ in usable if e.source == LAB and e.ok]
    if lab and hasattr(prior, "remember_measurements"):  # a lab prior fits each metric the lab measured
        prior.remember_measurements(optimizer.space.transform([point for point, _ in lab]), [e.metrics for _, e in lab])
    for _, group in itertools.groupby(usable, key=lambda item: item[2]):
        told = list(group)
        if batches is not None and getattr(optimizer, "acq_func", None) == "gp_hedge":
            # gp_hedge's gains are scored at a tell against the candidates of the ask before it: ask again (the
            # same points, the ask's stream being fixed by what was told) so a resume keeps the gains it had
            optimizer.ask(n_points=len(told), strategy=config.optimiser.liar)
        optimizer.tell([p for p, _, _ in told], [loss_of(e, config) for _, e, _ in told],
                       **told_inputs(optimizer, [e for _, e, _ in told]))
    return len(usable)


def in_search_space(recipe: dict[str, Any], config: CampaignConfig, space: Space) -> bool:
    """Whether the optimiser can take a recipe: its point inside ``space`` and its fields on the fixed values."""
    return point_of(recipe, config) in space and on_fixed_values(recipe, config.search_space.fixed_values())


def outside_reasons(recipe: dict[str, Any], config: CampaignConfig) -> list[str]:
    """Why the optimiser cannot take a recipe, field by field (``milling_atmosphere=air, fixed at argon``;
    ``milling_time_h=45, searched 0.5-40``): what a user must widen or unfix to use it; empty when it can."""
    reasons = []
    for name, value in config.search_space.fixed_values().items():
        if not same_value(name, recipe[name], value):
            reasons.append(f"{name}={shown_value(recipe[name])}, fixed at {shown_value(value)}")
    for name, dimension in zip(config.search_space.searched(), search_dimensions(config)):
        if recipe[name] not in dimension:
            allowed = (", ".join(map(str, dimension.categories)) if isinstance(dimension, Categorical)
                       else f"{shown_value(dimension.low)}-{shown_value(dimension.high)}")
            reasons.append(f"{name}={shown_value(recipe[name])}, searched {allowed}")
    return reasons


def on_fixed_values(recipe: dict[str, Any], fixed: dict[str, Any]) -> bool:
    """Whether a recipe sits on the campaign's fixed fields (by the one sameness rule)."""
    return all(same_value(name, recipe[name], value) for name, value in fixed.items())


def run_search(campaign: "Campaign", evaluate_batch: EvaluateBatch,
               on_batch: Callable[[int, list[Evaluation]], None] | None = None,
               atomic: Callable[[], ContextManager] = nullcontext, p=None) -> Optimizer:
    """Ask a batch, evaluate it, add it to the campaign, tell the results; repeat until the campaign's budget of
    model evaluations is spent.

    The campaign's evaluations from before (a resumed run) are told first and never evaluated again; lab
    observations are not told (they taught the model ``p`` before the search). ``atomic`` wraps evaluating and
    recording a batch (the flow defers Ctrl-C there, so a batch is either saved whole or not at all); asking and
    telling, the optimiser's own work, stay interruptible. ``p``: the model parameters the physics-informed
    surrogate uses as its prior (the campaign's own when not given).
    """
    config = campaign.config
    settings = config.optimiser
    # PyBaMM's evaluations (fidelity: physics): the numpy model as the GP's prior mean
    informed = config.fidelity == "physics" and settings.surrogate == "GP"
    optimizer = make_optimizer(config, p, surrogate="physics_gp" if informed else None)
    # Lab rows are measurements of another function than the one searched (the model, which they taught before the
    # search: flows.optimise.teach_lab_parameters): told to the same GP, the model's evaluations around them would
    # read as lab results with no discrepancy and wash out what the lab said.
    earlier = [(point, e, b) for point, e, b in zip(campaign.points, campaign.evaluations, campaign.batches)
               if e.source != LAB]
    tell_known(optimizer, config, [(point, e) for point, e, _ in earlier], [b for _, _, b in earlier])
    while campaign.model_evaluations() < settings.n_calls:
        n_points = min(settings.batch_size, settings.n_calls - campaign.model_evaluations())
        points = [[_plain(v) for v in point] for point in optimizer.ask(n_points=n_points, strategy=settings.liar)]
        with atomic():
            evaluations = evaluate_batch([recipe_of(point, config) for point in points])
            batch = campaign.add_batch(points, evaluations)
            if on_batch:
                on_batch(batch, evaluations)
        optimizer.tell(points, [loss_of(e, config) for e in evaluations], **told_inputs(optimizer, evaluations))
    return optimizer


def told_inputs(optimizer: Optimizer, evaluations: list[Evaluation]) -> dict:
    """The ``inputs`` keyword of a composite optimiser's tell: each evaluation's objective inputs (None for a
    failure); nothing for other optimisers."""
    if getattr(optimizer, "composite", None) is None:
        return {}
    return {"inputs": [{name: e.metrics.get(name, np.nan) for name in COMPOSITE_INPUTS} if e.ok else None
                       for e in evaluations]}


def surrogate_prediction(optimizer: Optimizer, point: list) -> tuple[float, float]:
    """The optimiser's surrogate (its regressor, a GP by default) mean and standard deviation of the objective at a
    point. For a plain GP on the model this is the optimiser's belief about a deterministic model, not the model's own
    error; the physics-informed GP on lab data adds the uncertainty of the lab parameters it inferred."""
    if not optimizer.models:
        return float("nan"), float("nan")
    model = optimizer.models[-1]
    X = optimizer.space.transform([point])
    if hasattr(model, "decompose"):
        parts = model.decompose(X)
        return float(-parts["mean"][0]), float(parts["total_std"][0])
    mean, std = model.predict(X, return_std=True)
    return float(-mean[0]), float(std[0])
