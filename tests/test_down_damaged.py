"""`phiops down` and `phiops endpoints list` with a damaged record among good ones: each
record on its own, what can be stopped is stopped, the damaged one said in one sentence,
exit 1 at the end. The endpoints are real gateway processes started as phiops starts them."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from core.backend import EndpointKeys
from core.local.endpointprocs import EndpointProcesses
from core.local.endpointstore import EndpointRecord, EndpointStore
from tests.fixtures_deploy import KEY, OTHER_KEY, gone
from tests.helpers import run_phiops


def test_down_stops_every_endpoint_whatever_a_damaged_record_says(project: Path) -> None:
    (project / "phiops.toml").write_text('[project]\nbackend = "local"\n')
    store = EndpointStore(project / ".phiops" / "endpoints")
    processes = EndpointProcesses(store)
    pids = []
    try:
        for name in ("ep-good", "ep-bad"):
            store.write(EndpointRecord(name))
            processes.start_gateway(name, EndpointKeys(KEY, OTHER_KEY), lambda _: None)
            pids.append(store.read(name).gateway.pid)
        bad = store.folder("ep-bad") / "endpoint.json"
        bad.write_text(json.dumps({"name": "ep-bad", "deployments": {"blue": {"name": "blue"}}}))
        flows = project / ".phiops" / "flow-servers"
        flows.mkdir(parents=True)
        (flows / "999999.json").write_text("{not json")

        listed = run_phiops("endpoints", "list", "--json", cwd=project)
        assert listed.returncode == 1
        assert [item["name"] for item in json.loads(listed.stdout)] == ["ep-good"]
        (sentence,) = listed.stderr.strip().splitlines()
        assert sentence.startswith("phiops: the record of endpoint ep-bad")
        assert "deployments.blue has no model" in sentence

        down = run_phiops("down", "--json", cwd=project)
        assert down.returncode == 1, down.stderr
        stopped = json.loads(down.stdout)
        assert sorted(stopped["endpoints"]) == ["ep-bad", "ep-good"]
        assert len(stopped["problems"]) == 2
        lines = down.stderr.strip().splitlines()
        assert len(lines) == 2 and all(line.startswith("phiops: the ") for line in lines)
        assert "ep-bad" in lines[0] and "stopped 1 of its processes" in lines[0]
        assert "flow server record" in lines[1]
        assert all(gone(pid) for pid in pids), "a gateway outlived phiops down"
    finally:
        for pid in pids:
            if not gone(pid, within=0.5):
                os.kill(pid, signal.SIGKILL)
