"""An Azure ML command job, run here as Azure ML runs it, and a tracking server that answers
as the workspace's does.

`run_like_azure_ml(job, folder, ...)` takes the job phiops plans (`--dry-run`'s entity) and
does what the compute node does: the code folder is copied alone and is the working
directory; each input is a local copy at the path `${{inputs.NAME}}` becomes, each output an
empty folder for `${{outputs.NAME}}`; the command runs in a shell with the job's environment
variables and Azure ML's own (`AZUREML_RUN_ID`, `MLFLOW_RUN_ID`, `MLFLOW_TRACKING_URI`,
`MLFLOW_EXPERIMENT_ID`) and nothing of this machine's phiops or MLflow settings; `TMPDIR`
is the node's local disk.

`AzureLikeTracking` is a real MLflow tracking server (MLflow's own Flask app over a SQLite
store, on a port the OS picks) behind the one refusal that matters: Azure ML's tracking
service does not implement MLflow 3's logged-models API, so those routes answer 404 with
Azure's body ("V3 API not implemented yet"), as azureml-mlflow's store says.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class JobRun:
    result: subprocess.CompletedProcess
    code: Path
    inputs: dict[str, Path]
    outputs: dict[str, Path]
    node_local: Path


def materialise(
    job: Any, folder: Path, outputs: dict[str, Path] | None = None
) -> tuple[Path, dict[str, Path], dict[str, Path], str]:
    """The code snapshot, inputs and outputs on local disk, and the command with them.
    `outputs` reuses a previous attempt's output folders (a job Azure ML restarts)."""
    code = folder / "code"
    shutil.copytree(job.code, code, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    inputs: dict[str, Path] = {}
    for name, value in (job.inputs or {}).items():
        source = Path(str(value.path))
        target = folder / "inputs" / name / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
        inputs[name] = target
    outputs = outputs or {name: folder / "outputs" / name for name in (job.outputs or {})}
    for path in outputs.values():
        path.mkdir(parents=True, exist_ok=True)

    def substitute(match: re.Match[str]) -> str:
        kind, name = match.group(1), match.group(2)
        return str((inputs if kind == "inputs" else outputs)[name])

    command = re.sub(r"\$\{\{(inputs|outputs)\.([A-Za-z0-9_]+)\}\}", substitute, job.command)
    return code, inputs, outputs, command


def run_like_azure_ml(
    job: Any,
    folder: Path,
    *,
    tracking_uri: str = "",
    run_id: str = "",
    experiment_id: str = "",
    node_local: Path | None = None,
    extra_env: dict[str, str] | None = None,
    outputs: dict[str, Path] | None = None,
    timeout: float = 600,
    popen: bool = False,
) -> Any:
    """Run `job`'s command as the compute node would (see the module's doc); with `popen`,
    return the running process (in its own session) and the run's folders."""
    code, inputs, outputs, command = materialise(job, folder, outputs)
    node_local = node_local or folder / "node-local"
    node_local.mkdir(parents=True, exist_ok=True)
    keep = {"HOME", "LANG", "LC_ALL", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"}
    keep |= {"TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM", "MLFLOW_ENABLE_ASYNC_LOGGING"}
    env = {key: value for key, value in os.environ.items() if key in keep}
    env |= {
        # `python` in the command is the image's interpreter: here, this venv's.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "TMPDIR": str(node_local),
        "AZUREML_RUN_ID": job.name,
        "AZUREML_ARM_WORKSPACE_NAME": "phi3-ws",
        "AZUREML_CR_EXECUTION_WORKING_DIR_PATH": str(code),
        **{key: str(value) for key, value in (job.environment_variables or {}).items()},
        **(extra_env or {}),
    }
    if tracking_uri:
        env |= {
            "MLFLOW_TRACKING_URI": tracking_uri,
            "MLFLOW_RUN_ID": run_id,
            "MLFLOW_EXPERIMENT_ID": experiment_id,
        }
    if popen:
        process = subprocess.Popen(
            ["bash", "-c", command],
            cwd=code,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        return process, JobRun(None, code, inputs, outputs, node_local)  # type: ignore[arg-type]
    result = subprocess.run(
        ["bash", "-c", command],
        cwd=code,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return JobRun(result, code, inputs, outputs, node_local)


# -- the workspace's tracking server ----------------------------------------------------------


LOGGED_MODELS = re.compile(r"/api/2\.0/mlflow/logged-models")
AZURE_V3_REFUSAL = {
    "error_code": "ENDPOINT_NOT_FOUND",
    "message": "V3 API not implemented yet",
}


class AzureLikeTracking:
    """MLflow's tracking server app with Azure ML's 404 on the logged-models routes."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.refused: list[str] = []
        self._server: Any = None

    def __enter__(self) -> AzureLikeTracking:
        from werkzeug.serving import make_server

        store = f"sqlite:///{self.folder / 'mlflow.db'}"
        artifacts = self.folder / "artifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        saved = {
            k: os.environ.get(k)
            for k in ("_MLFLOW_SERVER_FILE_STORE", "_MLFLOW_SERVER_ARTIFACT_ROOT")
        }
        os.environ["_MLFLOW_SERVER_FILE_STORE"] = store
        os.environ["_MLFLOW_SERVER_ARTIFACT_ROOT"] = artifacts.as_uri()
        from mlflow.server import app, handlers

        handlers._tracking_store = None  # the store of this server, not a previous one's
        self.store = handlers._get_tracking_store(store, artifacts.as_uri())
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

        def wsgi(environ: dict, start_response: Any) -> Any:
            if LOGGED_MODELS.search(environ.get("PATH_INFO", "")):
                self.refused.append(f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']}")
                body = json.dumps(AZURE_V3_REFUSAL).encode()
                start_response("404 NOT FOUND", [("Content-Type", "application/json")])
                return [body]
            return app.wsgi_app(environ, start_response)

        self._server = make_server("127.0.0.1", 0, wsgi, threaded=True)
        self.uri = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def create_run(self, experiment: str, name: str) -> tuple[str, str]:
        """What Azure ML does before the job starts: the experiment's run, named like the job."""
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.uri)
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(experiment)
        run = client.create_run(experiment_id, run_name=name)
        return run.info.run_id, experiment_id

    def client(self) -> Any:
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.uri)

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
