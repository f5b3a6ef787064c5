"""The optimisation flow: calibrate -> search -> physics check -> recommend -> report, tracked in MLflow.

``optimise_anode`` is the Prefect flow; :func:`run_campaign` is its body and reads as those stages. Each batch of
candidates is evaluated by one Prefect task (a task costs milliseconds, a subflow about a second). The helpers
live with their concept: the campaign state in :mod:`flows.campaign`, the optimiser in :mod:`flows.search`, the
MLflow record in :mod:`flows.tracking`, the second fidelity in :mod:`flows.fidelity`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows import fidelity, interrupts, reporting
from flows.campaign import Campaign, build_campaign, check_limits_reachable, hand_over, take_over
from flows.config import CampaignConfig, CampaignOverrides, ConfigError, overrides_document
from flows.evaluation import (DENSE_SEARCH, LAB, MODEL, Evaluation, campaign_parameters, evaluate_batch,
                              interval_function, lazy_ensemble)
from flows.inputs import secrets_masked
from flows.model_optimum import add_model_optimum, in_background
from flows.objective import CapacityObjective
from flows.observations import lab_predictions, model_error_table, surprising_values, teaching_notes
from flows.pareto import front_files, pareto_table, run_pareto_search, with_uncertainty
from flows.recommendation import (Recommendation, recommend, with_intervals, with_lab_note, with_measured_note,
                                  with_moved_note)
from flows.search import lab_calibrated_prior, run_search, teaching_rows, tell_known
from flows.suggest import prior_parameter_table
from flows.store import store_for
from flows.tracking import CampaignRecorder
from surrogate.parameters import ModelParameters

if TYPE_CHECKING:
    from flows.physics_gp import LabCalibratedPrior


@task(name="calibrate", cache_policy=NO_CACHE)
def calibrate_task(config: CampaignConfig):
    """Load the cached calibration for this config's assumptions, or refit it."""
    return campaign_parameters(config)


@task(name="evaluate-batch", retries=2, retry_delay_seconds=1, cache_policy=NO_CACHE)
def evaluate_batch_task(recipes: list[dict], p: ModelParameters, objective: CapacityObjective) -> list[Evaluation]:
    """Evaluate one batch of candidate recipes (model failures come back as FAILED evaluations)."""
    return evaluate_batch(recipes, p, objective)


@task(name="physics-check", retries=1, retry_delay_seconds=1, cache_policy=NO_CACHE)
def physics_check_task(recipes: list[dict], p: ModelParameters, q: ModelParameters, objective: CapacityObjective):
    """Re-evaluate candidate recipes with the PyBaMM model (failed solves come back as FAILED rows)."""
    return fidelity.physics_scores(recipes, p, q, objective)


@task(name="evaluate-batch-physics", retries=2, retry_delay_seconds=1, cache_policy=NO_CACHE)
def evaluate_physics_task(recipes: list[dict], p: ModelParameters, q: ModelParameters,
                          objective: CapacityObjective) -> list[Evaluation]:
    """Evaluate one batch with the PyBaMM model (fidelity: physics; failed solves come back as FAILED)."""
    return fidelity.evaluate_physics_batch(recipes, p, q, objective)


def in_chunks(work, recipes: list[dict], config: CampaignConfig, *args) -> list:
    """Run a task over ``runner.chunks_per_batch`` chunks submitted together, so they can run on separate workers
    (Dask), and gather the results in order. One chunk runs in the flow's own thread, unless the runner is Dask:
    a Dask campaign of one chunk per batch had never used its cluster."""
    chunks = [chunk.tolist() for chunk in np.array_split(np.arange(len(recipes)), config.runner.chunks_per_batch)
              if chunk.size]
    if len(chunks) == 1 and config.runner.kind != "dask":
        return [work(recipes, *args)]
    futures = [work.submit([recipes[i] for i in chunk], *args) for chunk in chunks]
    return [future.result() for future in futures]


def evaluate_in_chunks(recipes: list[dict], p: ModelParameters, config: CampaignConfig) -> list[Evaluation]:
    """Evaluate one batch of candidates with the numpy model, split over the runner's workers."""
    parts = in_chunks(evaluate_batch_task, recipes, config, p, config.scoring())
    return [evaluation for part in parts for evaluation in part]


def campaign_evaluator(config: CampaignConfig, p: ModelParameters):
    """``recipes -> evaluations`` at the campaign's fidelity: the numpy model, or (``fidelity: physics``) PyBaMM
    with its fitted values (:func:`surrogate.physics.calibrated_physics_parameters`, fitted once and cached)."""
    if config.fidelity == "model":
        return lambda recipes: evaluate_in_chunks(recipes, p, config)
    from surrogate.physics import calibrated_physics_parameters

    q = calibrated_physics_parameters(p)

    def evaluate(recipes: list[dict]) -> list[Evaluation]:
        parts = in_chunks(evaluate_physics_task, recipes, config, p, q, config.objective)
        return [evaluation for part in parts for evaluation in part]

    return evaluate


def physics_check(campaign: Campaign, p: ModelParameters, quiet: bool = False,
                  ensemble=None) -> fidelity.Ranking | None:
    """Re-rank the campaign's top-k model recipes with the PyBaMM model (None when the check is off).

    PyBaMM replaces the numpy model's choice only by a candidate it scores better by more than
    ``physics_check.numerical_noise_mAh_per_g`` plus the model's 90 % uncertainty on the two recipes' objective
    difference, from ``ensemble`` (a :func:`flows.evaluation.lazy_ensemble`; None: the noise alone); otherwise the
    ranking reports agreement (:func:`flows.fidelity.rank`).

    Progress (console and Prefect's run logger) moves per recipe: on one worker the recipes are solved one at a
    time (the built PyBaMM models are cached per thread, so nothing is rebuilt); split over several workers, per
    finished chunk."""
    config = campaign.config
    if (config.physics_check.top_k == 0 or config.fidelity == "physics"  # PyBaMM scored every evaluation already
            or not any(e.ok and e.predicted for e in campaign.evaluations)):
        return None
    if config.objectives:  # the PyBaMM fidelity scores the capacity objective only
        return None
    from surrogate.physics import calibrated_physics_parameters

    q = calibrated_physics_parameters(p)
    candidates, reference = physics_candidates(campaign)
    recipes = [campaign.evaluations[i].recipe for i in candidates]
    progress = reporting.StepProgress("physics check (PyBaMM)", len(recipes), quiet)
    try:
        if config.runner.chunks_per_batch == 1:
            parts = []
            for recipe in recipes:
                parts.append(physics_check_task([recipe], p, q, config.objective))
                progress.advance(_physics_detail(parts[-1]))
                interrupts.check()  # Ctrl-C between two solves stops here, not after the whole check
        else:
            parts = in_chunks(physics_check_task, recipes, config, p, q, config.objective)
            progress.advance(f"{config.runner.chunks_per_batch} chunks", parts=len(recipes))
    finally:
        progress.close()
    return fidelity.rank_candidates(pd.concat(parts, ignore_index=True), candidates, recipes, reference, config,
                                    ensemble)


def physics_candidates(campaign: Campaign) -> tuple[list[int], int]:
    """The evaluations the physics check re-scores (the top-k model evaluations, plus the numpy model's own pick by
    the cheapest-equivalent rule, so that rule can pick it) and the position of that pick among them."""
    candidates = fidelity.top_candidates(campaign.evaluations, campaign.config.physics_check.top_k)
    cheapest = _cheapest_model_equivalent(campaign)
    if cheapest is not None and cheapest not in candidates:
        candidates.append(cheapest)
    return candidates, candidates.index(cheapest) if cheapest is not None else 0


def _physics_detail(part: pd.DataFrame) -> str:
    """One recipe's outcome of the physics check, for its progress line."""
    row = part.iloc[0]
    recipe = f"Sn {row['sn_mass_fraction']:.2f}, {row['milling_time_h']:.3g} h"
    if row["physics_status"] != "FINISHED":
        return f"{recipe}: PyBaMM failed"
    return (f"{recipe}: objective {row['physics_objective']:.1f} mAh/g by PyBaMM, "
            f"{row['model_objective']:.1f} by the numpy model")


def _cheapest_model_equivalent(campaign: Campaign) -> int | None:
    """The model evaluation the cheapest-equivalent rule picks among the model's evaluations."""
    from flows.recommendation import cheapest_equivalent

    indexes = [i for i, e in enumerate(campaign.evaluations) if e.ok and e.predicted]
    if not indexes:
        return None
    k, _ = cheapest_equivalent(indexes, [campaign.evaluations[i].objective for i in indexes],
                               [campaign.evaluations[i].recipe for i in indexes],
                               campaign.config.recommendation.tolerance_pct)
    return indexes[k]


def recalibrate_on_lab(campaign: Campaign, p: ModelParameters, recorder: CampaignRecorder,
                       quiet: bool) -> ModelParameters:
    """With ``recalibrate_on_observations``, the model refitted on the study's data plus the lab rows (logged:
    each parameter's move and the lab error before and after); otherwise ``p`` unchanged."""
    if not (campaign.config.recalibrate_on_observations and campaign.lab and campaign.lab.measured):
        return p
    from flows.recalibration import recalibrate

    recalibration = recalibrate(campaign.config, campaign.lab)
    recorder.tracker.log(recorder.run_id, metrics=recalibration.metrics())
    recorder.tracker.log_files(recorder.run_id, {"recalibration_parameters.csv": recalibration.parameter_moves,
                                                 "recalibration_lab_predictions.csv":
                                                     recalibration.prediction_moves})
    if not quiet:
        print(recalibration.report_text())
    return recalibration.parameters


def teach_lab_parameters(campaign: Campaign, p: ModelParameters, recorder: CampaignRecorder,
                         quiet: bool) -> "LabCalibratedPrior | None":
    """With measured lab rows, the lab's own values of the assumed parameters in ``lab_parameters`` (the mill, the
    atmosphere, the powders, the cells), estimated from those rows alone (:func:`flows.search.lab_calibrated_prior`: the
    estimate and its posterior), or None when there is nothing to estimate.

    The campaign then searches the lab's model: what the lab measured moves the recommendation through the
    parameters it taught. (Told to the optimiser's GP beside the model's own evaluations, the lab rows were
    outweighed by them: around every lab point the model's evaluations read as results with no discrepancy.) The
    estimate is logged (``lab_parameters.csv``, ``lab_parameter.*`` metrics) and the parameters it moved by at least
    half a prior sd are printed."""
    lab = campaign.lab
    if not (lab and lab.measured):
        return None
    prior = lab_calibrated_prior(campaign.config, p, lab.measured)
    if prior is None:
        return None
    table = prior_parameter_table(prior)
    recorder.log_lab_parameters(table)
    if not quiet:
        reporting.print_lab_parameters(table)
    return prior


def compare_with_lab(campaign: Campaign, p: ModelParameters, recorder: CampaignRecorder, quiet: bool,
                     taught: ModelParameters | None = None) -> None:
    """The model's error at the campaign's measured lab points (and that of ``taught``, the model with the lab's
    own parameters): logged, and printed unless quiet."""
    if not campaign.lab or not campaign.lab.measured:
        return
    errors = model_error_table(campaign.lab, lab_predictions(campaign.lab, p, campaign.config),
                               lab_predictions(campaign.lab, taught, campaign.config) if taught is not None else None)
    recorder.log_lab_comparison(errors)
    if not quiet:
        reporting.print_model_error(errors, campaign.lab.path)
    # against the study's model, as snhc suggest checks: a model refitted on the lab rows has learned the odd value
    for line in surprising_values(campaign.lab, campaign_parameters(campaign.config)[0], campaign.config):
        reporting.say(f"[bold]lab value to check[/]: {line}", quiet)
    if taught is not None:
        for label, line in teaching_notes(campaign.lab, p, taught, campaign.config, errors):
            reporting.say(f"[bold]{label}[/]: {line}", quiet)


def rescore_on_resume(campaign: Campaign, p: ModelParameters, recorder: CampaignRecorder, quiet: bool) -> None:
    """A resumed campaign's saved predictions, scored again by the model this run searches
    (:meth:`flows.campaign.Campaign.rescore`): those another model scored (its lab rows changed since) are replaced,
    saved and said; their child runs keep the values logged then."""
    replaced = campaign.rescore(campaign_evaluator(campaign.config, p))
    if not replaced:
        return
    recorder.save_state()
    reporting.say(f"[bold]resumed[/]: {replaced} of the campaign's saved model evaluations had been scored by another "
                  f"model than this run's (the lab rows it was given differ from those before): scored again by this "
                  f"one (their child runs keep the values logged then)", quiet)


def model_optimum_stage(campaign: Campaign, p: ModelParameters, recorder: CampaignRecorder, quiet: bool,
                        pending=None, progress: bool = False):
    """The model's own optimum and its cheapest equivalent join the candidates
    (:func:`flows.model_optimum.add_model_optimum`, evaluated and saved like a batch), and the optimiser's regret
    against the optimum is logged; a failed search is a tag, never a reason to fail the campaign. ``pending``: the
    search, started in the background when the campaign began (:func:`flows.model_optimum.in_background`).
    ``progress``: its line goes to stderr with the progress (inside a what-if study, whose comparison is the
    result); a campaign of its own says it with its results."""
    config = campaign.config
    try:
        found = add_model_optimum(campaign, p, lambda recipes: evaluate_in_chunks(recipes, p, config),
                                  recorder.after_batch, atomic=interrupts.deferred, pending=pending)
    except Exception as error:  # noqa: BLE001 - a report, never a reason to fail the campaign
        recorder.tracker.log(recorder.run_id, tags={"model_optimum_failed": f"{type(error).__name__}: {error}"})
        return
    if found is not None:
        best = campaign.best_objective(sources=(MODEL,))
        recorder.log_model_optimum(found.recipe, found.objective, best)
        first = config.scoring().objectives[0] if config.objectives else None
        reporting.say(reporting.model_optimum_note(found, best, added=not config.multi_objective,
                                                   first_objective=first, front=config.multi_objective), quiet,
                      progress)


@dataclass(frozen=True)
class CampaignResult:
    """Outcome of one campaign: the MLflow run, the recommendation and the full evaluation table."""

    run_id: str
    experiment_id: str
    recommendation: Recommendation
    n_failed: int
    table: pd.DataFrame

    @property
    def recipe(self) -> dict[str, Any]:
        return self.recommendation.recipe

    @property
    def metrics(self) -> dict[str, float]:
        return self.recommendation.evaluation.metrics

    def summary(self) -> dict[str, Any]:
        r = self.recommendation
        return {"run_id": self.run_id, "experiment_id": self.experiment_id, "recipe": r.recipe,
                "metrics": r.headline(),
                "interval_90": {k: v for k, v in r.intervals.items() if k in r.headline()},
                "extrapolated": {k: v for k, v in r.extrapolated.items() if k in r.headline()},
                "surrogate_mean": r.surrogate_mean,
                "surrogate_std": r.surrogate_std, "n_failed": self.n_failed, "fidelity": r.fidelity_note,
                "notes": r.notes(), "beyond_calibrated_recipes": dict(r.beyond_data),
                "conditions_beyond_data": r.conditions_beyond}


def run_campaign(campaign: Campaign, parent_run_id: str | None = None, quiet: bool = False) -> CampaignResult:
    """Run one optimisation campaign and log it; the body of :func:`optimise_anode`, reused by what-ifs."""
    interrupts.install()  # Prefect's flow engine installed its own SIGTERM handler: the campaign's comes first
    config = campaign.config
    p, calibration = calibrate_task(config)
    ensemble = lazy_ensemble(p, calibration)  # one per campaign: the child runs' intervals and the physics check
    intervals_of = (interval_function(p, calibration, config.scoring(), ensemble)
                    if config.tracking.log_evaluation_intervals and config.tracking.log_evaluation_runs else None)
    recorder = CampaignRecorder(campaign, store_for(config.tracking), calibration, intervals_of)
    with recorder.run(parent_run_id, str(flow_run.get_id())) as run_id:
        if campaign.saved:
            new_rows = sum(e.source == LAB for e in campaign.evaluations[campaign.saved:])
            added = (f"; {new_rows} lab rows new since ({campaign.lab.path.name}): they teach the model this run "
                     f"searches, so the recommendation may move" if new_rows else "")
            saved = campaign.evaluations[:campaign.saved]
            asked = campaign.model_evaluations()  # what the budget counts (new lab rows are not asked for)
            others = ", ".join(f"{n} {what}" for what, n in (
                ("dense-search candidates", sum(e.source == DENSE_SEARCH for e in saved)),
                ("lab rows", sum(e.source == LAB for e in saved))) if n)
            reporting.say(f"[bold]resuming run {run_id}[/]: {asked} of {config.optimiser.n_calls} evaluations saved"
                          f"{f' (and {others})' if others else ''}, told to the optimiser again (not evaluated "
                          f"again){added}", quiet, progress=True)
        refit = recalibrate_on_lab(campaign, p, recorder, quiet)
        if refit is not p:  # refitted on the lab's rows as well: its intervals are the study's, carried to the refit
            p, ensemble = refit, lazy_ensemble(refit, calibration)
            if intervals_of is not None:
                recorder.intervals_of = interval_function(p, calibration, config.scoring(), ensemble)
        study_p = p  # the model before a lab's rows teach it its own parameters
        lab_prior = teach_lab_parameters(campaign, p, recorder, quiet)
        taught = lab_prior.estimated_parameters() if lab_prior is not None else None
        compare_with_lab(campaign, p, recorder, quiet, taught)
        if taught is not None and config.recommendation.limits:  # before the run they were checked only without
            # lab rows (on the study's model); the lab's model, known now, may meet them or not: said, not refused
            try:
                check_limits_reachable(config, "the lab's model", taught)
            except ConfigError as error:
                reporting.say(f"[bold]recommendation limits[/]: {error}; the recommendation will be the front point "
                              f"closest to them", quiet)
        if taught is not None:  # with lab results the campaign searches the lab's model; its intervals are that
            # model's: the study's uncertainty and the lab parameters' posterior, weighted by the lab's rows
            rows = teaching_rows(config, campaign.lab.measured)
            p, ensemble = taught, lazy_ensemble(taught, calibration, lab_prior, rows)
            if intervals_of is not None:
                recorder.intervals_of = interval_function(p, calibration, config.scoring(), ensemble)
        surrogate_only = config.fidelity == "model"  # a physics campaign's evaluations are PyBaMM's already
        if surrogate_only and campaign.saved:
            rescore_on_resume(campaign, p, recorder, quiet)
        # The model's own optimum needs no evaluation of the optimiser's: searched while the optimiser searches.
        dense = in_background(config, p) if surrogate_only else None
        progress = reporting.BatchProgress(campaign, quiet)
        # Ctrl-C / SIGTERM stop at once, except while a batch is evaluated and saved: that finishes first.
        search = run_pareto_search if config.multi_objective else partial(run_search, p=p)
        optimizer = search(campaign, campaign_evaluator(config, p),
                           lambda batch, evaluations: (recorder.after_batch(batch, evaluations), progress(batch)),
                           atomic=interrupts.deferred)
        progress.close()
        if surrogate_only:
            known = len(campaign.evaluations)
            # a what-if's scenario (a child of its study's run): a step of the study, whose comparison is the result
            model_optimum_stage(campaign, p, recorder, quiet, dense, progress=parent_run_id is not None)
            # The optimiser learns the dense search's recipes too (one refit): its GP's belief at the recommendation
            # and its partial-dependence plot then rest on every evaluation, not only on those it asked for (its GP
            # put the default campaign's recommended recipe at 86 +- 26 mAh/g where the model gives 341).
            tell_known(optimizer, config, list(zip(campaign.points[known:], campaign.evaluations[known:])))
        if config.physics_check.top_k and not config.multi_objective and surrogate_only:
            progress.note(f"physics check: re-evaluating the top {config.physics_check.top_k} recipes, and the "
                          f"numpy model's pick if not among them, with PyBaMM")
        ranking = physics_check(campaign, p, quiet, ensemble)
        interrupts.check()  # a signal whose raise was swallowed inside the check (a finaliser) stops here
        if ranking is not None:
            recorder.log_physics_check(ranking)
            progress.note(f"[bold]physics check[/]: {ranking.summary()}")
        recommendation = with_intervals(recommend(campaign, optimizer, ranking), config, p, ensemble(),
                                        "the numpy model" if taught is None else "the lab's model")
        if taught is not None:  # say where the lab's rows, not the study, decide the recommended recipe's score
            recommendation = with_lab_note(recommendation, campaign, study_p)
        recommendation = with_moved_note(with_measured_note(recommendation, campaign), campaign,
                                         recorder.previous_recommendation)
        interrupts.check()
        files = reporting.campaign_figures(campaign.table(), optimizer, campaign.points[recommendation.index])
        if config.multi_objective:  # the front replaces the single-objective plots (they would show a scalarisation)
            files = {"evaluations.csv": files["evaluations.csv"]}
            front = with_uncertainty(campaign, pareto_table(campaign), ensemble())
            chosen = int(np.flatnonzero(front["evaluation"].to_numpy() == recommendation.index)[0])
            files |= front_files(campaign, front, chosen)
        for line in recommendation.notes():
            progress.note(f"[bold]recommendation[/]: {line}")
        recorder.log_recommendation(recommendation, files)
    reporting.publish_recommendation(config, recommendation, run_id)
    return CampaignResult(run_id, recorder.experiment_id, recommendation, campaign.failed(), campaign.table())


@flow(name="optimise-anode")
def optimise_anode(config_path: str | None = None, overrides: CampaignOverrides | None = None,
                   resume_run_id: str | None = None, observations_path: str | None = None,
                   campaign_token: str | None = None) -> dict[str, Any]:
    """Find the Sn:HC ratio and milling recipe that maximise the campaign objective.

    Parameters
    ----------
    config_path : campaign YAML (default ``configs/default.yaml``); ignored when resuming.
    overrides : nested keys merged onto the config before validation (e.g. ``{"optimiser": {"n_calls": 20}}``);
        typed (:data:`flows.config.CampaignOverrides`: the config's keys, types and ranges, all optional), so
        Prefect's run form shows each field and rejects an unknown key or a value out of range.
    resume_run_id : continue this MLflow run from its last saved state (its saved config, plus ``overrides``).
    observations_path : lab CSV whose measured results warm-start the campaign.
    campaign_token : a campaign the CLI already built and validated (:func:`flows.campaign.hand_over`); then the
        arguments above only label the run and nothing is read twice.
    """
    with secrets_masked():  # a deployment's failure (state, run log) never shows a store's credentials
        campaign = (take_over(campaign_token) if campaign_token
                    else build_campaign(config_path, overrides_document(overrides), resume_run_id, observations_path))
        runner = task_runner_for(campaign.config)
        if runner is None:
            return run_campaign(campaign).summary()
        # A flow's task runner is fixed when it starts: a Dask campaign runs as one subflow on that runner (one
        # subflow per campaign costs about a second; the evaluations inside it are tasks).
        return campaign_on_runner.with_options(task_runner=runner)(hand_over(campaign))


@flow(name="optimise-anode-on-runner")
def campaign_on_runner(campaign_token: str) -> dict[str, Any]:
    """The campaign body on a non-default task runner (see :func:`optimise_anode`)."""
    with secrets_masked():
        return run_campaign(take_over(campaign_token)).summary()


def task_runner_for(config: CampaignConfig):
    """The Prefect task runner a campaign asks for (Dask: a local cluster or an existing scheduler)."""
    if config.runner.kind == "thread":
        return None
    from prefect_dask import DaskTaskRunner

    if config.runner.address:
        return DaskTaskRunner(address=config.runner.address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": config.runner.n_workers, "threads_per_worker": 1,
                                          "processes": True, "dashboard_address": None})
