"""What phiops deploys to Azure ML answers what chat sends (defect 3): the deployment's
scoring code under the real azureml-inference-server-http, on the session's trained tiny
model mounted as Azure mounts a registered MLflow model — the seed's request, a three-turn
conversation as the flow tool builds it, the in-process flow and the direct route (what
`phiops chat` and the TUI use), and a deploy whose smoke test reaches that server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.chat.service import AnswerDone, ChatRoute, ChatService, GenerationParams
from core.chat.sessions import SessionStore
from core.config import Config
from tests import fixtures_deploy_azure, fixtures_scoring_azure
from tests.azure_fake.transport import Reply
from tests.fixtures_chat import RecordingProxy, load_chat_tool
from tests.fixtures_deploy_azure import AzureDeploy
from tests.fixtures_scoring_azure import AzureScoringServer

pytestmark = pytest.mark.slow
azure_deploy = fixtures_deploy_azure.azure_deploy
azure_scoring_server = fixtures_scoring_azure.azure_scoring_server

SEED_REQUEST = {
    "input_data": ["What is the capital of France?"],
    "params": {
        "temperature": 0.7,
        "max_new_tokens": 128,
        "do_sample": True,
        "return_full_text": True,
    },
}
SPECIAL = ("<|user|>", "<|assistant|>", "<|end|>", "<|endoftext|>", "<|system|>")


def answers(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    data = response.json()
    assert isinstance(data, list) and all(isinstance(item, str) for item in data), data
    return data


def test_the_seeds_request_gets_the_answer_and_only_the_answer(
    azure_scoring_server: AzureScoringServer,
) -> None:
    response = azure_scoring_server.score(SEED_REQUEST)
    [answer] = answers(response)
    assert answer.strip() and not any(token in answer for token in SPECIAL)
    assert "What is the capital of France?" not in answer  # return_full_text: no prompt back
    # How the answer ended, as the local server says it (an evaluation counts stops by it).
    assert 0 < int(response.headers["x-phiops-generated-tokens"]) <= 128
    assert response.headers["x-phiops-finish-reasons"] in ("stop", "length")


def test_a_three_turn_conversation_as_the_flow_tool_sends_it(
    azure_scoring_server: AzureScoringServer,
) -> None:
    tool = load_chat_tool()
    history = [
        {"inputs": {"question": "What is the capital of France?"}, "outputs": {"answer": "Paris."}},
        {"inputs": {"question": "And of Japan?"}, "outputs": {"answer": "Tokyo."}},
    ]
    messages = tool.build_messages("And of Peru?", history)
    body = tool.build_body(messages, temperature=0, max_new_tokens=200, top_p=0.9)
    assert [m["role"] for m in body["input_data"][0]] == ["user", "assistant"] * 2 + ["user"]
    [answer] = answers(azure_scoring_server.score(body, Accept="text/event-stream"))
    assert answer.startswith("The capital of"), answer
    assert not any(token in answer for token in SPECIAL)
    assert len(answer.split()) < 40  # it stopped at <|end|>, far short of 200 tokens


def test_a_bad_request_is_refused_in_one_sentence(
    azure_scoring_server: AzureScoringServer,
) -> None:
    response = azure_scoring_server.score({"input_data": [], "params": {}})
    assert response.status_code == 400
    assert response.json()["error"].startswith("input_data must be a non-empty list")
    response = azure_scoring_server.score({"input_data": ["hi"], "params": {"max_tokens": 5}})
    assert response.status_code == 400 and "unknown parameter max_tokens" in response.text


@pytest.mark.parametrize("route", [ChatRoute.FLOW, ChatRoute.DIRECT])
async def test_chat_routes_hold_a_conversation_with_the_deployment(
    route: ChatRoute,
    azure_scoring_server: AzureScoringServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The in-process flow (`phiops chat`'s default) and the direct route, three turns."""
    with RecordingProxy(azure_scoring_server.url) as proxy:
        monkeypatch.setenv("PHIOPS_ENDPOINT_URL", proxy.scoring_uri)
        monkeypatch.setenv("PHIOPS_ENDPOINT_KEY", "azure-endpoint-key")
        service = ChatService(Config(), SessionStore(tmp_path / "chat.sqlite3"))
        session = service.store.create(route=route.value)
        params = GenerationParams(temperature=0, max_new_tokens=48)
        done = []
        for question in ("What is the capital of France?", "And Japan?", "And Peru?"):
            events = [
                e async for e in service.ask(session.id, question, route=route, params=params)
            ]
            assert isinstance(events[-1], AnswerDone), events[-1]
            done.append(events[-1].answer)
        await service.aclose()
    assert all(answer.strip() for answer in done)
    last = proxy.requests[-1].body["input_data"][0]
    assert [m["role"] for m in last] == ["user", "assistant"] * 2 + ["user"]
    assert [m["content"] for m in last if m["role"] == "assistant"] == done[:2]


def test_a_deploy_smoke_tests_the_scoring_code_with_both_request_shapes(
    azure_deploy: AzureDeploy, azure_scoring_server: AzureScoringServer
) -> None:
    """The fake Azure routes the new deployment's /score to the real scoring server."""
    import httpx

    def forward(request: Any) -> Reply:
        response = httpx.post(
            azure_scoring_server.scoring_uri, content=request.body, timeout=120,
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        return Reply(response.status_code, response.content, {"Content-Type": "application/json"})

    az = azure_deploy
    az.world.scorers["blue"] = forward
    info = az.backend.deploy(
        az.backend.register_model(), "phi3-endpoint", progress=az.progress.append
    )
    assert info.traffic == {"blue": 100}
    plain, chat = az.world.invocations
    assert isinstance(plain["body"]["input_data"][0], str)
    assert isinstance(chat["body"]["input_data"][0], list)
    # What the smoke test got back came from the scoring code: strings, no prompt.
    assert json.dumps(chat["body"]).count("Reply with one word") == 1
