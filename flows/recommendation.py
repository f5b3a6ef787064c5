"""The recommendation: which evaluated recipe a campaign puts forward, by a stated rule, and what is known about it.

- **One objective.** Recipes the model cannot tell apart should not be chosen by chance: among finished
  evaluations within ``recommendation.tolerance_pct`` of the best objective, the cheapest one (shortest milling time,
  then lowest milling energy) is recommended, and the note says so. When the physics check ran and PyBaMM's choice
  beats the model's by more than numerical noise plus the model's uncertainty (``ranked_by == "physics"``), the same
  rule applies to the candidates it scored, by their physics objective; otherwise the model's choice stands and the
  note reports the agreement (:func:`flows.fidelity.rank`).
- **Several objectives.** The Pareto front of the evaluated recipes, and on it the point chosen by
  ``recommendation.rule`` (knee, or weights) within ``recommendation.limits`` (:func:`flows.pareto.choose_on_front`).

In both cases a recommendation on a search bound says which and suggests widening it (as Ax's health checks do).
The optimiser surrogate's mean and sd at the point are its belief about the model, not the model's error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from flows.campaign import Campaign
from flows.objective import MillingEnergyObjective
from flows.search import surrogate_prediction

BOUND_SHARE = 0.01  # a searched value within 1 % of its range from a bound sits on it


@dataclass(frozen=True)
class Recommendation:
    index: int  # position in the campaign's evaluations
    evaluation: Any  # flows.evaluation.Evaluation
    surrogate_mean: float
    surrogate_std: float
    fidelity_note: str
    rule_note: str = ""  # how the recipe was chosen
    bound_notes: tuple[str, ...] = field(default_factory=tuple)  # search bounds it sits on
    intervals: dict[str, list[float]] = field(default_factory=dict)  # metric -> 90 % interval (model predictions)
    beyond_data: dict[str, str] = field(default_factory=dict)  # recipe field -> why beyond the calibration's data
    extrapolated: dict[str, bool] = field(default_factory=dict)  # metric -> beyond the calibration's data
    objective_names: tuple[str, ...] = ()  # a multi-objective campaign's objectives (reports show them first)
    lab_note: str = ""  # where the lab's rows moved this recipe's score beyond the study's uncertainty
    study_note: str = ""  # the recipe against the study's own composite, with the model's uncertainty on the gap
    allowance_note: str = ""  # when the swelling's interval straddles the objective's allowance
    measured_note: str = ""  # when the lab already measured a recipe scoring above this one's prediction
    moved_note: str = ""  # a resumed campaign whose recommendation is another recipe than its last run's
    conditions_beyond: bool = False  # the objective's conditions lie beyond the data (for the study's own composite)

    def headline(self) -> dict[str, float]:
        """The metrics a report shows first (:func:`flows.metrics.headline`)."""
        from flows.metrics import headline

        return headline(self.evaluation.metrics, self.objective_names)

    @property
    def recipe(self) -> dict[str, Any]:
        return self.evaluation.recipe

    def notes(self) -> list[str]:
        beyond = (f"predicted beyond the calibration's materials ({', '.join(self.beyond_data)} unlike any of them; "
                  "recommended_recipe.json says how): by the model's milling and composition physics with assumed "
                  "constants (the ranges of those the study's data cannot see are inside the intervals); a lab batch "
                  "of this recipe is the test"
                  ) if self.beyond_data else ""
        return [n for n in (self.rule_note, *self.bound_notes, beyond, self.allowance_note, self.study_note,
                            self.lab_note, self.measured_note, self.moved_note) if n]

    def record(self) -> dict[str, Any]:
        """JSON-ready view (the recommended_recipe.json artifact)."""
        return {"evaluation": self.index, "recipe": self.recipe, "source": self.evaluation.source,
                "objective": self.evaluation.objective, "fidelity": self.fidelity_note,
                "rule": self.rule_note, "search_bounds": list(self.bound_notes),
                "optimiser_surrogate_mean_objective": self.surrogate_mean,
                "optimiser_surrogate_std_objective": self.surrogate_std,
                "metrics": self.evaluation.metrics, "interval_90": self.intervals, "extrapolated": self.extrapolated,
                "beyond_calibrated_recipes": dict(self.beyond_data), "lab": self.lab_note,
                "expansion_allowance": self.allowance_note, "against_the_study": self.study_note,
                "lab_measured_better": self.measured_note, "moved_since_last_run": self.moved_note}


def with_lab_note(recommendation: Recommendation, campaign: Campaign, study_p) -> Recommendation:
    """The recommendation with a note when a lab's rows taught the model (``snhc optimise --observations``) and the
    lab's model scores the recommended recipe outside the 90 % interval of the study's model there: then the score is
    what the rows taught, carried to a recipe, and the note says how far that recipe lies from the nearest measured
    row (in the search space's unit cube, 0 to 1 per field). Found by a sceptical walkthrough: the example lab file's
    model recommended 2.4 h at 600 rpm and BPR 40, scoring 347.5 mAh/g where the study's model gives 17.7, far
    from every row (6-12 h, 350-450 rpm, BPR 20-25), without a word."""
    from dataclasses import replace

    from flows.evaluation import campaign_parameters, metric_intervals, model_metrics, model_objective
    from flows.objective import SCORE
    from flows.search import point_of, search_dimensions
    from skopt.space import Space
    from skopt.utils import normalize_dimensions
    from surrogate.recipe import Recipes

    config, evaluation = campaign.config, recommendation.evaluation
    lab = campaign.lab
    if not (lab and lab.measured) or not evaluation.ok or not evaluation.modelled:  # a lab row is measured
        return recommendation
    try:
        calibration = campaign_parameters(config)[1]
        recipes = Recipes.from_records([evaluation.recipe])
        if config.objectives:  # each objective the model predicts (milling time and energy are the recipe's)
            scoring = config.scoring()
            study = model_metrics(recipes, study_p, scoring)
            bands = metric_intervals(evaluation.recipe, study_p, calibration, scoring)
            compared = [(o.name, evaluation.metrics[o.name], float(study[o.name][0]), bands[o.name], o.unit)
                        for o in scoring.objectives if not o.recipe_only and o.name in bands]
        else:
            compared = [(SCORE, evaluation.objective,
                         float(model_objective(recipes, study_p, config.objective)[0]),
                         metric_intervals(evaluation.recipe, study_p, calibration, config.objective)[SCORE], "mAh/g")]
    except Exception:  # noqa: BLE001 - a comparison for the report, never a reason to fail the campaign
        return recommendation
    moved = [c for c in compared if np.isfinite(c[2]) and not c[3][0] <= c[1] <= c[3][1]]
    if not moved:
        return recommendation
    space = Space(normalize_dimensions(search_dimensions(config)))
    measured = [point_of(e.recipe, config) for e in lab.measured]
    inside = [p for p in measured if p in space]
    nearest = (float(np.min(np.linalg.norm(np.array(space.transform(inside)) - np.array(
        space.transform([point_of(evaluation.recipe, config)])), axis=1))) if inside else float("nan"))
    where = (f"{nearest:.2f} from the nearest measured row (search space scaled 0-1 per field)" if inside
             else "outside the search space of every measured row")
    said = "; ".join(
        (f"the lab's model scores it {lab_value:.1f} {unit}" if name == SCORE
         else f"the lab's model gives {name} {lab_value:.4g} {unit}")
        + f" where the study's model gives {value:.1f} (90 % interval {band[0]:.1f} to {band[1]:.1f})"
        for name, lab_value, value, band, unit in moved)
    return replace(recommendation, lab_note=(
        f"{said}: the difference is what the lab rows taught, carried to a recipe {where}; make it as a test of "
        f"that, not as a production batch"))


def with_measured_note(recommendation: Recommendation, campaign: Campaign) -> Recommendation:
    """The recommendation with a note when the lab already measured a recipe whose objective is above the recommended
    recipe's predicted one (``snhc optimise --observations``, one objective). The recommendation is chosen among the
    model's predictions, where a lab's rows are facts about recipes already made; a lab must not make a recipe
    predicted to do worse than one it has without being told. Found by a lab walkthrough: with six rows measured 7 %
    above the model, the recommendation predicted 358.2 mAh/g where the lab had measured 375.6."""
    from dataclasses import replace

    from flows.objective import CAPACITY, SCORE

    lab, evaluation = campaign.lab, recommendation.evaluation
    # a lab row's objective is the capacity objective's score: comparable only when the campaign's score is that
    if not (lab and lab.measured) or not evaluation.ok or campaign.config.objectives:
        return recommendation
    scored = [(e.objective, line, e) for e, line in zip(lab.measured, lab.measured_lines)
              if e.ok and np.isfinite(e.objective)]
    if not scored:
        return recommendation
    best, line, row = max(scored, key=lambda s: s[:2])
    # the row's score, and what it was computed from when that is not the number on its line (a score the lab
    # stated itself is on its line)
    penalty = row.metrics.get(CAPACITY, best) - best
    source = (f": capacity {row.metrics[CAPACITY]:.1f} less {penalty:.1f} of swelling penalty"
              if SCORE not in row.metrics and np.isfinite(penalty) and penalty > 0 else "")
    if best <= evaluation.objective:
        return recommendation
    high = recommendation.intervals.get(SCORE, [np.nan, np.nan])[1]
    band = f" (90 % interval up to {high:.1f})" if np.isfinite(high) else ""
    beyond = "above even the top of its interval" if np.isfinite(high) and best > high else "above it"
    return replace(recommendation, measured_note=(
        f"the lab already measured a recipe scoring {best:.1f} mAh/g ({lab.path.name} line {line}{source}), "
        f"{beyond}: this recipe is "
        f"predicted {evaluation.objective:.1f}{band}. The model still rates the lab's recipes lower than the lab "
        f"measures them; repeat that recipe, or ask `snhc suggest`, whose GP adds what the lab parameters do not "
        f"explain"))


def with_moved_note(recommendation: Recommendation, campaign: Campaign, previous: int | None) -> Recommendation:
    """The recommendation with a note when a resumed campaign recommends another recipe than its last run did
    (``previous``: that run's recommended evaluation): the old recipe and what it scores now, beside the new one's
    score, so a user sees whether new lab rows, a longer search or a near-tie moved it. Found by a lab walkthrough:
    a resume with two new rows moved the recommendation from 23.5 h at 468 rpm to 1.2 h at 600 rpm, saying only
    "the recommendation may move"."""
    from dataclasses import replace

    from flows.evaluation import LAB
    from flows.search import teaching_rows
    from surrogate.recipe import recipe_key, shown_value

    if previous is None or not 0 <= previous < len(campaign.evaluations):
        return recommendation
    old, new = campaign.evaluations[previous], recommendation.evaluation
    if recipe_key(old.recipe) == recipe_key(new.recipe):
        return recommendation
    # new lab rows that teach the model (inside the search space, on its fixed fields): an air-milled row in an
    # argon campaign teaches nothing, and is said so elsewhere
    taught_since = teaching_rows(campaign.config, [e for e in campaign.evaluations[campaign.saved:] if e.source == LAB])
    changed = ", ".join(f"{name} {shown_value(old.recipe[name])} -> {shown_value(new.recipe[name])}"
                        for name in new.recipe if old.recipe[name] != new.recipe[name])
    scores = (f"it scores {old.objective:.1f} now, this one {new.objective:.1f} mAh/g"
              if old.ok and new.ok and not campaign.config.objectives else "")
    return replace(recommendation, moved_note=(
        f"moved since the last run's recommendation (evaluation {previous}: {changed})"
        + (f"; {scores}" if scores else "")
        + ("; lab rows new since then taught the model" if taught_since else "")))


def with_intervals(recommendation: Recommendation, config, p=None, ensemble=None,
                   model_label: str = "the numpy model") -> Recommendation:
    """The recommendation with a 90 % interval on each metric: the model's, or for a PyBaMM evaluation the
    envelope of both model forms (:func:`flows.evaluation.model_form_interval`), and why its recipe lies beyond the
    calibration's materials, if it does. A lab-measured one keeps neither: its numbers are measurements, not
    predictions. ``p``: the model the campaign searched, when not the study's (the lab's own parameters), and
    ``ensemble`` its ensemble (``surrogate.uncertainty.build_ensemble``; default: built for ``p``), which the
    intervals come from; ``model_label`` names that model in the notes (the lab's, when lab rows taught it)."""
    from dataclasses import replace

    from flows.evaluation import batch_intervals, campaign_parameters, scoring_flags

    if not recommendation.evaluation.modelled:
        return recommendation
    from surrogate.uncertainty import build_ensemble

    study, calibration = campaign_parameters(config)
    p = study if p is None else p
    ensemble = build_ensemble(p, calibration) if ensemble is None else ensemble
    domain = ensemble.domain
    scoring = config.scoring()
    flags = scoring_flags(recommendation.recipe, domain, scoring, recommendation.evaluation.metrics)
    # the conditions alone: flagged for the study's milled composite, whose own data are the study's
    milled = [m for m in domain.materials if float(m["milling_time_h"]) > 0.0]
    conditions = milled and any(scoring_flags(milled[0], domain, scoring, list(recommendation.headline())).values())
    (intervals,) = batch_intervals([recommendation.recipe], ensemble, scoring, None,
                                   [recommendation.evaluation.metrics])
    return replace(recommendation, intervals=intervals, beyond_data=domain.recipe_beyond(recommendation.recipe),
                   extrapolated=flags, conditions_beyond=bool(conditions),
                   allowance_note=allowance_note(recommendation.evaluation.metrics, intervals, config),
                   study_note=study_note(recommendation.recipe, ensemble, config, model_label))


def study_note(recipe: dict[str, Any], ensemble, config, model_label: str = "the numpy model") -> str:
    """The recommended recipe against the study's own composite: the objective's gap and the model's 90 % interval
    on it, taken within each ensemble member (:func:`flows.evaluation.difference_intervals`), and whether the model
    can tell the two apart. A lab weighs a new recipe against what it can already make: the default recommendation
    scores 341 [260-364] against the study's 331 [297-357], and the two marginal intervals overlap while the gap's own
    interval may not (found by a sceptical-modeller walkthrough). Empty for a multi-objective campaign, or the study's
    recipe itself. ``model_label``: the model ``ensemble`` is of, as the note names it (with lab rows, the lab's: a
    note had said "the numpy model scores it 302.1" where ``snhc predict`` gives the study's model's 331.2)."""
    from flows.evaluation import difference_intervals, model_objective
    from surrogate.recipe import STUDY_MATERIAL, Recipes, same_value, study_recipe

    if config.objectives:
        return ""
    reference = study_recipe()
    if all(same_value(name, recipe[name], value) for name, value in reference.items()):
        return ""  # the study's recipe itself
    recipes = [reference, recipe]
    try:
        scores = model_objective(Recipes.from_records(recipes), ensemble.central, config.objective)
        low, high = difference_intervals(recipes, ensemble, config.objective, reference=0)[1]
    except Exception:  # noqa: BLE001 - a comparison for the report, never a reason to fail the campaign
        return ""
    if not (np.isfinite(low) and np.isfinite(high)):
        return ""
    gap = float(scores[1] - scores[0])
    verdict = ("the model cannot tell them apart" if low <= 0.0 <= high
               else "better beyond the model's uncertainty" if low > 0.0 else "worse beyond the model's uncertainty")
    return (f"against the study's {STUDY_MATERIAL} recipe ({model_label} scores it {scores[0]:.1f}, this one "
            f"{scores[1]:.1f}): {gap:+.1f} {config.objective.unit}, 90 % interval of the gap {low:+.1f} to "
            f"{high:+.1f}: {verdict}")


def allowance_note(metrics: dict[str, float], intervals: dict[str, list[float]], config) -> str:
    """A note when the recommended recipe's particle expansion has a 90 % interval that straddles the capacity
    objective's swelling allowance: the optimum of capacity minus the penalty sits where the swelling reaches the
    allowance, so the default recommendation swells 250 % [172-321 %] against 250 % allowed, and a lab should know
    that cells of it may well swell past it (found by a sceptical-modeller walkthrough). A multi-objective campaign:
    each of its recommendation.limits whose interval at the recipe straddles it (a Pareto recommendation swelling
    257 % [87-539 %] against a 300 % limit had said nothing). Empty otherwise."""
    from flows.objective import EXPANSION

    if config.objectives:  # a multi-objective campaign's limits, each the same way
        scoring = config.scoring()

        def advice(name: str, limit: float) -> str:
            meets = metrics[name] >= limit if scoring[name].sign > 0 else metrics[name] <= limit
            if meets:  # inside the limit, but not by its uncertainty
                return (f"cells of it may fall on the wrong side; tighten recommendation.limits.{name} to "
                        f"recommend one with a margin")
            # the nearest miss of a front that meets no limit: tightening would not help
            return "its cells may well meet it, but the model puts it past; measure it before relying on it"

        return "; ".join(
            f"its {name} {metrics[name]:.4g} {scoring[name].unit} (90 % interval {band[0]:.4g} to {band[1]:.4g}) "
            f"straddles the limit {limit:g} {scoring[name].unit}: {advice(name, limit)}"
            for name, limit in config.recommendation.limits.items()
            if (band := intervals.get(name)) is not None and name in metrics and band[0] < limit < band[1])
    allowance = getattr(config.objective, "expansion_allowance_pct", None)
    band = intervals.get(EXPANSION)
    if allowance is None or band is None or EXPANSION not in metrics or not band[0] < allowance < band[1]:
        return ""
    return (f"its particle expansion {metrics[EXPANSION]:.0f} % (90 % interval {band[0]:.0f} to {band[1]:.0f} %) "
            f"straddles the objective's {allowance:g} % allowance: cells of it may swell past it; lower "
            f"objective.expansion_allowance_pct to recommend a recipe with a margin")


def milling_cost(recipe: dict[str, Any]) -> tuple[float, float]:
    """Sort key of cheapness: milling time (h), then milling energy (kWh/kg, the default mill's constants)."""
    energy = MillingEnergyObjective().energy_kWh_per_kg(recipe["milling_time_h"], recipe["milling_speed_rpm"],
                                                         recipe["ball_to_powder_ratio"],
                                                         recipe.get("pause_duty_cycle", 1.0))
    return float(recipe["milling_time_h"]), float(energy)


def cheapest_equivalent(indexes: list[int], scores: list[float], recipes: list[dict], tolerance_pct: float,
                        resolution: float = 0.0) -> tuple[int, str]:
    """Position (in ``indexes``) of the cheapest recipe whose score is within ``tolerance_pct`` of the best, and
    the rule in words. ``resolution`` (the score's unit) widens the tolerance by what the scores cannot tell apart:
    the physics check's noise plus the model's uncertainty on a difference, when PyBaMM's scores rank."""
    scores = np.asarray(scores, dtype=float)
    best = float(np.nanmax(scores))
    floor = best - abs(best) * tolerance_pct / 100.0 - resolution
    near = [k for k in range(len(indexes)) if scores[k] >= floor]
    choice = min(near, key=lambda k: (*milling_cost(recipes[k]), -scores[k]))
    within = f"{tolerance_pct:g} %" + (f" + {resolution:.2f} mAh/g (what the check resolves)" if resolution > 0 else "")
    note = (f"cheapest of the {len(near)} evaluated recipes within {within} of the best objective "
            f"({best:.1f}): shortest milling time, then lowest milling energy")
    return choice, note


def bound_notes(recipe: dict[str, Any], config) -> tuple[str, ...]:
    """One sentence per searched real field the recipe sits on a bound of."""
    notes = []
    space = config.search_space
    for name in space.searched():
        dimension = getattr(space, name)
        if dimension.choices is not None:
            continue
        low, high, value = dimension.low, dimension.high, float(recipe[name])
        if dimension.log_scale:
            low, high, value = np.log(low), np.log(high), np.log(max(value, 1e-300))
        share = (value - low) / (high - low)
        if share <= BOUND_SHARE or share >= 1.0 - BOUND_SHARE:
            side, bound = ("lower", dimension.low) if share <= BOUND_SHARE else ("upper", dimension.high)
            notes.append(f"{name} = {float(recipe[name]):.4g} sits on the {side} search bound ({bound:g}): the "
                         f"optimum may lie beyond it; consider widening search_space.{name}."
                         f"{'low' if side == 'lower' else 'high'}")
    return tuple(notes)


class AllEvaluationsFailed(RuntimeError):
    """A campaign with nothing to recommend: every evaluation failed (the run is recorded FAILED with the reason)."""


def recommend(campaign: Campaign, optimizer, ranking=None) -> Recommendation:
    """The campaign's recommendation; raises :class:`AllEvaluationsFailed` when every evaluation failed."""
    config = campaign.config
    if config.multi_objective:  # its lab rows score no objective: the front is of the models' recipes alone
        if not campaign.modelled():
            raise AllEvaluationsFailed(_all_failed(campaign))
        return _recommend_on_front(campaign)
    best = campaign.best_index()
    if best is None:
        raise AllEvaluationsFailed(_all_failed(campaign))
    tolerance = config.recommendation.tolerance_pct
    if ranking is not None and ranking.ranked_by == "physics":
        table = ranking.table[ranking.table["physics_status"] == "FINISHED"]
        indexes = [int(i) for i in table["evaluation"]]
        # a PyBaMM score is known to the check's noise plus the model's uncertainty on a difference: a recipe
        # that much below the tolerance is as equivalent as one inside it (a 0.1 % edge must not decide the recipe)
        resolution = ranking.tolerance_mAh_per_g if np.isfinite(ranking.tolerance_mAh_per_g) else 0.0
        k, rule = cheapest_equivalent(indexes, list(table["physics_objective"]),
                                      [campaign.evaluations[i].recipe for i in indexes], tolerance, resolution)
        chosen = indexes[k]
        rule = rule.replace("evaluated recipes", "physics-checked recipes").replace("best objective",
                                                                                       "best PyBaMM objective")
    else:
        # a lab's measured rows are facts about recipes already made, not predictions to rank against the model's
        indexes = ([i for i, e in enumerate(campaign.evaluations) if e.ok and e.modelled]
                   or [i for i, e in enumerate(campaign.evaluations) if e.ok])
        k, rule = cheapest_equivalent(indexes, [campaign.evaluations[i].objective for i in indexes],
                                      [campaign.evaluations[i].recipe for i in indexes], tolerance)
        chosen = indexes[k]
    lab_best = lab_row_beyond_prediction(campaign, campaign.evaluations[chosen])
    if lab_best is not None:
        chosen, rule = lab_best
    mean, std = surrogate_prediction(optimizer, campaign.points[chosen])
    note = ("a measured recipe: the physics check ranked the model's candidates only" if lab_best and ranking
            else ranking.summary() if ranking
            else "every evaluation by the PyBaMM model (fidelity: physics), searched with the numpy model as the "
                 "GP's prior mean" if config.fidelity == "physics"
            else "ranked by the numpy model (physics check off)")
    evaluation = campaign.evaluations[chosen]
    return Recommendation(chosen, evaluation, mean, std, note, rule, bound_notes(evaluation.recipe, config))


def lab_row_beyond_prediction(campaign: Campaign, predicted) -> tuple[int, str] | None:
    """The lab's best measured row (its index in the campaign, and the rule in words) when its objective exceeds the
    model's best prediction (the best of the campaign's model evaluations, not the cheaper pick within the
    tolerance) by more than the rows' stated scatter (``lab_uncertainty_pct``); None otherwise, or when the
    campaign is not scored by the capacity objective a lab row measures.

    A row counts only where it is comparable with a prediction: inside the search space and on its fixed fields (a
    row the optimiser never took cannot be its recipe), and with its swelling penalty known (it measured the score,
    or the particle expansion the penalty is computed from; a capacity alone carries no penalty where a prediction
    does). The pick is chosen among the model's predictions; a lab row is a fact about a recipe already made. Within
    the rows' scatter the two cannot be told apart (and the best of many rows reads high by luck), so the prediction
    stands and :func:`with_measured_note` names the row. Beyond it, the lab has a better recipe than any the model
    can predict: a virtual lab whose best row measured 286.8 mAh/g was recommended a recipe predicted 267 (true 220,
    19 % below that row's true 273)."""
    config, lab = campaign.config, campaign.lab
    if not (lab and lab.measured) or config.objectives or not predicted.ok or not predicted.modelled:
        return None
    from flows.evaluation import LAB
    from flows.objective import EXPANSION, SCORE
    from flows.search import teaching_rows

    lab_rows = [e for e in campaign.evaluations if e.source == LAB]
    comparable = {id(e) for e in teaching_rows(config, lab_rows) if SCORE in e.metrics or EXPANSION in e.metrics}
    rows = [(e.objective, i) for i, e in enumerate(campaign.evaluations)
            if id(e) in comparable and e.ok and np.isfinite(e.objective)]
    best_prediction = max((e.objective for e in campaign.evaluations if e.modelled and e.ok), default=np.nan)
    if not rows or not np.isfinite(best_prediction):
        return None
    best, index = max(rows)
    margin = abs(best_prediction) * config.lab_uncertainty_pct / 100.0
    if best <= best_prediction + margin:
        return None
    return index, (f"the lab's best measured recipe: {best:.1f} mAh/g, more than its rows' scatter "
                   f"(lab_uncertainty_pct {config.lab_uncertainty_pct:g} %) above the model's best prediction "
                   f"({best_prediction:.1f}); a measurement beyond the scatter beats a prediction")


def _all_failed(campaign: Campaign) -> str:
    failed = [e for e in campaign.evaluations if not e.ok]
    return (f"all {len(failed)} evaluations failed; first reason: {failed[0].reason if failed else 'none run'}")


def _recommend_on_front(campaign: Campaign) -> Recommendation:
    from flows.pareto import choose_on_front, pareto_table

    config = campaign.config
    front = pareto_table(campaign)
    row, rule = choose_on_front(front, config.scoring(), config.recommendation)
    chosen = int(front["evaluation"].iloc[row])
    evaluation = campaign.evaluations[chosen]
    note = (f"every objective by the numpy model (no physics check: it scores the single capacity objective); "
            f"ParEGO over {len(config.objectives)} objectives, {len(front)} non-dominated of "
            f"{len(campaign.modelled())} evaluated recipes")
    return Recommendation(chosen, evaluation, float("nan"), float("nan"), note, rule,
                          bound_notes(evaluation.recipe, config), objective_names=tuple(config.scoring().names))
