"""What the scoring server tells an evaluation beside the answer: how many tokens it
generated and whether it stopped at the end of the turn or was cut at max_new_tokens."""

from __future__ import annotations

import httpx
import pytest

from tests.fixtures_deploy import AUTH

pytestmark = pytest.mark.slow

QUESTION = [{"role": "user", "content": "What is the capital of Peru?"}]


def score(server, body: dict) -> httpx.Response:
    response = httpx.post(server.scoring_uri, json=body, headers=AUTH, timeout=60)
    assert response.status_code == 200, response.text
    return response


def test_generated_tokens_and_finish_reason_per_input(scoring_server):
    body = {"input_data": [QUESTION], "params": {"max_new_tokens": 64, "do_sample": False}}
    full = score(scoring_server, body)
    tokens = int(full.headers["x-phiops-generated-tokens"])
    assert full.headers["x-phiops-finish-reasons"] == "stop"  # the trained model says <|end|>
    assert 0 < tokens < 64

    body["params"]["max_new_tokens"] = 2
    cut = score(scoring_server, body)
    assert cut.headers["x-phiops-generated-tokens"] == "2"
    assert cut.headers["x-phiops-finish-reasons"] == "length"

    body = {"input_data": [QUESTION, "Hello"], "params": {"max_new_tokens": 3}}
    both = score(scoring_server, body)
    assert len(both.headers["x-phiops-finish-reasons"].split(",")) == 2
    assert both.json() and len(both.json()) == 2  # the body is still Azure's list of strings
