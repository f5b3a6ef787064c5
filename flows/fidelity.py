"""The second fidelity: re-evaluate the campaign's best recipes with the PyBaMM model and re-rank them.

The PyBaMM model (:mod:`surrogate.physics`) gives the fresh capacity at a current; ageing and swelling stay the
numpy model's. So a recipe's physics objective is the PyBaMM capacity at the target current, times the model's
retention after the target cycles, scored by the same objective formula (``flows/objective.py``): both fidelities
score the same quantity and differ only in the electrochemistry.

Two uses: the physics check re-ranks a numpy-model campaign's top recipes (:func:`physics_scores`, :func:`rank`),
and a campaign with ``fidelity: physics`` spends every optimiser evaluation on PyBaMM
(:func:`evaluate_physics_batch`), searched by the physics-informed GP with the numpy model as its prior mean.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from flows.evaluation import PHYSICS, Evaluation, difference_intervals, evaluate_batch, model_form_interval
from flows.objective import CAPACITY, EXPANSION, SCORE, CapacityObjective
from surrogate.model import PredictionRequest, predict
from surrogate.parameters import ModelParameters
from surrogate.recipe import FIELD_NAMES, Recipes, recipe_key
from surrogate.status import Status


def top_candidates(evaluations: list[Evaluation], k: int) -> list[int]:
    """Indexes of the k best finished model evaluations, distinct recipes only."""
    order = sorted((i for i, e in enumerate(evaluations) if e.ok and e.predicted),
                   key=lambda i: evaluations[i].objective, reverse=True)
    chosen, seen = [], set()
    for i in order:
        key = recipe_key(evaluations[i].recipe)
        if key not in seen:
            seen.add(key)
            chosen.append(i)
        if len(chosen) == k:
            break
    return chosen


def physics_scores(recipes: list[dict], p: ModelParameters, q: ModelParameters,
                   objective: CapacityObjective) -> pd.DataFrame:
    """Both fidelities' capacity at the objective's current and their objectives, one row per recipe.

    ``q`` are the PyBaMM model's parameters (fitted values included: ``calibrated_physics_parameters``).
    """
    from surrogate.physics import evaluate_physics  # PyBaMM loads only when the physics check runs

    current_A_per_g, temperature_C = objective.current_A_per_g, objective.temperature_C
    batch = Recipes.from_records(recipes)
    prediction = predict(batch, p, objective.request((current_A_per_g,), current_A_per_g, (1,)))
    inputs = objective.inputs(prediction)
    fresh = prediction.capacity_at_current_mAh_per_g[:, 0]
    retention = inputs[CAPACITY] / fresh  # ageing to the target cycle, from the numpy model
    model_scores = objective.score(inputs)
    rows = []
    for i, result in enumerate(evaluate_physics(batch, [current_A_per_g], p, temperature_C, physics_parameters=q)):
        physics_capacity = float(result.capacity_mAh_per_g[0]) if result.ok else float("nan")
        physics = objective.score({CAPACITY: physics_capacity * float(retention[i]),
                                   EXPANSION: float(inputs[EXPANSION][i])})
        rows.append({**recipes[i], "physics_status": result.status.value, "physics_reason": result.reason,
                     "model_capacity_at_target_mAh_per_g": float(fresh[i]),
                     "physics_capacity_at_target_mAh_per_g": physics_capacity,
                     PHYSICS_AGED_CAPACITY: physics_capacity * float(retention[i]),
                     "model_objective": float(model_scores[SCORE][i]),
                     "physics_objective": physics[SCORE]})
    return pd.DataFrame(rows)


PHYSICS_AGED_CAPACITY = "physics_objective_capacity_mAh_per_g"  # PyBaMM's fresh capacity x the model's retention


def evaluate_physics_batch(recipes: list[dict], p: ModelParameters, q: ModelParameters,
                           objective: CapacityObjective) -> list[Evaluation]:
    """The optimiser's evaluations at physics fidelity (a campaign with ``fidelity: physics``); never raises for a
    failed solve.

    Each recipe's objective is :func:`physics_scores`' (PyBaMM's capacity at the target current x the numpy model's
    retention, scored by the objective's one formula); its metrics are the numpy model's (expansion, ICE, ageing:
    no second fidelity has them) with the objective's capacity and score replaced by PyBaMM's, and the numpy
    model's own objective kept as ``model_objective`` beside the fresh ``physics_capacity_at_target_mAh_per_g``.
    A solve PyBaMM cannot finish is FAILED with its reason, as is a recipe the numpy model cannot take.
    """
    model = evaluate_batch(recipes, p, objective)
    scores = physics_scores(recipes, p, q, objective)
    evaluations = []
    for evaluation, (_, row) in zip(model, scores.iterrows()):
        if not evaluation.ok:
            evaluations.append(replace(evaluation, source=PHYSICS))
            continue
        metrics = evaluation.metrics | {"model_objective": evaluation.objective,
                                        "physics_capacity_at_target_mAh_per_g":
                                            float(row["physics_capacity_at_target_mAh_per_g"])}
        value = float(row["physics_objective"])
        if row["physics_status"] != Status.FINISHED.value or not np.isfinite(value):
            evaluations.append(Evaluation(evaluation.recipe, Status.FAILED, float("nan"), metrics,
                                          reason=f"PyBaMM: {row['physics_reason'] or 'no finite objective'}",
                                          source=PHYSICS))
            continue
        metrics |= {CAPACITY: float(row[PHYSICS_AGED_CAPACITY]), SCORE: value}
        evaluations.append(Evaluation(evaluation.recipe, Status.FINISHED, value, metrics, source=PHYSICS))
    return evaluations


def disagreement_table(recipes: list[dict], p: ModelParameters, q: ModelParameters,
                       currents_A_per_g: tuple[float, ...], temperature_C: float = 25.0) -> pd.DataFrame:
    """Both fidelities' fresh capacity at each current, recipe by recipe (a space-filling design shows where they
    disagree): columns ``model_capacity_at_<c>_A_per_g_mAh_per_g``, ``physics_capacity_at_...`` and
    ``difference_pct_at_<c>_A_per_g`` (PyBaMM minus the numpy model, % of the model), with PyBaMM's status and
    reason (a failed solve leaves its capacities NaN)."""
    from surrogate.physics import evaluate_physics

    batch = Recipes.from_records(recipes)
    model = predict(batch, p, PredictionRequest(tuple(currents_A_per_g), currents_A_per_g[0], (1,), temperature_C))
    physics = evaluate_physics(batch, list(currents_A_per_g), p, temperature_C, physics_parameters=q)
    rows = []
    for i, (recipe, result) in enumerate(zip(recipes, physics)):
        row = {**recipe, "physics_status": result.status.value, "physics_reason": result.reason}
        for j, current in enumerate(currents_A_per_g):
            ours = float(model.capacity_at_current_mAh_per_g[i, j])
            theirs = float(result.capacity_mAh_per_g[j]) if result.ok else float("nan")
            row[f"model_capacity_at_{current:g}_A_per_g_mAh_per_g"] = ours
            row[f"physics_capacity_at_{current:g}_A_per_g_mAh_per_g"] = theirs
            row[f"difference_pct_at_{current:g}_A_per_g"] = 100.0 * (theirs - ours) / ours if ours else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def disagreement_summary(table: pd.DataFrame, currents_A_per_g: tuple[float, ...]) -> dict:
    """JSON-ready summary of :func:`disagreement_table`: per current the median and largest absolute difference (%)
    and the recipe of the largest; how many solves failed."""
    summary = {"design_points": len(table), "physics_failed": int((table["physics_status"] != "FINISHED").sum()),
               "current_A_per_g": list(currents_A_per_g), "median_abs_difference_pct": {},
               "max_abs_difference_pct": {}, "largest_difference_at": {}}
    for current in currents_A_per_g:
        key = f"{current:g}"
        difference = table[f"difference_pct_at_{current:g}_A_per_g"].abs()
        if difference.notna().any():
            worst = int(difference.idxmax())
            summary["median_abs_difference_pct"][key] = float(difference.median())
            summary["max_abs_difference_pct"][key] = float(difference.max())
            summary["largest_difference_at"][key] = {k: table.loc[worst, k] for k in FIELD_NAMES}
    return summary


def disagreement_study(config, data_path=None) -> tuple[pd.DataFrame, dict]:
    """Both fidelities over a Sobol design of the campaign's search space (``physics_check.design_points`` recipes,
    at ``physics_check.design_currents_A_per_g``): :func:`disagreement_table` and :func:`disagreement_summary`."""
    from flows.evaluation import campaign_parameters
    from flows.model_optimum import sobol_recipes
    from surrogate.physics import calibrated_physics_parameters

    p, _ = campaign_parameters(config)
    q = calibrated_physics_parameters(p, data_path=data_path)
    currents = tuple(config.physics_check.design_currents_A_per_g)
    design = disagreement_table(sobol_recipes(config, config.physics_check.design_points), p, q, currents,
                                config.objective.temperature_C)
    return design, disagreement_summary(design, currents)


DIFFERENCE_LOW, DIFFERENCE_HIGH = "model_difference_low_mAh_per_g", "model_difference_high_mAh_per_g"
"""Optional table columns: the numpy model's 90 % interval on each candidate's objective minus the reference's
(:func:`flows.evaluation.difference_intervals`); without them (or NaN) the model's uncertainty counts as zero and
the tolerance is the numerical noise alone."""


@dataclass(frozen=True)
class Ranking:
    """Outcome of the physics check: the comparison table, the chosen row, and how far the fidelities agree."""

    table: pd.DataFrame  # one row per candidate, best by the numpy model first
    chosen: int  # row of the recommended recipe
    ranked_by: str  # "physics" when PyBaMM replaced the model's choice, else "model"
    rank_correlation: float  # Spearman, over candidates both fidelities scored
    objective_difference_pct: float  # physics vs model objective at the chosen recipe
    reference: int = 0  # row of the numpy model's choice
    physics_gain_mAh_per_g: float = float("nan")  # PyBaMM's best candidate minus the model's choice, by PyBaMM
    noise_mAh_per_g: float = 0.0  # numerical noise of the PyBaMM objective
    uncertainty_mAh_per_g: float = 0.0  # model's 90 % half-width on that candidate's difference to the reference
    physics_best: int = -1  # row PyBaMM scores best (-1: none scored)

    @property
    def tolerance_mAh_per_g(self) -> float:
        """How much better PyBaMM must score a candidate to replace the model's choice."""
        return self.noise_mAh_per_g + self.uncertainty_mAh_per_g

    @property
    def agreement(self) -> bool:
        """PyBaMM scored the model's choice and found no candidate better by more than the tolerance."""
        return self.ranked_by == "model" and np.isfinite(self.physics_gain_mAh_per_g)

    def summary(self) -> str:
        row = self.table.iloc[self.chosen]
        spread = self.table["model_objective"].max() - self.table["model_objective"].min()
        if self.ranked_by == "physics":
            head = "ranked by the PyBaMM model"
            if np.isfinite(self.physics_gain_mAh_per_g):
                head += (f": it scores this recipe {self.physics_gain_mAh_per_g:.2f} mAh/g above the numpy model's "
                         f"choice, beyond noise + uncertainty ({self._tolerance_text()})")
            else:
                head += " (it could not evaluate the numpy model's choice, so nothing was compared)"
        elif self.agreement and self.physics_best == self.reference:
            head = ("ranked by the numpy model, the fidelities agree on the choice (within noise + uncertainty): "
                    "PyBaMM's best candidate is the model's choice")
        elif self.agreement:
            head = (f"ranked by the numpy model, the fidelities agree on the choice (within noise + uncertainty): "
                    f"PyBaMM's best candidate gains {self.physics_gain_mAh_per_g:.2f} mAh/g over the model's choice, "
                    f"inside {self._tolerance_text()}")
        else:
            head = "ranked by the numpy model (PyBaMM scored none of the candidates)"
        return (f"{head}; at this recipe the numpy model scores "
                f"{row['model_objective']:.1f} and PyBaMM {row['physics_objective']:.1f} mAh/g "
                f"({self.objective_difference_pct:+.1f} %: the choice, not the value, is what is compared); "
                f"over the top {len(self.table)} (model spread "
                f"{spread:.1f} mAh/g) the rank correlation is {self.rank_correlation:.2f}"
                + (" (a spread inside the check's resolution: their order means nothing)"
                   if np.isfinite(self.tolerance_mAh_per_g) and spread < self.tolerance_mAh_per_g else ""))

    def _tolerance_text(self) -> str:
        return (f"{self.tolerance_mAh_per_g:.2f} = noise {self.noise_mAh_per_g:.2f} + model uncertainty "
                f"{self.uncertainty_mAh_per_g:.2f} mAh/g")


def rank(table: pd.DataFrame, noise_mAh_per_g: float = 0.0, reference: int | None = None) -> Ranking:
    """Re-rank candidates by the physics objective where PyBaMM succeeded, unless the fidelities agree.

    Parameters
    ----------
    table : :func:`physics_scores` rows (a copy, with a ``model_choice`` column marking the reference, goes into
        the ranking), optionally with the :data:`DIFFERENCE_LOW` / :data:`DIFFERENCE_HIGH`
        columns (the model's 90 % interval on each row's objective minus the reference's).
    noise_mAh_per_g : numerical noise of the PyBaMM objective (``physics_check.numerical_noise_mAh_per_g``).
    reference : row of the numpy model's choice (default: its best objective).

    Returns
    -------
    Ranking
        PyBaMM's choice (``ranked_by="physics"``) only if it scores that candidate above the reference by more
        than the noise plus the model's interval half-width on their difference; otherwise the reference
        (``ranked_by="model"``, agreement). If PyBaMM failed at the reference, nothing can be compared and its best
        scored candidate is chosen; if it failed everywhere, the reference.
    """
    reference = int(table["model_objective"].idxmax()) if reference is None else reference
    table = table.assign(model_choice=table.index == reference)  # logged with the comparison
    scored = table[table["physics_status"] == Status.FINISHED.value]
    gain, uncertainty, physics_best = float("nan"), 0.0, -1
    if scored.empty:
        chosen, ranked_by = reference, "model"
    elif reference not in scored.index:
        chosen, ranked_by = int(scored["physics_objective"].idxmax()), "physics"
        physics_best = chosen
    else:
        half_width = pd.Series(0.0, index=table.index)
        if DIFFERENCE_LOW in table and DIFFERENCE_HIGH in table:
            half_width = ((table[DIFFERENCE_HIGH] - table[DIFFERENCE_LOW]) / 2.0).fillna(0.0)
        gains = scored["physics_objective"] - table.loc[reference, "physics_objective"]
        beyond = gains[gains > noise_mAh_per_g + half_width[scored.index]]
        best = int(beyond.idxmax()) if not beyond.empty else int(gains.idxmax())
        gain, uncertainty, physics_best = float(gains[best]), float(half_width[best]), int(gains.idxmax())
        chosen, ranked_by = (best, "physics") if not beyond.empty else (reference, "model")
    correlation = float("nan")
    if len(scored) >= 3:
        correlation = float(spearmanr(scored["model_objective"], scored["physics_objective"]).statistic)
    row = table.loc[chosen]
    difference = 100.0 * (row["physics_objective"] - row["model_objective"]) / abs(row["model_objective"])
    return Ranking(table, chosen, ranked_by, correlation, float(difference) if np.isfinite(difference) else np.nan,
                   reference, gain, noise_mAh_per_g, uncertainty, physics_best)


class PhysicsFailure(RuntimeError):
    """The PyBaMM model could not evaluate a recipe; the message carries its reason."""


def rank_candidates(table: pd.DataFrame, candidates: list[int], recipes: list[dict], reference: int, config,
                    ensemble=None) -> Ranking:
    """The physics check's ranking of its scored candidates (:func:`physics_scores` rows of ``recipes``, evaluations
    ``candidates``; ``reference`` is the numpy model's pick among them): PyBaMM replaces that pick only beyond
    ``physics_check.numerical_noise_mAh_per_g`` plus the model's 90 % interval on each candidate's objective minus
    the pick's, from ``ensemble`` (a :func:`flows.evaluation.lazy_ensemble`; None or a failure: the noise alone)."""
    table = table.copy()
    table.insert(0, "evaluation", candidates)
    if ensemble is not None:
        try:
            bands = difference_intervals(recipes, ensemble(), config.objective, reference)
            table[DIFFERENCE_LOW], table[DIFFERENCE_HIGH] = bands[:, 0], bands[:, 1]
        except Exception as error:  # noqa: BLE001 - the check still runs, on the numerical noise alone
            warnings.warn(f"physics check without the model's uncertainty: {type(error).__name__}: {error}",
                          stacklevel=2)
    return rank(table, config.physics_check.numerical_noise_mAh_per_g, reference)


def with_model_form_intervals(physics: dict, model: dict) -> dict:
    """A physics record (:func:`physics_record`) with a 90 % interval and an extrapolation flag on every value, in
    the numpy model's ``interval_90`` / ``extrapolated`` shape.

    ``model`` is the numpy model's record of the same recipe and request, with its intervals
    (``UncertainPrediction.record`` plus the objective's). A value PyBaMM computes gets
    :func:`flows.evaluation.model_form_interval` (the model's band moved to it, joined with the model's own band);
    a value that is the numpy model's (ICE, expansion, activation energy) keeps the model's interval. A capacity's
    band stops at the theoretical capacity, as the numpy model's does (HC at -20 C had reached 321 of 300). The flags
    are the model's: what counts as extrapolation is where the data end, whichever fidelity predicts.
    """
    theoretical = model["theoretical_capacity_mAh_per_g"]

    def band(key: str, value: float | None, model_value: float, model_band) -> list[float] | None:
        if value is None:  # PyBaMM failed there (physics_failures says why): no value, no interval
            return None
        low, high = model_form_interval(value, model_value, model_band)
        if key.endswith("_mAh_per_g") and key != "theoretical_capacity_mAh_per_g":  # a capacity: no cell stores more
            high = max(min(high, theoretical), value)  # than its theoretical (the band moved by PyBaMM's ratio can)
        return [low, high]

    intervals = {}
    for key, value in physics.items():
        if key in ("physics_failures", "physics_notes"):
            continue
        if isinstance(value, dict):
            intervals[key] = {k: band(key, v, model[key][k], model["interval_90"][key][k]) for k, v in value.items()}
        else:
            intervals[key] = band(key, value, model[key], model["interval_90"][key])
    extras = {k: model[k] for k in ("beyond_calibrated_recipes", "objective_definition") if k in model}
    return {**physics, "interval_90": intervals, "extrapolated": model["extrapolated"], **extras}


def with_physics_beyond_data(record: dict, recipes: Recipes, p: ModelParameters, temperature_C: float,
                             beyond: list[tuple[str, float]], objective: CapacityObjective | None = None,
                             cycling_current_A_per_g: float | None = None) -> dict:
    """A numpy ``snhc predict`` record whose capacities at currents above the highest measured (``beyond``: label,
    current) carry PyBaMM's value in their 90 % interval: :func:`flows.evaluation.model_form_interval` of the two
    forms. ``objective``: the record's objective, when its own current lies above the data too, gets PyBaMM's score
    (:func:`physics_scores`) in its interval the same way. ``cycling_current_A_per_g``: the cycling capacities'
    current, when it lies above the data: each extrapolated cycle's band gets PyBaMM's capacity there times the
    model's retention (as :func:`physics_record` makes them), so the capacity at cycle 1 at 10 A/g, the rate row's
    twin, holds the same second form (it had kept the numpy model's band alone). ``"second_model_form"`` holds
    PyBaMM's values: 0 where its cell cannot carry the current (the band then reaches 0), None where PyBaMM failed
    otherwise (a solver error, a discharge that never reached the cut-off), which says nothing of the capacity and
    leaves the band as it was.

    Why: above the rate data the two model forms part (at 10 A/g the composite 368 [304-393] mAh/g by the numpy
    model, 142 by PyBaMM; HC 142 [127-153] against 70), and the data cannot choose between them: a band that holds
    only one form is narrower than what is known (issue 10: structural uncertainty where the data cannot choose). A
    PyBaMM solve costs about a second once built, so only a prediction beyond the data pays it."""
    from surrogate.physics import evaluate_physics
    from surrogate.physics.calibration import calibrated_physics_parameters
    from surrogate.physics.simulation import CANNOT_CARRY

    q = calibrated_physics_parameters(p)
    key = "capacity_at_current_mAh_per_g"
    second: dict[str, Any] = {}
    with warnings.catch_warnings():  # its extrapolated tables are the point here, said by the band itself
        warnings.simplefilter("ignore")
        if beyond:
            result = evaluate_physics(recipes, [current for _, current in beyond], p, temperature_C,
                                      physics_parameters=q)[0]
            for label, current in beyond:
                other = result.capacity_by_current.get(current, float("nan"))
                carries_nothing = not np.isfinite(other) and CANNOT_CARRY in (result.failure_at(current) or "")
                second[label] = 0.0 if carries_nothing else float(other) if np.isfinite(other) else None
                band = record["interval_90"][key][label]
                if second[label] == 0.0:  # a cell that carries nothing: the band reaches 0, no capacity below it
                    record["interval_90"][key][label] = [0.0, band[1]]
                elif second[label] is not None:
                    record["interval_90"][key][label] = model_form_interval(second[label], record[key][label], band)
        cycled = {}
        if cycling_current_A_per_g is not None:
            cycling = evaluate_physics(recipes, [cycling_current_A_per_g], p, temperature_C, physics_parameters=q)[0]
            fresh = cycling.capacity_by_current.get(cycling_current_A_per_g, float("nan"))
            after_formation = predict(recipes, p, PredictionRequest((), cycling_current_A_per_g, (1,), temperature_C))
            retained = float(after_formation.capacity_at_cycle_mAh_per_g[0, 0])
            fade_key = "capacity_at_cycle_mAh_per_g"
            carries_nothing = not np.isfinite(fresh) and CANNOT_CARRY in (
                cycling.failure_at(cycling_current_A_per_g) or "")
            for label, value in record[fade_key].items():
                band = record["interval_90"][fade_key][label]
                if not record["extrapolated"][fade_key].get(label):
                    continue
                if carries_nothing:  # as the rate row: the band reaches 0
                    cycled[label] = 0.0
                    record["interval_90"][fade_key][label] = [0.0, band[1]]
                elif np.isfinite(fresh) and retained > 0:
                    cycled[label] = float(fresh) * float(value) / retained
                    record["interval_90"][fade_key][label] = model_form_interval(cycled[label], value, band)
        scored = physics_scores(recipes.to_records(), p, q, objective) if objective is not None else None
    record["second_model_form"] = {key: second, **({"capacity_at_cycle_mAh_per_g": cycled} if cycled else {})}
    if scored is not None:
        value = float(scored["physics_objective"].iloc[0])
        finished = scored["physics_status"].iloc[0] == Status.FINISHED.value and np.isfinite(value)
        record["second_model_form"][SCORE] = value if finished else None
        if finished:
            record["interval_90"][SCORE] = model_form_interval(value, record[SCORE], record["interval_90"][SCORE])
    return record


# PyBaMM's SolverWarning when a solution read an interpolated parameter beyond its table
EXTRAPOLATION_WARNING = r"extrapolation occurred for"


def physics_record(recipes: Recipes, p: ModelParameters, q: ModelParameters, request: PredictionRequest,
                   current_labels, objective: CapacityObjective) -> dict:
    """The ``snhc predict --json`` record of one recipe at physics fidelity.

    Capacities at the requested currents are PyBaMM's; capacities at cycles are PyBaMM's capacity at the cycling
    current times the numpy model's retention; the objective is :func:`physics_scores`'. ICE, expansion and the
    activation energy have no second fidelity and stay the numpy model's.
    """
    from surrogate.physics import evaluate_physics

    model = predict(recipes, p, request)
    record = model.record(0, current_labels)
    currents = list(dict.fromkeys([*request.currents_A_per_g, request.cycling_current_A_per_g]))
    with warnings.catch_warnings(record=True) as caught:  # PyBaMM's own warnings, said in the record's words
        warnings.simplefilter("always")
        result = evaluate_physics(recipes, currents, p, request.temperature_C, physics_parameters=q)[0]
    tables = sorted({name for w in caught for name in re.findall(r"Interpolant '([^']+)' (?:upper|lower) bound",
                                                                 str(w.message))})
    for w in caught:
        if not re.search(EXTRAPOLATION_WARNING, str(w.message)):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    capacity = {current: value if np.isfinite(value) else None for current, value in result.capacity_by_current.items()}
    if all(value is None for value in capacity.values()):
        raise PhysicsFailure(result.reason)
    # A current the model cannot carry (the cut-off reached at once) is a failed value with its reason, not a
    # failed prediction: the other currents are still reported, as the numpy fidelity reports them.
    record["capacity_at_current_mAh_per_g"] = {
        label: capacity[current] for label, current in zip(current_labels, request.currents_A_per_g)}
    first_cycle = model.capacity_at_cycle_mAh_per_g[0]
    after_formation = predict(recipes, p, PredictionRequest((), request.cycling_current_A_per_g, (1,),
                                                            request.temperature_C)).capacity_at_cycle_mAh_per_g[0, 0]
    cycling = capacity[request.cycling_current_A_per_g]
    record["capacity_at_cycle_mAh_per_g"] = {
        str(cycle): None if cycling is None else cycling * float(value / after_formation)
        for cycle, value in zip(request.cycles, first_cycle)}
    scores = physics_scores(recipes.to_records(), p, q, objective)
    finished = scores["physics_status"].iloc[0] == Status.FINISHED.value
    record["objective"] = float(scores["physics_objective"].iloc[0]) if finished else None
    failed = {
        **{f"capacity_at_current_mAh_per_g.{label}": result.failure_at(current)
           for label, current in zip(current_labels, request.currents_A_per_g) if capacity[current] is None},
        **({"capacity_at_cycle_mAh_per_g": result.failure_at(request.cycling_current_A_per_g)}
           if cycling is None else {}),
        **({"objective": str(scores["physics_reason"].iloc[0])} if not finished else {})}
    if failed:  # what PyBaMM could not evaluate, and why (the key only when something failed: the JSON keeps the
        record["physics_failures"] = failed  # numpy model's shape otherwise)
    if tables:  # its raw SolverWarning had been printed, naming an interpolant and nothing a user could act on
        record["physics_notes"] = [
            f"PyBaMM read its parameter table(s) {', '.join(tables)} beyond their data at some current (the "
            f"electrolyte's concentration left the range they cover, as at high currents): those capacities rest "
            f"on an extrapolated property, and are less certain than their interval says"]
    return record


