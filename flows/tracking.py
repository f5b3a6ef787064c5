"""MLflow tracking through ``MlflowClient`` with explicit run ids.

The fluent "active run" is thread-local and does not cross Prefect's worker threads, so every call here names its
run. Runs are always terminated: FINISHED on success, FAILED (with the reason as a tag) otherwise.
"""

from __future__ import annotations

import fcntl
import math
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_GIT_COMMIT

from flows.inputs import redact, reveal, write_csv
from surrogate.paths import PROJECT_ROOT

MAX_PARAM_LENGTH = 6000


def artifact_location_for(tracking_uri: str, configured: str | None) -> str | None:
    """Artifact root of a new experiment: configured, else ``artifacts/`` beside a SQLite store."""
    if configured:
        return configured
    if tracking_uri.startswith("sqlite:///"):
        database = Path(tracking_uri.removeprefix("sqlite:///")).resolve()
        return (database.parent / "artifacts").as_uri()
    return None  # a tracking server decides


def open_client(tracking_uri: str) -> MlflowClient:
    """A client on the store, creating a SQLite store's folder and schema first if needed.

    MLflow builds a new SQLite store's schema on first use; two campaigns starting at once on a new store would
    run those migrations together and collide, so first use happens under an exclusive file lock. A redacted URI
    (from a state file or a Prefect parameter) is turned back into the real one kept in memory.
    """
    tracking_uri = reveal(tracking_uri)
    if not tracking_uri.startswith("sqlite:///"):
        return MlflowClient(tracking_uri=tracking_uri)
    database = Path(tracking_uri.removeprefix("sqlite:///"))
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(database.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            client = MlflowClient(tracking_uri=tracking_uri)
            client.search_experiments(max_results=1)  # creates or migrates the schema
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
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
        tags = dict(tags or {})
        if parent_run_id:
            tags[MLFLOW_PARENT_RUN_ID] = parent_run_id
        return self.client.create_run(self.experiment_id, run_name=name, tags=tags).info.run_id

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
            tags=[RunTag(k, redact(str(v))) for k, v in (tags or {}).items()],
        )

    def log_evaluation(self, parent_run_id: str, index: int, batch: int, evaluation) -> str:
        """One child run for one evaluated recipe: recipe as params, objective and metrics, FINISHED or FAILED."""
        run_id = self.start_run(f"evaluation-{index:04d}", {"batch": str(batch), "evaluation": str(index),
                                                             "source": evaluation.source}, parent_run_id)
        self.log(run_id, params=evaluation.recipe, metrics=evaluation.metrics | {"objective": evaluation.objective})
        if evaluation.ok:
            self.client.set_terminated(run_id, "FINISHED")
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
                    content.savefig(path, dpi=120, bbox_inches="tight")
                elif hasattr(content, "to_csv"):
                    write_csv(content, path)
                else:
                    path.write_text(redact(str(content)), encoding="utf-8")
                self.client.log_artifact(run_id, str(path))
