"""A physics-informed surrogate for scikit-optimize: the model as the prior mean, a GP on what the lab adds.

Kennedy & O'Hagan style: the lab's objective is modelled as ``a * model(x) + b + delta(x)``. What keeps a wrong model
from misleading the search:

- **a learned prior weight.** ``a`` and ``b`` are fitted to the data (least squares shrunk towards ``a = 1`` by one
  pseudo-observation), so a model whose predictions do not track the lab loses its weight and the regressor falls back
  to a plain GP;
- **the model's prediction as a GP input.** ``delta`` is a GP on ``(x, model(x))``, not on ``x`` alone. The model's
  optimum is a ridge of nearly equal recipes; a residual GP on ``x`` alone treats every unmeasured point of that ridge
  as unknown and keeps walking along it. With ``model(x)`` as an input, recipes the model scores alike are correlated,
  so a few measured ridge points tell the GP what the whole ridge is worth in the lab;
- **learned uncertainty.** The discrepancy GP's amplitude and noise are fitted (ARD Matern 5/2, as the plain GP), so
  its standard deviation widens where and as much as the lab disagrees with the model.

The regressor works in the optimiser's transformed space (the unit cube of ``normalize_dimensions``); its ``prior``
maps those points to the model's loss (``-objective``, as the optimiser is told).
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone

from skopt.learning import GaussianProcessRegressor
from skopt.learning.gaussian_process.gpr import _param_for_white_kernel_in_Sum
from skopt.learning.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

PRIOR_WEIGHT_PSEUDO_OBSERVATIONS = 1.0  # shrinkage of the prior weight towards 1: worth one (standardised) point
LENGTH_SCALE_BOUNDS = (0.01, 100.0)  # unit-cube lengths, as scikit-optimize's GP
AMPLITUDE_BOUNDS = (1e-3, 1e3)  # of the normalised discrepancy: from "model is exact" to "model is noise"
PRIOR_CACHE_ROWS = 200_000  # points whose model loss is kept: an ask's candidates and the data, many asks over


class ModelPrior:
    """The model's loss at points of the optimiser's transformed space, remembered point by point.

    An ask scores its candidates several times (each point of a batch), and each fit scores the data: with the memo
    the model runs once per point.

    Parameters
    ----------
    space : the optimiser's ``skopt.Space`` (normalised dimensions), which turns points back into recipe values
    losses_of_points : maps a list of points (searched dimensions, in their own units) to losses (array)
    """

    def __init__(self, space, losses_of_points: Callable[[list[list[Any]]], np.ndarray]):
        self.space, self.losses_of_points = space, losses_of_points
        self._memo: dict[bytes, float] = {}

    def __call__(self, X: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=float)
        keys = [row.tobytes() for row in X]
        out = np.array([self._memo.get(key, np.nan) for key in keys], dtype=float)
        missing = np.flatnonzero([key not in self._memo for key in keys])
        if missing.size:
            out[missing] = np.asarray(self.losses_of_points(self.space.inverse_transform(X[missing])), dtype=float)
            if len(self._memo) + missing.size > PRIOR_CACHE_ROWS:
                self._memo.clear()
            self._memo.update(zip((keys[i] for i in missing), out[missing].tolist()))
        return out

    def __deepcopy__(self, memo):  # sklearn's clone deep-copies parameters: the prior is shared, not copied
        return self


class PhysicsInformedGP(RegressorMixin, BaseEstimator):
    """Regressor ``a * prior(x) + b + GP(x, prior(x))`` with ``predict(X, return_std=True)``, for skopt.

    Parameters
    ----------
    prior : callable from transformed points (n x d) to the model's loss (n,); ``None`` predicts as a plain GP
    n_restarts_optimizer : restarts of the GP's hyperparameter fit
    random_state : seed of those restarts
    """

    def __init__(self, prior: Callable[[np.ndarray], np.ndarray] | None = None, n_restarts_optimizer: int = 2,
                 random_state: int | None = None, model_input: bool = True):
        self.prior = prior
        self.model_input = model_input
        self.n_restarts_optimizer = n_restarts_optimizer
        self.random_state = random_state

    # --- the model part --------------------------------------------------------------------------------------------
    def _prior_of(self, X: np.ndarray) -> np.ndarray:
        if self.prior is None:
            return np.zeros(len(X))
        m = np.asarray(self.prior(X), dtype=float)
        return np.where(np.isfinite(m), m, self.prior_fill_)

    def _inputs(self, X: np.ndarray, m: np.ndarray) -> np.ndarray:
        """The discrepancy GP's inputs: the point and the model's standardised prediction there."""
        if not self.model_input:
            return X
        return np.column_stack([X, (m - self.prior_center_) / self.prior_scale_])

    def fit(self, X, y) -> "PhysicsInformedGP":
        X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
        raw = np.asarray(self.prior(X), dtype=float) if self.prior is not None else np.zeros(len(X))
        finite = raw[np.isfinite(raw)]
        self.prior_fill_ = float(finite.max()) if finite.size else 0.0  # a model failure: its worst finite loss
        m = np.where(np.isfinite(raw), raw, self.prior_fill_)
        self.prior_center_ = float(m.mean())
        self.prior_scale_ = float(m.std()) or 1.0
        self.weight_, self.offset_ = self._prior_weight(m, y)
        residual = y - (self.weight_ * m + self.offset_)
        kernel = (ConstantKernel(1.0, AMPLITUDE_BOUNDS)
                  * Matern(length_scale=np.ones(X.shape[1] + int(self.model_input)), length_scale_bounds=LENGTH_SCALE_BOUNDS, nu=2.5))
        self.gp_ = GaussianProcessRegressor(kernel=kernel, normalize_y=True, noise="gaussian",
                                            n_restarts_optimizer=self.n_restarts_optimizer,
                                            random_state=self.random_state)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.gp_.fit(self._inputs(X, m), residual)
        self.X_train_, self.y_train_ = X, y
        return self

    @staticmethod
    def _prior_weight(m: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """Weight and offset of the model in the mean: least squares of y on m, shrunk towards weight 1.

        In standardised units (both divided by the spread of y) the penalty ``lambda (a - 1)^2`` is one pseudo-point
        saying "the model has the lab's scale"; the data override it as soon as they disagree.
        """
        if y.size < 2:
            return 1.0, float(y.mean() - m.mean()) if y.size else 0.0
        scale = float(y.std()) or 1.0
        mc, yc = (m - m.mean()) / scale, (y - y.mean()) / scale
        lam = PRIOR_WEIGHT_PSEUDO_OBSERVATIONS
        weight = float((mc @ yc + lam) / (mc @ mc + lam))
        return weight, float(y.mean() - weight * m.mean())

    def predict(self, X, return_std: bool = False, return_cov: bool = False):
        parts = self.decompose(X)
        if return_std:
            return parts["mean"], parts["std"]
        return parts["mean"]

    def decompose(self, X) -> dict[str, np.ndarray]:
        """The prediction in parts (losses): ``model`` (the model's own loss), ``prior`` (weighted model),
        ``correction`` (what the data add: combined minus model), ``mean`` and ``std`` (combined)."""
        X = np.asarray(X, dtype=float)
        m = self._prior_of(X)
        with warnings.catch_warnings():  # variances rounded below 0 at the data are set to 0: expected there
            warnings.simplefilter("ignore")
            delta, std = self.gp_.predict(self._inputs(X, m), return_std=True)
        prior = self.weight_ * m + self.offset_
        mean = prior + delta
        return {"model": m, "prior": prior, "correction": mean - m, "mean": mean, "std": std}

    def conditioned(self, X, y) -> "PhysicsInformedGP":
        """A copy told (X, y) with everything learned kept (prior weight, kernel, noise): the batch liar update."""
        X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
        new = clone(self)
        new.prior_fill_, new.prior_center_, new.prior_scale_ = self.prior_fill_, self.prior_center_, self.prior_scale_
        new.weight_, new.offset_ = self.weight_, self.offset_
        m = new._prior_of(X)
        new.gp_ = condition_gp(self.gp_, new._inputs(X, m), y - (new.weight_ * m + new.offset_))
        new.X_train_, new.y_train_ = X, y
        return new


def condition_gp(model: GaussianProcessRegressor, X: np.ndarray, y: np.ndarray) -> GaussianProcessRegressor:
    """A fitted GP refitted on (X, y) with its kernel hyperparameters, noise level and output scaling fixed (a
    Cholesky, no search).

    The output scaling (``normalize_y``'s mean and sd of the targets) is kept too: the kernel's amplitude was learned
    in those units, and re-standardising on the new targets would let one told value - a batch liar far from the
    rest - rescale every variance, so that telling a point could widen the GP's uncertainty there.
    """
    kernel = clone(model.kernel_)
    if model.noise_ is not None:  # the fitted noise level was zeroed for prediction: put it back, fixed
        _, white = _param_for_white_kernel_in_Sum(kernel)
        kernel.set_params(**{white: WhiteKernel(noise_level=model.noise_, noise_level_bounds="fixed")})
    conditioned = clone(model).set_params(kernel=kernel, optimizer=None, noise=model.noise_, normalize_y=False)
    y_mean, y_scale = model._y_train_mean, model._y_train_std
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conditioned.fit(X, (np.asarray(y, dtype=float) - y_mean) / y_scale)
    conditioned._y_train_mean, conditioned._y_train_std = y_mean, y_scale  # read by sklearn's predict
    conditioned.y_train_mean_, conditioned.y_train_std_ = y_mean, y_scale  # read by skopt's predict
    return conditioned
