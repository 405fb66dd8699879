"""The scoring server on a model trained by the trainer: contract, keys, limits, streaming,
batching and a clean stop. Each server is a real process serving the real model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from core.errors import NotFoundError
from tests.fixtures_deploy import AUTH, KEY, OTHER_KEY, gone
from tests.helpers import HANG

SEED_REQUEST = {
    "input_data": ["What is the capital of France?"],
    "params": {"temperature": 0.7, "max_new_tokens": 40, "do_sample": False},
}
STREAM = {**AUTH, "Accept": "text/event-stream"}


def stats(server) -> dict:
    return httpx.get(server.url + "/stats", headers=AUTH).json()


def sse_events(response: httpx.Response) -> list[tuple[str, str]]:
    """(event, data) pairs of a server-sent-events response."""
    events, event, data = [], "message", []
    for line in response.iter_lines():
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line and data:
            events.append((event, "\n".join(data)))
            event, data = "message", []
    return events


def test_probes_and_the_seed_request_shape(scoring_server) -> None:
    assert httpx.get(scoring_server.url + "/").status_code == 200
    assert httpx.get(scoring_server.url + "/liveness").status_code == 200
    assert httpx.get(scoring_server.url + "/readiness").json()["status"] == "ready"
    response = httpx.post(scoring_server.scoring_uri, json=SEED_REQUEST, headers=AUTH, timeout=60)
    assert response.status_code == 200, response.text
    answers = response.json()
    assert isinstance(answers, list) and len(answers) == 1 and isinstance(answers[0], str)
    # The trained model answers in its training format, and only the answer comes back.
    assert answers[0].startswith("The capital of")
    assert "<|" not in answers[0] and "What is" not in answers[0]
    assert response.headers["azureml-model-deployment"] == "blue"


def test_chat_messages_and_full_text(scoring_server) -> None:
    messages = [
        {"role": "system", "content": "You answer geography questions."},
        {"role": "user", "content": "Which city is the capital of Peru?"},
    ]
    body = {"input_data": [messages, "Name the capital city of Norway."], "params": {}}
    answers = httpx.post(scoring_server.scoring_uri, json=body, headers=AUTH, timeout=60).json()
    assert len(answers) == 2 and all(answer.startswith("The capital of") for answer in answers)
    question = "Name the capital city of Norway."
    # The tutorial sends return_full_text: true; like the saved MLflow model, the answer
    # comes alone, without the chat template's markup and the question.
    full = {"input_data": [question], "params": {"return_full_text": True}}
    text = httpx.post(scoring_server.scoring_uri, json=full, headers=AUTH, timeout=60).json()[0]
    assert text == answers[1]


def test_either_key_works_and_a_missing_or_wrong_one_costs_no_model_work(scoring_server) -> None:
    before = stats(scoring_server)
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": KEY},  # no scheme
        {"Authorization": "Bearer"},
        {"Authorization": f"Basic {KEY}"},
    ):
        response = httpx.post(scoring_server.scoring_uri, json=SEED_REQUEST, headers=headers)
        assert response.status_code == 401, headers
        assert "key" in response.json()["error"] and KEY not in response.text
    after = stats(scoring_server)
    assert after["unauthorized"] == before["unauthorized"] + 5
    assert (after["requests"], after["prompts"]) == (before["requests"], before["prompts"])
    other = {"Authorization": f"Bearer {OTHER_KEY}"}
    assert httpx.post(scoring_server.scoring_uri, json=SEED_REQUEST, headers=other, timeout=60)


def test_bad_requests_get_400_with_a_sentence(scoring_server) -> None:
    cases = [
        (b"{not json", "not valid JSON"),
        (json.dumps({"input_data": ["x"], "params": {"max_tokens": 3}}).encode(), "max_tokens"),
        (json.dumps({"data": ["x"]}).encode(), "no input_data"),
    ]
    for raw, words in cases:
        response = httpx.post(scoring_server.scoring_uri, content=raw, headers=AUTH)
        assert response.status_code == 400 and words in response.json()["error"]
    two = {"input_data": ["a", "b"]}
    response = httpx.post(scoring_server.scoring_uri, json=two, headers=STREAM)
    assert response.status_code == 400 and "exactly one input" in response.json()["error"]
    long = {"input_data": ["word " * 5000]}
    response = httpx.post(scoring_server.scoring_uri, json=long, headers=AUTH, timeout=60)
    assert response.status_code == 400 and "context" in response.json()["error"]


def test_streaming_sends_the_same_answer_in_pieces(scoring_server) -> None:
    body = {"input_data": ["Which city is the capital of Kenya?"], "params": {"max_new_tokens": 40}}
    whole = httpx.post(scoring_server.scoring_uri, json=body, headers=AUTH, timeout=60).json()[0]
    with httpx.stream(
        "POST", scoring_server.scoring_uri, json=body, headers=STREAM, timeout=60
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
    assert events[-1] == ("message", "[DONE]")
    deltas = [json.loads(data)["delta"] for event, data in events[:-1]]
    assert len(deltas) > 1 and "".join(deltas) == whole


def test_concurrent_requests_are_batched_and_answer_as_alone(scoring_server) -> None:
    questions = [
        "What is the capital of Chile?",
        "And Egypt?",
        "Name the capital city of Italy, please, if you know it.",
        "Which city is the capital of Spain?",
        "What is the capital of Canada?",
        "Name the capital city of Japan.",
    ]
    params = {"max_new_tokens": 48, "min_new_tokens": 48}

    def ask(question: str) -> str:
        body = {"input_data": [question], "params": params}
        response = httpx.post(scoring_server.scoring_uri, json=body, headers=AUTH, timeout=120)
        assert response.status_code == 200, response.text
        return response.json()[0]

    alone = [ask(question) for question in questions]
    before = stats(scoring_server)
    with ThreadPoolExecutor(len(questions)) as pool:
        together = list(pool.map(ask, questions))
    after = stats(scoring_server)
    # Left padding keeps each answer what it is alone (greedy decoding).
    assert together == alone
    batches = after["batches"] - before["batches"]
    assert batches < len(questions), "concurrent requests were not batched"
    assert after["largest_batch"] >= 2


def test_a_saturated_deployment_answers_429_not_hanging(tight_server) -> None:
    long = {"input_data": ["What is the capital of Peru?"]}
    long["params"] = {"max_new_tokens": 4000, "min_new_tokens": 4000}
    results: dict[str, httpx.Response] = {}

    def occupy() -> None:
        results["long"] = httpx.post(tight_server.scoring_uri, json=long, headers=AUTH, timeout=60)

    worker = threading.Thread(target=occupy)
    worker.start()
    deadline = time.monotonic() + HANG
    while stats(tight_server)["requests"] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    before = stats(tight_server)
    started = time.monotonic()
    busy = httpx.post(tight_server.scoring_uri, json=SEED_REQUEST, headers=AUTH, timeout=30)
    waited = time.monotonic() - started
    assert busy.status_code == 429, busy.text
    assert busy.headers["Retry-After"] == "1" and "busy" in busy.json()["error"]
    assert waited > 0.25  # it waited for a place as long as the settings say, then refused
    # A wrong key is refused even now (401, not 429): the key is checked before the queue.
    assert httpx.post(tight_server.scoring_uri, json=SEED_REQUEST).status_code == 401
    worker.join(30)
    # The long request ran past the 1.5 s request timeout: 504, and its generation stopped.
    assert results["long"].status_code == 504
    assert "request timeout (1500 ms)" in results["long"].json()["error"]
    after = stats(tight_server)
    assert after["rejected_busy"] == before["rejected_busy"] + 1
    assert after["requests"] == before["requests"]  # the 429 and the 401 never reached the model
    # The place is given back once the stopped generation ends: the next request is served.
    deadline = time.monotonic() + HANG
    while True:
        ok = httpx.post(tight_server.scoring_uri, json=SEED_REQUEST, headers=AUTH, timeout=30)
        if ok.status_code != 429 or time.monotonic() > deadline:
            break
    assert ok.status_code == 200, ok.text


def test_a_stream_past_the_timeout_ends_with_an_error_event(tight_server) -> None:
    body = {"input_data": ["What is the capital of Peru?"]}
    body["params"] = {"max_new_tokens": 4000, "min_new_tokens": 4000}
    with httpx.stream(
        "POST", tight_server.scoring_uri, json=body, headers=STREAM, timeout=60
    ) as response:
        assert response.status_code == 200
        events = sse_events(response)
    assert events[0][0] == "message" and "delta" in json.loads(events[0][1])
    event, data = events[-1]
    assert event == "error" and "request timeout" in json.loads(data)["error"]


def test_readiness_is_503_until_the_model_loads() -> None:
    from starlette.testclient import TestClient

    from core.serving.app import ServerState, create_app

    release = threading.Event()

    def slow_loader():
        release.wait(10)
        raise OSError("weights are corrupt")

    state = ServerState([KEY], loader=slow_loader)
    with TestClient(create_app(state)) as client:
        assert client.get("/liveness").status_code == 200
        loading = client.get("/readiness")
        assert loading.status_code == 503 and loading.json()["status"] == "loading"
        score = client.post("/score", json=SEED_REQUEST, headers=AUTH)
        assert score.status_code == 503 and score.headers["Retry-After"] == "5"
        assert client.post("/score", json=SEED_REQUEST).status_code == 401
        release.set()
        deadline = time.monotonic() + 5
        while not state.load_error and time.monotonic() < deadline:
            time.sleep(0.01)
        failed = client.get("/readiness")
        assert failed.status_code == 503 and "weights are corrupt" in failed.json()["error"]


def test_start_refuses_a_folder_without_a_model(tmp_path) -> None:
    from core.serving.process import start_scoring_server

    with pytest.raises(NotFoundError, match="no model in"):
        start_scoring_server(tmp_path, keys=[KEY])


def test_sigterm_finishes_the_request_in_flight_and_exits_0(trained_model_dir) -> None:
    from core.serving.process import start_scoring_server

    server = start_scoring_server(trained_model_dir, keys=[KEY])
    # Its own process group: a terminal's Ctrl-C reaches only its parent, which stops it.
    # In the parent's group, `phiops eval --base` interrupted at a terminal lost its server
    # to the same signal and failed ("cannot reach the endpoint") instead of interrupting.
    assert os.getpgid(server.pid) == server.pid != os.getpgid(0)
    try:
        body = {"input_data": ["Hi"], "params": {"max_new_tokens": 150, "min_new_tokens": 150}}
        result: dict[str, httpx.Response] = {}
        worker = threading.Thread(
            target=lambda: result.setdefault(
                "r", httpx.post(server.scoring_uri, json=body, headers=AUTH, timeout=60)
            )
        )
        worker.start()
        deadline = time.monotonic() + HANG
        while stats(server)["requests"] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        code = server.stop()
        worker.join(30)
    finally:
        server.stop()
    assert code == 0
    assert result["r"].status_code == 200 and result["r"].json()[0]
    assert gone(server.pid)
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/liveness")


def test_the_server_stops_when_its_parent_dies(trained_model_dir, tmp_path) -> None:
    """A test or a CLI killed outright leaves no scoring server behind."""
    script = (
        "import sys\n"
        "from core.serving.process import start_scoring_server\n"
        f"server = start_scoring_server({str(trained_model_dir)!r}, keys=['k' * 20])\n"
        "print(server.pid, flush=True)\n"
        "import time; time.sleep(600)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=tmp_path
    )
    try:
        pid = int(parent.stdout.readline())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        assert gone(pid, within=15), f"the orphaned server {pid} kept running"
    finally:
        if parent.poll() is None:
            parent.kill()
