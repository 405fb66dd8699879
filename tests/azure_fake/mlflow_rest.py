"""The workspace's MLflow tracking service, as much of its REST API as phiops reads (a run and
its metric histories), behind the Azure ML host's `/mlflow/v1.0/<workspace>` prefix."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.azure_fake.transport import AzureError, Reply, Request


@dataclass
class MlflowRuns:
    """Runs by id (on Azure ML: the job's name): metric key -> [(step, value, ms)]."""

    runs: dict[str, dict[str, list[tuple[int, float, int]]]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def log(self, run_id: str, key: str, step: int, value: float) -> None:
        history = self.runs.setdefault(run_id, {}).setdefault(key, [])
        history.append((step, value, 1_700_000_000_000 + step))

    def __call__(self, request: Request, call: str) -> Reply:
        self.calls.append(call)
        run_id = request.query.get("run_id") or request.query.get("run_uuid") or ""
        if run_id not in self.runs:
            raise AzureError(404, "RESOURCE_DOES_NOT_EXIST", f"Run '{run_id}' not found.")
        metrics = self.runs[run_id]
        if call == "runs/get":
            return Reply(200, {"run": self._run(run_id, metrics)})
        if call == "metrics/get-history":
            key = request.query["metric_key"]
            return Reply(200, {"metrics": [self._metric(key, *m) for m in metrics.get(key, [])]})
        raise AzureError(404, "ENDPOINT_NOT_FOUND", f"no such MLflow call {call}")

    @staticmethod
    def _metric(key: str, step: int, value: float, timestamp: int) -> dict[str, Any]:
        return {"key": key, "value": value, "timestamp": timestamp, "step": step}

    def _run(self, run_id: str, metrics: dict[str, list[tuple[int, float, int]]]) -> dict:
        return {
            "info": {
                "run_id": run_id,
                "run_uuid": run_id,
                "experiment_id": "1",
                "run_name": run_id,
                "status": "FINISHED",
                "start_time": 1_700_000_000_000,
                "artifact_uri": f"azureml://experiments/1/runs/{run_id}/artifacts",
                "lifecycle_stage": "active",
            },
            "data": {
                "metrics": [self._metric(key, *history[-1]) for key, history in metrics.items()],
                "params": [],
                "tags": [],
            },
        }
