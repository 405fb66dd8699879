"""The deploy CLI through the real `phiops` console script, on the local backend: register,
deploy (blue/green), list/show, keys masked unless asked, score (plain and streamed),
traffic, rollback, logs, stop/start, delete with confirmation, and one-sentence errors."""

from __future__ import annotations

import json

import pytest

from tests.fixtures_deploy import all_pids, gone
from tests.helpers import run_phiops

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cli(local_job_project):
    folder, backend, job = local_job_project
    outputs: list[str] = []

    def phiops(*args: str, code: int = 0):
        result = run_phiops(*args, cwd=folder)
        outputs.append(result.stdout + result.stderr)
        assert result.returncode == code, (args, result.stdout, result.stderr)
        return result

    yield phiops, backend, job, outputs
    if "phi3-endpoint" in backend._endpoints.store.names():
        pids = all_pids(backend._endpoints)
        backend.delete_endpoint("phi3-endpoint")
        assert all(gone(pid) for pid in pids)


def as_json(result) -> object:
    return json.loads(result.stdout)


def test_register_and_list(cli) -> None:
    phiops, _, job, _ = cli
    version = as_json(phiops("model", "register", "--job", job.name, "--json"))
    assert version["name"] == "phi3-tiny" and version["job_name"] == job.name
    listed = as_json(phiops("model", "list", "--json"))
    assert version["ref"] in [item["ref"] for item in listed]
    assert "phi3-tiny" in phiops("model", "list").stdout


def test_deploy_show_keys_and_score(cli) -> None:
    phiops, backend, _, outputs = cli
    result = phiops("deploy", "--json")  # the latest completed job's registered version
    data = as_json(result)
    assert data["deployment"] == "blue" and data["endpoint"]["traffic"] == {"blue": 100}
    assert data["model"].startswith("phi3-tiny:")
    assert "smoke-testing deployment blue" in result.stderr  # progress, on stderr
    key = backend.endpoint_keys("phi3-endpoint").primary
    assert data["key"] == f"{key[:4]}…{key[-4:]}"

    listed = as_json(phiops("endpoints", "list", "--json"))
    assert [item["name"] for item in listed] == ["phi3-endpoint"]
    shown = as_json(phiops("endpoints", "show", "--json"))
    assert shown["state"] == "Succeeded" and shown["key"] == data["key"]
    assert "blue" in phiops("endpoints", "show").stdout
    masked = as_json(phiops("endpoints", "keys", "--json"))
    assert masked["primary"] == data["key"] and "…" in masked["secondary"]

    answer = as_json(phiops("score", "What is the capital of Peru?", "--json"))
    assert isinstance(answer["answer"], str) and answer["answer"]
    assert answer["deployment"] == "blue" and answer["endpoint"] == "phi3-endpoint"
    lines = phiops("score", "What is the capital of Peru?", "--stream", "--json").stdout
    events = [json.loads(line) for line in lines.splitlines()]
    assert "".join(e["delta"] for e in events[:-1]) == events[-1]["answer"] == answer["answer"]
    plain = phiops("score", "What is the capital of Peru?", "--stream").stdout
    assert plain.strip() == answer["answer"].strip()

    # The key appears nowhere but where it was asked for.
    assert not any(key in text for text in outputs)
    secret = as_json(phiops("endpoints", "keys", "--show-secrets", "--json"))
    assert secret["primary"] == key


def test_blue_green_traffic_rollback_and_logs(cli) -> None:
    phiops, _, _, _ = cli
    data = as_json(
        phiops(
            "deploy", "--model", "phi3-tiny", "--traffic", "30",
            "--max-concurrent", "2", "--request-timeout", "30", "--json",
        )
    )  # fmt: skip
    assert data["deployment"] == "green"
    assert data["endpoint"]["traffic"] == {"blue": 70, "green": 30}
    settings = {d["name"]: d["request_settings"] for d in data["endpoint"]["deployments"]}
    assert settings["green"] == {
        "max_concurrent_requests_per_instance": 2,
        "request_timeout_ms": 30_000,
        "max_queue_wait_ms": 120_000,
    }
    assert settings["blue"]["max_concurrent_requests_per_instance"] == 3  # the seed's
    routed = as_json(phiops("score", "Hi", "--deployment", "green", "--json"))
    assert routed["deployment"] == "green"
    split = as_json(phiops("endpoints", "traffic", "green=100", "--json"))
    assert split["traffic"] == {"blue": 0, "green": 100}
    back = as_json(phiops("endpoints", "rollback", "--json"))
    assert back["traffic"] == {"blue": 70, "green": 30}
    assert "phi3-endpoint: blue 70%, green 30%" in phiops("endpoints", "traffic").stdout
    bad = phiops("endpoints", "traffic", "blue=50", code=1)
    assert bad.stderr.strip() == "phiops: Traffic shares must add up to 100, not 50."
    logs = as_json(phiops("endpoints", "logs", "--deployment", "green", "--json"))
    assert logs["deployment"] == "green" and "POST /score" in logs["text"]


def test_a_key_in_the_url_reaches_no_log_and_no_output(cli) -> None:
    import stat

    import httpx

    phiops, backend, _, _ = cli
    secret = "url-key-" + "s" * 32
    info = backend.endpoint("phi3-endpoint")
    key = backend.endpoint_keys("phi3-endpoint").primary
    answer = httpx.post(
        f"{info.scoring_uri}?key={secret}",
        json={"input_data": ["Hi"], "params": {"max_new_tokens": 2}},
        headers={"Authorization": f"Bearer {key}"},
        timeout=120,
    )
    assert answer.status_code == 200
    folder = backend._endpoints.store.folder("phi3-endpoint")
    logs = [folder / "gateway.log", *folder.glob("*/server.log")]
    for log in logs:
        assert secret not in log.read_text(), log
        assert stat.S_IMODE(log.stat().st_mode) == 0o600, log
    # A line a server wrote before query strings were masked is masked when shown.
    with open(folder / "green" / "server.log", "a") as old:
        old.write(f'INFO uvicorn.access: 127.0.0.1:1 - "POST /score?key={secret} HTTP/1.1" 200\n')
    for deployment in ("gateway", "green"):
        shown = phiops("endpoints", "logs", "--deployment", deployment).stdout
        assert "POST /score" in shown and secret not in shown


def test_stop_and_start(cli) -> None:
    phiops, backend, _, _ = cli
    pids = all_pids(backend._endpoints)
    stopped = as_json(phiops("endpoints", "stop", "--json"))
    assert stopped["state"] == "Stopped"
    assert all(gone(pid) for pid in pids)
    failed = phiops("score", "Hi", code=1)
    assert failed.stderr.startswith("phiops: the request to http://127.0.0.1:")
    assert len(failed.stderr.strip().splitlines()) == 1
    started = as_json(phiops("endpoints", "start", "--json"))
    assert started["state"] == "Succeeded"
    assert {d["state"] for d in started["deployments"]} == {"Succeeded"}
    assert as_json(phiops("score", "Hi", "--json"))["answer"] is not None


def test_delete_asks_first_and_errors_are_one_sentence(cli) -> None:
    phiops, backend, _, _ = cli
    refused = phiops("endpoints", "delete", "--deployment", "blue", code=1)
    assert "needs confirmation: add --yes" in refused.stderr
    still = phiops("endpoints", "delete", "--deployment", "blue", "--yes", code=1)
    assert "still takes 70%" in still.stderr
    phiops("endpoints", "traffic", "green=100")
    gone_blue = as_json(phiops("endpoints", "delete", "--deployment", "blue", "--yes", "--json"))
    assert gone_blue == {"endpoint": "phi3-endpoint", "deployment": "blue", "deleted": True}
    missing = phiops("deploy", "--model", "nope:1", code=1)
    assert missing.stderr == "phiops: no model named nope is registered; see `phiops model list`\n"
    unknown = phiops("score", "Hi", "--endpoint", "nowhere", code=1)
    assert "no local endpoint named nowhere" in unknown.stderr
    pids = all_pids(backend._endpoints)
    phiops("endpoints", "delete", "--yes")
    assert all(gone(pid) for pid in pids)
    assert as_json(phiops("endpoints", "list", "--json")) == []
