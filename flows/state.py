"""Campaign state, saved after every batch so a campaign survives a crash and can be resumed.

The state is plain JSON (never pickle): the validated config, and every evaluation with its recipe, point in the
search space, status, objective, metrics, failure reason, batch and source (model or lab). Each batch writes a new
artifact ``state/batch-NNNN.json`` in the campaign's MLflow run; a file is never rewritten, so a kill during a
write can only truncate the newest one, and loading falls back to the newest file that parses.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException

from flows.config import CampaignConfig, ConfigError, validate_config
from flows.evaluation import Evaluation
from flows.inputs import redact_document

STATE_FOLDER = "state"
STATE_VERSION = 1


def state_document(config: CampaignConfig, state) -> dict[str, Any]:
    """JSON-ready campaign state from a :class:`flows.search.SearchState`."""
    return {
        "version": STATE_VERSION,
        "config": redact_document(config.model_dump(mode="json")),  # the real URI stays in memory
        "evaluations": [
            {"index": i, "batch": batch, "point": point, "recipe": e.recipe, "status": e.status,
             "objective": e.objective, "metrics": e.metrics, "reason": e.reason, "source": e.source}
            for i, (point, e, batch) in enumerate(zip(state.points, state.evaluations, state.batches))
        ],
    }


def save_state(tracker, run_id: str, batch: int, document: dict[str, Any]) -> None:
    """Write the state of the campaign after ``batch`` (-1: before the first) as a new artifact."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"batch-{batch + 1:04d}.json"
        path.write_text(json.dumps(document, allow_nan=True), encoding="utf-8")
        tracker.client.log_artifact(run_id, str(path), STATE_FOLDER)


def load_state(client, run_id: str) -> dict[str, Any]:
    """The newest complete saved state of a campaign run (raises ConfigError if there is none)."""
    try:
        files = sorted((a.path for a in client.list_artifacts(run_id, STATE_FOLDER)), reverse=True)
    except MlflowException as error:
        raise ConfigError(f"run {run_id}: cannot read its saved state ({error})") from None
    with tempfile.TemporaryDirectory() as folder:
        for name in files:
            try:
                local = client.download_artifacts(run_id, name, folder)
                document = json.loads(Path(local).read_text(encoding="utf-8"))
            except (OSError, ValueError, MlflowException):
                continue  # truncated by a kill mid-write: use the previous batch
            if document.get("version") == STATE_VERSION:
                return document
    raise ConfigError(f"run {run_id}: no saved campaign state (was it started by `snhc optimise`?)")


def check_resumable(client, run_id: str, experiment_name: str) -> None:
    """A resume id must name a campaign (parent) run of the configured experiment."""
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise ConfigError(f"--resume {run_id}: unknown run id in this tracking store") from None
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None or run.info.experiment_id != experiment.experiment_id:
        other = client.get_experiment(run.info.experiment_id).name
        raise ConfigError(f"--resume {run_id}: the run belongs to experiment {other!r}, not {experiment_name!r}")
    if "mlflow.parentRunId" in run.data.tags and "evaluation" in run.data.tags:
        raise ConfigError(f"--resume {run_id}: that is one evaluation's run; give its campaign (parent) run id")


def config_of(document: dict[str, Any], run_id: str) -> CampaignConfig:
    return validate_config(document["config"], f"run {run_id} saved config")


def evaluations_of(document: dict[str, Any]) -> list[tuple[list[float], Evaluation, int]]:
    """(point, evaluation, batch) for every saved evaluation, in order."""
    return [(item["point"], Evaluation(item["recipe"], item["status"], float(item["objective"]), item["metrics"],
                                       item["reason"], item.get("source", "model")), item["batch"])
            for item in document["evaluations"]]
