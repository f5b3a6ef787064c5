"""The optimisation flow: calibrate, then ask/tell Bayesian optimisation over recipes, tracked in MLflow.

``optimise_anode`` is the Prefect flow. Each batch of candidates is evaluated by one Prefect task (a task costs
milliseconds, a subflow about a second). MLflow gets one parent run per campaign and one child run per evaluated
recipe, logged through ``MlflowClient`` with explicit run ids.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows import reporting
from flows.config import CampaignConfig, load_config
from flows.evaluation import Evaluation, evaluate_batch
from flows.search import SearchState, run_search, surrogate_prediction
from flows.tracking import Tracker, source_tags
from surrogate.calibration import Calibration, calibrate
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

    def summary(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "experiment_id": self.experiment_id, "recipe": self.recipe,
                "metrics": reporting.headline(self.metrics), "surrogate_mean": self.surrogate_mean,
                "surrogate_std": self.surrogate_std, "n_failed": self.n_failed}


def flatten(document: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config -> dotted keys (MLflow params are flat)."""
    flat = {}
    for key, value in document.items():
        if isinstance(value, dict) and value:
            flat |= flatten(value, f"{prefix}{key}.")
        elif not isinstance(value, dict):
            flat[f"{prefix}{key}"] = value
    return flat


def run_campaign(config: CampaignConfig, parent_run_id: str | None = None, quiet: bool = False) -> CampaignResult:
    """Run one optimisation campaign and log it; the body of :func:`optimise_anode`, reused by what-ifs."""
    p, calibration = calibrate_task(config)
    settings = config.tracking
    tracker = Tracker(settings.tracking_uri, settings.experiment_name, settings.artifact_location)
    tags = {"campaign": config.name, "config_sha256": config.digest(), "prefect_flow_run_id": str(flow_run.get_id()),
            "calibration_data_sha256": calibration.data_sha256, **source_tags()}
    with tracker.run(f"optimise-{config.name}", tags, parent_run_id) as run_id:
        tracker.log(run_id, params=flatten(config.model_dump(mode="json")))
        tracker.log_text(run_id, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), "config.yaml")

        def after_batch(batch: int, evaluations: list[Evaluation], state: SearchState) -> None:
            done = len(state.evaluations)
            if settings.log_evaluation_runs:
                for offset, evaluation in enumerate(evaluations):
                    tracker.log_evaluation(run_id, done - len(evaluations) + offset, batch, evaluation)
            failed = sum(not e.ok for e in state.evaluations)
            tracker.log(run_id, metrics={"best_objective": state.best_objective(), "failed_evaluations": failed},
                        step=done)
            if not quiet:
                reporting.console.print(
                    f"[bold]{config.name}[/] batch {batch + 1}: {done}/{config.optimiser.n_calls} evaluations, "
                    f"{failed} failed, best objective {state.best_objective():.1f} mAh/g")

        optimizer, state = run_search(config, lambda recipes: evaluate_batch_task(recipes, p), after_batch)
        best = state.best_index()
        if best is None:
            raise RuntimeError(f"all {len(state.evaluations)} evaluations failed; first reason: "
                               f"{state.evaluations[0].reason}")
        recommended = state.evaluations[best]
        mean, std = surrogate_prediction(optimizer, state.points[best])
        tracker.log(run_id,
                    params={f"recommended.{k}": v for k, v in recommended.recipe.items()},
                    metrics={**{f"recommended.{k}": v for k, v in recommended.metrics.items()},
                             "recommended.surrogate_mean_objective": mean,
                             "recommended.surrogate_std_objective": std})
        table = state.table()
        losses = [-e.objective if e.ok else -config.optimiser.failure_penalty for e in state.evaluations]
        files = {"evaluations.csv": table, "calibration_report.txt": calibration.report_text(),
                 "convergence.png": reporting.convergence_figure(table)}
        objective_plot = reporting.objective_figure(optimizer, state.points, losses)
        if objective_plot is not None:
            files["objective.png"] = objective_plot
        tracker.log_files(run_id, files)
        tracker.log_text(run_id, json.dumps(recommended.recipe, indent=2), "recommended_recipe.json")
        reporting.plt.close("all")

    markdown = reporting.recommendation_markdown(config.name, recommended.recipe,
                                                 reporting.headline(recommended.metrics), (mean, std), run_id,
                                                 settings.experiment_name)
    create_markdown_artifact(markdown, key=_artifact_key(config.name), description="Recommended Sn/HC anode recipe")
    return CampaignResult(run_id, tracker.experiment_id, recommended.recipe, recommended.metrics, mean, std,
                          sum(not e.ok for e in state.evaluations), table)


def _artifact_key(name: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    key = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    return f"recommendation-{key or 'campaign'}"


@flow(name="optimise-anode")
def optimise_anode(config_path: str | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Find the Sn:HC ratio and milling recipe that maximise the campaign objective.

    Parameters
    ----------
    config_path : campaign YAML (default ``configs/default.yaml``).
    overrides : nested keys merged onto the file before validation (e.g. ``{"optimiser": {"n_calls": 20}}``).
    """
    config = load_config(config_path, overrides)
    return run_campaign(config).summary()
