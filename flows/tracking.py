"""MLflow tracking through ``MlflowClient`` with explicit run ids.

The fluent "active run" is thread-local and does not cross Prefect's worker threads, so every call here names its
run. Runs are always terminated: FINISHED on success, FAILED (with the reason as a tag) otherwise.
"""

from __future__ import annotations

import math
import os
import subprocess
import tempfile
import time
import warnings
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from datetime import datetime, timezone
from typing import Iterator, Mapping

from filelock import FileLock
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT, MLFLOW_PARENT_RUN_ID

from flows.inputs import json_text, redact, reveal, write_csv
from flows.interrupts import CampaignInterrupted
from flows.evaluation import DENSE_SEARCH, LAB, MODEL, PHYSICS
from flows.metrics import display_number, extrapolated_column, interval_columns
from surrogate.paths import PROJECT_ROOT

LAID_OUT = "laid-out"  # a figure's gid when it fits its own canvas: saved as it is, without a tight bounding box

MAX_PARAM_LENGTH = 6000
CONFIG_TAG = "snhc.config"  # the campaign's validated config (JSON), set when its run is created
RESUMES_TAG = "resumed_from_evaluations"  # each resume's first evaluation, in order ("12, 40")
BUDGET_TAG = "optimiser.n_calls_extended_to"  # a resume's --n-calls where it differs from the param (write-once)
NOTE_TAG = "mlflow.note.content"  # MLflow shows this tag as the run's description
RECOMMENDATION_TABLE = "recommendation.json"  # the recommendation as one MLflow table (Evaluation / Artifacts view)


def run_name(campaign: str, seed: int | None, started: datetime | None = None) -> str:
    """A parent run's name that says which campaign, which seed and when (UTC), e.g. ``default-seed42-20261201T190305``.

    Examples
    --------
    >>> run_name("default", 42, datetime(2026, 12, 1, 19, 3, 5, tzinfo=timezone.utc))
    'default-seed42-20261201T190305'
    """
    started = started or datetime.now(timezone.utc)
    seed_part = f"-seed{seed}" if seed is not None else ""
    return f"{campaign}{seed_part}-{started.astimezone(timezone.utc):%Y%m%dT%H%M%S}"


def artifact_location_for(tracking_uri: str, configured: str | None) -> str | None:
    """Artifact root of a new experiment: configured, else ``artifacts/`` beside a SQLite store."""
    if configured:
        return configured
    if tracking_uri.startswith("sqlite:///"):
        database = Path(tracking_uri.removeprefix("sqlite:///")).resolve()
        return (database.parent / "artifacts").as_uri()
    return None  # a tracking server decides


SUPPRESS_RUN_LINKS = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"


def open_client(tracking_uri: str) -> MlflowClient:
    """A client on the store, creating a SQLite store's folder and schema first if needed.

    MLflow builds a new SQLite store's schema on first use; two campaigns starting at once on a new store would
    run those migrations together and collide, so first use happens under an exclusive file lock. A redacted URI
    (from a state file or a Prefect parameter) is turned back into the real one kept in memory. The store keeps
    SQLite's default rollback journal: write-ahead logging saved at most ~5 ms a child run
    (benchmarks/mlflow_logging.py) and nothing measurable in a campaign's wall time.
    """
    # MLflow prints a "View run ... at: <tracking URI>" line for every run it ends on a server, credentials and all;
    # the campaign prints its own link, masked (flows.reporting.mlflow_run_url)
    os.environ[SUPPRESS_RUN_LINKS] = "true"
    tracking_uri = reveal(tracking_uri)
    if not tracking_uri.startswith("sqlite:///"):
        return MlflowClient(tracking_uri=tracking_uri)
    database = Path(tracking_uri.removeprefix("sqlite:///"))
    database.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(database.with_name(database.name + ".lock")):  # portable (fcntl does not exist on Windows)
        client = MlflowClient(tracking_uri=tracking_uri)
        client.search_experiments(max_results=1)  # creates or migrates the schema
    return client


def source_tags() -> dict[str, str]:
    """MLflow's own tag for the git commit of the code that produced a run."""
    return {MLFLOW_GIT_COMMIT: git_commit()}


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                              timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


TAG_CUT = "\n\n... (cut at MLflow's tag length; the run's artifacts hold the whole of it)"


def bounded_tag(text: str) -> str:
    """A tag value within MLflow's length limit, cut with a line that says so: MLflow cuts a longer one itself,
    mid-sentence, with a warning on the console (a what-if study's description with its notes reached 8 324
    characters)."""
    from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

    if len(text) <= MAX_TAG_VAL_LENGTH:
        return text
    return text[: MAX_TAG_VAL_LENGTH - len(TAG_CUT)].rsplit("\n", 1)[0] + TAG_CUT


class Tracker:
    """One experiment in one tracking store."""

    def __init__(self, tracking_uri: str, experiment_name: str, artifact_location: str | None = None):
        self.client = self.client_for(tracking_uri)
        experiment = self.client.get_experiment_by_name(experiment_name)
        if experiment is None:
            try:
                self.experiment_id = self.client.create_experiment(
                    experiment_name,
                    artifact_location=artifact_location_for(reveal(tracking_uri), reveal(artifact_location)))
            except MlflowException:  # another campaign created it a moment ago
                self.experiment_id = self.client.get_experiment_by_name(experiment_name).experiment_id
        else:
            self.experiment_id = experiment.experiment_id

    @staticmethod
    def client_for(tracking_uri: str) -> MlflowClient:
        return open_client(tracking_uri)

    def children(self, run_id: str) -> list:
        """Child runs of a run (active ones)."""
        return self.client.search_runs([self.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'",
                                       max_results=50_000)

    def start_run(self, name: str, tags: Mapping[str, str] | None = None, parent_run_id: str | None = None) -> str:
        tags = {key: redact(str(value)) for key, value in (tags or {}).items()}
        if parent_run_id:
            tags[MLFLOW_PARENT_RUN_ID] = parent_run_id
        return self.client.create_run(self.experiment_id, run_name=redact(name), tags=tags).info.run_id

    @contextmanager
    def run(self, name: str, tags: Mapping[str, str] | None = None, parent_run_id: str | None = None,
            resume_run_id: str | None = None) -> Iterator[str]:
        """A run that ends FINISHED, or FAILED with the error as tag ``failure_reason`` (and re-raises).

        With ``resume_run_id`` an existing run of this experiment is reopened instead of creating one.
        """
        if resume_run_id:
            self.client.update_run(resume_run_id, status="RUNNING")
            run_id = resume_run_id
        else:
            run_id = self.start_run(name, tags, parent_run_id)
        try:
            yield run_id
        except CampaignInterrupted as interrupt:
            self.client.set_tag(run_id, "stopped_by", str(interrupt))
            self.client.set_terminated(run_id, "KILLED")
            raise
        except BaseException as error:
            self.fail(run_id, f"{type(error).__name__}: {error}")
            raise
        self.client.set_terminated(run_id, "FINISHED")

    def fail(self, run_id: str, reason: str) -> None:
        self.client.set_tag(run_id, "failure_reason", redact(reason)[:5000])
        self.client.set_terminated(run_id, "FAILED")

    def log(self, run_id: str, params: Mapping[str, object] | None = None,
            metrics: Mapping[str, float] | None = None, tags: Mapping[str, str] | None = None,
            step: int = 0) -> None:
        """Params, metrics (non-finite ones skipped) and tags in one call; params and tags are redacted."""
        now = int(time.time() * 1000)
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, step) for k, v in (metrics or {}).items() if math.isfinite(float(v))],
            params=[Param(k, redact(str(v))[:MAX_PARAM_LENGTH]) for k, v in (params or {}).items()],
            tags=[RunTag(k, bounded_tag(redact(str(v)))) for k, v in (tags or {}).items()],
        )

    def log_evaluation(self, parent_run_id: str, index: int, batch: int, evaluation,
                       intervals: Mapping[str, list[float]] | None = None,
                       flags: Mapping[str, bool] | None = None) -> str:
        """One child run for one evaluated recipe: recipe as params (6 significant digits, for reading: the exact
        values are in the campaign state and ``evaluations.csv``), objective and metrics, FINISHED or FAILED.

        ``intervals`` (metric -> [low, high], the model's 90 % interval) go beside each metric as
        ``<metric>_interval_90_low`` and ``<metric>_interval_90_high``, and ``flags`` (metric -> beyond the data)
        as ``<metric>_extrapolated`` (1 or 0)."""
        run_id = self.start_run(f"evaluation-{index:04d}", {"batch": str(batch), "evaluation": str(index),
                                                             "source": evaluation.source}, parent_run_id)
        bands = {column: bound for name, band in (intervals or {}).items()
                 for column, bound in zip(interval_columns(name), band)}
        bands |= {extrapolated_column(name): float(flag) for name, flag in (flags or {}).items()}
        self.log(run_id, params={k: display_number(v, 6) for k, v in evaluation.recipe.items()},
                 metrics=evaluation.metrics | {"objective": evaluation.objective} | bands)
        if evaluation.ok:
            self.client.set_terminated(run_id, evaluation.status.value)
        else:
            self.fail(run_id, evaluation.reason)
        return run_id

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.client.log_text(run_id, redact(text), artifact_file)

    def log_files(self, run_id: str, files: Mapping[str, object]) -> None:
        """Write artifacts through a temporary folder: name -> str (text), DataFrame (CSV) or Figure (PNG).

        Text and CSV are redacted, and CSV cells that a spreadsheet would run as formulas are escaped."""
        with tempfile.TemporaryDirectory() as folder:
            for name, content in files.items():
                path = Path(folder) / name
                if hasattr(content, "savefig"):
                    content.savefig(path, dpi=120, bbox_inches=None if content.get_gid() == LAID_OUT else "tight")
                elif hasattr(content, "to_csv"):
                    write_csv(content, path)
                else:
                    path.write_text(redact(str(content)), encoding="utf-8")
                self.client.log_artifact(run_id, str(path))


def flatten(document: dict, prefix: str = "") -> dict:
    """Nested config -> dotted keys (MLflow params are flat)."""
    flat = {}
    for key, value in document.items():
        if isinstance(value, dict) and value:
            flat |= flatten(value, f"{prefix}{key}.")
        elif not isinstance(value, dict):
            flat[f"{prefix}{key}"] = value
    return flat


class CampaignRecorder:
    """A campaign's MLflow record, fed as callbacks by the flow (as Optuna's MLflow callback is).

    One parent run per campaign (config as params and ``config.yaml``, ``best_objective`` per batch, the
    recommendation, artifacts) and one child run per evaluation. State goes to the campaign's state store after
    every batch, so the run can be resumed.
    """

    def __init__(self, campaign, store, calibration=None, intervals_of=None):
        settings = campaign.config.tracking
        self.campaign = campaign
        self.tracker = Tracker(settings.tracking_uri, settings.experiment_name, settings.artifact_location)
        self.store = store
        self.calibration = calibration
        self.intervals_of = intervals_of  # recipes -> [(intervals, flags)] for child runs (None: neither)
        self.run_id: str | None = None
        self.physics_of_chosen: dict[str, float] = {}  # PyBaMM's values at the recommended recipe, when checked
        self.previous_recommendation: int | None = None  # a resumed run's last recommended evaluation (its index)

    @property
    def experiment_id(self) -> str:
        return self.tracker.experiment_id

    @contextmanager
    def run(self, parent_run_id: str | None = None, prefect_flow_run_id: str = "") -> Iterator[str]:
        """The campaign's parent run: created (or reopened when resuming), FINISHED, FAILED or KILLED at the end.

        The run is created with its config as a tag, so even a run killed before its first state save can be
        resumed (from its config, with no evaluations).
        """
        import json

        import yaml

        campaign, config = self.campaign, self.campaign.config
        tags = {"campaign": config.name, "config_sha256": config.digest(), "prefect_flow_run_id": prefect_flow_run_id,
                CONFIG_TAG: json.dumps(config.model_dump(mode="json"), separators=(",", ":")), **source_tags()}
        if self.calibration is not None:
            tags["calibration_data_sha256"] = self.calibration.data_sha256
        if config.description:
            tags[NOTE_TAG] = config.description  # the run's description in the MLflow UI
        name = run_name(config.name, config.optimiser.seed)
        with self.tracker.run(name, tags, parent_run_id, campaign.run_id) as run_id:
            self.run_id = run_id
            resumed = campaign.run_id is not None
            if resumed:
                run_now = self.tracker.client.get_run(run_id).data
                tags_now = run_now.tags
                if (previous := tags_now.get("recommended.evaluation", "")).isdigit():
                    self.previous_recommendation = int(previous)
                for stale in ("failure_reason", "stopped_by"):  # stale: the campaign goes on (a finished resumed run
                    if stale in tags_now:  # had kept "stopped by SIGINT")
                        self.tracker.client.delete_tag(run_id, stale)
                removed = self._forget_orphans(campaign.saved)
                # every resume's start, not only the last one's; and the budget it now runs to, where an extension
                # changed it (MLflow params are write-once: optimiser.n_calls stays the first run's)
                history = ", ".join(filter(None, [tags_now.get(RESUMES_TAG), str(campaign.saved)]))
                resume_tags = {RESUMES_TAG: history, "orphan_runs_removed": removed}
                first_budget = run_now.params.get("optimiser.n_calls")
                if first_budget is not None and first_budget != str(config.optimiser.n_calls):
                    resume_tags[BUDGET_TAG] = config.optimiser.n_calls
                elif BUDGET_TAG in tags_now:  # resumed back to the first budget: an earlier extension's tag is stale
                    self.tracker.client.delete_tag(run_id, BUDGET_TAG)
                self.tracker.log(run_id, tags=resume_tags)
            else:
                campaign.run_id = run_id
                document = config.model_dump(mode="json")
                self.tracker.log(run_id, params=flatten(document))
                self.tracker.log_text(run_id, yaml.safe_dump(document, sort_keys=False), "config.yaml")
            self._log_evaluations(campaign.saved)
            if not resumed:
                self.store.save(run_id, -1, campaign.to_document())
            yield run_id

    def _log_evaluations(self, start: int) -> None:
        if not self.campaign.config.tracking.log_evaluation_runs:
            return
        campaign = self.campaign
        indices = range(start, len(campaign.evaluations))
        intervals = self._intervals([i for i in indices if campaign.evaluations[i].ok
                                     and campaign.evaluations[i].modelled])
        for index in indices:
            self.tracker.log_evaluation(self.run_id, index, campaign.batches[index], campaign.evaluations[index],
                                        *intervals.get(index, (None, None)))

    def _intervals(self, indices: list[int]) -> dict[int, tuple[dict[str, list[float]], dict[str, bool]]]:
        """The model's intervals and extrapolation flags of these evaluations; a failure there costs them, not the
        campaign."""
        if self.intervals_of is None or not indices:
            return {}
        try:
            evaluations = [self.campaign.evaluations[i] for i in indices]
            bands = self.intervals_of([e.recipe for e in evaluations], [e.metrics for e in evaluations])
        except Exception as error:  # noqa: BLE001 - the child runs are still logged, without bands
            warnings.warn(f"child-run intervals skipped: {type(error).__name__}: {error}", stacklevel=2)
            return {}
        return dict(zip(indices, bands))

    def _forget_orphans(self, saved: int) -> int:
        """Delete child runs of evaluations that were logged but never saved (the batch in flight at a kill)."""
        orphans = [run for run in self.tracker.children(self.run_id)
                   if int(run.data.tags.get("evaluation", -1)) >= saved]
        for run in orphans:
            self.tracker.client.delete_run(run.info.run_id)
        return len(orphans)

    def after_batch(self, batch: int, evaluations) -> None:
        """Child runs of the batch, the saved state, and the best objective so far (step = evaluations)."""
        campaign = self.campaign
        self._log_evaluations(len(campaign.evaluations) - len(evaluations))
        self.save_state(batch)
        # the search's best, as the console's batch lines say it; a lab's best measured row is a metric of its own
        # (a measurement of a recipe already made, not a prediction: the two answer different questions)
        metrics = {"failed_evaluations": campaign.failed()}
        if math.isfinite(best := campaign.best_modelled_objective()):
            metrics["best_objective"] = best
        lab_best = campaign.best_objective(sources=(LAB,))  # the capacity objective's score, as a lab row's is
        if not campaign.config.objectives and math.isfinite(lab_best):
            metrics["lab_best_objective"] = lab_best
        self.tracker.log(self.run_id, metrics=metrics, step=len(campaign.evaluations))

    def save_state(self, batch: int | None = None) -> None:
        """The campaign's state to its store, as of ``batch`` (default: its last)."""
        batch = max(self.campaign.batches, default=-1) if batch is None else batch
        self.store.save(self.run_id, batch, self.campaign.to_document())

    def log_lab_comparison(self, errors) -> None:
        """The model's error at the measured points: artifact and MAPE metrics per metric (``lab_mape_pct.*``; and
        ``lab_model_mape_pct.*`` for the model with the lab's own parameters, when the table has it)."""
        self.tracker.log_files(self.run_id, {"lab_vs_model.csv": errors})
        for column, prefix in (("error_pct", "lab_mape_pct"), ("lab_model_error_pct", "lab_model_mape_pct")):
            if column in errors:
                mape = errors.groupby("metric")[column].apply(lambda e: e.abs().mean())
                self.tracker.log(self.run_id, metrics={f"{prefix}.{metric}": value for metric, value in mape.items()})

    def log_lab_parameters(self, table) -> None:
        """The lab's own parameters as the lab's results estimated them: ``lab_parameters.csv`` and metrics."""
        from flows.suggest import lab_parameter_metrics

        self.tracker.log(self.run_id, metrics=lab_parameter_metrics(table))
        self.tracker.log_files(self.run_id, {"lab_parameters.csv": table})

    def log_model_optimum(self, recipe: dict, objective: float, best_objective: float) -> None:
        """The model's own optimum (dense search) and the campaign's regret against it, as metrics (step =
        evaluations, so an extended campaign shows its regret shrink)."""
        regret = objective - best_objective
        self.tracker.log(self.run_id, step=len(self.campaign.evaluations),
                         metrics={"model_optimum.objective": objective, "regret_mAh_per_g": regret,
                                  "regret_pct": 100.0 * regret / abs(objective) if objective else float("nan")},
                         tags={f"model_optimum.{k}": display_number(v, 6) for k, v in recipe.items()})

    def log_physics_check(self, ranking) -> None:
        """Both fidelities side by side: on each candidate's child run, in a table, and as agreement metrics."""
        child_of = {int(run.data.tags["evaluation"]): run.info.run_id for run in self.tracker.children(self.run_id)
                    if "evaluation" in run.data.tags}
        from flows.evaluation import model_form_interval

        fresh = f"capacity_at_{self.campaign.config.objective.current_A_per_g:g}_A_per_g_mAh_per_g"
        for _, row in ranking.table.iterrows():
            if int(row["evaluation"]) in child_of:
                run_id = child_of[int(row["evaluation"])]
                values = {"physics.capacity_at_target_mAh_per_g": (row["physics_capacity_at_target_mAh_per_g"], fresh),
                          "physics.objective": (row["physics_objective"], "objective")}
                # each PyBaMM value's 90 % interval: the numpy model's band of the same quantity moved to it, joined
                # with that band (flows.evaluation.model_form_interval), as snhc predict --fidelity physics gives it
                logged = self.tracker.client.get_run(run_id).data.metrics
                bands = {}
                for name, (value, model_name) in values.items():
                    low, high = interval_columns(model_name)
                    if all(k in logged for k in (model_name, low, high)) and math.isfinite(float(value)):
                        bands |= dict(zip(interval_columns(name), model_form_interval(
                            float(value), logged[model_name], [logged[low], logged[high]])))
                self.tracker.log(run_id, metrics={name: value for name, (value, _) in values.items()} | bands,
                                 tags={"physics_status": row["physics_status"]})
        chosen = ranking.table.iloc[ranking.chosen]
        # the PyBaMM values of the chosen recipe go into the recommendation table, not one-bar metric charts: its
        # objective, the capacity it scores (PyBaMM's fresh capacity aged by the numpy model to the objective's
        # cycle) and that fresh capacity at the objective's current, each under the name of what it is
        from flows.fidelity import PHYSICS_AGED_CAPACITY

        fresh = f"capacity_at_{self.campaign.config.objective.current_A_per_g:g}_A_per_g_mAh_per_g"
        self.physics_of_chosen = {"objective": float(chosen["physics_objective"]),
                                  "objective_capacity_mAh_per_g": float(chosen[PHYSICS_AGED_CAPACITY]),
                                  fresh: float(chosen["physics_capacity_at_target_mAh_per_g"])}
        self.tracker.log(self.run_id,
                         metrics={"fidelity.rank_correlation": ranking.rank_correlation,
                                  "fidelity.objective_difference_pct": ranking.objective_difference_pct,
                                  "fidelity.physics_gain_mAh_per_g": ranking.physics_gain_mAh_per_g,
                                  "fidelity.tolerance_mAh_per_g": ranking.tolerance_mAh_per_g},
                         tags={"fidelity_summary": ranking.summary(), "recommended.ranked_by": ranking.ranked_by,
                               "fidelity.agreement": str(ranking.agreement).lower()})
        self.tracker.log_files(self.run_id, {"fidelity_comparison.csv": ranking.table})

    def log_recommendation(self, recommendation, files: Mapping[str, object]) -> None:
        """The recommendation, versioned: recipe as tags (tags may change when a campaign is extended; MLflow params
        may not), one readable table (``recommendation.json``: recipe and predicted metrics with units, rounded), the
        exact values as ``recommended_recipe.json`` per recommendation, and the report files.

        The recommended recipe's objective and headline predictions are also metrics (``recommended.objective``,
        ``recommended.<metric>``, step = evaluations so far): the runs table and the compare view sort, filter and
        plot campaigns by metrics, not by tags or artifacts, and an extended campaign's recommendation keeps a
        history. Each prediction's 90 % interval and extrapolation flag (1: beyond the data) sit beside it
        (``recommended.<metric>_interval_90_low`` / ``_high``, ``recommended.<metric>_extrapolated``), as the child
        runs' do: the runs table had shown the recommendation's numbers bare. The optimiser GP's mean and sd at the
        recommended point sit beside them.
        """
        campaign = self.campaign
        evaluation = recommendation.evaluation
        step = len(campaign.evaluations)
        # the headline predictions, not a recipe field (a milling-time objective is the recipe's own, a tag above)
        # nor, for a multi-objective campaign, its scalar "objective" (its first objective's score alone)
        headline = {k: v for k, v in recommendation.headline().items() if k not in evaluation.recipe}
        metrics = ({} if campaign.config.objectives else {"recommended.objective": evaluation.objective}) \
            | {f"recommended.{k}": v for k, v in headline.items()} \
            | {f"recommended.{column}": bound for k in headline
               for column, bound in zip(interval_columns(k), recommendation.intervals.get(k, ()))} \
            | {f"recommended.{extrapolated_column(k)}": float(recommendation.extrapolated[k]) for k in headline
               if k in recommendation.extrapolated} \
            | {"recommended.optimiser_surrogate_mean_objective": recommendation.surrogate_mean,
               "recommended.optimiser_surrogate_std_objective": recommendation.surrogate_std}
        metrics = {k: v for k, v in metrics.items() if math.isfinite(float(v))}
        # a metric an earlier recommendation of this run logged and this one has not (a measured lab row recommended
        # after a prediction) would stay as its latest value beside the new recipe's: it is logged as NaN
        earlier = self.tracker.client.get_run(self.run_id).data.metrics
        stale = [k for k in earlier if k.startswith("recommended.") and k not in metrics]
        self.tracker.log(self.run_id, step=step,
                         tags={f"recommended.{k}": display_number(v, 6) for k, v in evaluation.recipe.items()}
                         | {"recommended.source": evaluation.source, "recommended.evaluation": recommendation.index},
                         metrics=metrics)
        if stale:
            self.tracker.client.log_batch(self.run_id, metrics=[
                Metric(k, float("nan"), int(time.time() * 1000), step) for k in stale])
        # PyBaMM's values are of the check's pick: a measured lab recipe recommended instead has none
        physics = self.physics_of_chosen if recommendation.evaluation.modelled else None
        table = recommendation_table(recommendation, step, physics)
        self.tracker.client.log_table(self.run_id, data=table, artifact_file=RECOMMENDATION_TABLE)
        sources = Counter(e.source for e in campaign.evaluations)
        self.tracker.log(self.run_id, tags={NOTE_TAG: run_description(campaign.config, table, sources)})
        document = json_text(recommendation.record())  # strict: a multi-objective run has no GP mean (null)
        self.tracker.log_text(self.run_id, document, "recommended_recipe.json")
        self.tracker.log_text(self.run_id, document, f"recommendations/after-{step:04d}-evaluations.json")
        report = dict(files)
        if self.calibration is not None:
            report["calibration_report.txt"] = self.calibration.report_text()
        self.tracker.log_files(self.run_id, report)


NOTE_ROW = "note"  # the ``what`` of a recommendation-table row that is a sentence: its rule, a search bound, ...


def recommendation_table(recommendation, after_evaluations: int, physics: Mapping[str, float] | None = None):
    """The recommendation as rows of (what, quantity, value, unit, flag): the recipe, the predicted headline metrics
    (flag ``extrapolated`` beyond the study's data), the PyBaMM check's values when there was one, the optimiser GP's
    belief at that recipe, then one ``note`` row per sentence the console prints with it (the fidelity, the rule, a
    search bound, a recipe beyond the calibration's materials): the MLflow run page must warn as the console does.
    Values are rounded to 4 significant digits for reading; the exact values are in ``recommended_recipe.json``."""
    import pandas as pd

    from flows.metrics import display_number, unit_of, words
    from flows.reporting import EXTRAPOLATED, GP_SD_MEANING, span

    evaluation = recommendation.evaluation
    flag = {name: EXTRAPOLATED if recommendation.extrapolated.get(name) else "" for name in recommendation.headline()}
    rows = [("recipe", words(name), display_number(value), unit_of(name), "")
            for name, value in evaluation.recipe.items()]
    kind = "predicted" if evaluation.modelled else "measured"  # a lab row recommended: its numbers are the lab's
    rows += [(kind, words(name), display_number(value), unit_of(name), flag[name])
             for name, value in recommendation.headline().items()]
    rows += [("predicted, 90 % interval", words(name), span(display_number(band[0]), display_number(band[1])),
              unit_of(name), flag[name])
             for name, band in recommendation.intervals.items()
             if name in recommendation.headline() and band[0] != band[1]]  # equal ends: exact (milling time), none
    rows += [("PyBaMM check", words(name), display_number(value), unit_of(name), "") for name, value in
             (physics or {}).items()]
    if math.isfinite(recommendation.surrogate_mean):  # a multi-objective campaign has no GP on one objective
        rows += [("optimiser GP at this recipe", "mean of objective", display_number(recommendation.surrogate_mean),
                  "mAh/g", ""),
                 ("optimiser GP at this recipe", f"sd of objective ({GP_SD_MEANING})",
                  display_number(recommendation.surrogate_std), "mAh/g", "")]
    rows += [(NOTE_ROW, "", note, "", "") for note in (recommendation.fidelity_note, *recommendation.notes()) if note]
    table = pd.DataFrame(rows, columns=["what", "quantity", "value", "unit", "flag"])
    table.insert(0, "after_evaluations", after_evaluations)  # appended rows of an extended campaign stay apart
    return table


SOURCE_WORDS = {MODEL: "searched", PHYSICS: "searched with PyBaMM", DENSE_SEARCH: "from the dense search",
                LAB: "lab rows"}


def run_description(config, table, sources: Mapping[str, int] | None = None) -> str:
    """The run's description (Markdown, shown on the run page): what the campaign asks, then its recommendation,
    with where its evaluations came from (``sources``: evaluation source -> count): a run of budget 60 had read
    "after 70 evaluations" with its dense-search recipes and lab rows unsaid."""
    made = ", ".join(f"{n} {SOURCE_WORDS.get(source, source)}" for source, n in (sources or {}).items() if n)
    lines = [config.description or f"Campaign `{config.name}`", "",
             f"Objective{'s' if config.multi_objective else ''}: {config.scoring().describe()}.", "",
             f"**Recommendation after {int(table['after_evaluations'].iloc[0])} evaluations**"
             + (f" ({made})" if made else ""), "",
             "| | quantity | value | unit | |", "|---|---|---|---|---|"]
    lines += [f"| {row.what} | {row.quantity} | {row.value} | {row.unit} | {row.flag} |"
              for row in table.itertuples() if row.what != NOTE_ROW]
    notes = [f"- {row.value}" for row in table.itertuples() if row.what == NOTE_ROW]
    return "\n".join(lines + ([""] + notes if notes else []))
