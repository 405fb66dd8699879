"""The chat flow run by Prompt flow in-process (and by the real `pf flow test`) against the
real scoring server on the session's trained tiny model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.chat.inprocess import QUIET_ENV
from core.chat.service import (
    AnswerDelta,
    AnswerDone,
    AnswerFailed,
    ChatRoute,
    ChatService,
    GenerationParams,
)
from core.chat.sessions import SessionStore
from core.config import Config
from tests.fixtures_chat import FLOW_DIR, REPO, RecordingProxy, promptflow_processes
from tests.fixtures_deploy import KEY
from tests.helpers import HANG

pytestmark = pytest.mark.slow

GREEDY = GenerationParams(temperature=0, max_new_tokens=24)


@pytest.fixture
def endpoint_env(monkeypatch: pytest.MonkeyPatch):
    """Point the chat service at a URL with a key, as a user's shell would."""

    def point(url: str, key: str = KEY) -> None:
        monkeypatch.setenv("PHIOPS_ENDPOINT_URL", url)
        monkeypatch.setenv("PHIOPS_ENDPOINT_KEY", key)

    return point


async def ask(service: ChatService, session_id: str, question: str, route=ChatRoute.FLOW):
    events = [
        event async for event in service.ask(session_id, question, route=route, params=GREEDY)
    ]
    await service.aclose()
    return events


@pytest.mark.parametrize("route", [ChatRoute.FLOW, ChatRoute.DIRECT])
async def test_answers_stream_and_history_reaches_the_endpoint(
    route, tmp_path: Path, scoring_server, endpoint_env
) -> None:
    with RecordingProxy(scoring_server.url) as proxy:
        endpoint_env(proxy.scoring_uri)
        service = ChatService(Config(), SessionStore(tmp_path / "chat.sqlite3"))
        session = service.store.create(route=route.value)

        first = await ask(service, session.id, "What is the capital of Peru?", route)
        *deltas, done = first
        assert isinstance(done, AnswerDone), done
        assert all(isinstance(event, AnswerDelta) for event in deltas)
        assert len(deltas) > 1, "the answer should stream in pieces"
        assert done.answer == "".join(event.text for event in deltas)
        assert done.answer.startswith("The capital of")
        assert done.tokens == len(deltas) and done.latency_s > 0 and done.first_token_s > 0

        second = await ask(service, session.id, "And Chile?", route)
        assert isinstance(second[-1], AnswerDone), second[-1]

    assert len(proxy.requests) == 2
    sent = proxy.requests[1]
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    assert sent.body["input_data"] == [
        [
            {"role": "user", "content": "What is the capital of Peru?"},
            {"role": "assistant", "content": done.answer},
            {"role": "user", "content": "And Chile?"},
        ]
    ]
    assert sent.body["params"]["do_sample"] is False
    assert sent.body["params"]["max_new_tokens"] == 24
    turns = service.store.turns(session.id)
    assert [t.role for t in turns] == ["user", "assistant", "user", "assistant"]
    assert turns[1].content == done.answer
    assert turns[1].meta["route"] == route.value


async def test_wrong_key_then_endpoint_down_keep_every_turn(
    tmp_path: Path, scoring_server, endpoint_env
) -> None:
    store = SessionStore(tmp_path / "chat.sqlite3")
    endpoint_env(scoring_server.scoring_uri)
    service = ChatService(Config(), store)
    session = store.create()
    good = await ask(service, session.id, "Name the capital city of Norway.")
    assert isinstance(good[-1], AnswerDone), good[-1]

    wrong = "wrong-key-" + "z" * 30
    endpoint_env(scoring_server.scoring_uri, wrong)
    service.forget_endpoint()
    (failed,) = await ask(service, session.id, "And Kenya?")
    assert isinstance(failed, AnswerFailed)
    assert failed.message.startswith(
        f"the endpoint at {scoring_server.scoring_uri} refused the key (HTTP 401)"
    )
    assert wrong not in failed.message and KEY not in failed.message

    endpoint_env("http://127.0.0.1:9/score")  # nothing listens on the discard port
    service.forget_endpoint()
    (down,) = await ask(service, session.id, "And Japan?")
    assert isinstance(down, AnswerFailed)
    assert down.message == (
        "cannot reach the endpoint at http://127.0.0.1:9/score (Connection refused)"
    )

    turns = store.turns(session.id)
    assert [(t.role, t.content) for t in turns[:2]] == [
        ("user", "Name the capital city of Norway."),
        ("assistant", good[-1].answer),
    ]
    assert [(t.role, t.content) for t in turns[2:]] == [
        ("user", "And Kenya?"),
        ("error", failed.message),
        ("user", "And Japan?"),
        ("error", down.message),
    ]

    # the conversation goes on where it was: the failed questions are not in the history
    with RecordingProxy(scoring_server.url) as proxy:
        endpoint_env(proxy.scoring_uri)
        service.forget_endpoint()
        again = await ask(service, session.id, "And Kenya?")
    assert isinstance(again[-1], AnswerDone), again[-1]
    assert [m["content"] for m in proxy.requests[0].body["input_data"][0]] == [
        "Name the capital city of Norway.",
        good[-1].answer,
        "And Kenya?",
    ]


def test_the_real_pf_flow_test_command(scoring_server, tmp_path: Path) -> None:
    """`pf flow test --flow flow --inputs question=...`, unchanged, with the env variables."""
    env = {
        **os.environ,
        "PHIOPS_ENDPOINT_URL": scoring_server.scoring_uri,
        "PHIOPS_ENDPOINT_KEY": KEY,
        **QUIET_ENV,
    }
    pf = str(Path(sys.executable).parent / "pf")
    history = json.dumps(
        [{"inputs": {"question": "Capital of Peru?"}, "outputs": {"answer": "Lima."}}]
    )
    result = subprocess.run(
        [
            pf,
            "flow",
            "test",
            "--flow",
            "flow",
            "--inputs",
            "question=What is the capital of Peru?",
            f"chat_history={history}",
            "temperature=0",
            "max_new_tokens=24",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    output = json.loads(result.stdout[result.stdout.index("{") :])
    assert output["answer"].startswith("The capital of")
    assert KEY not in result.stdout + result.stderr
    assert "OneSettings" not in result.stderr  # no phoning home from a telemetry-off run
    detail = (FLOW_DIR / ".promptflow" / "flow.detail.json").read_text()
    assert KEY not in detail
    assert promptflow_processes() == [], "pf flow test left a Prompt flow service running"


def test_pf_flow_test_reports_a_wrong_key_in_one_sentence(scoring_server) -> None:
    env = {
        **os.environ,
        "PHIOPS_ENDPOINT_URL": scoring_server.scoring_uri,
        "PHIOPS_ENDPOINT_KEY": "wrong-key-" + "q" * 30,
        **QUIET_ENV,
    }
    pf = str(Path(sys.executable).parent / "pf")
    result = subprocess.run(
        [pf, "flow", "test", "--flow", "flow", "--inputs", "question=Hi"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    assert result.returncode != 0
    said = result.stdout + result.stderr
    assert f"the endpoint at {scoring_server.scoring_uri} refused the key (HTTP 401)" in said
    assert "q" * 30 not in said
    assert promptflow_processes() == []
