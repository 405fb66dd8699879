"""The chat service's own rules, with a scripted HTTP server for the error paths and the
Azure stand-ins for finding the endpoint (the answers are tested against the real scoring
server in test_flow_inprocess.py and test_flow_serve.py)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from core.chat.endpoint import ChatError, unwrap_flow_error
from core.chat.service import (
    AnswerDelta,
    AnswerDone,
    AnswerFailed,
    ChatRoute,
    ChatService,
    GenerationParams,
    resolve_target,
)
from core.chat.sessions import SessionStore
from core.config import Config
from tests.fixtures_chat import Reply, ScriptedEndpoint
from tests.fixtures_deploy_azure import AzureDeploy, azure_deploy  # noqa: F401

KEY = "svc-key-" + "k" * 30


@pytest.fixture
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def make(url: str) -> ChatService:
        monkeypatch.setenv("PHIOPS_ENDPOINT_URL", url)
        monkeypatch.setenv("PHIOPS_ENDPOINT_KEY", KEY)
        return ChatService(Config(), SessionStore(tmp_path / "chat.sqlite3"))

    return make


async def collect(service: ChatService, session_id: str, question: str, **kwargs) -> list:
    events = [event async for event in service.ask(session_id, question, **kwargs)]
    await service.aclose()
    return events


async def test_direct_route_sends_the_history_and_the_parameters(service) -> None:
    with ScriptedEndpoint([Reply(sse=["Lima", "."]), Reply(json=["Santiago."])]) as server:
        chat = service(server.scoring_uri)
        session = chat.store.create()
        params = GenerationParams(temperature=0.3, max_new_tokens=12, top_p=0.5)
        first = await collect(chat, session.id, "  Peru?  ", route="direct", params=params)
        second = await collect(chat, session.id, "Chile?", route=ChatRoute.DIRECT)
    assert [type(e) for e in first] == [AnswerDelta, AnswerDelta, AnswerDone]
    assert first[-1].answer == "Lima." and first[-1].tokens == 2
    assert second == [AnswerDelta("Santiago."), second[-1]]
    assert second[-1].tokens == 1  # one piece: whitespace words
    assert server.requests[0].body == {
        "input_data": [[{"role": "user", "content": "Peru?"}]],
        "params": {
            "max_new_tokens": 12,
            "do_sample": True,
            "return_full_text": False,
            "temperature": 0.3,
            "top_p": 0.5,
        },
    }
    assert server.requests[1].body["input_data"][0] == [
        {"role": "user", "content": "Peru?"},
        {"role": "assistant", "content": "Lima."},
        {"role": "user", "content": "Chile?"},
    ]
    turns = chat.store.turns(session.id)
    assert turns[0].meta["params"] == {"temperature": 0.3, "max_new_tokens": 12, "top_p": 0.5}
    assert turns[1].meta["tokens_estimated"] is True


async def test_busy_endpoint_is_retried_after_its_retry_after(service) -> None:
    busy = Reply(status=429, headers={"Retry-After": "1"}, json={"error": "queue full"})
    with ScriptedEndpoint([busy, Reply(sse=["ok"])]) as server:
        chat = service(server.scoring_uri)
        session = chat.store.create()
        started = time.monotonic()
        events = await collect(chat, session.id, "q", route="direct")
        waited = time.monotonic() - started
    assert isinstance(events[-1], AnswerDone) and events[-1].answer == "ok"
    assert len(server.requests) == 2 and waited >= 0.95


async def test_a_failure_keeps_the_question_and_the_partial_answer(service) -> None:
    broken = Reply(sse=["The cap"], error_event="the model failed")
    with ScriptedEndpoint([Reply(json=["Lima."]), broken]) as server:
        chat = service(server.scoring_uri)
        session = chat.store.create()
        await collect(chat, session.id, "Peru?", route="direct")
        events = await collect(chat, session.id, "Chile?", route="direct")
    assert events[0] == AnswerDelta("The cap")
    assert events[-1] == AnswerFailed(
        f"the endpoint at {server.scoring_uri} failed while answering: the model failed"
    )
    turns = chat.store.turns(session.id)
    assert [(t.role, t.content) for t in turns] == [
        ("user", "Peru?"),
        ("assistant", "Lima."),
        ("user", "Chile?"),
        ("error", events[-1].message),
    ]
    assert turns[-1].meta == {"route": "direct", "partial_answer": "The cap"}


async def test_401_forgets_the_endpoint_so_a_new_key_is_picked_up(service, monkeypatch) -> None:
    with ScriptedEndpoint([Reply(status=401, json={"error": "bad key"})]) as server:
        chat = service(server.scoring_uri)
        session = chat.store.create()
        assert chat.endpoint_target().key == KEY
        (failed,) = await collect(chat, session.id, "q", route="direct")
        assert "refused the key (HTTP 401)" in failed.message and KEY not in failed.message
        monkeypatch.setenv("PHIOPS_ENDPOINT_KEY", "new-key-" + "n" * 30)
        events = await collect(chat, session.id, "q", route="direct")
    assert isinstance(events[-1], AnswerDone)
    assert server.requests[1].headers["Authorization"] == "Bearer new-key-" + "n" * 30


async def test_stopping_early_keeps_what_arrived(service) -> None:
    slow = Reply(sse=["one ", "two ", "three"], piece_delay_s=0.3)
    with ScriptedEndpoint([slow]) as server:
        chat = service(server.scoring_uri)
        session = chat.store.create()
        answer = chat.ask(session.id, "count", route="direct")
        assert await anext(answer) == AnswerDelta("one ")
        await answer.aclose()
        await chat.aclose()
    turns = chat.store.turns(session.id)
    assert [(t.role, t.content) for t in turns] == [
        ("user", "count"),
        ("error", "the answer was cancelled"),
    ]
    assert turns[-1].meta["partial_answer"] == "one "


async def test_a_cancelled_task_keeps_the_question_too(service) -> None:
    with ScriptedEndpoint([Reply(json=["late"], delay_s=3)]) as server:
        chat = service(server.scoring_uri)
        session = chat.store.create()
        task = asyncio.create_task(collect(chat, session.id, "slow?", route="direct"))
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert [t.role for t in chat.store.turns(session.id)] == ["user", "error"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"route": "telepathy"}, "'telepathy' is not a valid ChatRoute"),
        ({"params": GenerationParams(temperature=-1)}, "temperature must be between 0 and 5"),
        ({"params": GenerationParams(max_new_tokens=0)}, "max new tokens must be between 1"),
        ({"params": GenerationParams(top_p=0)}, "top_p must be above 0"),
    ],
)
async def test_bad_requests_fail_before_anything_is_stored(service, kwargs, message) -> None:
    chat = service("http://127.0.0.1:9/score")
    session = chat.store.create()
    (failed,) = await collect(chat, session.id, "q", **kwargs)
    assert isinstance(failed, AnswerFailed) and message in failed.message
    assert chat.store.turns(session.id) == []


async def test_empty_question_unknown_session_and_served_without_url(service) -> None:
    chat = service("http://127.0.0.1:9/score")
    session = chat.store.create()
    assert await collect(chat, session.id, "   ") == [AnswerFailed("the question is empty")]
    (missing,) = await collect(chat, "nope", "q")
    assert missing.message.startswith("no chat session 'nope'")
    (served,) = await collect(chat, session.id, "q", route="served")
    assert served.message == "the served route needs the served flow's URL (--via URL)"
    assert [t.role for t in chat.store.turns(session.id)] == ["user", "error"]


def test_prompt_flow_wrapping_is_taken_off() -> None:
    wrapped = "Execution failure in 'chat': (EndpointError) the endpoint at http://x refused"
    assert unwrap_flow_error(wrapped) == "the endpoint at http://x refused"
    assert unwrap_flow_error("plain sentence") == "plain sentence"


def test_the_endpoint_comes_from_the_backend(
    azure_deploy: AzureDeploy,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PHIOPS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("PHIOPS_ENDPOINT_KEY", raising=False)
    az = azure_deploy
    with pytest.raises(ChatError, match="no endpoint 'phi3-endpoint' on the azure backend"):
        resolve_target(az.config, lambda: az.backend)

    model = az.backend.register_model()
    az.backend.deploy(model, "phi3-endpoint", traffic=100)
    target = resolve_target(az.config, lambda: az.backend)
    assert target.url == "https://phi3-endpoint.eastus2.inference.ml.azure.com/score"
    assert target.key == az.backend.endpoint_keys("phi3-endpoint").primary
    assert target.key not in repr(target)

    monkeypatch.setenv("PHIOPS_ENDPOINT_KEY", "from-the-shell-" + "s" * 20)
    assert resolve_target(az.config, lambda: az.backend).key == "from-the-shell-" + "s" * 20


def test_the_chat_modules_load_nothing_heavy() -> None:
    """The TUI imports these at start and the CLI per command: Prompt flow, httpx and the ML
    libraries load only when a question is asked or a server started."""
    import subprocess
    import sys

    heavy = ("promptflow", "httpx", "torch", "transformers", "mlflow", "azure.ai.ml", "textual")
    modules = ("core.chat.service", "core.chat.flowserve", "core.cli.chat", "core.cli.flow")
    code = f"import sys; import {', '.join(modules)}; print('\\n'.join(sys.modules))"
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    assert [name for name in heavy if name in loaded] == []
