"""Two `phiops deploy` at once on one endpoint: each reports the deployment it created.

Both are held at the endpoint's operation lock until both wait there, so both have read
the endpoint before either deploys — the moment a report built from that reading went
wrong ("blue" printed by the deploy that created green)."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from core.local.endpointstore import EndpointStore
from tests.fixtures_deploy import endpoint_pids, gone
from tests.helpers import BIN

pytestmark = pytest.mark.slow
ENDPOINT = "ep-race"


def test_parallel_deploys_each_report_their_own_deployment(local_job_project) -> None:
    folder, backend, job = local_job_project
    version = backend.register_model(job.name)
    store = EndpointStore(folder / ".phiops" / "endpoints")
    command = [str(BIN / "phiops"), "deploy", "--model", version.ref]
    command += ["--endpoint", ENDPOINT, "--traffic", "50", "--json"]
    deploys: list[subprocess.Popen] = []
    try:
        with store.operation(ENDPOINT):
            for _ in range(2):
                deploys.append(
                    subprocess.Popen(
                        command,
                        cwd=folder,
                        env=os.environ.copy(),
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        text=True,
                    )
                )
            waiting = []
            for process in deploys:  # each says so once it waits for the lock we hold
                assert process.stderr is not None
                for line in process.stderr:
                    if "waiting for another phiops operation" in line:
                        waiting.append(process)
                        break
            assert len(waiting) == 2
            time.sleep(0.2)
        reports = []
        for process in deploys:
            out, err = process.communicate(timeout=600)
            assert process.returncode == 0, err
            reports.append(json.loads(out))
        info = backend.endpoint(ENDPOINT)
        assert sorted(report["deployment"] for report in reports) == ["blue", "green"]
        for report in reports:
            mine = report["deployment"]
            assert report["endpoint"]["deployed"] == mine
            assert mine in {d.name for d in info.deployments}
    finally:
        for process in deploys:
            if process.poll() is None:
                process.kill()
                process.wait(30)
        if ENDPOINT in backend._endpoints.store.names():
            pids = endpoint_pids(backend._endpoints, ENDPOINT)
            backend.delete_endpoint(ENDPOINT)
            assert all(gone(pid) for pid in pids)
