"""The scoring request: check the body of `POST /score` and turn it into generation settings.

The shape is Azure ML's (`{"input_data": [...], "params": {...}}`); each input is a string
or a list of chat messages. Every problem is one sentence for a 400 answer, found before
the request takes a place in the queue. Unknown parameters are refused rather than
ignored, so a typo (`max_tokens`) is not silently served with the defaults.

`return_full_text` is accepted (the tutorial's client sends `true`) and checked, but the
answer is always the answer alone: the saved MLflow model, which an Azure ML deployment
serves, answers that way (its signature leaves the parameter out), and the prompt it would
prepend is the chat template's markup, not the user's text.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

ROLES = ("system", "user", "assistant")
# What the model did, per input, comma-separated, on JSON answers (the body stays Azure's
# list of strings): generated tokens, and `stop` (end of turn) or `length` (max_new_tokens).
TOKENS_HEADER = "x-phiops-generated-tokens"
FINISH_HEADER = "x-phiops-finish-reasons"
MAX_INPUTS = 32
MAX_NEW_TOKENS = 4096
DEFAULT_MAX_NEW_TOKENS = 256
# Parameters that only matter when sampling; dropped for greedy decoding, so greedy requests
# that differ only in them share a batch.
SAMPLING = ("temperature", "top_p", "top_k")
PARAMS = (
    "max_new_tokens",
    "min_new_tokens",
    "do_sample",
    "temperature",
    "top_p",
    "top_k",
    "repetition_penalty",
    "return_full_text",
)


class BadRequest(ValueError):
    """The request cannot be served as sent; the message is the sentence the client gets."""


ChatInput = list[dict[str, str]]


@dataclass(frozen=True)
class ScoreRequest:
    inputs: list[str | ChatInput]
    generation: dict[str, Any]  # keyword arguments for `generate`

    @property
    def key(self) -> tuple:
        """Requests with equal keys can share one `generate` call."""
        return tuple(sorted(self.generation.items()))


def _int(params: dict, name: str, low: int, high: int) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"params.{name} must be a whole number, not {value!r}")
    if isinstance(value, float) and (not math.isfinite(value) or value != int(value)):
        raise BadRequest(f"params.{name} must be a whole number, not {value!r}")
    if not low <= value <= high:
        raise BadRequest(f"params.{name} must be between {low} and {high}, not {value}")
    return int(value)


def _number(params: dict, name: str, *, above: float, at_most: float | None = None) -> float | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"params.{name} must be a number, not {value!r}")
    if not math.isfinite(value):
        raise BadRequest(f"params.{name} must be a finite number, not {value!r}")
    if value <= above or (at_most is not None and value > at_most):
        limit = f"above {above:g}" + (f" and at most {at_most:g}" if at_most is not None else "")
        raise BadRequest(f"params.{name} must be {limit}, not {value}")
    return float(value)


def _bool(params: dict, name: str, default: bool) -> bool:
    value = params.get(name, default)
    if not isinstance(value, bool):
        raise BadRequest(f"params.{name} must be true or false, not {value!r}")
    return value


def parse_params(params: Any) -> dict[str, Any]:
    """The generation keyword arguments the request's params ask for."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise BadRequest("params must be a JSON object")
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise BadRequest(
            f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"known: {', '.join(PARAMS)}"
        )
    max_new = _int(params, "max_new_tokens", 1, MAX_NEW_TOKENS) or DEFAULT_MAX_NEW_TOKENS
    generation: dict[str, Any] = {"max_new_tokens": max_new}
    min_new = _int(params, "min_new_tokens", 0, MAX_NEW_TOKENS)
    if min_new:
        if min_new > max_new:
            raise BadRequest(
                f"params.min_new_tokens ({min_new}) is more than max_new_tokens ({max_new})"
            )
        generation["min_new_tokens"] = min_new
    sampling = _bool(params, "do_sample", False)
    generation["do_sample"] = sampling
    if sampling:
        for name, value in (
            ("temperature", _number(params, "temperature", above=0)),
            ("top_p", _number(params, "top_p", above=0, at_most=1)),
            ("top_k", _int(params, "top_k", 0, 1_000_000)),
        ):
            if value is not None:
                generation[name] = value
    else:  # still checked, so a bad value is reported even when it would be ignored
        _number(params, "temperature", above=-1e-9)
        _number(params, "top_p", above=0, at_most=1)
        _int(params, "top_k", 0, 1_000_000)
    penalty = _number(params, "repetition_penalty", above=0)
    if penalty is not None and penalty != 1.0:
        generation["repetition_penalty"] = penalty
    _bool(params, "return_full_text", False)  # accepted, and answered without the prompt
    return generation


def _messages(item: list, index: int) -> ChatInput:
    if not item:
        raise BadRequest(f"input_data[{index}] is an empty list of messages")
    messages = []
    for position, message in enumerate(item):
        where = f"input_data[{index}][{position}]"
        if not isinstance(message, dict):
            raise BadRequest(f"{where} must be an object with role and content")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise BadRequest(f"{where}.role must be one of {', '.join(ROLES)}, not {role!r}")
        if not isinstance(content, str):
            raise BadRequest(f"{where}.content must be a string")
        messages.append({"role": role, "content": content})
    return messages


def parse_inputs(data: Any) -> list[str | ChatInput]:
    if not isinstance(data, list) or not data:
        raise BadRequest("input_data must be a non-empty list of strings or of chat-message lists")
    if len(data) > MAX_INPUTS:
        raise BadRequest(f"input_data holds {len(data)} inputs; at most {MAX_INPUTS} a request")
    inputs: list[str | ChatInput] = []
    for index, item in enumerate(data):
        if isinstance(item, str):
            if not item.strip():
                raise BadRequest(f"input_data[{index}] is an empty string")
            inputs.append(item)
        elif isinstance(item, list):
            inputs.append(_messages(item, index))
        else:
            raise BadRequest(
                f"input_data[{index}] must be a string or a list of messages, "
                f"not {type(item).__name__}"
            )
    return inputs


def _no_constant(name: str) -> Any:
    raise BadRequest(f"the body is not valid JSON: {name} is not a JSON number")


def loads(raw: bytes) -> Any:
    """The body as JSON, strictly: NaN and Infinity are refused, as is nesting too deep to
    parse (both would otherwise reach the model or fail as a server error)."""
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise BadRequest("the body is nested too deeply to be a scoring request") from None
    except UnicodeDecodeError:
        raise BadRequest("the body is not UTF-8 text") from None
    except ValueError as error:
        if isinstance(error, BadRequest):
            raise
        raise BadRequest("the body is not valid JSON") from None


def parse_score_request(body: Any) -> ScoreRequest:
    """The request in `body` (parsed JSON), or BadRequest with the reason."""
    if not isinstance(body, dict):
        raise BadRequest('the body must be a JSON object like {"input_data": [...], "params": {}}')
    unknown = sorted(set(body) - {"input_data", "params"})
    if "input_data" not in body:
        hint = f" (it has {', '.join(unknown)})" if unknown else ""
        raise BadRequest(f"the body has no input_data{hint}")
    generation = parse_params(body.get("params"))
    return ScoreRequest(parse_inputs(body["input_data"]), generation)
