"""One question to two targets: a deployment of a real local endpoint against the base model
on a temporary server, both answers streamed and both conversations stored."""

from __future__ import annotations

import pytest

from core.chat.pair import ChatPair
from core.chat.service import AnswerDelta, AnswerDone, AnswerFailed, ChatRoute, GenerationParams
from core.chat.sessions import SessionStore
from core.errors import PhiopsError

pytestmark = pytest.mark.slow

ENDPOINT = "pair-endpoint"


@pytest.fixture(scope="module")
def endpoint(local_job_project):
    _, backend, job = local_job_project
    version = backend.register_model(job.name, "phi3-pair")
    backend.deploy(version, ENDPOINT, traffic=100)
    try:
        yield backend
    finally:
        backend.delete_endpoint(ENDPOINT)


async def collect(pair: ChatPair, question: str, route: ChatRoute) -> dict[int, list]:
    events: dict[int, list] = {0: [], 1: []}
    params = GenerationParams(temperature=0, max_new_tokens=24)
    async for side, event in pair.ask(question, route=route, params=params):
        events[side].append(event)
    return events


@pytest.mark.parametrize("route", [ChatRoute.DIRECT, ChatRoute.FLOW])
async def test_both_sides_answer_and_keep_their_conversations(endpoint, tmp_path, route):
    import asyncio

    store = SessionStore(tmp_path / "chat.sqlite3")
    pair = ChatPair(endpoint.config, endpoint, store)
    try:
        sides = await asyncio.to_thread(pair.open, f"{ENDPOINT}:blue", "base")
        assert sides[0].label.startswith(f"{ENDPOINT}:blue (phi3-pair:")
        assert sides[1].label.startswith("base model")
        first = await collect(pair, "What is the capital of Peru?", route)
        second = await collect(pair, "And Japan?", route)
    finally:
        pair.close()
    for events in (first, second):
        for side in (0, 1):
            assert isinstance(events[side][-1], AnswerDone), events[side][-1]
            assert any(isinstance(e, AnswerDelta) for e in events[side])
    assert "capital" in first[0][-1].answer.lower()  # the fine-tuned side speaks the format
    assert first[1][-1].answer != first[0][-1].answer
    for side in sides:  # each side keeps its own conversation: both questions, both answers
        roles = [turn.role for turn in store.turns(side.session_id)]
        assert roles == ["user", "assistant", "user", "assistant"]


async def test_a_side_that_fails_says_so_and_the_other_answers(endpoint, tmp_path):
    import asyncio

    store = SessionStore(tmp_path / "chat.sqlite3")
    pair = ChatPair(endpoint.config, endpoint, store)
    with pytest.raises(PhiopsError, match="has no deployment nope"):
        await asyncio.to_thread(pair.open, f"{ENDPOINT}:blue", f"{ENDPOINT}:nope")
    try:
        sides = await asyncio.to_thread(pair.open, f"{ENDPOINT}:blue", "base")
        sides[1].resolved.temporary.stop()  # the base model's server goes away
        events = await collect(pair, "What is the capital of Peru?", ChatRoute.DIRECT)
    finally:
        pair.close()
    assert isinstance(events[0][-1], AnswerDone)
    failed = events[1][-1]
    assert isinstance(failed, AnswerFailed) and "cannot reach" in failed.message
    roles = [turn.role for turn in store.turns(sides[1].session_id)]
    assert roles == ["user", "error"]  # the question is kept, with what went wrong
