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
  its standard deviation widens where and as much as the lab disagrees with the model;
- **the lab's own parameters** (:class:`LabCalibratedPrior`): the assumed parameters of the lab's mill, atmosphere,
  powders or cells are re-estimated from the lab's results (the group the results say differs, or every group), and
  a batch's last point is the best recipe under one draw of their posterior (:meth:`PhysicsInformedGP.parameter_draw`,
  Thompson sampling), so what the results have not pinned down still steers some experiments.

The regressor works in the optimiser's transformed space (the unit cube of ``normalize_dimensions``); its ``prior``
maps those points to the model's loss (``-objective``, as the optimiser is told).
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, NamedTuple

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone

from scipy.linalg import solve_triangular
from scipy.optimize import least_squares
from scipy.stats import chi2, norm
from skopt.learning import GaussianProcessRegressor
from skopt.learning.gaussian_process.gpr import _param_for_white_kernel_in_Sum
from skopt.learning.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

from flows.objective import CAPACITY, EXPANSION, PENALTY, SCORE
from flows.observations import scatter_scale
from surrogate.calibration import ParameterTransform
from surrogate.uncertainty import RANGE_IN_SD

PRIOR_WEIGHT_PSEUDO_OBSERVATIONS = 1.0  # shrinkage of the prior weight towards 1: worth one (standardised) point
LENGTH_SCALE_BOUNDS = (0.01, 100.0)  # unit-cube lengths, as scikit-optimize's GP
AMPLITUDE_BOUNDS = (1e-3, 1e3)  # of the normalised discrepancy: from "model is exact" to "model is noise"
NOISE_BOUNDS = (1e-5, 1e5)  # of the normalised discrepancy's noise variance: sklearn's WhiteKernel default
PRIOR_CACHE_ROWS = 200_000  # points whose model loss is kept: an ask's candidates and the data, many asks over
# The lab fit runs at every tell, warm-started from the last estimate. Measured (benchmarks/lab_loop.py, soft_hc_batch,
# 10 seeds): stopping at a relative change of 1e-3 costs no experiments against 1e-8 (18 against 16 median, within the
# seeds' spread) and cuts the optimiser's CPU per evaluation at 50 from 0.27 to 0.15 s; at most 40 steps.
LAB_FIT_FUNCTION_EVALUATIONS = 40
LAB_FIT_TOLERANCE = 1e-3
# A batch the current estimate already explains within the stated scatter (its mean squared standardised residual
# below the chi-square quantile for that many points) cannot move the MAP estimate far: the refit is skipped (the
# covariance is then the last refit's, a little wider than all the data would make it). Measured (lab_loop.py's CPU
# run, leaky_glovebox, idle machine): CPU per evaluation at 50 0.28 s refitting every tell, 0.23 s with the skip,
# 0.17 s with the discrepancy GP warm-started (PhysicsInformedGP.warm_start_from), 0.125 s with one lab-parameter
# draw per batch (it replaces one expected-improvement point); the other labs were then at 0.27 s (soft_hc_batch) and
# 0.18 s (welding_mill), most of it skopt's predictive variance on the acquisition's candidates: with gp_mean_std all
# three labs are at 0.11-0.12 s, with the same experiments seed for seed.
LAB_REFIT_QUANTILE = 0.9
# What may differ in a lab, besides each group of lab parameters: nothing, or every group at once. The lab's results
# choose by the Laplace evidence (MacKay 1992), which pays for each parameter a hypothesis frees and the data do not
# need: freeing every parameter lets a lab that differs in its cells explain its results with its mill, and the search
# then follows the wrong lab (benchmarks/lab_loop.py, below at LabCalibratedPrior).
NO_DIFFERENCE, EVERY_GROUP = "nothing", "every group"
EVIDENCE_TIE = 0.01  # log evidence: below this a wider hypothesis is no better supported than a narrower one
PARAMETER_DRAWS, PARAMETER_DRAWS_SEED = 32, 0  # the lab parameters' spread shown with a suggestion
# A fit starts this far (prior sd) inside the parameters' ranges: from a start on a bound (hc_fade_per_sqrt_cycle's
# project value is its lower bound, 0) scipy's trust-region fit did not move at all, and a soft HC batch's powders
# were left at the project's values (log evidence -17800 against -20 from 0.05 inside).
LAB_FIT_START_INSIDE = 0.05
LAB_FIT_DIFF_STEP = 1e-3  # finite-difference step in prior sd: well above the model's round-off, below its curvature


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


class LabParameters:
    """The assumed model parameters a lab may set differently, in prior-standardised coordinates.

    Coordinate ``x_j = (g(theta_j) - g(theta0_j)) / sd_j`` with ``g`` the calibration's scale
    (``surrogate.calibration.ParameterTransform``: log10 for wide positive ranges), ``theta0`` the project's value and
    ``sd_j`` a quarter of the range in ``g``: ``x = 0`` is the project's model, a unit Gaussian on ``x`` the prior.

    The parameters may come in groups (the mill, the atmosphere, the powders, the cells): each group is one
    hypothesis of what differs in the lab, and :class:`LabCalibratedPrior` lets the lab's results choose between
    them (:meth:`hypotheses`).

    Parameters
    ----------
    p : the project's parameters (each listed name needs ``bounds`` in configs/model_parameters.yaml)
    names : the parameters to infer: a list (one group), or a mapping of group name to its parameters
    """

    def __init__(self, p, names: list[str] | dict[str, list[str]]):
        groups = dict(names) if isinstance(names, dict) else {"lab parameters": list(names)}
        self.p, self.names = p, [name for group in groups.values() for name in group]
        start = np.cumsum([0] + [len(group) for group in groups.values()])
        self.groups = {label: np.arange(start[k], start[k + 1]) for k, label in enumerate(groups)}
        self.transform = ParameterTransform(p, self.names)
        g_low, g_high = self.transform.box()
        self._g0 = self.transform.forward(np.array([float(p[n].value) for n in self.names]))
        self.sd = (g_high - g_low) / RANGE_IN_SD
        self._low, self._high = (g_low - self._g0) / self.sd, (g_high - self._g0) / self.sd

    def box(self) -> tuple[np.ndarray, np.ndarray]:
        """Bounds of ``x``: the parameters' allowed ranges."""
        return self._low, self._high

    def hypotheses(self) -> dict[str, np.ndarray]:
        """What may differ in the lab, each as the indices of ``x`` it frees: nothing (the project's model), each
        group alone, and every group at once (when there are several)."""
        every = np.arange(len(self.names))
        return {NO_DIFFERENCE: every[:0], **self.groups, **({EVERY_GROUP: every} if len(self.groups) > 1 else {})}

    def values(self, x: np.ndarray) -> dict[str, float]:
        return dict(zip(self.names, self.transform.backward(self._g0 + np.asarray(x, dtype=float) * self.sd).tolist()))

    def parameters(self, x: np.ndarray):
        return self.p.with_values(**self.values(x))

    def coordinates(self, q) -> np.ndarray:
        """``x`` of model parameters ``q``: the inverse of :meth:`parameters`."""
        return (self.transform.forward(np.array([float(q[n].value) for n in self.names])) - self._g0) / self.sd


class MeasuredMetrics:
    """The metrics a lab measured at some points, as a table (points x names, NaN where a point lacks one), and the
    standardised residuals of a model's values of them: ``(measured - model) / sigma``, with sigma the lab's stated
    scatter (% of :func:`flows.observations.scatter_scale`: the value, or its metric's typical size when larger). A
    metric the model could not give at a point (a failed recipe) reads as a model value of 0: the largest miss
    there is, still finite for the fit."""

    def __init__(self, names: list[str], values: np.ndarray, sigma: np.ndarray):
        self.names, self.values, self.sigma = names, values, sigma
        self.measured = np.isfinite(values)

    @classmethod
    def of(cls, rows: list[dict[str, float]], sigma_pct: float) -> "MeasuredMetrics":
        names = sorted({name for row in rows for name in row})
        values = np.array([[row.get(name, np.nan) for name in names] for row in rows], dtype=float).reshape(
            len(rows), len(names))
        typical = np.array([np.median(np.abs(column[np.isfinite(column)])) for column in values.T])
        sigma = sigma_pct / 100.0 * scatter_scale(np.nan_to_num(values), typical)
        return cls(names, values, sigma)

    def residuals(self, model: dict[str, np.ndarray]) -> np.ndarray:
        n = len(self.values)
        predicted = np.column_stack([np.asarray(model.get(name, np.full(n, np.nan)), dtype=float).reshape(n)
                                     for name in self.names]) if self.names else np.zeros((n, 0))
        predicted = np.where(np.isfinite(predicted), predicted, 0.0)
        return ((self.values - predicted) / self.sigma)[self.measured]


class HypothesisFit(NamedTuple):
    """One hypothesis' fit to the lab's results (:meth:`LabCalibratedPrior.fit`)."""

    estimate: np.ndarray  # its freed parameters' estimate (prior-standardised)
    covariance: np.ndarray  # their Laplace posterior covariance
    log_evidence: float
    free: np.ndarray  # their indices among the lab parameters


class LabCalibratedPrior(ModelPrior):
    """The model's loss with some assumed parameters inferred from the lab's results: the calibration inputs of
    Kennedy & O'Hagan.

    A lab's mill, powders or glove box differ from the project's assumptions (a welding rate, an oxide level, the HC's
    plateau share). Each :meth:`fit` estimates those parameters from the lab's results by maximum a posteriori: least
    squares of ``(measured - model_theta(x)) / sigma`` plus the prior ``|x|^2`` of :class:`LabParameters`,
    warm-started from the last estimate. The model the discrepancy GP then corrects is the lab's own, so the prior's
    optimum moves where the lab's results say it lies; what the parameters cannot explain is left to the weight,
    offset and GP.

    What differs in the lab is itself inferred: :class:`LabParameters` may hold groups (the mill, the atmosphere,
    the powders, the cells), and each fit frees nothing, each group alone or every group, keeping the hypothesis of
    highest Laplace evidence (MacKay 1992: the fit's misfit plus the log-determinant of its posterior precision,
    which charges for each parameter freed and not needed). Freeing every parameter at once had let a lab whose
    cells differ explain its lower capacities with its mill: on four virtual labs whose cells or Sn fatigue differ
    (benchmarks/labs/cells/, the model's best recipe within 0.1 % of each lab's optimum) the search then needed a
    median of 12-61 experiments to within 1 % of the optimum with 12 of 40 seeds never there; choosing by the
    evidence, 8-12 with none missed, and 8-12 instead of 12-16 (2 missed) on the shipped labs (benchmarks/lab_loop.py,
    seeds 0-9, one session). The parameters a hypothesis leaves out keep the project's values (and in the lab-taught
    intervals the study ensemble's own spread of them); the search's exploration and the spread shown with a
    suggestion average the hypotheses by their evidence (:meth:`_averaged_draws`).

    What is measured is each metric the lab reported at a point (:meth:`remember_measurements`: capacity, particle
    expansion, ICE, ...), each against the model's own value of it (the score too, unless the row measured the
    capacity and swelling it is made of); the loss where nothing was reported but the score. Fitted to the score
    alone, a low capacity at the lab's swelling was explained by invented swelling (the penalty), and the capacity
    stayed wrong: the score cannot tell which of its inputs missed.

    Parameters
    ----------
    space : the optimiser's ``skopt.Space``
    losses_for : maps model parameters to a ``losses_of_points`` function (``flows.search.model_losses``)
    lab_parameters : the parameters to infer and their priors
    sigma_pct : a measured value's uncertainty, % of its magnitude (the campaign's ``lab_uncertainty_pct``)
    metrics_for : maps model parameters to ``values(points, names) -> {name: array}``, the model's metrics at points
        (``flows.search.model_metric_values``); None: every row is fitted by its loss
    target_cycle : the cycle of the objective's capacity (a lab row's ``objective_capacity_mAh_per_g`` names none),
        for which cycles the rows un-flag as extrapolated near them (``CalibratedDomain.with_lab_rows``)
    temperature_C : the objective's temperature, which the lab's rows were measured at (None: the study's)
    """

    def __init__(self, space, losses_for: Callable, lab_parameters: LabParameters, sigma_pct: float,
                 metrics_for: Callable | None = None, target_cycle: int | None = None,
                 temperature_C: float | None = None):
        self.losses_for, self.lab_parameters, self.sigma_pct = losses_for, lab_parameters, float(sigma_pct)
        self.metrics_for = metrics_for
        self.target_cycle = target_cycle  # the cycle of the objective's capacity, which a lab row's name does not say
        self.temperature_C = temperature_C  # the objective's: what the lab's rows were measured at
        self.measured_: dict[bytes, dict[str, float]] = {}  # transformed point -> the metrics the lab measured there
        self.x_ = np.zeros(len(lab_parameters.names))
        self.covariance_ = np.eye(len(lab_parameters.names))  # no lab results yet: the prior
        self._fitted_rows: set[bytes] = set()  # (point, value) rows the estimate was last fitted on
        self._starts: dict[str, np.ndarray] = {}  # each hypothesis' last estimate: the next fit's start
        self.hypothesis_ = NO_DIFFERENCE  # what the lab's results say differs (LabParameters.hypotheses)
        self.fits_: dict[str, HypothesisFit] = {}  # each hypothesis' last fit
        self.refits_, self.skipped_refits_ = 0, 0
        super().__init__(space, losses_for(lab_parameters.p))

    def fit(self, X: np.ndarray, y: np.ndarray) -> None:
        """Re-estimate the lab parameters on (X, y) and switch the prior to them, unless the rows added since the
        last estimate are explained by it within the stated scatter (:data:`LAB_REFIT_QUANTILE`)."""
        X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
        if not self.lab_parameters.names or y.size == 0:
            return
        sigma = self.sigma_pct / 100.0 * scatter_scale(y, np.median(np.abs(y)))
        rows = [np.append(x, v).tobytes() for x, v in zip(X, y)]
        new = np.array([row not in self._fitted_rows for row in rows])
        if self._fitted_rows and not new.any():  # told nothing new: the estimate stands
            return
        if self._fitted_rows and not new.all():
            z = (y[new] - self(X[new])) / sigma[new]
            if np.mean(z**2) <= chi2.ppf(LAB_REFIT_QUANTILE, new.sum()) / new.sum():
                self._fitted_rows.update(rows)
                self.skipped_refits_ += 1
                return
        self._fitted_rows = set(rows)
        self.refits_ += 1
        lab = self.lab_parameters
        by_loss, by_metrics = self._split_rows(X)
        loss_points = self.space.inverse_transform(X[by_loss]) if by_loss.size else []
        measured = MeasuredMetrics.of([self.measured_[X[i].tobytes()] for i in by_metrics], self.sigma_pct)
        metric_points = self.space.inverse_transform(X[by_metrics]) if by_metrics.size else []

        def data_residuals(q) -> np.ndarray:
            """The lab rows' standardised misfit under model parameters ``q``."""
            parts = []
            if by_loss.size:
                m = np.asarray(self.losses_for(q)(loss_points), dtype=float)
                parts.append((y[by_loss] - m) / sigma[by_loss])
            if by_metrics.size:
                parts.append(measured.residuals(self.metrics_for(q)(metric_points, measured.names)))
            return np.concatenate(parts)

        def in_full(free: np.ndarray, z: np.ndarray) -> np.ndarray:
            x = np.zeros(len(lab.names))
            x[free] = z
            return x

        def objective(free: np.ndarray, z: np.ndarray) -> np.ndarray:
            return np.concatenate([data_residuals(lab.parameters(in_full(free, z))), z])  # the data, the prior's rows

        self.data_residuals_ = data_residuals
        low, high = lab.box()
        fits: dict[str, HypothesisFit] = {}
        for label, free in lab.hypotheses().items():
            if not free.size:
                r = data_residuals(lab.parameters(in_full(free, free)))
                fits[label] = HypothesisFit(free.astype(float), np.zeros((0, 0)), -0.5 * (r @ r), free)
                continue
            starts = [self._starts.get(label, np.zeros(free.size))]
            best = max(fits.values(), key=lambda fit: fit.log_evidence) if fits else None
            if best is not None and best.free.size and np.all(np.isin(best.free, free)):  # a narrower hypothesis'
                starts.append(in_full(best.free, best.estimate)[free])  # best: a start the wider fit must not lose
            starts = [np.clip(z, low[free] + LAB_FIT_START_INSIDE, high[free] - LAB_FIT_START_INSIDE) for z in starts]
            start = min(starts, key=lambda z: float(np.sum(objective(free, z) ** 2)))
            solution = least_squares(lambda z, f=free: objective(f, z), start, bounds=(low[free], high[free]),
                                     method="trf", diff_step=LAB_FIT_DIFF_STEP, max_nfev=LAB_FIT_FUNCTION_EVALUATIONS,
                                     ftol=LAB_FIT_TOLERANCE, xtol=LAB_FIT_TOLERANCE)
            self._starts[label] = solution.x
            # Laplace: the residuals are in sd units and include the prior's rows, so J^T J (>= I, always
            # invertible) is the posterior precision, and the evidence is exp(-|r|^2 / 2) / sqrt(det J^T J)
            # Prior and posterior are both cut at the ranges: the evidence gains the log of the posterior's mass
            # inside them (each parameter's marginal) and loses that of the prior's. A parameter the results do not
            # pin, at a bound (hc_fade_per_sqrt_cycle's project value, 0), keeps half of both: no net change; one
            # estimated at a bound loses the half of its posterior the range cuts off.
            precision = solution.jac.T @ solution.jac
            covariance = np.linalg.inv(precision)
            sd = np.sqrt(np.diag(covariance))
            posterior_inside = norm.cdf((high[free] - solution.x) / sd) - norm.cdf((low[free] - solution.x) / sd)
            prior_inside = norm.cdf(high[free]) - norm.cdf(low[free])
            fits[label] = HypothesisFit(solution.x, covariance,
                                        -0.5 * (solution.fun @ solution.fun) - 0.5 * np.linalg.slogdet(precision)[1]
                                        + np.log(np.maximum(posterior_inside, 1e-300)).sum()
                                        - np.log(prior_inside).sum(), free)
        self.fits_ = fits
        # the first of the best (hypotheses go from nothing to every group): a group the results cannot tell from
        # nothing (a lab that agrees with the model) is not said to differ
        top = max(fit.log_evidence for fit in fits.values())
        self.hypothesis_ = next(label for label, fit in fits.items() if fit.log_evidence >= top - EVIDENCE_TIE)
        z, covariance, _, free = fits[self.hypothesis_]
        # the parameters this hypothesis leaves out are the project's values, not spread: their prior spread (a
        # binder's critical strain from 0.5 to 1.5) had widened a measured recipe's lab-taught interval sevenfold;
        # the project's own uncertainty on them is the study ensemble's (surrogate/uncertainty.py)
        self.covariance_ = np.zeros((len(lab.names), len(lab.names)))
        self.covariance_[np.ix_(free, free)] = covariance
        x = in_full(free, z)
        if not np.array_equal(x, self.x_):
            self.x_ = x
            self.losses_of_points = self.losses_for(lab.parameters(self.x_))
            self._memo.clear()

    def remember_measurements(self, X: np.ndarray, rows: list[dict[str, float]]) -> None:
        """The metrics a lab measured at points ``X`` (transformed), one mapping per point, for :meth:`fit` to
        explain one by one. The score is left out where the row measured what it is made of (the capacity and the
        swelling), and the penalty where it measured the swelling: they would count those twice. A score with
        only other metrics beside it (ICE, say) stays: it is the quantity searched."""
        for x, metrics in zip(np.ascontiguousarray(X, dtype=float), rows):
            derived = {PENALTY} if EXPANSION in metrics else set()
            if CAPACITY in metrics and EXPANSION in metrics:
                derived.add(SCORE)
            usable = {name: float(v) for name, v in metrics.items() if name not in derived and np.isfinite(v)}
            if usable:
                self.measured_[x.tobytes()] = usable

    def _split_rows(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the rows fitted by their loss and of those fitted by their measured metrics."""
        has = np.array([self.metrics_for is not None and x.tobytes() in self.measured_ for x in X], dtype=bool)
        return np.flatnonzero(~has), np.flatnonzero(has)

    def _parameter_draws(self, rng, n: int) -> np.ndarray:
        """n draws of the lab parameters (prior-standardised) from the chosen hypothesis' Laplace posterior, kept in
        their ranges (the parameters it leaves out at the project's values)."""
        root = np.linalg.cholesky(self.covariance_ + 1e-12 * np.eye(self.x_.size))
        low, high = self.lab_parameters.box()
        return np.clip(self.x_ + rng.standard_normal((n, self.x_.size)) @ root.T, low, high)

    def _averaged_draws(self, rng, n: int) -> np.ndarray:
        """n draws of the lab parameters averaged over the hypotheses by their evidence (each draw picks one with
        probability proportional to exp(log evidence), then draws its freed parameters from its Laplace posterior):
        for the search's exploration (:meth:`draw`) and the spread shown with a suggestion (:meth:`sd`). The chosen
        hypothesis alone had left a lab of four results that the project's model explains ("nothing differs", by
        2.3 in log evidence over its atmosphere) with no spread at all, so its lab-parameter draw never explored."""
        if not self.fits_:  # no results yet: the prior
            return self._parameter_draws(rng, n)
        labels = list(self.fits_)
        evidence = np.array([self.fits_[label].log_evidence for label in labels])
        chance = np.exp(evidence - evidence.max())
        picks = rng.choice(len(labels), size=n, p=chance / chance.sum())
        low, high = self.lab_parameters.box()
        draws = np.zeros((n, self.x_.size))
        for k, pick in enumerate(picks):
            z, covariance, _, free = self.fits_[labels[pick]]
            if free.size:
                root = np.linalg.cholesky(covariance + 1e-12 * np.eye(free.size))
                draws[k, free] = np.clip(z + root @ rng.standard_normal(free.size), low[free], high[free])
        return draws

    def draw(self, X: np.ndarray, rng) -> np.ndarray:
        """The model's loss at X under one draw of the lab parameters' posterior (Thompson sampling's model)."""
        x = self._averaged_draws(rng, 1)[0]
        return np.asarray(self.losses_for(self.lab_parameters.parameters(x))(self.space.inverse_transform(X)),
                          dtype=float)

    def sd(self, X: np.ndarray) -> np.ndarray:
        """The model loss's sd at X over the lab parameters' posterior: the spread of the model across
        ``PARAMETER_DRAWS`` parameter sets drawn from the Laplace Gaussian (kept inside the ranges, fixed seed). The
        model is far from linear over the prior's width (a welding or swelling threshold), so the sd is sampled, not
        linearised. One model run per draw: for the few recipes a user is shown, not for an acquisition's thousands."""
        X = np.asarray(X, dtype=float)
        if not self.lab_parameters.names or not len(X):
            return np.zeros(len(X))
        points = self.space.inverse_transform(X)
        draws = self._averaged_draws(np.random.default_rng(PARAMETER_DRAWS_SEED), PARAMETER_DRAWS)
        losses = np.array([self.losses_for(self.lab_parameters.parameters(x))(points) for x in draws], dtype=float)
        return losses.std(axis=0, ddof=1)

    @property
    def log_evidence_(self) -> dict[str, float]:
        """Each hypothesis' log evidence at the last fit."""
        return {label: float(fit.log_evidence) for label, fit in self.fits_.items()}

    def estimate(self) -> dict[str, float]:
        """The lab parameters as now estimated."""
        return self.lab_parameters.values(self.x_)

    def estimated_parameters(self):
        """The model parameters with the lab parameters at their estimate: the lab-taught model."""
        return self.lab_parameters.parameters(self.x_)

    def log_weights(self, members) -> np.ndarray:
        """Importance log-weights that make ensemble members drawn as :meth:`posterior_values` (lab parameters from
        the Laplace posterior, the rest from the study's ensemble) a sample of the joint posterior given the lab's
        rows as well: the rows' log-likelihood under each member's own parameters, plus the lab parameters' prior,
        minus the Laplace density they were drawn from. The Laplace step fitted the lab parameters with the study's
        central values; a member whose other values make the lab's rows unlikely (a fade law that misses a
        measured capacity) now weighs less, so the rows teach every parameter they bear on, not only the lab's."""
        if not hasattr(self, "data_residuals_"):
            return np.zeros(len(members))
        lab = self.lab_parameters
        freed = lab.hypotheses()[self.hypothesis_]
        precision = np.linalg.inv(self.covariance_[np.ix_(freed, freed)])
        out = np.empty(len(members))
        for k, member in enumerate(members):
            # the parameters the hypothesis leaves out are the study's draws (or values) of them: drawn from their
            # prior, so prior and proposal cancel, and only the rows' likelihood weighs them
            x = lab.coordinates(member)[freed]
            r = self.data_residuals_(member)
            d = x - self.x_[freed]
            out[k] = -0.5 * (r @ r) - 0.5 * (x @ x) + 0.5 * (d @ precision @ d)
        return out

    def taught_ensemble(self, calibration, measured=(), reweight: bool = True):
        """The lab-taught model's ensemble: a pool of the study's members (its fitted and uncertain assumed
        parameters' spread), each with ``candidates_per_member`` draws of the lab parameters' posterior
        (:meth:`posterior_values`), importance-resampled to ``ensemble_size`` by the lab's rows (:meth:`log_weights`,
        ``surrogate.uncertainty.Ensemble.reweighted``; about 2 s), each of whose measurements scatters as the lab
        states its cells do (``sigma_pct``, where larger than the study's: ``Ensemble.with_measurement_sigma``).
        ``measured``: the lab's measured rows (``flows.evaluation.Evaluation``), whose recipes then count as measured
        materials of the quantities they measured (``CalibratedDomain.with_lab_rows``). ``reweight``: False when
        the fitted parameters were refitted on the same rows (``recalibrate_on_observations``), whose step the
        members then take instead (``surrogate.uncertainty.refitted``): weighted by the rows as well, they had
        counted them twice.

        The central model stays :meth:`estimated_parameters` (the lab parameters' estimate, the study's values of the
        rest), though the rows' weights move the members' other values too, so a value can sit at its interval's
        edge (the band is stretched to hold it). The weighted members' median of every parameter, the posterior's
        centre, was tried as the central model instead: it sat inside every band, but missed the virtual labs'
        truth more (benchmarks/lab_intervals.py, capacity after 1000 cycles, median error of the central value on
        the six labs of benchmarks/labs/ and labs/beyond/: 2.4-7.0 % against 0.1-3.3 %): a median of some 30
        parameters over 32 effectively distinct members is mostly Monte Carlo noise."""
        from dataclasses import replace

        from surrogate.uncertainty import UncertaintySettings, build_ensemble

        pool = build_ensemble(self.estimated_parameters(), calibration, assumed_draws=self.posterior_values,
                              draws_per_member=UncertaintySettings.load().candidates_per_member)
        weights = self.log_weights(pool.members) if reweight else np.zeros(len(pool.members))
        ensemble = pool.reweighted(weights).with_measurement_sigma(self.sigma_pct) \
            .with_extra_scatter(self.misfit_beyond_scatter())
        settings = ensemble.settings
        return replace(ensemble, domain=ensemble.domain.with_lab_rows(
            ((e.recipe, e.metrics) for e in measured), settings.model_form_distance, settings.lab_row_near_distance,
            self.target_cycle, self.temperature_C))

    def misfit_beyond_scatter(self) -> dict[str, tuple[float, int]]:
        """Per measurement family (``surrogate.uncertainty.measurement_family``) of the metrics the lab measured: the
        sd (%) by which the lab-taught model misses the lab's rows beyond their stated scatter, and how many values
        it is estimated from (:func:`flows.observations.excess_scatter_pct`; families it meets within the scatter
        are left out). The lab's rows were fitted with the lab parameters; what they still miss is an effect the
        model has no parameter for, which its members do not spread, so :meth:`taught_ensemble` adds it to every
        prediction of that family. A virtual lab's reversible capacity, missed by 3.6 % RMS against 2.5 % stated,
        had intervals of +-3.6 % that covered the truth at 3 of 6 made recipes."""
        from flows.observations import family_misses
        from surrogate.uncertainty import FAMILY_OF_METRIC

        if self.metrics_for is None or not self.measured_:
            return {}
        keys = list(self.measured_)
        X = np.array([np.frombuffer(key, dtype=float) for key in keys])
        names = sorted({name for metrics in self.measured_.values() for name in metrics})
        model = self.metrics_for(self.estimated_parameters())(self.space.inverse_transform(X), names)
        rows = [(name, value, float(np.asarray(model[name], dtype=float).reshape(-1)[i]))
                for i, key in enumerate(keys) for name, value in self.measured_[key].items()]
        families = set(FAMILY_OF_METRIC.values())  # a metric no family holds (the score) scatters nothing
        return {family: (excess, n) for family, (excess, n, _, _) in family_misses(rows, self.sigma_pct).items()
                if family in families}

    def posterior_values(self, n: int) -> list[dict[str, float]]:
        """n draws of the freed lab parameters' values from their Laplace posterior under the chosen hypothesis
        (fixed seed, within their ranges), for the lab-taught model's intervals
        (``surrogate.uncertainty.build_ensemble``'s ``assumed_draws``): what the lab's rows left unknown of the part
        of the lab they say differs widens its predictions, as the study's data's does."""
        draws = self._parameter_draws(np.random.default_rng(PARAMETER_DRAWS_SEED), n)
        # only the freed parameters: the others keep the study ensemble's own spread of them (an uncertain assumed
        # one's draw, or the project's value), which the lab's rows did not narrow; set to the project's value in
        # every member they had widened a measured recipe's lab-taught interval threefold (each member's fitted
        # values belong to its own draws)
        freed = [self.lab_parameters.names[i] for i in self.lab_parameters.hypotheses()[self.hypothesis_]]
        return [{name: value for name, value in self.lab_parameters.values(x).items() if name in freed}
                for x in draws]


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
        self._warm_kernel = None

    def warm_start_from(self, previous: "PhysicsInformedGP") -> None:
        """Start the next fit's hyperparameter search from ``previous``'s fitted kernel and noise, with no random
        restarts: a batch more data moves the optimum little, and the restarts were most of a tell's GP cost."""
        gp = getattr(previous, "gp_", None)
        if gp is not None and previous.model_input == self.model_input:
            self._warm_kernel = warm_kernel(gp)

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
        if hasattr(self.prior, "fit"):  # a prior with lab parameters learns them first
            self.prior.fit(X, y)
        raw = np.asarray(self.prior(X), dtype=float) if self.prior is not None else np.zeros(len(X))
        finite = raw[np.isfinite(raw)]
        self.prior_fill_ = float(finite.max()) if finite.size else 0.0  # a model failure: its worst finite loss
        m = np.where(np.isfinite(raw), raw, self.prior_fill_)
        self.prior_center_ = float(m.mean())
        self.prior_scale_ = float(m.std()) or 1.0
        self.weight_, self.offset_ = self._prior_weight(m, y)
        residual = y - (self.weight_ * m + self.offset_)
        kernel, restarts = self._warm_kernel, 0
        if kernel is None:
            kernel = (ConstantKernel(1.0, AMPLITUDE_BOUNDS)
                      * Matern(length_scale=np.ones(X.shape[1] + int(self.model_input)),
                               length_scale_bounds=LENGTH_SCALE_BOUNDS, nu=2.5))
            restarts = self.n_restarts_optimizer
        self.gp_ = GaussianProcessRegressor(kernel=kernel, normalize_y=True, noise="gaussian",
                                            n_restarts_optimizer=restarts, random_state=self.random_state)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.gp_.fit(self._inputs(X, m), residual)
        self.X_train_, self.y_train_ = X, y
        return self

    @staticmethod
    def _prior_weight(m: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """Weight and offset of the model in the mean: least squares of y on m, shrunk towards weight 1.

        In standardised units (both divided by the spread of y) the penalty ``lambda (a - 1)^2`` is one pseudo-point
        saying "the model has the lab's scale"; the data override it as soon as they disagree. Up to two points the
        weight stays 1: a slope and an offset through two points fit them exactly, with nothing left to check them
        (two results 30 mAh/g apart where the model has 90 had cut the model's say to 0.38, and the suggestions
        went to recipes the model predicts to fail).
        """
        if y.size <= 2:
            return 1.0, float(y.mean() - m.mean()) if y.size else 0.0
        scale = float(y.std()) or 1.0
        mc, yc = (m - m.mean()) / scale, (y - y.mean()) / scale
        lam = PRIOR_WEIGHT_PSEUDO_OBSERVATIONS
        weight = float((mc @ yc + lam) / (mc @ mc + lam))
        return weight, float(y.mean() - weight * m.mean())

    def parameter_draw(self, X, rng) -> np.ndarray | None:
        """The mean loss at X with the model under one draw of the lab parameters' posterior (the discrepancy GP
        read at that model's values), or None when the prior infers no lab parameters."""
        draw = getattr(self.prior, "draw", None)
        if draw is None or not self.prior.lab_parameters.names:
            return None
        X = np.asarray(X, dtype=float)
        m = draw(X, rng)
        m = np.where(np.isfinite(m), m, self.prior_fill_)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            delta = self.gp_.predict(self._inputs(X, m))
        return self.weight_ * m + self.offset_ + delta

    def predict(self, X, return_std: bool = False, return_cov: bool = False):
        """Mean and sd as the acquisition uses them: the sd is the discrepancy GP's (cheap on thousands of
        candidates); :meth:`decompose` adds the lab parameters' own uncertainty for the recipes a user is shown."""
        parts = self._parts(X)
        if return_std:
            return parts["mean"], parts["std"]
        return parts["mean"]

    def decompose(self, X) -> dict[str, np.ndarray]:
        """The prediction in parts (losses): ``model`` (the model's own loss, with the lab's parameters where the
        prior infers them), ``prior`` (weighted model), ``correction`` (what the data add: mean minus model),
        ``mean``, ``std`` (the discrepancy GP's), ``parameter_std`` (the lab parameters' posterior, propagated) and
        ``total_std`` (both)."""
        parts = self._parts(X)
        sd_of = getattr(self.prior, "sd", None)
        parts["parameter_std"] = (abs(self.weight_) * sd_of(np.asarray(X, dtype=float)) if sd_of is not None
                                  else np.zeros_like(parts["std"]))
        parts["total_std"] = np.hypot(parts["std"], parts["parameter_std"])
        return parts

    def _parts(self, X) -> dict[str, np.ndarray]:
        X = np.asarray(X, dtype=float)
        m = self._prior_of(X)
        delta, std = gp_mean_std(self.gp_, self._inputs(X, m))
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


def warm_kernel(gp: GaussianProcessRegressor):
    """A fitted scikit-optimize GP's kernel with its fitted noise level put back as a free parameter: where the next
    fit's hyperparameter search starts (None if the GP fitted no noise). Its fitted white-noise term was zeroed for
    prediction, so the kernel alone would start the search from no noise."""
    if getattr(gp, "noise_", None) is None:
        return None
    kernel = clone(gp.kernel_)
    _, white = _param_for_white_kernel_in_Sum(kernel)
    kernel.set_params(**{white: WhiteKernel(noise_level=float(np.clip(gp.noise_, *NOISE_BOUNDS)),
                                            noise_level_bounds=NOISE_BOUNDS)})
    return kernel


def gp_mean_std(gp: GaussianProcessRegressor, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A fitted scikit-optimize GP's predictive mean and sd at X, as ``gp.predict(X, return_std=True)`` gives them
    (variances rounded below 0 at the data set to 0), with the variance's quadratic form ``k K^-1 k`` as
    ``|L^-1 k|^2`` by one triangular solve, as scikit-learn's own GP does. scikit-optimize's three-operand ``einsum``
    over ``K^-1`` loops over every (point, i, j) without BLAS: on an acquisition's 10 000 candidates it was most of
    an ask's CPU. The two differ only by round-off (the solve is the better conditioned)."""
    K_trans = gp.kernel_(X, gp.X_train_)
    mean = gp.y_train_std_ * (K_trans @ gp.alpha_) + gp.y_train_mean_
    V = solve_triangular(gp.L_, K_trans.T, lower=True, check_finite=False)
    variance = gp.kernel_.diag(X) - np.einsum("ij,ij->j", V, V)
    return mean, np.sqrt(np.maximum(variance, 0.0)) * gp.y_train_std_


class PosteriorMean:
    """A fitted scikit-optimize GP that predicts its mean as :func:`gp_mean_std` does, without scikit-learn's input
    validation on every call. A partial-dependence plot (``skopt.plots.plot_objective``) asks a GP for its mean
    2 480 times on 100 points each (four dimensions, 20 grid points): the validation was two thirds of that
    figure's 1.5 s, the report's largest share of ``snhc optimise`` (benchmarks/optimise_wall.py). The sd is
    still the GP's own."""

    def __init__(self, gp: GaussianProcessRegressor):
        self.gp = gp

    def predict(self, X, return_std: bool = False):
        if return_std:
            return self.gp.predict(X, return_std=True)
        gp = self.gp
        return gp.y_train_std_ * (gp.kernel_(np.asarray(X, dtype=float), gp.X_train_) @ gp.alpha_) + gp.y_train_mean_


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
