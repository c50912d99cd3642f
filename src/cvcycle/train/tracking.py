"""The experiment-tracker extension point and its default, MLflow.

A ``Tracker`` receives a run's parameters, per-epoch metrics and artifacts; cvcycle's own database
stays the source of truth and keeps the tracker's run id. ``MlflowTracker`` talks to any MLflow
tracking URI (by default the SQLite store under the home, artifacts beside it); another tracker
(ClearML, W&B) implements the same five methods.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from cvcycle.settings import Settings

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

# MLflow caps a parameter value at 6000 characters; longer ones are cut with a marker.
_MAX_PARAM_CHARS = 6000


class Tracker(Protocol):
    """Where training runs report to, besides cvcycle's database."""

    def start(self, experiment: str, run_name: str, tags: Mapping[str, str]) -> str:
        """Open a run in ``experiment`` (created on first use); returns the tracker's run id."""
        ...

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int | None = None) -> None: ...

    def log_artifact(self, run_id: str, path: Path) -> None: ...

    def finish(self, run_id: str, failed: bool = False) -> None: ...


def flatten_params(values: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config values as ``{"options.depth": "3", "input_size": "[192, 256]"}`` strings."""
    flat: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, f"{name}."))
            continue
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        flat[name] = text if len(text) <= _MAX_PARAM_CHARS else text[: _MAX_PARAM_CHARS - 3] + "..."
    return flat


class MlflowTracker:
    """MLflow through its client API (no global state), so runs in threads do not mix."""

    def __init__(self, tracking_uri: str, artifact_root: str | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root
        self._client: MlflowClient | None = None

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            from mlflow.tracking import MlflowClient  # deferred: importing MLflow takes a second

            # MLflow logs every schema migration of a new store at INFO; a user needs none of it.
            # (Set after the import: importing MLflow configures its loggers.)
            for name in ("alembic", "mlflow"):
                logging.getLogger(name).setLevel(logging.WARNING)
            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    def _experiment_id(self, name: str) -> str:
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        try:
            return str(self.client.create_experiment(name, artifact_location=self.artifact_root_for(name)))
        except MlflowException:
            # Another run created it between our lookup and our create.
            again = self.client.get_experiment_by_name(name)
            if again is None:
                raise
            return str(again.experiment_id)

    def artifact_root_for(self, experiment: str) -> str | None:
        if self.artifact_root is None:
            return None
        return f"{self.artifact_root.rstrip('/')}/{experiment}"

    def start(self, experiment: str, run_name: str, tags: Mapping[str, str]) -> str:
        run = self.client.create_run(self._experiment_id(experiment), run_name=run_name, tags=dict(tags))
        return str(run.info.run_id)

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        flat = flatten_params(params)
        self.client.log_batch(run_id, params=[Param(k, v) for k, v in flat.items()])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step or 0) for k, v in metrics.items()]
        self.client.log_batch(run_id, metrics=batch)

    def log_artifact(self, run_id: str, path: Path) -> None:
        self.client.log_artifact(run_id, str(path))

    def finish(self, run_id: str, failed: bool = False) -> None:
        self.client.set_terminated(run_id, status="FAILED" if failed else "FINISHED")


def open_tracker(settings: Settings) -> MlflowTracker:
    """The configured tracker. A database-backed MLflow store keeps artifacts under the home."""
    uri = settings.tracking_url
    local_store = uri.split(":", 1)[0].split("+", 1)[0] in ("sqlite", "postgresql", "mysql", "mssql")
    artifact_root = (settings.home / "mlartifacts").resolve().as_uri() if local_store else None
    return MlflowTracker(uri, artifact_root)


def tracker_run_url(settings: Settings, tracker_run_id: str | None) -> str | None:
    """Where the MLflow UI (``settings.mlflow_ui_url``) shows a run; None without a UI or a run."""
    ui = settings.mlflow_ui_url
    return f"{ui.rstrip('/')}/#/runs/{tracker_run_id}" if ui and tracker_run_id else None
