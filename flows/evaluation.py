"""Evaluate a batch of recipes without letting one bad recipe stop a campaign.

The whole batch goes through the vectorised model at once and the objective scores it. If that raises, each recipe
is retried alone so that only the culprit is marked FAILED; a non-finite objective is a failure too. Failures carry
their reason.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from flows.objective import CAPACITY, SCORE, CapacityObjective
from surrogate.model import PredictionRequest, predict
from surrogate.parameters import ModelParameters
from surrogate.recipe import Recipes
from surrogate.status import Status

if TYPE_CHECKING:
    from surrogate.calibration import Calibration
    from surrogate.uncertainty import CalibratedDomain, Ensemble

# Where an evaluation's numbers come from and who chose the recipe: the model at the optimiser's suggestion, the
# model at the dense search's optimum (flows.model_optimum; not part of the optimiser's budget), a lab measurement,
# or the PyBaMM model at the optimiser's suggestion (a campaign with fidelity: physics, flows.fidelity).
MODEL, DENSE_SEARCH, LAB, PHYSICS = "model", "dense_search", "lab", "physics"
PREDICTED = (MODEL, DENSE_SEARCH)  # sources whose numbers are the numpy model's predictions (its intervals apply)
MODELLED = (*PREDICTED, PHYSICS)  # sources whose numbers come from a model, not a lab: they carry 90 % intervals
ASKED = (MODEL, PHYSICS)  # sources the optimiser asked for: its budget


@dataclass(frozen=True)
class Evaluation:
    """One evaluated recipe: status, objective (NaN unless FINISHED), metrics, failure reason, and its source:
    ``model`` (the model, at the optimiser's suggestion), ``dense_search`` (the model, at its dense-search optimum),
    ``lab`` (a measured result) or ``physics`` (the PyBaMM model, at the optimiser's suggestion)."""

    recipe: dict[str, Any]
    status: Status
    objective: float
    metrics: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    source: str = MODEL

    @property
    def ok(self) -> bool:
        return self.status == Status.FINISHED

    @property
    def predicted(self) -> bool:
        """Its numbers are the model's predictions (not measurements)."""
        return self.source in PREDICTED

    @property
    def modelled(self) -> bool:
        """Its numbers come from a model, either fidelity (not a lab): they carry 90 % intervals."""
        return self.source in MODELLED

    def record(self) -> dict[str, Any]:
        """JSON-ready view (campaign state files)."""
        return {"recipe": self.recipe, "status": self.status.value, "objective": self.objective,
                "metrics": self.metrics, "reason": self.reason, "source": self.source}

    @classmethod
    def from_record(cls, item: dict[str, Any]) -> "Evaluation":
        return cls(item["recipe"], Status(item["status"]), float(item["objective"]), item["metrics"],
                   item["reason"], item.get("source", MODEL))


def campaign_parameters(config) -> tuple[ModelParameters, "Calibration"]:
    """Model parameters of a campaign: its assumed overrides, calibrated.

    With ``recalibrate`` the free parameters are refitted under the overridden assumptions, so the model still
    reproduces the study's data; without it the study's calibration is kept and only the overridden values change
    (the question "what if the material itself were different?"). The objective never touches the parameters.
    """
    from surrogate.calibration import calibrate

    assumed = ModelParameters.load().with_values(**config.model_parameters)
    calibration = calibrate(assumed if config.recalibrate else ModelParameters.load())
    return calibration.apply(assumed), calibration


def model_metrics(recipes: Recipes, p: ModelParameters, objective: CapacityObjective,
                  request: PredictionRequest | None = None) -> dict[str, np.ndarray]:
    """Every metric of a batch: the model's prediction, the objective's inputs and its score (arrays of N)."""
    prediction = predict(recipes, p, request or objective.request())
    inputs = objective.inputs(prediction, recipes)
    return prediction.scalar_metrics() | inputs | objective.score(inputs)


def model_objective(recipes: Recipes, p: ModelParameters, objective: CapacityObjective) -> np.ndarray:
    """The objective alone (array of N), predicting only what it needs (no rate table): the fast path of the dense
    search and of the physics-informed GP's prior, which score tens of thousands of recipes per call."""
    return model_metrics(recipes, p, objective, objective.request(currents_A_per_g=()))["objective"]


def model_form_interval(value: float, model_value: float, interval) -> list[float]:
    """The 90 % interval of a value another model form (PyBaMM) computes where the numpy model gives ``model_value``
    with ``interval``: the envelope of the model's band moved to ``value`` and the model's own band.

    Both fidelities take their microstructure from the same calibrated parameters and are fitted to the same data,
    so the model's spread (fitted parameters, assumed ranges, a measurement's scatter) is theirs too; and two model
    forms that both meet the data but disagree away from it are an uncertainty the data cannot settle (issue 10), so
    neither value alone bounds the answer. For the model's own value this is its interval unchanged.

    A positive quantity (a capacity, an expansion) moves by ratio, so the band keeps its relative width and stays
    positive: 26 mAh/g where the model says 236 [0, 268] moves the band to [0, 30], not to [-210, 58]. A quantity
    that can change sign (an objective with a penalty) moves by difference.

    Examples
    --------
    >>> model_form_interval(26.0, 236.0, [0.0, 268.0])
    [0.0, 268.0]
    >>> model_form_interval(110.0, 100.0, [90.0, 120.0])
    [90.0, 132.0]
    >>> model_form_interval(-5.0, 10.0, [-20.0, 30.0])
    [-35.0, 30.0]
    """
    low, high = float(interval[0]), float(interval[1])
    if value == model_value:
        return [low, high]
    if value > 0 and model_value > 0 and low >= 0:
        moved_low, moved_high = value * low / model_value, value * high / model_value
    else:
        moved_low, moved_high = value + low - model_value, value + high - model_value
    return [float(min(moved_low, low, value)), float(max(moved_high, high, value))]


def metric_intervals(recipe: dict[str, Any], p: ModelParameters, calibration: "Calibration",
                     objective: CapacityObjective, request: PredictionRequest | None = None,
                     values: dict[str, float] | None = None) -> dict[str, list[float]]:
    """90 % interval of every metric of one recipe (as :func:`model_metrics` names them), from the calibration's
    parameter ensemble (``surrogate/uncertainty.py``); see :func:`batch_intervals`."""
    from surrogate.uncertainty import build_ensemble

    return batch_intervals([recipe], build_ensemble(p, calibration), objective, request,
                           None if values is None else [values])[0]


ARITHMETIC_METRICS = ("theoretical_capacity_mAh_per_g", "milling_dose")  # follow from the recipe: never extrapolated


def target_metrics(scoring) -> tuple[str, ...]:
    """The metrics of a campaign's scoring that are its capacity at the target condition (the score, the capacity
    it reads, and a capacity objective's own name)."""
    objectives = getattr(scoring, "objectives", ())
    return (SCORE, CAPACITY, *(o.name for o in objectives if o.kind == "capacity"))


def metric_extrapolated(recipe: dict[str, Any], domain: "CalibratedDomain", request: PredictionRequest,
                        names, targets: tuple[str, ...] = (SCORE, CAPACITY)) -> dict[str, bool]:
    """Whether each metric of one recipe (flat names, as :func:`model_metrics` gives them) lies beyond the
    calibration's data, by the rule ``snhc predict`` flags with (``surrogate.uncertainty.quantity_extrapolated``).
    The ``targets`` (:func:`target_metrics`) are the capacity at the target condition (``request``'s target current,
    cycle and temperature); the expansion penalty follows the particle expansion."""
    from flows.metrics import AFTER_CYCLES, AT_CURRENT, AT_CYCLE
    from surrogate.uncertainty import quantity_extrapolated

    beyond, extent = bool(domain.recipe_beyond(recipe)), domain.extent_of(recipe)
    near = domain.measured_near(recipe)  # quantities a lab's rows near the recipe measured (a lab-taught model)
    cycle_quantity = "capacity_at_cycle_mAh_per_g"
    flags = {}
    for name in names:
        if name in ARITHMETIC_METRICS:
            flags[name] = False
        elif match := AT_CURRENT.match(name):
            flags[name] = quantity_extrapolated("capacity_at_current_mAh_per_g", domain, extent, beyond, request,
                                                current=float(match.group(1)), measured_near=near)
        elif match := AT_CYCLE.match(name):
            flags[name] = quantity_extrapolated(cycle_quantity, domain, extent, beyond, request,
                                                cycle=int(match.group(1)), measured_near=near)
        elif match := AFTER_CYCLES.match(name):
            flags[name] = quantity_extrapolated(cycle_quantity, domain, extent, beyond, request,
                                                cycle=int(match.group(2)), cycling_current=float(match.group(1)),
                                                measured_near=near)
        elif name in targets and request.target_cycle is not None:
            target = request.target_temperature_C if request.target_temperature_C is not None else request.temperature_C
            flags[name] = domain.temperature_outside(target) or quantity_extrapolated(
                cycle_quantity, domain, extent, beyond, request, cycle=int(request.target_cycle),
                cycling_current=float(request.target_current_A_per_g), measured_near=near)
        else:
            flags[name] = quantity_extrapolated(name.replace("expansion_penalty_mAh_per_g", "particle_expansion_pct"),
                                                domain, extent, beyond, request, measured_near=near)
    return flags


def scoring_flags(recipe: dict[str, Any], domain: "CalibratedDomain", scoring, names) -> dict[str, bool]:
    """:func:`metric_extrapolated` of a campaign's metrics at its scoring's conditions; an objective that follows
    from the recipe alone (milling time, energy) is arithmetic, never extrapolated."""
    flags = metric_extrapolated(recipe, domain, scoring.request(), names, target_metrics(scoring))
    return flags | {o.name: False for o in getattr(scoring, "objectives", ()) if o.recipe_only and o.name in names}


def batch_intervals(recipes: list[dict[str, Any]], ensemble: "Ensemble", objective: CapacityObjective,
                    request: PredictionRequest | None = None,
                    values: list[dict[str, float]] | None = None) -> list[dict[str, list[float]]]:
    """90 % interval of every metric of each recipe of a batch (one model evaluation of the batch per member).

    Each member's metrics are scattered by the data's measurement sigma for that kind of quantity, as
    ``snhc predict`` does; a metric some member cannot compute (NaN) gets no interval. ``values`` (one metric dict
    per recipe, e.g. a physics evaluation's metrics) are the values the intervals are for where another model form
    computed them: such a metric gets :func:`model_form_interval`.
    """
    central, samples = _member_samples(recipes, ensemble, objective, request)
    tail = 50.0 * (1.0 - ensemble.settings.interval_probability)
    out: list[dict[str, list[float]]] = [{} for _ in recipes]
    for name, value in central.items():
        low, high = np.percentile(samples[name], [tail, 100.0 - tail], axis=0)
        for i, intervals in enumerate(out):
            if np.all(np.isfinite(samples[name][:, i])) and np.isfinite(value[i]):
                band = [float(min(low[i], value[i])), float(max(high[i], value[i]))]
                given = values[i].get(name, value[i]) if values is not None else value[i]
                intervals[name] = model_form_interval(float(given), float(value[i]), band) \
                    if np.isfinite(given) else band
    return out


def difference_intervals(recipes: list[dict[str, Any]], ensemble: "Ensemble", objective: CapacityObjective,
                         reference: int, name: str = SCORE) -> np.ndarray:
    """90 % interval of ``name`` of each recipe minus that of ``recipes[reference]``, shape (N, 2).

    The difference is taken within each ensemble member, so the uncertainty the recipes share (the parameters and
    the measurement scatter move both alike) cancels; only what separates them is left. This is the model's
    uncertainty on a ranking, much narrower than two metric intervals combined. NaN rows: some member could not
    compute the metric.
    """
    central, samples = _member_samples(recipes, ensemble, objective)
    tail = 50.0 * (1.0 - ensemble.settings.interval_probability)
    value = central[name] - central[name][reference]
    differences = samples[name] - samples[name][:, [reference]]  # (members, recipes)
    low, high = np.percentile(differences, [tail, 100.0 - tail], axis=0)
    finite = np.all(np.isfinite(differences), axis=0) & np.isfinite(value)
    out = np.column_stack([np.minimum(low, value), np.maximum(high, value)])
    out[~finite] = np.nan
    return out


def _member_samples(recipes: list[dict[str, Any]], ensemble: "Ensemble", objective: CapacityObjective,
                    request: PredictionRequest | None = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The central metrics of a batch (arrays of N) and each member's, scattered as a measurement of each metric
    would read it (arrays of members x N; :meth:`surrogate.uncertainty.Ensemble.scattered`, the rule of
    ``snhc predict``: the measurement's sigma, the model form's away from the materials a quantity was measured on, a
    capacity within the member's theoretical capacity). The score is each member's objective formula on its
    scattered inputs, so its interval carries the scatter of what a lab would measure to score a recipe (the
    capacity's and, through the penalty, the expansion's) and is never narrower than that capacity's where no
    penalty applies."""
    batch = Recipes.from_records(recipes)
    central = model_metrics(batch, ensemble.central, objective, request)
    members = ensemble.evaluate(batch, lambda tiled, p: model_metrics(tiled, p, objective, request),
                                lambda metrics, rows: {name: value[rows] for name, value in metrics.items()})
    records = batch.to_records()
    # a capacity objective's own name ('capacity_mAh_per_g', or the user's) is the capacity at the target condition:
    # scattered as that measurement, as the capacity after the same cycles is (one quantity, one interval)
    target = {name: CAPACITY for name in target_metrics(objective) if name != SCORE}
    samples = {}
    temperature = (request or objective.request()).temperature_C  # where the metrics are predicted
    for name in central:
        quantity = target.get(name, name)
        weights = ensemble.form_weights(records, quantity, temperature)
        distances = ensemble.current_distances(records, quantity)
        samples[name] = np.array([ensemble.scattered(k, quantity, m[name], weights,
                                                     m.get("theoretical_capacity_mAh_per_g"), distances)
                                  for k, m in enumerate(members)])
    try:
        rescored = objective.score(samples)
    except KeyError:  # an input some member set lacks: the score keeps its unscattered samples
        return central, samples
    samples |= {name: np.asarray(value, dtype=float) for name, value in rescored.items() if name in samples}
    return central, samples


def lazy_ensemble(p: ModelParameters, calibration: "Calibration", lab_prior=None,
                  measured=()) -> Callable[[], "Ensemble"]:
    """``() -> Ensemble``: the calibration's parameter ensemble, built on the first call and then reused, so a
    campaign builds one for its child runs' intervals and its physics check together; with ``lab_prior`` (a
    :class:`flows.physics_gp.LabCalibratedPrior` fitted to a lab's rows, ``measured``) the lab-taught model's
    (:meth:`~flows.physics_gp.LabCalibratedPrior.taught_ensemble`). Either is carried to ``p``'s fitted values when
    ``p`` was refitted on a lab's rows as well (``surrogate.uncertainty.refitted``)."""
    from surrogate.uncertainty import build_ensemble, refitted

    if lab_prior is not None:
        # a refit on the lab's rows moved the fitted values already: the rows do not weigh the members again
        refit = any(p[name].value != value for name, value in calibration.fitted_values.items())
        return functools.cache(lambda: refitted(lab_prior.taught_ensemble(calibration, measured, reweight=not refit),
                                                p))
    return functools.cache(lambda: refitted(build_ensemble(p, calibration), p))


def interval_function(p: ModelParameters, calibration: "Calibration", objective: CapacityObjective,
                      ensemble: Callable[[], "Ensemble"] | None = None):
    """``(recipes, values=None) -> [(intervals, extrapolation flags) per recipe]`` for a campaign's child runs
    (``values``: their metrics, for evaluations another model form computed); the ensemble is built on first use
    (``ensemble``: a :func:`lazy_ensemble` to share)."""
    ensemble = ensemble or lazy_ensemble(p, calibration)

    def intervals_of(recipes: list[dict[str, Any]], values: list[dict[str, float]] | None = None
                     ) -> list[tuple[dict[str, list[float]], dict[str, bool]]]:
        bands = batch_intervals(recipes, ensemble(), objective, values=values)
        domain = ensemble().domain
        return [(band, scoring_flags(recipe, domain, objective, list(band))) for recipe, band in zip(recipes, bands)]

    return intervals_of


def evaluate_batch(recipes: list[dict[str, Any]], p: ModelParameters, objective: CapacityObjective,
                   request: PredictionRequest | None = None) -> list[Evaluation]:
    """Objective and metrics of each recipe; never raises for a model failure."""
    try:
        return _from_metrics(recipes, model_metrics(Recipes.from_records(recipes), p, objective, request))
    except Exception:  # isolate the failing recipe(s) below
        return [_evaluate_alone(recipe, p, objective, request) for recipe in recipes]


def _evaluate_alone(recipe: dict[str, Any], p: ModelParameters, objective, request) -> Evaluation:
    try:
        return _from_metrics([recipe], model_metrics(Recipes.from_records([recipe]), p, objective, request))[0]
    except Exception as error:
        return Evaluation(recipe, Status.FAILED, float("nan"), reason=f"{type(error).__name__}: {error}")


def _from_metrics(recipes, metrics: dict[str, np.ndarray]) -> list[Evaluation]:
    results = []
    for i, recipe in enumerate(recipes):
        values = {name: float(array[i]) for name, array in metrics.items()}
        objective = values["objective"]
        if np.isfinite(objective):
            results.append(Evaluation(recipe, Status.FINISHED, objective, values))
        else:
            bad = sorted(name for name, value in values.items() if not np.isfinite(value))
            results.append(Evaluation(recipe, Status.FAILED, float("nan"), values,
                                      reason=f"non-finite metrics: {bad}"))
    return results
