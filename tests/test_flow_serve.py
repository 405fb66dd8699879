"""`pf flow serve` on the chat flow (started as `phiops flow serve` does) in front of the real
scoring server: JSON answers, SSE streaming, errors, the served chat route, `phiops flow
serve --detach` / `flow stop`, and no Prompt flow process left behind."""

from __future__ import annotations

import json
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
from tests.helpers import run_phiops

pytestmark = pytest.mark.slow

QUESTION = {"question": "What is the capital of Peru?", "temperature": 0, "max_new_tokens": 24}
WRONG_KEY = "wrong-key-" + "w" * 30


@pytest.fixture(scope="module", autouse=True)
def _nothing_left_running() -> Iterator[None]:
    """Set up first, torn down last: after the module's servers stop, no pf process remains."""
    yield
    assert promptflow_processes() == [], "a Prompt flow process outlived the tests"


@pytest.fixture(scope="module")
def flow_server(scoring_server, tmp_path_factory) -> Iterator:
    log = tmp_path_factory.mktemp("flow-serve") / "serve.log"
    target = EndpointTarget(scoring_server.scoring_uri, KEY)
    server = start_flow_server(target, port=0, log_file=log)
    yield server
    server.stop()
    assert gone(server.pid), f"pf flow serve {server.pid} still runs"


@pytest.fixture(scope="module")
def wrong_key_flow_server(scoring_server, tmp_path_factory) -> Iterator:
    log = tmp_path_factory.mktemp("flow-serve-wrong") / "serve.log"
    target = EndpointTarget(scoring_server.scoring_uri, WRONG_KEY)
    server = start_flow_server(target, port=0, log_file=log)
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
        flow_server.score_url, json={**QUESTION, "chat_history": history}, timeout=120
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    answer = response.json()["answer"]
    assert isinstance(answer, str) and answer.startswith("The capital of")


def test_streams_when_asked_for_event_stream(flow_server) -> None:
    whole = httpx.post(flow_server.score_url, json=QUESTION, timeout=120).json()["answer"]
    headers = {"Accept": "text/event-stream"}
    with httpx.stream(
        "POST", flow_server.score_url, json=QUESTION, headers=headers, timeout=120
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_answer_events(response)
    assert len(events) > 1, "the answer should arrive in several events"
    assert all(set(event) == {"answer"} for event in events)
    assert "".join(event["answer"] for event in events) == whole  # greedy: the same answer


def test_the_key_is_in_neither_argv_nor_the_log(flow_server) -> None:
    family = [psutil.Process(flow_server.pid), *psutil.Process(flow_server.pid).children(True)]
    for process in family:
        assert KEY not in " ".join(process.cmdline())
    assert KEY not in flow_server.log.read_text(errors="replace")
    assert flow_server.url.startswith("http://127.0.0.1")  # bound to loopback


def test_a_wrong_key_is_one_sentence_from_the_served_flow(
    wrong_key_flow_server, scoring_server
) -> None:
    response = httpx.post(wrong_key_flow_server.score_url, json=QUESTION, timeout=120)
    assert response.status_code >= 400
    message = response.json()["error"]["message"]
    assert f"the endpoint at {scoring_server.scoring_uri} refused the key (HTTP 401)" in message
    assert WRONG_KEY not in response.text


async def test_the_served_route_of_the_chat_service(
    flow_server, wrong_key_flow_server, scoring_server, tmp_path: Path
) -> None:
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
