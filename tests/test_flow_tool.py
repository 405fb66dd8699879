"""flow/chat_tool.py against a scripted HTTP server: request shape, retries, every failure."""

from __future__ import annotations

import email.utils
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.fixtures_chat import Reply, ScriptedEndpoint, load_chat_tool

KEY = "sk-test-0123456789abcdef"


@pytest.fixture(scope="module")
def tool():
    return load_chat_tool()


def endpoint(tool, url: str, timeout_s: float = 10.0):
    return tool.Endpoint(url=url, key=KEY, timeout_s=timeout_s)


FAST = {"retries": 3, "base_delay_s": 0.01, "max_wait_s": 5.0}


def answer(tool, server: ScriptedEndpoint, *, retries=FAST, timeout_s=10.0) -> str:
    pieces = tool.ask(
        endpoint(tool, server.scoring_uri, timeout_s),
        [{"role": "user", "content": "hi"}],
        policy=tool.RetryPolicy(**retries),
    )
    return "".join(pieces)


def test_history_becomes_chat_messages(tool) -> None:
    history = [
        {"inputs": {"question": "Capital of Peru?"}, "outputs": {"answer": "Lima."}},
        {"inputs": {"question": "And Chile?"}, "outputs": {"answer": "Santiago."}},
        "not an item",
    ]
    assert tool.build_messages("And Kenya?", history) == [
        {"role": "user", "content": "Capital of Peru?"},
        {"role": "assistant", "content": "Lima."},
        {"role": "user", "content": "And Chile?"},
        {"role": "assistant", "content": "Santiago."},
        {"role": "user", "content": "And Kenya?"},
    ]
    assert tool.build_messages("Hi", None) == [{"role": "user", "content": "Hi"}]


def test_request_body_is_the_azure_ml_contract(tool) -> None:
    messages = [{"role": "user", "content": "hi"}]
    sampled = tool.build_body(messages, 0.7, 32, 0.9)
    assert sampled == {
        "input_data": [messages],
        "params": {
            "max_new_tokens": 32,
            "do_sample": True,
            "return_full_text": False,
            "temperature": 0.7,
            "top_p": 0.9,
        },
    }
    greedy = tool.build_body(messages, 0, 8, 0.9)["params"]
    assert greedy == {"max_new_tokens": 8, "do_sample": False, "return_full_text": False}


def test_streamed_answer_with_key_and_accept_headers(tool) -> None:
    with ScriptedEndpoint([Reply(sse=["The ", "capital ", "is Lima."])]) as server:
        pieces = list(
            tool.ask(endpoint(tool, server.scoring_uri), [{"role": "user", "content": "q"}])
        )
    assert pieces == ["The ", "capital ", "is Lima."]
    sent = server.requests[0]
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    assert "text/event-stream" in sent.headers["Accept"]
    assert sent.body["input_data"] == [[{"role": "user", "content": "q"}]]


def test_json_answer_when_the_endpoint_does_not_stream(tool) -> None:
    with ScriptedEndpoint([Reply(json=["The capital of Peru is Lima."])]) as server:
        assert answer(tool, server) == "The capital of Peru is Lima."


def test_429_waits_for_retry_after_then_answers(tool) -> None:
    busy = Reply(status=429, headers={"Retry-After": "1"}, json={"error": "queue full"})
    with ScriptedEndpoint([busy, Reply(json=["fine"])]) as server:
        started = time.monotonic()
        assert answer(tool, server) == "fine"
        waited = time.monotonic() - started
    assert len(server.requests) == 2
    assert waited >= 0.95  # it waited as told (how much longer is the machine's business)


def test_503_with_an_http_date_retry_after_then_answers(tool) -> None:
    soon = email.utils.formatdate(time.time() + 1, usegmt=True)
    loading = Reply(status=503, headers={"Retry-After": soon}, json={"error": "loading"})
    with ScriptedEndpoint([loading, Reply(sse=["ready"])]) as server:
        assert answer(tool, server) == "ready"
    assert len(server.requests) == 2


def test_retry_after_parsing(tool) -> None:
    assert tool.retry_after_seconds("3") == 3.0
    assert tool.retry_after_seconds("-2") == 0.0
    assert tool.retry_after_seconds(None) is None
    assert tool.retry_after_seconds("soon") is None
    date = email.utils.formatdate(1_000_010, usegmt=True)
    assert tool.retry_after_seconds(date, now=1_000_000) == pytest.approx(10, abs=1)
    policy = tool.RetryPolicy(retries=3, base_delay_s=0.5, max_wait_s=4)
    assert [policy.delay(n, None) for n in range(4)] == [0.5, 1.0, 2.0, 4.0]
    assert policy.delay(0, 60) == 4  # a server asking for a minute is capped


def test_503_that_never_ends_gives_up_after_the_retries(tool) -> None:
    never_ready = ScriptedEndpoint(default=Reply(status=503, json={"error": "model loading"}))
    with never_ready as server, pytest.raises(tool.EndpointError) as caught:
        answer(tool, server)
    message = str(caught.value)
    assert len(server.requests) == 4  # the first try and 3 retries
    assert server.scoring_uri in message
    assert "not ready (HTTP 503) after 3 retries" in message
    assert "model loading" in message
    assert caught.value.status == 503


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (401, "refused the key (HTTP 401)"),
        (404, "was not found (HTTP 404)"),
        (500, "failed (HTTP 500): boom"),
        (504, "timed out on the request (HTTP 504)"),
        (400, "rejected the request (HTTP 400): boom"),
    ],
)
def test_refusals_are_one_sentence_naming_the_url_never_the_key(tool, status, words) -> None:
    # the server even echoes the key back: the message must still not carry it
    refusal = Reply(status=status, json={"error": f"boom {KEY}"})
    with ScriptedEndpoint([refusal]) as server, pytest.raises(tool.EndpointError) as caught:
        answer(tool, server)
    message = str(caught.value)
    assert words in message
    assert server.scoring_uri in message
    assert KEY not in message and KEY not in repr(caught.value)
    assert "\n" not in message
    assert len(server.requests) == 1  # no retry for these


def test_endpoint_down(tool) -> None:
    with ScriptedEndpoint() as server:
        url = server.scoring_uri
    with pytest.raises(tool.EndpointError) as caught:
        answer(tool, SimpleNamespace(scoring_uri=url))
    assert str(caught.value) == f"cannot reach the endpoint at {url} (Connection refused)"


def test_slow_endpoint_times_out(tool) -> None:
    late = ScriptedEndpoint([Reply(json=["late"], delay_s=2)])
    with late as server, pytest.raises(tool.EndpointError, match=r"did not answer within 0.5 s"):
        answer(tool, server, timeout_s=0.5)


def test_error_event_mid_stream(tool) -> None:
    failing = Reply(sse=["The ", "cap"], error_event="generation failed: out of memory")
    with ScriptedEndpoint([failing]) as server:
        pieces = tool.ask(endpoint(tool, server.scoring_uri), [{"role": "user", "content": "q"}])
        assert next(pieces) == "The "
        assert next(pieces) == "cap"
        with pytest.raises(tool.EndpointError, match="failed while answering: generation failed"):
            next(pieces)


def test_stream_cut_before_done(tool) -> None:
    cut = ScriptedEndpoint([Reply(sse=["half "], done=False)])
    with cut as server, pytest.raises(tool.EndpointError, match="ended before the answer"):
        answer(tool, server)


def test_endpoint_from_connection_or_environment(tool) -> None:
    from promptflow.connections import CustomConnection

    env = {tool.URL_ENV: "http://env/score", tool.KEY_ENV: "env-key-0123456789"}
    from_env = tool.resolve_endpoint(None, env)
    assert (from_env.url, from_env.key) == ("http://env/score", "env-key-0123456789")
    assert "env-key" not in repr(from_env)

    connection = CustomConnection(
        configs={"endpoint_url": "http://conn/score", "deployment": "green"},
        secrets={"endpoint_key": "conn-key-0123456789"},
    )
    chosen = tool.resolve_endpoint(connection, env)
    assert (chosen.url, chosen.key, chosen.deployment) == (
        "http://conn/score",
        "conn-key-0123456789",
        "green",
    )

    with pytest.raises(tool.EndpointError, match="no endpoint URL: set PHIOPS_ENDPOINT_URL"):
        tool.resolve_endpoint(None, {})
    with pytest.raises(tool.EndpointError, match="no key for the endpoint at http://env/score"):
        tool.resolve_endpoint(None, {tool.URL_ENV: "http://env/score"})
    with pytest.raises(tool.EndpointError, match="must start with http"):
        tool.resolve_endpoint(None, {tool.URL_ENV: "env/score", tool.KEY_ENV: "k"})


def test_deployment_header_when_asked(tool) -> None:
    with ScriptedEndpoint([Reply(json=["ok"])]) as server:
        target = tool.Endpoint(url=server.scoring_uri, key=KEY, deployment="green")
        assert "".join(tool.ask(target, [{"role": "user", "content": "q"}])) == "ok"
    assert server.requests[0].headers["azureml-model-deployment"] == "green"


def test_the_flow_never_imports_phiops() -> None:
    """Prompt flow runs `flow/` on its own (pf flow serve, or a copy of the folder)."""
    from tests.helpers import top_level_imports

    found = top_level_imports(Path(__file__).resolve().parents[1] / "flow")
    assert found  # the tool was read
    assert [(path, name) for path, name in found if name in {"core", "tui", "trainer"}] == []
