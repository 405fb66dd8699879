"""The served chat flow (Prompt flow's serving app, started as `phiops flow serve` does) in
front of the real scoring server: its key and no CORS, JSON answers, SSE streaming, errors,
the served chat route, `phiops flow serve --detach` / `flow stop`, a foreground server that
ends with its phiops, and no Prompt flow process left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from core.chat.endpoint import EndpointTarget
from core.chat.flowserve import start_flow_server
from core.chat.service import AnswerDone, AnswerFailed, ChatRoute, ChatService, GenerationParams
from core.chat.sessions import SessionStore
from core.config import Config
from tests.fixtures_chat import promptflow_processes
from tests.fixtures_deploy import KEY, gone
from tests.helpers import BIN, run_phiops

pytestmark = pytest.mark.slow

QUESTION = {"question": "What is the capital of Peru?", "temperature": 0, "max_new_tokens": 24}
WRONG_KEY = "wrong-key-" + "w" * 30
FLOW_KEY = "flow-key-" + "f" * 40
FLOW_AUTH = {"Authorization": f"Bearer {FLOW_KEY}"}


@pytest.fixture(scope="module", autouse=True)
def _nothing_left_running() -> Iterator[None]:
    """Set up first, torn down last: after the module's servers stop, no pf process remains."""
    yield
    assert promptflow_processes() == [], "a Prompt flow process outlived the tests"


@pytest.fixture(scope="module")
def flow_server(scoring_server, tmp_path_factory) -> Iterator:
    log = tmp_path_factory.mktemp("flow-serve") / "serve.log"
    target = EndpointTarget(scoring_server.scoring_uri, KEY)
    server = start_flow_server(target, keys=[FLOW_KEY], port=0, log_file=log)
    yield server
    server.stop()
    assert gone(server.pid), f"pf flow serve {server.pid} still runs"


@pytest.fixture(scope="module")
def wrong_key_flow_server(scoring_server, tmp_path_factory) -> Iterator:
    log = tmp_path_factory.mktemp("flow-serve-wrong") / "serve.log"
    target = EndpointTarget(scoring_server.scoring_uri, WRONG_KEY)
    server = start_flow_server(target, keys=[FLOW_KEY], port=0, log_file=log)
    yield server
    server.stop()
    assert gone(server.pid)


def sse_answer_events(response: httpx.Response) -> list[dict]:
    return [json.loads(line[5:]) for line in response.iter_lines() if line.startswith("data:")]


def test_health_and_a_json_answer(flow_server) -> None:
    assert flow_server.url.startswith("http://127.0.0.1:")
    assert httpx.get(flow_server.url + "/health").json()["status"] == "Healthy"
    history = [{"inputs": {"question": "Capital of Chile?"}, "outputs": {"answer": "Santiago."}}]
    response = httpx.post(
        flow_server.score_url,
        json={**QUESTION, "chat_history": history},
        headers=FLOW_AUTH,
        timeout=120,
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    answer = response.json()["answer"]
    assert isinstance(answer, str) and answer.startswith("The capital of")


def test_streams_when_asked_for_event_stream(flow_server) -> None:
    answered = httpx.post(flow_server.score_url, json=QUESTION, headers=FLOW_AUTH, timeout=120)
    whole = answered.json()["answer"]
    headers = {"Accept": "text/event-stream", **FLOW_AUTH}
    with httpx.stream(
        "POST", flow_server.score_url, json=QUESTION, headers=headers, timeout=120
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_answer_events(response)
    assert len(events) > 1, "the answer should arrive in several events"
    assert all(set(event) == {"answer"} for event in events)
    assert "".join(event["answer"] for event in events) == whole  # greedy: the same answer


def test_no_key_is_in_argv_the_environment_or_the_log(flow_server) -> None:
    family = [psutil.Process(flow_server.pid), *psutil.Process(flow_server.pid).children(True)]
    for process in family:
        assert KEY not in " ".join(process.cmdline())
        environ = Path(f"/proc/{process.pid}/environ").read_bytes()
        assert KEY.encode() not in environ and FLOW_KEY.encode() not in environ
    assert KEY not in flow_server.log.read_text(errors="replace")
    assert flow_server.url.startswith("http://127.0.0.1")  # bound to loopback


def test_the_served_flow_answers_only_its_key_and_allows_no_other_origin(flow_server) -> None:
    score = flow_server.score_url
    assert httpx.post(score, json=QUESTION, timeout=60).status_code == 401
    wrong = {"Authorization": f"Bearer {WRONG_KEY}"}
    assert httpx.post(score, json=QUESTION, headers=wrong, timeout=60).status_code == 401
    for path in ("/swagger.json", "/version", "/"):
        assert httpx.get(flow_server.url + path, timeout=60).status_code == 401, path
    assert httpx.get(flow_server.url + "/swagger.json", headers=FLOW_AUTH).status_code == 200
    assert httpx.get(flow_server.url + "/health").status_code == 200  # liveness stays open

    # What a web page in the user's browser can send without a preflight: refused, no CORS.
    page = {"Origin": "http://evil.example", "Content-Type": "text/plain"}
    simple = httpx.post(score, content=json.dumps(QUESTION), headers=page, timeout=60)
    assert simple.status_code == 401
    assert "access-control-allow-origin" not in simple.headers
    preflight = httpx.options(
        score,
        headers={
            "Origin": "http://evil.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert "access-control-allow-origin" not in preflight.headers
    keyed = httpx.post(score, json=QUESTION, headers={**page, **FLOW_AUTH}, timeout=120)
    assert keyed.status_code == 200 and "access-control-allow-origin" not in keyed.headers


def test_a_wrong_key_is_one_sentence_from_the_served_flow(
    wrong_key_flow_server, scoring_server
) -> None:
    response = httpx.post(
        wrong_key_flow_server.score_url, json=QUESTION, headers=FLOW_AUTH, timeout=120
    )
    assert response.status_code >= 400
    message = response.json()["error"]["message"]
    assert f"the endpoint at {scoring_server.scoring_uri} refused the key (HTTP 401)" in message
    assert WRONG_KEY not in response.text


async def test_the_served_route_of_the_chat_service(
    flow_server, wrong_key_flow_server, scoring_server, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("PHIOPS_FLOW_KEY", FLOW_KEY)  # the flows were not served by a project
    service = ChatService(Config(), SessionStore(tmp_path / "chat.sqlite3"))
    session = service.store.create(route="served")
    params = GenerationParams(temperature=0, max_new_tokens=24)

    async def ask(url: str, question: str) -> list:
        events = [
            event
            async for event in service.ask(
                session.id, question, route=ChatRoute.SERVED, via_url=url, params=params
            )
        ]
        await service.aclose()
        return events

    first = await ask(flow_server.url, "What is the capital of Peru?")
    assert isinstance(first[-1], AnswerDone), first[-1]
    assert len(first) > 2 and first[-1].answer.startswith("The capital of")

    (failed,) = await ask(wrong_key_flow_server.url, "And Chile?")
    assert isinstance(failed, AnswerFailed)
    assert failed.message.startswith(
        f"the endpoint at {scoring_server.scoring_uri} refused the key (HTTP 401)"
    )
    through = f"(through the served flow at {wrong_key_flow_server.score_url})"
    assert failed.message.endswith(through)
    assert "Execution failure" not in failed.message and WRONG_KEY not in failed.message

    second = await ask(flow_server.url, "And Chile?")
    assert isinstance(second[-1], AnswerDone), second[-1]
    roles = [turn.role for turn in service.store.turns(session.id)]
    assert roles == ["user", "assistant", "user", "error", "user", "assistant"]


def test_phiops_flow_serve_detach_chat_via_and_stop(scoring_server, project: Path) -> None:
    env = {"PHIOPS_ENDPOINT_URL": scoring_server.scoring_uri, "PHIOPS_ENDPOINT_KEY": KEY}
    started = run_phiops("flow", "serve", "--port", "0", "--detach", "--json", env=env)
    assert started.returncode == 0, started.stderr
    info = json.loads(started.stdout)
    try:
        assert info["detached"] and info["url"].startswith("http://127.0.0.1:")
        assert KEY not in started.stdout + started.stderr
        records = list((project / ".phiops" / "flow-servers").glob("*.json"))
        assert [json.loads(path.read_text())["pid"] for path in records] == [info["pid"]]
        refused = httpx.post(info["score_url"], json=QUESTION, timeout=60)
        assert refused.status_code == 401, "the served flow must want its key"
        assert KEY.encode() not in Path(f"/proc/{info['pid']}/environ").read_bytes()

        asked = run_phiops(
            "chat",
            "--via",
            info["url"],
            "--temperature",
            "0",
            "--max-new-tokens",
            "24",
            "--json",
            "What is the capital of Peru?",
        )
        assert asked.returncode == 0, asked.stderr
        answer = json.loads(asked.stdout)
        assert answer["route"] == "served" and answer["answer"].startswith("The capital of")
    finally:
        stopped = run_phiops("flow", "stop", "--json")
    assert stopped.returncode == 0, stopped.stderr
    assert [record["pid"] for record in json.loads(stopped.stdout)] == [info["pid"]]
    assert gone(info["pid"])
    assert not list((project / ".phiops" / "flow-servers").glob("*.json"))
    again = run_phiops("flow", "stop", "--json")
    assert json.loads(again.stdout) == []


def test_flow_serve_on_a_port_in_use_is_one_sentence(flow_server, scoring_server) -> None:
    port = flow_server.url.rsplit(":", 1)[1]
    env = {"PHIOPS_ENDPOINT_URL": scoring_server.scoring_uri, "PHIOPS_ENDPOINT_KEY": KEY}
    result = run_phiops("flow", "serve", "--port", port, env=env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"phiops: port {port} on 127.0.0.1 is in use; choose another with --port"
    )


def serve_in_foreground(env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen, dict]:
    """`phiops flow serve --port 0 --json` in the foreground, and what it printed once ready."""
    process = subprocess.Popen(
        [str(BIN / "phiops"), "flow", "serve", "--port", "0", "--json"],
        cwd=cwd,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        if line.rstrip() == "}":
            break
    else:
        process.wait(30)
        pytest.fail(f"phiops flow serve ended: {process.stderr.read() if process.stderr else ''}")
    return process, json.loads("".join(lines))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL])
def test_a_foreground_served_flow_ends_with_its_phiops(
    scoring_server, project: Path, signum: int
) -> None:
    env = {"PHIOPS_ENDPOINT_URL": scoring_server.scoring_uri, "PHIOPS_ENDPOINT_KEY": KEY}
    process, info = serve_in_foreground(env, project)
    try:
        records = list((project / ".phiops" / "flow-servers").glob("*.json"))
        assert [json.loads(path.read_text())["pid"] for path in records] == [info["pid"]]
        process.send_signal(signum)
        process.wait(60)
        assert gone(info["pid"]), f"the flow server outlived phiops ({signum!r})"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
        if not gone(info["pid"], within=1):
            os.kill(info["pid"], signal.SIGKILL)
    if signum != signal.SIGKILL:
        assert process.returncode == 128 + signum
        assert not list((project / ".phiops" / "flow-servers").glob("*.json"))


def test_down_stops_a_foreground_served_flow(scoring_server, project: Path) -> None:
    env = {"PHIOPS_ENDPOINT_URL": scoring_server.scoring_uri, "PHIOPS_ENDPOINT_KEY": KEY}
    process, info = serve_in_foreground(env, project)
    try:
        down = run_phiops("down", "--json")
        assert down.returncode == 0, down.stderr
        assert json.loads(down.stdout)["flow_servers"] == [info["url"]]
        assert gone(info["pid"])
        assert process.wait(60) == 0, process.stderr.read() if process.stderr else ""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)


def test_pf_flow_test_in_a_phiops_project_leaves_no_trace_service(
    scoring_server, project: Path, tmp_path: Path
) -> None:
    """The README's hand-run `pf flow test`, in a user's own project folder (not the
    repository, whose pf.yaml turns tracing off) with a Prompt flow home of its own."""
    import sys

    from core.chat.inprocess import FLOW_DIR
    from tests.fixtures_chat import promptflow_processes

    initialised = run_phiops("config", "init", "--non-interactive", cwd=project)
    assert initialised.returncode == 0, initialised.stderr
    assert "destination: none" in (project / "pf.yaml").read_text()
    home = tmp_path / "users-pf-home"  # a user's home: no pf.yaml of phiops' there
    home.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PF_DISABLE_TRACING", "PF_HOME_DIRECTORY")
    }
    env.update(
        PF_HOME_DIRECTORY=str(home),
        PHIOPS_ENDPOINT_URL=scoring_server.scoring_uri,
        PHIOPS_ENDPOINT_KEY=KEY,
        APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED="true",  # as the README says
    )
    pf = str(Path(sys.executable).parent / "pf")
    try:
        result = subprocess.run(
            [pf, "flow", "test", "--flow", str(FLOW_DIR), "--inputs", "question=Capital of Peru?"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        assert promptflow_processes(str(home)) == [], "pf flow test left a service running"
    finally:
        for line in promptflow_processes(str(home)):
            os.kill(int(line.split(":")[0]), signal.SIGKILL)


def test_stopping_flow_servers_forgets_each_record_before_its_server(tmp_path: Path) -> None:
    """A foreground `phiops flow serve` tells "stopped by `flow stop` or `down`" from a crash
    by its record being gone when its server ends. `down` removed the record after the
    server had ended, so the foreground command could remove it first and exit 1 ("the flow
    server stopped with exit code -15"), as a loaded CI machine showed."""
    import sys
    import time
    from types import SimpleNamespace

    from core.chat.flowserve import FlowServerRecord, records_dir, stop_flow_servers

    config = SimpleNamespace(store_path=tmp_path / "store")
    folder = records_dir(config)
    folder.mkdir(parents=True)
    seen = tmp_path / "record-at-sigterm"
    code = (  # a stand-in server: on SIGTERM, says whether its record still exists
        "import os, signal, sys, time\n"
        "record = os.path.join(sys.argv[1], f'{os.getpid()}.json')\n"
        "def on_term(*_):\n"
        "    open(sys.argv[2], 'w').write(str(os.path.exists(record)))\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, on_term)\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n"
    )
    server = subprocess.Popen(
        [sys.executable, "-c", code, str(folder), str(seen)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None and server.stdout.readline() == "ready\n"
        record = FlowServerRecord(
            pid=server.pid,
            url="http://127.0.0.1:9",
            started_at=time.time(),
            create_time=psutil.Process(server.pid).create_time(),
            log="",
            detached=False,
            parent=os.getpid(),
        )
        (folder / f"{server.pid}.json").write_text(json.dumps(record.to_dict()))
        stopped = stop_flow_servers(config, timeout=60)
        assert [found.pid for found in stopped] == [server.pid]
        assert server.wait(60) == 0 and seen.read_text() == "False"
    finally:
        if server.poll() is None:
            server.kill()
