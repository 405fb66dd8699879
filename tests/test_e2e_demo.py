"""The README's first command end to end: `phiops demo` on the local backend, as a user runs it.

One real pipeline (sample data → Phi-3-mini twin → fine-tuning job → registry → blue/green
endpoint → Prompt flow in-process) with the demo's own recipe, so a break anywhere in the
chain, or a model that never learned the theme or never stops talking, fails here.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import psutil
import pytest

from tests.helpers import HANG, run_phiops

pytestmark = pytest.mark.slow


def phiops_json(*args: str, cwd: Path) -> dict | list:
    result = run_phiops(*args, "--json", cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def phiops_processes(project: Path) -> list[psutil.Process]:
    """Servers still running out of this project's store (endpoints, gateways, flow servers)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        line = " ".join(process.info["cmdline"] or [])
        if str(project) in line and ("core.serving" in line or "flow serve" in line):
            found.append(process)
    return found


def test_demo_runs_the_pipeline_then_reuses_it_and_down_stops_every_server(
    project: Path, request: pytest.FixtureRequest
):
    # Whatever fails below, no server of this project outlives the test.
    request.addfinalizer(lambda: run_phiops("down", cwd=project))
    first = phiops_json("demo", cwd=project)
    try:
        assert (project / "phiops.toml").is_file()
        assert first["reused"] == []
        # The tiny model learned the island: the sample's first question is about the light.
        assert "green" in first["answer"].lower(), first["answer"]
        assert "<|end|>" not in first["answer"] and "<|user|>" not in first["answer"]
        assert len(first["answer"]) < 400  # it stopped at the end of its turn
        # The proof: on the test split the fine-tuned model beats the base model clearly
        # (the intervals do not overlap, and the paired change's interval is above 0).
        proof = first["evaluation"]
        assert proof["verdict"] == "better", proof
        assert proof["fine_tuned"]["low"] > proof["base"]["high"], proof
        assert proof["change"]["low"] > 0.2 and proof["rows"] >= 50, proof

        jobs = phiops_json("jobs", "list", cwd=project)
        assert [job["name"] for job in jobs] == [first["job"]]
        assert jobs[0]["status"] == "Completed"
        endpoints = phiops_json("endpoints", "list", cwd=project)
        assert [endpoint["name"] for endpoint in endpoints] == [first["endpoint"]]
        assert endpoints[0]["traffic"] == {"blue": 100}

        second = phiops_json("demo", "--question", "What do islanders drink?", cwd=project)
        assert set(second["reused"]) == {
            "data",
            "base model",
            "training",
            "registry",
            "endpoint",
            "evaluation",
        }
        assert second["evaluation"]["fine_tuned_run"] == proof["fine_tuned_run"]
        assert second["job"] == first["job"] and second["model"] == first["model"]
        assert "tea" in second["answer"].lower(), second["answer"]
    finally:
        stopped = phiops_json("down", cwd=project)
    assert stopped["endpoints"] == [first["endpoint"]]
    deadline = time.monotonic() + HANG
    while phiops_processes(project) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert phiops_processes(project) == []
    # Stopped, not deleted: the endpoint is still listed and the next demo starts it again.
    assert phiops_json("endpoints", "list", cwd=project)[0]["name"] == first["endpoint"]
    try:
        third = phiops_json("demo", cwd=project)
        assert "endpoint" in third["reused"] and third["scoring_uri"] == first["scoring_uri"]
        assert "green" in third["answer"].lower(), third["answer"]
    finally:
        phiops_json("down", cwd=project)
    deadline = time.monotonic() + HANG
    while phiops_processes(project) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert phiops_processes(project) == []
