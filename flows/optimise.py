"""The optimisation flow: calibrate, then ask/tell Bayesian optimisation over recipes, tracked in MLflow.

``optimise_anode`` is the Prefect flow. Each batch of candidates is evaluated by one Prefect task (a task costs
milliseconds, a subflow about a second). MLflow gets one parent run per campaign and one child run per evaluated
recipe, logged through ``MlflowClient`` with explicit run ids.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import yaml
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows import fidelity, reporting
from flows import state as state_module
from flows.config import CampaignConfig, deep_merge, load_config, validate_config
from flows.evaluation import Evaluation, evaluate_batch
from flows.inputs import redact_document
from flows.observations import LabData, model_error_table, read_observations
from flows.search import SearchState, point_of, run_search, surrogate_prediction
from flows.tracking import Tracker, source_tags
from surrogate.calibration import Calibration, calibrate
from surrogate.objective import PredictionRequest
from surrogate.parameters import ModelParameters


def campaign_parameters(config: CampaignConfig) -> tuple[ModelParameters, Calibration]:
    """Model parameters of a campaign: its assumed overrides, calibrated, then its objective settings.

    With ``recalibrate`` the free parameters are refitted under the overridden assumptions, so the model still
    reproduces the study's data; without it the study's calibration is kept and only the overridden values change
    (the question "what if the material itself were different?"). The objective never changes the fit.
    """
    assumed = ModelParameters.load().with_values(**config.model_parameters)
    calibration = calibrate(assumed if config.recalibrate else ModelParameters.load())
    return calibration.apply(assumed).with_values(**config.objective.as_parameters()), calibration


@task(name="calibrate", cache_policy=NO_CACHE)
def calibrate_task(config: CampaignConfig) -> tuple[ModelParameters, Calibration]:
    """Load the cached calibration for this config's assumptions, or refit it."""
    return campaign_parameters(config)


@task(name="evaluate-batch", retries=2, retry_delay_seconds=1, cache_policy=NO_CACHE)
def evaluate_batch_task(recipes: list[dict[str, float]], p: ModelParameters) -> list[Evaluation]:
    """Evaluate one batch of candidate recipes (model failures come back as FAILED evaluations)."""
    return evaluate_batch(recipes, p)


@task(name="physics-check", retries=1, retry_delay_seconds=1, cache_policy=NO_CACHE)
def physics_check_task(recipes: list[dict[str, float]], p: ModelParameters):
    """Re-evaluate candidate recipes with the PyBaMM model (failed solves come back as FAILED rows)."""
    return fidelity.physics_scores(recipes, p)


def in_chunks(work, recipes: list[dict[str, float]], config: CampaignConfig, *args) -> list:
    """Run a task over ``runner.chunks_per_batch`` chunks submitted together, so they can run on separate workers
    (Dask), and gather the results in order."""
    chunks = [chunk.tolist() for chunk in np.array_split(np.arange(len(recipes)), config.runner.chunks_per_batch)
              if chunk.size]
    if len(chunks) == 1:
        return [work(recipes, *args)]
    futures = [work.submit([recipes[i] for i in chunk], *args) for chunk in chunks]
    return [future.result() for future in futures]


def evaluate_in_chunks(recipes: list[dict[str, float]], p: ModelParameters, config: CampaignConfig
                       ) -> list[Evaluation]:
    """Evaluate one batch of candidates, split over the runner's workers."""
    return [evaluation for part in in_chunks(evaluate_batch_task, recipes, config, p) for evaluation in part]


def physics_check(state: SearchState, p: ModelParameters, config: CampaignConfig) -> fidelity.Ranking:
    """Re-rank the campaign's top-k recipes with the PyBaMM model, split over the runner's workers."""
    candidates = fidelity.top_candidates(state.evaluations, config.physics_check.top_k)
    recipes = [state.evaluations[i].recipe for i in candidates]
    parts = in_chunks(physics_check_task, recipes, config, p)
    table = pd.concat(parts, ignore_index=True)
    table.insert(0, "evaluation", candidates)
    return fidelity.rank(table)


def _log_physics_check(tracker: Tracker, run_id: str, ranking: fidelity.Ranking) -> None:
    """Both fidelities side by side: on each candidate's child run, in a table, and as agreement metrics."""
    child_of = {int(run.data.tags["evaluation"]): run.info.run_id for run in tracker.children(run_id)
                if "evaluation" in run.data.tags}
    for _, row in ranking.table.iterrows():
        if int(row["evaluation"]) in child_of:
            tracker.log(child_of[int(row["evaluation"])], metrics={
                "physics.capacity_at_target_mAh_per_g": row["physics_capacity_at_target_mAh_per_g"],
                "physics.objective": row["physics_objective"]}, tags={"physics_status": row["physics_status"]})
    chosen = ranking.table.iloc[ranking.chosen]
    tracker.log(run_id, params={"recommended.ranked_by": ranking.ranked_by},
                metrics={"fidelity.rank_correlation": ranking.rank_correlation,
                         "fidelity.objective_difference_pct": ranking.objective_difference_pct,
                         "recommended.physics_objective": chosen["physics_objective"],
                         "recommended.physics_capacity_at_target_mAh_per_g":
                             chosen["physics_capacity_at_target_mAh_per_g"]},
                tags={"fidelity_summary": ranking.summary()})
    tracker.log_files(run_id, {"fidelity_comparison.csv": ranking.table})


def task_runner_for(config: CampaignConfig):
    """The Prefect task runner a campaign asks for (Dask: a local cluster or an existing scheduler)."""
    if config.runner.kind == "thread":
        return None
    from prefect_dask import DaskTaskRunner

    if config.runner.address:
        return DaskTaskRunner(address=config.runner.address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": config.runner.n_workers, "threads_per_worker": 1,
                                          "processes": True, "dashboard_address": None})


@dataclass(frozen=True)
class CampaignResult:
    """Outcome of one campaign: the MLflow run, the recommendation and the full evaluation table."""

    run_id: str
    experiment_id: str
    recipe: dict[str, float]
    metrics: dict[str, float]
    surrogate_mean: float
    surrogate_std: float
    n_failed: int
    table: Any  # pandas.DataFrame
    fidelity_note: str = ""

    def summary(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "experiment_id": self.experiment_id, "recipe": self.recipe,
                "metrics": reporting.headline(self.metrics), "surrogate_mean": self.surrogate_mean,
                "surrogate_std": self.surrogate_std, "n_failed": self.n_failed, "fidelity": self.fidelity_note}


def flatten(document: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config -> dotted keys (MLflow params are flat)."""
    flat = {}
    for key, value in document.items():
        if isinstance(value, dict) and value:
            flat |= flatten(value, f"{prefix}{key}.")
        elif not isinstance(value, dict):
            flat[f"{prefix}{key}"] = value
    return flat


def lab_predictions(lab: LabData, p: ModelParameters, config: CampaignConfig) -> list[Evaluation]:
    """Model predictions at the lab recipes, for every metric the lab measured (cycles at the target current)."""
    names = {name for e in lab.measured for name in e.metrics}
    currents = sorted({float(m.group(1)) for n in names if (m := re.match(r"capacity_at_([0-9.]+)_A_per_g", n))})
    cycles = sorted({int(m.group(1)) for n in names if (m := re.match(r"capacity_at_cycle_([0-9]+)_", n))})
    request = PredictionRequest(tuple(currents) or PredictionRequest.currents_A_per_g, config.objective.current_A_per_g,
                                tuple(cycles) or PredictionRequest.cycles, config.objective.temperature_C)
    return evaluate_batch([e.recipe for e in lab.measured], p, request)


def _known_from(resume: dict | None, lab: LabData | None, config: CampaignConfig):
    """Evaluations a campaign starts from: a resumed run's saved ones, plus lab results not already in it."""
    known = state_module.evaluations_of(resume) if resume else []
    if lab:
        already = {tuple(e.recipe.values()) for _, e, _ in known if e.source == "lab"}
        known += [(point_of(e.recipe, config), e, -1) for e in lab.measured if tuple(e.recipe.values()) not in already]
    return known


def _forget_orphans(tracker: Tracker, run_id: str, saved: int) -> int:
    """Delete child runs of evaluations that were logged but never saved (the batch in flight at a kill)."""
    orphans = [run for run in tracker.children(run_id) if int(run.data.tags.get("evaluation", -1)) >= saved]
    for run in orphans:
        tracker.client.delete_run(run.info.run_id)
    return len(orphans)


def run_campaign(config: CampaignConfig, parent_run_id: str | None = None, quiet: bool = False,
                 resume_run_id: str | None = None, lab: LabData | None = None) -> CampaignResult:
    """Run one optimisation campaign and log it; the body of :func:`optimise_anode`, reused by what-ifs.

    With ``resume_run_id`` the campaign continues that MLflow run from its last saved state; with ``lab`` the
    measured results are told to the optimiser first and never evaluated.
    """
    p, calibration = calibrate_task(config)
    settings = config.tracking
    tracker = Tracker(settings.tracking_uri, settings.experiment_name, settings.artifact_location)
    resume = state_module.load_state(tracker.client, resume_run_id) if resume_run_id else None
    known = _known_from(resume, lab, config)
    tags = {"campaign": config.name, "config_sha256": config.digest(), "prefect_flow_run_id": str(flow_run.get_id()),
            "calibration_data_sha256": calibration.data_sha256, **source_tags()}
    with tracker.run(f"optimise-{config.name}", tags, parent_run_id, resume_run_id) as run_id:
        if resume_run_id:
            removed = _forget_orphans(tracker, run_id, len(resume["evaluations"]))
            tracker.log(run_id, tags={"resumed_from_evaluation": len(resume["evaluations"]),
                                      "orphan_runs_removed": removed})
        else:
            tracker.log(run_id, params=flatten(config.model_dump(mode="json")))
            tracker.log_text(run_id, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), "config.yaml")
        logged = len(resume["evaluations"]) if resume else 0
        for index, (_, evaluation, batch) in enumerate(known[logged:], start=logged):
            if settings.log_evaluation_runs:
                tracker.log_evaluation(run_id, index, batch, evaluation)
        if lab:
            _log_lab_comparison(tracker, run_id, lab, p, config, quiet)
        if not resume:
            state_module.save_state(tracker, run_id, -1,
                                    state_module.state_document(config, SearchState.from_known(known)))

        def after_batch(batch: int, evaluations: list[Evaluation], state: SearchState) -> None:
            done = len(state.evaluations)
            if settings.log_evaluation_runs:
                for offset, evaluation in enumerate(evaluations):
                    tracker.log_evaluation(run_id, done - len(evaluations) + offset, batch, evaluation)
            state_module.save_state(tracker, run_id, batch, state_module.state_document(config, state))
            failed = sum(not e.ok for e in state.evaluations)
            tracker.log(run_id, metrics={"best_objective": state.best_objective(), "failed_evaluations": failed},
                        step=done)
            if not quiet:
                reporting.console.print(
                    f"[bold]{config.name}[/] batch {batch + 1}: {state.model_evaluations()}/"
                    f"{config.optimiser.n_calls} evaluations, {failed} failed, "
                    f"best objective {state.best_objective():.1f} mAh/g")

        optimizer, state = run_search(config, lambda recipes: evaluate_in_chunks(recipes, p, config), after_batch,
                                      known)
        best = state.best_index()
        if best is None:
            raise RuntimeError(f"all {len(state.evaluations)} evaluations failed; first reason: "
                               f"{state.evaluations[0].reason}")
        ranking = None
        if config.physics_check.top_k > 0 and any(e.ok and e.source == "model" for e in state.evaluations):
            ranking = physics_check(state, p, config)
            best = int(ranking.table.iloc[ranking.chosen]["evaluation"])
            _log_physics_check(tracker, run_id, ranking)
            if not quiet:
                reporting.console.print(f"[bold]physics check[/]: {ranking.summary()}")
        recommended = state.evaluations[best]
        mean, std = surrogate_prediction(optimizer, state.points[best])
        tracker.log(run_id,
                    params={f"recommended.{k}": v for k, v in recommended.recipe.items()} | {
                        "recommended.source": recommended.source},
                    metrics={**{f"recommended.{k}": v for k, v in recommended.metrics.items()},
                             "recommended.surrogate_mean_objective": mean,
                             "recommended.surrogate_std_objective": std})
        table = state.table()
        files = {"evaluations.csv": table, "calibration_report.txt": calibration.report_text(),
                 "convergence.png": reporting.convergence_figure(table)}
        objective_plot = reporting.objective_figure(optimizer)
        if objective_plot is not None:
            files["objective.png"] = objective_plot
        tracker.log_files(run_id, files)
        tracker.log_text(run_id, json.dumps(recommended.recipe, indent=2), "recommended_recipe.json")
        reporting.plt.close("all")

    fidelity_note = ranking.summary() if ranking else "ranked by the surrogate (physics check off)"
    markdown = reporting.recommendation_markdown(config.name, recommended.recipe,
                                                 reporting.headline(recommended.metrics), (mean, std), run_id,
                                                 settings.experiment_name, fidelity_note)
    create_markdown_artifact(markdown, key=_artifact_key(config.name), description="Recommended Sn/HC anode recipe")
    return CampaignResult(run_id, tracker.experiment_id, recommended.recipe, recommended.metrics, mean, std,
                          sum(not e.ok for e in state.evaluations), table, fidelity_note)


def _log_lab_comparison(tracker, run_id, lab: LabData, p, config, quiet: bool) -> None:
    """The surrogate's error at the measured points: artifact, MAPE metrics, console table."""
    errors = model_error_table(lab, lab_predictions(lab, p, config))
    if errors.empty:
        return
    tracker.log_files(run_id, {"lab_vs_model.csv": errors})
    mape = errors.groupby("metric")["error_pct"].apply(lambda e: e.abs().mean())
    tracker.log(run_id, metrics={f"lab_mape_pct.{metric}": value for metric, value in mape.items()})
    if not quiet:
        reporting.print_model_error(errors, lab.path)


def _artifact_key(name: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    key = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    return f"recommendation-{key or 'campaign'}"


@flow(name="optimise-anode")
def optimise_anode(config_path: str | None = None, overrides: dict[str, Any] | None = None,
                   resume_run_id: str | None = None, observations_path: str | None = None) -> dict[str, Any]:
    """Find the Sn:HC ratio and milling recipe that maximise the campaign objective.

    Parameters
    ----------
    config_path : campaign YAML (default ``configs/default.yaml``); ignored when resuming.
    overrides : nested keys merged onto the config before validation (e.g. ``{"optimiser": {"n_calls": 20}}``).
    resume_run_id : continue this MLflow run from its last saved state (its saved config, plus ``overrides``).
    observations_path : lab CSV whose measured results warm-start the campaign.
    """
    config = resolve_config(config_path, overrides, resume_run_id)
    lab = read_observations(observations_path, config) if observations_path else None
    runner = task_runner_for(config)
    if runner is None:
        return run_campaign(config, resume_run_id=resume_run_id, lab=lab).summary()
    # A flow's task runner is fixed when it starts: a Dask campaign runs as one subflow on that runner (one
    # subflow per campaign costs about a second; the evaluations inside it are tasks).
    campaign = campaign_on_runner.with_options(task_runner=runner)
    return campaign(redact_document(config.model_dump(mode="json")), resume_run_id, observations_path)


@flow(name="optimise-anode-on-runner")
def campaign_on_runner(config: dict[str, Any], resume_run_id: str | None = None,
                       observations_path: str | None = None) -> dict[str, Any]:
    """The campaign body on a non-default task runner (see :func:`optimise_anode`)."""
    campaign = validate_config(config, "campaign")
    lab = read_observations(observations_path, campaign) if observations_path else None
    return run_campaign(campaign, resume_run_id=resume_run_id, lab=lab).summary()


def resolve_config(config_path: str | None, overrides: dict[str, Any] | None,
                   resume_run_id: str | None) -> CampaignConfig:
    """The campaign's config: from the file, or, when resuming, the run's saved config (with overrides)."""
    if not resume_run_id:
        return load_config(config_path, overrides)
    base = load_config(config_path, overrides)
    client = Tracker.client_for(base.tracking.tracking_uri)
    state_module.check_resumable(client, resume_run_id, base.tracking.experiment_name)
    saved = state_module.config_of(state_module.load_state(client, resume_run_id), resume_run_id)
    return validate_config(deep_merge(saved.model_dump(mode="json"), overrides or {}), f"run {resume_run_id}")
