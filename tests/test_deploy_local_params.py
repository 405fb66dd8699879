"""The scoring request's checks: every bad body is one sentence, found before any model work."""

from __future__ import annotations

import pytest

from core.serving.params import MAX_INPUTS, BadRequest, parse_score_request


def test_seed_shape_and_defaults() -> None:
    parsed = parse_score_request({"input_data": ["Hi?"], "params": {"max_new_tokens": 20}})
    assert parsed.inputs == ["Hi?"]
    assert parsed.generation == {"max_new_tokens": 20, "do_sample": False}


def test_chat_input_and_sampling_params() -> None:
    body = {
        "input_data": [
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
        ],
        "params": {"do_sample": True, "temperature": 0.7, "top_p": 0.9, "return_full_text": True},
    }
    parsed = parse_score_request(body)
    assert parsed.inputs[0][1] == {"role": "user", "content": "Hi"}
    # return_full_text is accepted; answers come without the prompt (see the server tests)
    assert parsed.generation == {
        "max_new_tokens": 256,
        "do_sample": True,
        "temperature": 0.7,
        "top_p": 0.9,
    }


def test_greedy_requests_share_a_batch_whatever_their_temperature() -> None:
    one = parse_score_request({"input_data": ["a"], "params": {"temperature": 0.2}})
    two = parse_score_request({"input_data": ["b"], "params": {"temperature": 0.9}})
    three = parse_score_request({"input_data": ["c"], "params": {"max_new_tokens": 9}})
    assert one.key == two.key != three.key


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ([], "JSON object"),
        ({"inputs": ["x"]}, "no input_data (it has inputs)"),
        ({"input_data": []}, "non-empty list"),
        ({"input_data": "hello"}, "non-empty list"),
        ({"input_data": ["  "]}, "input_data[0] is an empty string"),
        ({"input_data": [3]}, "input_data[0] must be a string or a list of messages, not int"),
        ({"input_data": [[{"role": "bot", "content": "x"}]]}, "input_data[0][0].role"),
        ({"input_data": [[{"role": "user"}]]}, "content must be a string"),
        ({"input_data": [[]]}, "empty list of messages"),
        ({"input_data": ["x"] * (MAX_INPUTS + 1)}, f"at most {MAX_INPUTS}"),
        ({"input_data": ["x"], "params": {"max_tokens": 5}}, "unknown parameter max_tokens"),
        ({"input_data": ["x"], "params": {"max_new_tokens": 0}}, "between 1 and 4096"),
        ({"input_data": ["x"], "params": {"max_new_tokens": True}}, "whole number"),
        ({"input_data": ["x"], "params": {"max_new_tokens": 5, "min_new_tokens": 9}}, "more than"),
        ({"input_data": ["x"], "params": {"do_sample": "yes"}}, "true or false"),
        ({"input_data": ["x"], "params": {"do_sample": True, "temperature": 0}}, "above 0"),
        ({"input_data": ["x"], "params": {"top_p": 1.5}}, "at most 1"),
        ({"input_data": ["x"], "params": []}, "params must be a JSON object"),
    ],
)
def test_bad_bodies_are_one_sentence(body: object, words: str) -> None:
    with pytest.raises(BadRequest) as raised:
        parse_score_request(body)
    assert words in str(raised.value)
    assert "\n" not in str(raised.value)
