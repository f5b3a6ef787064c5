"""Where campaign state lives, behind one small contract (like Optuna's storages).

A :class:`StateStore` saves a campaign's JSON document (:meth:`flows.campaign.Campaign.to_document`) after every
batch and loads the newest complete one. Documents are append-only: each save writes a new
``state/batch-NNNN.json`` and never rewrites one, so a kill during a write can only truncate the newest file, and
loading falls back to the newest file that parses.

Two backends: :class:`MlflowStateStore` (artifacts of the campaign's MLflow run, the default) and
:class:`FolderStateStore` (a local folder, one sub-folder per run id). A new backend implements ``save`` and
``load``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Protocol

from flows.config import ConfigError, Tracking

STATE_FOLDER = "state"


def state_file_name(batch: int) -> str:
    """File of the state saved after ``batch`` (-1: before the first)."""
    return f"batch-{batch + 1:04d}.json"


def newest_complete(documents) -> dict[str, Any] | None:
    """The first document (newest first) that parses as campaign state of the current version."""
    from flows.campaign import STATE_VERSION

    for read in documents:
        try:
            document = json.loads(read())
        except (OSError, ValueError):
            continue  # truncated by a kill mid-write: use the previous batch
        if isinstance(document, dict) and document.get("version") == STATE_VERSION:
            return document
    return None


class StateStore(Protocol):
    """The contract: save a document after a batch, load the newest complete one of a run."""

    def save(self, run_id: str, batch: int, document: dict[str, Any]) -> None: ...

    def load(self, run_id: str, experiment_name: str) -> dict[str, Any]: ...


class MlflowStateStore:
    """State as artifacts ``state/batch-NNNN.json`` of the campaign's MLflow run."""

    def __init__(self, client):
        self.client = client

    def save(self, run_id: str, batch: int, document: dict[str, Any]) -> None:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / state_file_name(batch)
            path.write_text(json.dumps(document, allow_nan=True), encoding="utf-8")
            self.client.log_artifact(run_id, str(path), STATE_FOLDER)

    def load(self, run_id: str, experiment_name: str) -> dict[str, Any]:
        """The newest complete state of a campaign run of ``experiment_name`` (ConfigError if there is none)."""
        from mlflow.exceptions import MlflowException

        self._check_resumable(run_id, experiment_name)
        try:
            files = sorted((a.path for a in self.client.list_artifacts(run_id, STATE_FOLDER)), reverse=True)
        except MlflowException as error:
            raise ConfigError(f"run {run_id}: cannot read its saved state ({error})") from None
        with tempfile.TemporaryDirectory() as folder:
            def reader(name):
                def read():
                    try:
                        return Path(self.client.download_artifacts(run_id, name, folder)).read_text(encoding="utf-8")
                    except MlflowException as error:
                        raise OSError(str(error)) from None
                return read

            document = newest_complete(reader(name) for name in files)
        if document is None:
            self._check_nothing_lost(run_id)
            document = self._config_only(run_id)
        return document

    def _check_nothing_lost(self, run_id: str) -> None:
        """A run with no saved state is one killed before its first save, unless it has evaluation runs: then its
        state files are gone (an artifact folder deleted or moved), and starting it again from zero had added a
        second set of evaluations to the first."""
        from flows.evaluation import LAB

        run = self.client.get_run(run_id)
        # a lab's rows are logged before the first save; an evaluation of the search only after it
        searched = self.client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}' and "
                                           f"tags.source != '{LAB}'", max_results=1)
        if searched:
            raise ConfigError(f"--resume {run_id}: the run has evaluations but no complete saved campaign state "
                              f"under its artifacts ({run.info.artifact_uri}): were they deleted, moved or "
                              f"truncated? Restore them, or start a new campaign")

    def _config_only(self, run_id: str) -> dict[str, Any]:
        """The state of a campaign killed before its first save: its config (a run tag), no evaluations."""
        from flows.campaign import STATE_VERSION
        from flows.tracking import CONFIG_TAG

        config = self.client.get_run(run_id).data.tags.get(CONFIG_TAG)
        if config is None:
            raise ConfigError(f"--resume {run_id}: this run has neither saved state nor a campaign config; it is "
                              f"not a campaign run of `snhc optimise`")
        try:
            return {"version": STATE_VERSION, "config": json.loads(config), "evaluations": []}
        except ValueError:
            raise ConfigError(f"--resume {run_id}: its config tag is not valid JSON") from None

    def _check_resumable(self, run_id: str, experiment_name: str) -> None:
        """A resume id must name a campaign (parent) run of the configured experiment."""
        from mlflow.exceptions import MlflowException

        try:
            run = self.client.get_run(run_id)
        except MlflowException:
            raise ConfigError(f"--resume {run_id}: unknown run id in this tracking store") from None
        experiment = self.client.get_experiment_by_name(experiment_name)
        if experiment is None or run.info.experiment_id != experiment.experiment_id:
            other = self.client.get_experiment(run.info.experiment_id).name
            raise ConfigError(f"--resume {run_id}: the run belongs to experiment {other!r}, not {experiment_name!r}")
        if run.info.lifecycle_stage != "active":  # MLflow refuses to reopen it (a traceback after the flow started)
            raise ConfigError(f"--resume {run_id}: the run is deleted (in the MLflow UI's trash); restore it with "
                              f"`mlflow runs restore --run-id {run_id}`, or start a new campaign")
        if "mlflow.parentRunId" in run.data.tags and "evaluation" in run.data.tags:
            raise ConfigError(f"--resume {run_id}: that is one evaluation's run; give its campaign (parent) run id")


class FolderStateStore:
    """State as files ``ROOT/RUN_ID/state/batch-NNNN.json`` in a local folder (no tracking server needed)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def save(self, run_id: str, batch: int, document: dict[str, Any]) -> None:
        folder = self.root / run_id / STATE_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / state_file_name(batch)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(document, allow_nan=True), encoding="utf-8")
        temporary.replace(path)

    def load(self, run_id: str, experiment_name: str = "") -> dict[str, Any]:
        folder = self.root / run_id / STATE_FOLDER
        if not folder.is_dir():
            raise ConfigError(f"--resume {run_id}: no saved campaign state in {self.root}")
        files = sorted(folder.glob("batch-*.json"), reverse=True)
        document = newest_complete((lambda f=f: f.read_text(encoding="utf-8")) for f in files)
        if document is None:
            raise ConfigError(f"run {run_id}: no complete saved campaign state in {folder}")
        return document


def store_for(tracking: Tracking) -> MlflowStateStore:
    """The state store of a campaign's tracking settings (state travels with the MLflow run)."""
    from flows.tracking import open_client

    return MlflowStateStore(open_client(tracking.tracking_uri))
