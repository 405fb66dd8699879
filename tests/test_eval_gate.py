"""`phiops deploy --gate` on the local backend: a worse model stays at 0% with the traffic
where it was; an equal one takes its share; the current deployment's fresh evaluation is
reused. Two real models: the session's trained job, and one stopped after a single step."""

from __future__ import annotations

import json

import pytest

from core.backend import JobSpec, JobStatus
from tests.conftest import QUICK_TRAINING
from tests.helpers import run_phiops

pytestmark = pytest.mark.slow

ENDPOINT = "gate-endpoint"
NAME = "phi3-gate"


@pytest.fixture(scope="module")
def models(local_job_project):
    """(folder, backend, good version, barely trained version)."""
    folder, backend, job = local_job_project
    good = backend.register_model(job.name, NAME)
    raw = backend.submit_job(
        JobSpec(
            "data/train_data.jsonl",
            "data/test_data.jsonl",
            backend.config.base_model,
            trainer_args=[*QUICK_TRAINING, "--max-steps", "1"],
            display_name="one step only",
        )
    )
    raw = backend._jobs.wait(raw.name, timeout=600)
    assert raw.status == JobStatus.COMPLETED, raw.error
    bad = backend.register_model(raw.name, NAME)
    try:
        yield folder, backend, good, bad
    finally:
        backend.delete_endpoint(ENDPOINT)


def deploy(folder, version, *extra: str):
    result = run_phiops(
        "deploy",
        "--model",
        version.ref,
        "--endpoint",
        ENDPOINT,
        "--gate",
        "rougeL:0.02",
        *extra,
        "--json",
        cwd=folder,
        timeout=900,
    )
    return result, (json.loads(result.stdout) if result.stdout.strip() else None)


def test_the_gate_holds_a_worse_model_and_passes_an_equal_one(models):
    folder, backend, good, bad = models
    first, data = deploy(folder, good)
    assert first.returncode == 0, first.stderr[-3000:]
    assert data["gate"]["passed"] and "nothing to compare with" in data["gate"]["reason"]
    assert data["endpoint"]["traffic"] == {"blue": 100}
    baseline = data["gate"]["new_run"]

    held, data = deploy(folder, bad)
    assert held.returncode == 1
    assert "the gate held: rougeL" in held.stderr and "green stays at 0%" in held.stderr
    gate = data["gate"]
    assert not gate["passed"] and gate["current_run"] == baseline and gate["current_reused"]
    change = {m["name"]: m for m in gate["comparison"]["metrics"]}["rougeL"]
    assert change["verdict"] == "worse"
    endpoint = backend.endpoint(ENDPOINT)
    assert endpoint.traffic == {"blue": 100, "green": 0}  # nothing moved
    assert {d.name: d.state for d in endpoint.deployments}["green"] == "Succeeded"
    # The new deployment was evaluated through the endpoint by its header.
    shown = json.loads(run_phiops("eval", "show", gate["new_run"], "--json", cwd=folder).stdout)
    assert {row["deployment"] for row in shown["rows"]} == {"green"}
    assert shown["meta"]["model"] == bad.ref

    backend.delete_deployment(ENDPOINT, "green")
    passed, data = deploy(folder, good, "--traffic", "60")
    assert passed.returncode == 0, passed.stderr[-3000:]
    assert data["gate"]["passed"] and data["gate"]["current_reused"]
    assert backend.endpoint(ENDPOINT).traffic == {"blue": 40, "green": 60}
    text = run_phiops(
        "deploy", "--model", bad.ref, "--endpoint", ENDPOINT, "--gate", "nonsense", cwd=folder
    )
    assert text.returncode == 1 and "cannot gate on 'nonsense'" in text.stderr
