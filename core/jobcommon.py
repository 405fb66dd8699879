"""What both backends' jobs share: where the trainer lives, how a job is named, how a run's
metric history reads.

The local runner and the Azure ML command job run the same `trainer/` folder with the same
command line, name jobs with azure-ai-ml's generator, and read metrics from an MLflow
tracking server (the project's SQLite store, or the workspace's), so none of this belongs
to one backend.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import core
from core.backend import MetricPoint
from core.errors import PhiopsError

TRAINER_DIR = Path(core.__file__).resolve().parent.parent / "trainer"
FINE_TUNE = TRAINER_DIR / "fine_tune.py"


def new_job_name() -> str:
    """A fresh name from azure-ai-ml's generator, loaded without importing the SDK (~2 s)."""
    import azure

    for folder in azure.__path__:
        source = Path(folder) / "ai" / "ml" / "entities" / "_job" / "job_name_generator.py"
        if source.is_file():
            spec = importlib.util.spec_from_file_location("_aml_job_name_generator", source)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module.generate_job_name()
    raise PhiopsError("azure-ai-ml is not installed; reinstall phiops")


def metric_history(client: Any, run_id: str, keys: list[str] | None = None) -> list[MetricPoint]:
    """Every logged value of the run's metrics (all of them unless `keys`), by key and step."""
    names = keys if keys is not None else sorted(client.get_run(run_id).data.metrics)
    points = [
        MetricPoint(key, int(m.step), float(m.value), m.timestamp / 1000.0)
        for key in names
        for m in client.get_metric_history(run_id, key)
    ]
    return sorted(points, key=lambda point: (point.key, point.step, point.timestamp))
