"""The fine-tuning job as Azure ML runs it: the command `train submit --dry-run` plans, run
the way the compute node runs it (code folder alone, inputs and outputs substituted, Azure
ML's environment variables, a tracking server that refuses MLflow 3's logged-models API as
Azure's does), on the tests' tiny Phi-3. It must end Completed with an MLflow model in the
declared output that registration accepts; a GPU job on a machine without a usable GPU must
stop at once; a restarted job must continue from the checkpoint in its output."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from core.azure.jobs import plan
from core.backend import JobInfo, JobSpec, JobStatus
from core.config import Config
from core.errors import PhiopsError
from tests.azure_fake.command_job import AzureLikeTracking, run_like_azure_ml
from tests.azure_standins import CPU_SIZE, SUBSCRIPTION, AzureWorld, add_job, provision
from tests.conftest import QUICK_TRAINING, run_fine_tune

pytestmark = pytest.mark.slow


@pytest.fixture
def config(tmp_path: Path, chat_dataset: dict[str, Path]) -> Config:
    return Config(
        path=tmp_path / "phiops.toml",
        backend="azure",
        train_data_path=str(chat_dataset["train"]),
        test_data_path=str(chat_dataset["eval"]),
        subscription_id=SUBSCRIPTION,
        resource_group="phi3-rg",
        workspace="phi3-ws",
        location="eastus2",
        identity_name="phi3-identity",
        compute_name="cpu-cluster",
        compute_vm_size=CPU_SIZE,  # no GPU on this cluster: phiops passes --allow-cpu
    )


def events(output: Path) -> list[dict]:
    """The trainer's progress events (one JSON object a line; the last may be half-written)."""
    import json

    path = output / "events.jsonl"
    found = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


def planned_job(config: Config, tiny_base_model: Path, *trainer_args: str) -> Any:
    spec = JobSpec(
        train_file=config.train_data_path,
        eval_file=config.test_data_path,
        base_model=str(tiny_base_model),
        trainer_args=[*QUICK_TRAINING, "--eval-strategy", "no", *trainer_args],
        experiment_name="phi3-finetune",
    )
    return plan(config, spec).job


def test_inside_azure_ml_a_job_without_a_usable_gpu_stops_at_once(
    tmp_path: Path, chat_dataset: dict[str, Path], tiny_base_model: Path
) -> None:
    """A CUDA 13 torch on a driver-535 node sees no GPU: one sentence, nothing trained."""
    cases = [
        ({"AZUREML_RUN_ID": "calm_river_1a2b3c"}, (), "inside Azure ML"),
        ({}, ("--require-gpu",), "with --require-gpu"),
    ]
    for number, (env, extra, where) in enumerate(cases):
        out = tmp_path / f"model-{number}"
        result = run_fine_tune(out, tiny_base_model, chat_dataset, *extra, env=env, timeout=120)
        assert result.returncode == 1, result.stdout[-2000:]
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("fine_tune: no usable CUDA GPU"), result.stderr[-2000:]
        assert where in last
        assert "torch.version.cuda=None" in last  # this machine's torch is a CPU build
        assert "Hardware:" not in result.stdout  # stopped before loading anything
        assert not (out / "checkpoints").exists()


def test_the_planned_command_runs_as_azure_ml_runs_it_restarts_and_its_model_registers(
    tmp_path: Path, config: Config, tiny_base_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first attempt is pre-empted (SIGTERM) after a few steps; Azure ML restarts the
    job on a new node with the same output and run: the node's disk is empty, the mirrored
    checkpoint is what the `--resume` in the command finds, and the job ends Completed."""
    job = planned_job(config, tiny_base_model, "--max-steps", "12", "--save-steps", "100")
    assert "--allow-cpu" in job.command and "--resume" in job.command
    with AzureLikeTracking(tmp_path / "tracking") as tracking:
        run_id, experiment_id = tracking.create_run("phi3-finetune", job.name)
        ids = {"tracking_uri": tracking.uri, "run_id": run_id, "experiment_id": experiment_id}
        process, first = run_like_azure_ml(job, tmp_path / "node-1", popen=True, **ids)
        output = first.outputs["model_output"]
        try:
            deadline = time.monotonic() + 240
            while not any(e.get("step", 0) >= 3 for e in events(output)):
                assert process.poll() is None, process.stdout.read()[-3000:]
                assert time.monotonic() < deadline, "the job never reached step 3"
                time.sleep(0.05)
            os.killpg(process.pid, signal.SIGTERM)  # what a pre-emption sends
            log, _ = process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
        assert process.returncode == 75, log[-3000:]
        # The checkpoint was written on the node and mirrored, complete, into the output.
        local = first.node_local / "phiops-checkpoints" / job.name
        [saved] = sorted((output / "checkpoints").glob("checkpoint-*"))
        assert (local / saved.name / "trainer_state.json").is_file()
        assert (saved / "trainer_state.json").is_file() and (saved / "optimizer.pt").is_file()

        second = run_like_azure_ml(
            job, tmp_path / "node-2", outputs=first.outputs, timeout=300, **ids
        )
        log = second.result.stdout + second.result.stderr
        assert second.result.returncode == 0, log[-4000:]  # the job ends Completed
        assert f"Resuming from {saved}" in log
        started = [e for e in events(output) if e.get("message") == "training started"]
        assert started[-1]["step"] == int(saved.name.split("-")[1])  # not from zero
        info = tracking.client().get_run(run_id)
        assert info.info.status == "FINISHED" and info.data.params["device"] == "cpu"
        steps = [m.step for m in tracking.client().get_metric_history(run_id, "loss")]
        assert max(steps) == 12
    assert tracking.refused == []  # the logged-models API was not called
    assert "not logged to the run" in log
    assert (output / "mlflow_model" / "MLmodel").is_file()
    assert (output / "hf_model" / "config.json").is_file()

    # Registration takes the output's MLflow model (the fake reads its MLmodel file).
    world = provision(AzureWorld(), config)
    world.patch(monkeypatch)
    add_job(world, job.name, "Completed")
    world.job_outputs[job.name] = output
    from core.azure.registry import AzureRegistry

    registry = AzureRegistry(config, world.clients(config))
    completed = JobInfo(name=job.name, status=JobStatus.COMPLETED, backend="azure")
    version = registry.register_from_job(completed, "phi3-finetuned")
    stored = world.get(
        f"{world.workspace()['id']}/models/phi3-finetuned/versions/{version.version}"
    )
    assert "transformers" in stored["properties"]["flavors"]
    # A job whose output has no MLflow model is refused by Azure ML, in one sentence.
    world.job_outputs[job.name] = tmp_path / "empty"
    (tmp_path / "empty").mkdir()
    with pytest.raises(PhiopsError, match="No MLmodel file found"):
        registry.register_from_job(completed, "phi3-finetuned")


def test_after_training_a_tracking_failure_is_a_warning(
    tmp_path: Path, chat_dataset: dict[str, Path], tiny_base_model: Path
) -> None:
    """Locally too: the run's store going away after the model is saved does not fail it."""
    with AzureLikeTracking(tmp_path / "tracking") as tracking:
        run_id, experiment_id = tracking.create_run("phi3-finetune", "local")
        env = {
            "MLFLOW_TRACKING_URI": tracking.uri,
            "MLFLOW_RUN_ID": run_id,
            "MLFLOW_EXPERIMENT_ID": experiment_id,
        }
        out = tmp_path / "model"
        result = run_fine_tune(out, tiny_base_model, chat_dataset, "--max-steps", "2", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "fine_tune: warning: could not log the model to MLflow" in result.stderr
    assert tracking.refused  # MLflow 3's log_model asked for a logged model: refused
    assert (out / "mlflow_model" / "MLmodel").is_file()
