"""The campaign: one object holding a campaign's whole state, built and validated once, saved as plain JSON.

Like BayBE's ``Campaign``, it is the config plus everything evaluated so far (recipe, search-space point, status,
objective, metrics, failure reason, batch and source), with lab results merged in. The CLI builds it once
(:func:`build_campaign`: config file or a resumed run's saved config, lab CSV read once, state loaded once) and hands
it to the flow. Its JSON document (:meth:`Campaign.to_document`) is what a :mod:`flows.store` saves after every
batch and what ``--resume`` rebuilds it from.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from flows.config import (CampaignConfig, ConfigError, deep_merge, default_config_path, differing_keys, load_config,
                          saved_config_document, validate_config)
from flows.evaluation import ASKED, LAB, MODELLED, PREDICTED, Evaluation
from flows.objective import CAPACITY
from flows.inputs import check_tracking_store, excerpt, redact_document
from flows.observations import LabData, check_unit_slips, read_observations
from surrogate.recipe import complete, recipe_key

STATE_VERSION = 1
LAB_BATCH = -1  # batch number of lab results (they were not asked for by the optimiser)


@dataclass
class Campaign:
    """A campaign's config and its evaluations in order (``points[i]``, ``evaluations[i]``, ``batches[i]``).

    ``run_id`` is the tracking run once the campaign is started or resumed; ``saved`` is how many evaluations the
    state it was resumed from held (child runs logged beyond it belong to a batch lost in flight); ``lab`` is the lab
    file it was given, if any.
    """

    config: CampaignConfig
    points: list[list] = field(default_factory=list)
    evaluations: list[Evaluation] = field(default_factory=list)
    batches: list[int] = field(default_factory=list)
    run_id: str | None = None
    saved: int = 0
    lab: LabData | None = None

    # --- building ------------------------------------------------------------------------------------------------

    @classmethod
    def new(cls, config: CampaignConfig, lab: LabData | None = None) -> "Campaign":
        campaign = cls(config, lab=lab)
        campaign.add_lab_results()
        return campaign

    @classmethod
    def from_document(cls, document: dict[str, Any], run_id: str, overrides: dict[str, Any] | None = None,
                      lab: LabData | None = None) -> "Campaign":
        """Rebuild a saved campaign (its saved config with ``overrides`` merged on), then merge new lab results."""
        config = validate_config(deep_merge(saved_config_document(document["config"]), overrides or {}),
                                 f"run {run_id}")
        items = document["evaluations"]
        evaluations = [_saved_evaluation(item, f"run {run_id}: saved evaluation {i}: ", config)
                       for i, item in enumerate(items)]
        campaign = cls(config, [item["point"] for item in items], evaluations,
                       [item["batch"] for item in items], run_id=run_id, saved=len(items),
                       lab=lab or _saved_lab(document, evaluations, run_id))
        campaign.add_lab_results()
        return campaign

    def add_lab_results(self) -> int:
        """Tell the campaign the lab file's measured rows it does not hold yet; returns how many were new."""
        if not self.lab:
            return 0
        from flows.search import point_of

        given = {recipe_key(e.recipe): (e, line) for e, line in zip(self.lab.measured, self.lab.measured_lines)}
        for evaluation in (e for e in self.evaluations if e.source == LAB):  # the rows it holds must still be given
            match = given.get(recipe_key(evaluation.recipe))
            if match is None or not _same_numbers(match[0], evaluation):
                where = "leaves out" if match is None else f"changes (line {match[1]})"
                raise ConfigError(f"{self.lab.path}: {where} a lab row run {self.run_id} holds (Sn "
                                  f"{evaluation.recipe['sn_mass_fraction']:g}, {evaluation.recipe['milling_time_h']:g} "
                                  f"h): a resumed campaign takes the rows it was given plus new ones; start a new "
                                  f"campaign with the corrected file")
        held = {recipe_key(e.recipe) for e in self.evaluations if e.source == LAB}
        new = [e for e in self.lab.measured if recipe_key(e.recipe) not in held]
        for evaluation in new:
            self.points.append(point_of(evaluation.recipe, self.config))
            self.evaluations.append(evaluation)
            self.batches.append(LAB_BATCH)
        return len(new)

    def rescore(self, evaluate: Callable[[list[dict[str, Any]]], list[Evaluation]]) -> int:
        """Score the numpy model's saved predictions again with ``evaluate`` (the model this run searches) and
        replace those it scores differently; returns how many it replaced.

        A resumed campaign whose lab rows changed, or that was given lab rows for the first time, searches a model
        taught by other rows than its earlier batches were scored by: it had kept their scores beside the new
        model's, so its best, its regret and its GP mixed two models (a regret of -2.5 %). Given the same rows,
        the model is the same and nothing changes, so a resume still repeats the uninterrupted campaign."""
        indices = [i for i, e in enumerate(self.evaluations) if e.source in PREDICTED]
        if not indices:
            return 0
        fresh = evaluate([self.evaluations[i].recipe for i in indices])
        replaced = 0
        for i, new in zip(indices, fresh):
            old = self.evaluations[i]
            if not _same_numbers(old, new):
                self.evaluations[i] = replace(new, source=old.source)
                replaced += 1
        return replaced

    # --- progress --------------------------------------------------------------------------------------------------

    def next_batch(self) -> int:
        return max([b + 1 for b in self.batches], default=0)

    def add_batch(self, points: list[list], evaluations: list[Evaluation]) -> int:
        """Append one evaluated batch; returns its batch number."""
        batch = self.next_batch()
        self.points += points
        self.evaluations += evaluations
        self.batches += [batch] * len(points)
        return batch

    def model_evaluations(self) -> int:
        """Evaluations the optimiser asked for, of the numpy model or (fidelity: physics) of PyBaMM: its budget (lab
        observations and the dense search's candidates do not use it up)."""
        return sum(e.source in ASKED for e in self.evaluations)

    def failed(self) -> int:
        return sum(not e.ok for e in self.evaluations)

    def modelled(self) -> list[int]:
        """Indices of the finished evaluations of the models (the search's and the dense search's), not the lab's
        rows: what a Pareto front and ParEGO's surrogates are made of. A multi-objective campaign's lab row scores no
        objective (it teaches the model the lab's parameters by what it measured)."""
        return [i for i, e in enumerate(self.evaluations) if e.ok and e.source in MODELLED]

    def best_index(self, sources: tuple[str, ...] | None = None) -> int | None:
        """The finished evaluation of highest objective (among ``sources`` only, when given)."""
        finished = [i for i, e in enumerate(self.evaluations) if e.ok and (sources is None or e.source in sources)]
        return max(finished, key=lambda i: self.evaluations[i].objective) if finished else None

    def best_objective(self, sources: tuple[str, ...] | None = None) -> float:
        best = self.best_index(sources)
        return self.evaluations[best].objective if best is not None else float("nan")

    def best_modelled_objective(self) -> float:
        """The search's best objective: of the models' evaluations (a lab row is a measurement of a recipe already
        made, not a search result; ``best_objective(sources=(LAB,))`` is the lab's best)."""
        return self.best_objective(sources=MODELLED)

    # --- views -----------------------------------------------------------------------------------------------------

    def table(self) -> pd.DataFrame:
        """The evaluation table: one row per evaluation with recipe, status, objective and every metric."""
        rows = []
        for i, (evaluation, batch) in enumerate(zip(self.evaluations, self.batches)):
            rows.append({"evaluation": i, "batch": batch, "source": evaluation.source, **evaluation.recipe,
                         "status": evaluation.status.value, "objective": evaluation.objective,
                         "failure_reason": evaluation.reason,
                         **{k: v for k, v in evaluation.metrics.items() if k != "objective"}})
        return pd.DataFrame(rows)

    def to_document(self) -> dict[str, Any]:
        """The JSON-ready state (never pickle): config and every evaluation."""
        document = {
            "version": STATE_VERSION,
            "config": redact_document(self.config.model_dump(mode="json")),  # the real URI stays in memory
            "evaluations": [{"index": i, "batch": batch, "point": point, **e.record()}
                            for i, (point, e, batch) in enumerate(zip(self.points, self.evaluations, self.batches))],
        }
        if self.lab and self.lab.measured:  # where the lab rows came from, so a resume names them as the run did:
            # each held row's line, in the order the campaign holds them
            lines = {recipe_key(e.recipe): line for e, line in zip(self.lab.measured, self.lab.measured_lines)}
            document["lab"] = {"path": str(self.lab.path.absolute()),
                               "lines": [lines.get(recipe_key(e.recipe), 0) for e in self.evaluations
                                         if e.source == LAB]}
        return document


def _same_numbers(a: Evaluation, b: Evaluation, rtol: float = 1e-9) -> bool:
    """Two evaluations of one recipe agree: the same status and every metric both hold equal to ``rtol`` (NaNs
    alike)."""
    if a.status != b.status:
        return False
    for name in a.metrics.keys() & b.metrics.keys():
        x, y = a.metrics[name], b.metrics[name]
        if not (x == y or (math.isnan(x) and math.isnan(y)) or abs(x - y) <= rtol * max(abs(x), abs(y))):
            return False
    return True


def _saved_lab(document: dict[str, Any], evaluations: list[Evaluation], run_id: str) -> LabData | None:
    """The lab rows a saved campaign holds, as the lab data they were read as, for a resume not given the lab file
    again: the campaign goes on searching the model its lab rows taught (resumed without them, it had searched the
    study's model after batches of the lab's)."""
    measured = [e for e in evaluations if e.source == LAB]
    if not measured:
        return None
    saved = document.get("lab") if isinstance(document.get("lab"), dict) else {}
    lines = saved.get("lines")
    if not (isinstance(lines, list) and len(lines) == len(measured) and all(type(n) is int for n in lines)):
        lines = list(range(1, len(measured) + 1))  # a state saved before the lines were: the rows' order
    path = saved.get("path")
    if not (isinstance(path, str) and path and path.isprintable()):  # a state saved before, or edited by hand
        path = f"the lab rows of run {run_id}"
    return LabData(Path(path), measured, lines, [], saved=True)


def _saved_evaluation(item: dict[str, Any], where: str, config: CampaignConfig) -> Evaluation:
    """One evaluation of a saved state, checked as a lab row is: a recipe inside the allowed ranges, a finished
    evaluation's objective a finite number (but a multi-objective campaign's lab row, which scores none), its batch
    a count, its point the recipe's point in ``config``'s search space. A state edited by hand (or a store another
    program wrote) had run two batches of a resumed campaign on a recipe milled for -50 h before failing in a
    traceback; a point of words or of another length had failed inside scikit-optimize after Prefect started."""
    from flows.search import point_of

    try:
        evaluation = Evaluation.from_record(item)
        recipe = complete(evaluation.recipe, where)
        unscored = bool(config.objectives) and evaluation.source == LAB
        if evaluation.ok and not unscored and not math.isfinite(evaluation.objective):
            raise ValueError(f"{where}objective={evaluation.objective} for a finished evaluation: expected a number")
        if not isinstance(item["batch"], int) or isinstance(item["batch"], bool) or item["batch"] < LAB_BATCH:
            raise ValueError(f"{where}batch={item['batch']!r}: expected a count (or {LAB_BATCH} for a lab row)")
        expected = point_of(recipe, config)
        if not (isinstance(item["point"], list) and len(item["point"]) == len(expected) and all(
                (a == b) if isinstance(b, str) else (isinstance(a, (int, float)) and not isinstance(a, bool)
                                                     and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12))
                for a, b in zip(item["point"], expected))):
            raise ValueError(f"{where}point={excerpt(str(item['point']))}: expected its recipe's search-space point "
                             f"{expected}")
    except (KeyError, TypeError, ValueError) as error:  # RecipeError is a ValueError
        reason = f"missing {error}" if isinstance(error, KeyError) else str(error)
        text = reason if reason.startswith(where) else f"{where}{excerpt(reason, 120)[1:-1]}"
        raise ConfigError(f"{text} (the saved state is not one snhc wrote; resume another run, or start afresh)") \
            from None
    return evaluation


# What a resume may change: where the campaign is tracked, and its budget (with the share of it for random starts,
# which the command line derives from the budget).
RESUME_MAY_CHANGE = ("tracking", "optimiser.n_calls", "optimiser.n_initial_points")


def _dotted(config, key: str) -> Any:
    """A config's value at a dotted key."""
    value = config.model_dump(mode="json")
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def build_campaign(config_path: str | None = None, overrides: dict[str, Any] | None = None,
                   resume_run_id: str | None = None, observations_path: str | None = None,
                   empty_lab_ok: bool = False) -> Campaign:
    """Validate everything a campaign needs, once, before anything starts: the config (from the file, or the
    resumed run's saved state), the tracking store, the lab file and the resume id. Problems raise
    :class:`ConfigError` (the store's, :class:`flows.inputs.InputError`). ``empty_lab_ok``: a lab file with a header
    and no rows is a lab with nothing made yet (``snhc suggest``'s first batch), not an error."""
    base = load_config(config_path, overrides)
    # the store first, as the CLI checks it: a deployment's run on an unreachable server failed after 256 s of retries
    check_tracking_store(base.tracking.tracking_uri, must_exist=bool(resume_run_id))
    if not resume_run_id:
        check_capacity_scoreable(base, str(config_path or default_config_path()))
        if not observations_path:  # with lab rows the campaign searches the lab's model: checked once they taught it
            check_limits_reachable(base, str(config_path or default_config_path()))
        _check_observations(base, observations_path)
        lab = read_observations(observations_path, base, empty_lab_ok) if observations_path else None
        check_unit_slips(lab, base)
        return Campaign.new(base, lab)
    from flows.store import store_for

    store = store_for(base.tracking)
    document = store.load(resume_run_id, base.tracking.experiment_name)
    # Resume on the store this command points at (a saved URI may be redacted), with the new overrides on top.
    overrides = deep_merge({"tracking": base.tracking.model_dump(mode="json")}, overrides or {})
    document_config = saved_config_document(document["config"])
    was = validate_config(document_config, f"run {resume_run_id}")
    derived = overrides.get("optimiser", {})
    if "n_initial_points" in derived:  # the command line derives it from --n-calls for a new campaign: a resumed
        # one keeps its own, within its budget
        overrides["optimiser"] = {**derived, "n_initial_points": min(
            was.optimiser.n_initial_points, derived.get("n_calls", was.optimiser.n_calls))}
    saved = validate_config(deep_merge(document_config, overrides), f"run {resume_run_id}")
    if saved.fidelity != was.fidelity:  # one GP would mix the two fidelities' numbers, the budget would count both
        raise ConfigError(f"run {resume_run_id}: fidelity: {saved.fidelity} cannot resume a campaign evaluated with "
                          f"fidelity: {was.fidelity}; start a new campaign for the other fidelity")
    changed = differing_keys(saved.model_dump(mode="json"), was.model_dump(mode="json"), ignore=RESUME_MAY_CHANGE)
    if changed:  # --seed 7 had been used and saved while the run's params still said 42
        raise ConfigError(f"run {resume_run_id}: {changed[0]}: a resumed campaign keeps its own "
                          f"({_dotted(was, changed[0])!r}); only where it is tracked and its n_calls change on a "
                          f"resume: start a new campaign to change it")
    _check_observations(saved, observations_path)
    lab = read_observations(observations_path, saved, empty_lab_ok) if observations_path else None
    check_unit_slips(lab, saved)
    return Campaign.from_document(document, resume_run_id, overrides, lab)


def check_limits_reachable(config: CampaignConfig, where: str, p=None) -> None:
    """Limits of a multi-objective recommendation that no recipe of the search space meets together under the model
    are refused before the campaign starts (it had searched, then recommended with the limits ignored). Each limit
    alone is checked against its range when the config is read (:class:`flows.config.CampaignConfig`); only limits on
    what the model predicts need the model: a dense search of about a second (:func:`flows.model_optimum.limits_reach`)
    with ``p``, the campaign's model parameters (default: the study's, :func:`flows.evaluation.campaign_parameters`)."""
    limits = config.recommendation.limits
    scoring = config.scoring()
    if not limits or not config.objectives or all(scoring[name].recipe_only for name in limits):
        return
    from flows.evaluation import campaign_parameters
    from flows.model_optimum import limits_reach

    reach = limits_reach(config, campaign_parameters(config)[0] if p is None else p)
    if reach.met:
        return
    wanted = " and ".join(f"{name} {'>=' if scoring[name].sign > 0 else '<='} {limit:g} {scoring[name].unit}"
                          for name, limit in limits.items())
    closest = ", ".join(f"{name} {value:.4g} {scoring[name].unit}" for name, value in reach.closest.items())
    raise ConfigError(f"{where}: recommendation.limits: no recipe of the search space meets {wanted} "
                      f"{'together ' if len(limits) > 1 else ''}under the model; the closest reaches {closest} "
                      f"(loosen a limit or widen the search space)")


# Recipes of the search space scored before a campaign starts, to see that its capacity objective can score at all
CAPACITY_CHECK_SAMPLES = 1024


def check_capacity_scoreable(config: CampaignConfig, where: str, p=None) -> None:
    """A capacity objective that no recipe of the search space scores is refused before the campaign starts: at a
    target current or cycle count where the model keeps no capacity (1000 A/g; the study measured up to 4.2) every
    recipe scored 0 (a flat search, recommended with no word). Scored with the numpy model (``p``; default the
    study's) on a Sobol sample of the space; "no capacity" is below a coin cell's reading
    (:data:`flows.observations.SMALLEST_READING`). Not for a campaign of PyBaMM's evaluations (fidelity: physics):
    PyBaMM keeps 18 mAh/g at 40 A/g where the numpy model's limiting current leaves none; one whose every solve
    fails ends in one line naming the first reason."""
    from flows.evaluation import campaign_parameters, model_metrics
    from flows.model_optimum import sobol_recipes
    from flows.observations import SMALLEST_READING
    from surrogate.recipe import Recipes
    from surrogate.uncertainty import DataExtent

    if config.fidelity != "model":  # PyBaMM, the other form, may keep a capacity where the numpy model has none
        return
    objective = config.capacity_objective()
    if objective is None:
        return
    name = CAPACITY if not config.objectives else objective.name
    key = "objective" if not config.objectives else f"objectives[{config.objectives.index(objective)}]"
    study_p, calibration = campaign_parameters(config)
    try:
        recipes = Recipes.from_records(sobol_recipes(config, CAPACITY_CHECK_SAMPLES))
        values = np.asarray(model_metrics(recipes, study_p if p is None else p, config.scoring())[name], dtype=float)
    except Exception:  # noqa: BLE001 - a model that fails on some recipes (the campaign records those as failed),
        return  # or a sample the recipe rules refuse (a Sn fraction below their resolution): no verdict
    most = float(np.nanmax(values)) if np.isfinite(values).any() else float("nan")
    if most >= SMALLEST_READING:
        return
    measured = DataExtent.of(calibration.report)  # the study's data: what the model was fitted to
    raise ConfigError(f"{where}: {key}: no recipe of the search space keeps a capacity at "
                      f"{objective.current_A_per_g:g} A/g after {objective.cycle} cycles under the model (the most "
                      f"is {most:.2g} mAh/g, below a coin cell's reading of {SMALLEST_READING:g}): every evaluation "
                      f"would score nothing; lower {key}.current_A_per_g or .cycle (the study measured up to "
                      f"{measured.max_current_A_per_g:g} A/g and {measured.max_cycle} cycles)")


def _check_observations(config: CampaignConfig, observations_path: str | None) -> None:
    """Lab rows only join a campaign of the capacity objective evaluated by the numpy model."""
    if observations_path and config.fidelity == "physics":
        raise ConfigError(f"{observations_path}: a campaign with fidelity: physics takes no lab observations (one GP "
                          f"would mix PyBaMM's predictions with measurements); use fidelity: model")


_handed_over: dict[str, Campaign] = {}


def hand_over(campaign: Campaign) -> str:
    """Hand a built campaign to a flow in this process: returns the token the flow takes it back with.

    The campaign stays in memory, so a flow run's parameters (stored by Prefect) carry a token, never the config's
    secrets or the whole state; a deployment run, in another process, builds its campaign from its config instead.
    """
    token = uuid.uuid4().hex
    _handed_over[token] = campaign
    return token


def take_over(token: str) -> Campaign:
    try:
        return _handed_over.pop(token)
    except KeyError:
        raise ConfigError(f"campaign token {token!r}: no campaign was handed over in this process") from None


__all__ = ["Campaign", "ConfigError", "build_campaign", "check_limits_reachable", "hand_over", "take_over"]
