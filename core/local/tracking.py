"""The local MLflow store: tracking and registry in `<store>/mlflow.db`, artifacts beside it.

Azure ML creates a job's MLflow run before the job starts and hands its id to the code
(`MLFLOW_RUN_ID`); the local runner does the same, so the trainer's `mlflow.start_run()`
continues the run phiops made, and a resumed job keeps logging to the same run.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

DB_FILENAME = "mlflow.db"
ARTIFACTS_DIRNAME = "mlartifacts"
JOB_TAG = "phiops.job"


def tracking_uri(store: Path) -> str:
    return f"sqlite:///{store.resolve() / DB_FILENAME}"


def artifact_root(store: Path) -> Path:
    return store.resolve() / ARTIFACTS_DIRNAME


def mlflow_client(store: Path) -> Any:
    """A client on the local store (creating it on first use, quietly: MLflow and alembic
    log each table they create at INFO, which would land in the CLI's output)."""
    import logging

    from mlflow.tracking import MlflowClient

    for name in ("alembic", "mlflow.store.db.utils", "mlflow.store.model_registry"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET or logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)
    store.mkdir(parents=True, exist_ok=True)
    uri = tracking_uri(store)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def ensure_experiment(client: Any, name: str, store: Path) -> str:
    """The experiment's id, creating it with its artifacts in the store (not in the cwd)."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = artifact_root(store) / name.strip("/").replace("/", "_")
    return client.create_experiment(name, artifact_location=location.as_uri())


def create_run(store: Path, experiment_name: str, run_name: str, tags: dict[str, str]) -> tuple:
    """Create the run a job's trainer will continue; returns (experiment_id, run_id)."""
    client = mlflow_client(store)
    experiment_id = ensure_experiment(client, experiment_name, store)
    run = client.create_run(experiment_id, run_name=run_name, tags={JOB_TAG: run_name, **tags})
    return experiment_id, run.info.run_id


def close_run(store: Path, run_id: str, status: str) -> None:
    """Mark the run ended when the trainer could not (it was killed): FINISHED/FAILED/KILLED."""
    client = mlflow_client(store)
    if client.get_run(run_id).info.status == "RUNNING":
        client.set_terminated(run_id, status=status)


def known_run_ids(store: Path) -> set[str] | None:
    """The run ids the store's database holds (read-only, without MLflow); None when there
    is no database at all."""
    import sqlite3

    database = store.resolve() / DB_FILENAME
    if not database.is_file():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
            return {row[0] for row in db.execute("SELECT run_uuid FROM runs")}
    except sqlite3.Error:
        return set()
