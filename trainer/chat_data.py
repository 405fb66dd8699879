"""Read chat JSONL and reject bad rows before any training starts, naming the line.

A training job that dies an hour in on row 51 237 wastes the hour; this check costs a
second. The trainer is uploaded alone to Azure ML, so it carries its own validator
instead of importing the one in `core`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROLES = ("system", "user", "assistant")

Message = dict[str, str | int]


class InvalidDataError(ValueError):
    """A dataset file that cannot be trained on; the message names the file and line."""


def row_problem(row: Any) -> str | None:
    """What is wrong with one parsed row, or None when it is a usable chat example."""
    if not isinstance(row, dict):
        return f"expected a JSON object, got {type(row).__name__}"
    messages = row.get("messages")
    if messages is None:
        return 'missing "messages"'
    if not isinstance(messages, list) or not messages:
        return '"messages" must be a non-empty list'
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"message {index} is not an object"
        role = message.get("role")
        if role not in ROLES:
            return f"message {index} has role {role!r}; expected one of {', '.join(ROLES)}"
        if not isinstance(message.get("content"), str):
            return f'message {index} has no text "content"'
        if "weight" in message and (role != "assistant" or message["weight"] not in (0, 1)):
            return (
                f"message {index} has weight {message['weight']!r}; only 0 or 1 on assistant turns"
            )
    answers = [message for message in messages if message["role"] == "assistant"]
    if not answers:
        return "no assistant message to learn from"
    if all(message.get("weight", 1) == 0 for message in answers):
        return "every assistant message has weight 0: nothing to learn from"
    return None


def _kept(message: dict) -> Message:
    """Role and content, and `weight` when the row gives one."""
    kept = {"role": message["role"], "content": message["content"]}
    if "weight" in message:
        kept["weight"] = int(message["weight"])
    return kept


def has_zero_weight(conversations: list[list[Message]]) -> bool:
    """True when some assistant turn is marked `weight: 0` (seen, not trained on)."""
    return any(message.get("weight") == 0 for messages in conversations for message in messages)


def read_chat_rows(path: str | Path) -> list[list[Message]]:
    """Every row's messages (role, content and any `weight`), or InvalidDataError at the first
    bad line. An assistant message with `weight: 0` is context: the trainer masks it out of
    the loss (`phi3_chat.WEIGHTED_TRAINING_TEMPLATE`).

    Other keys (`prompt`, `prompt_id`) are dropped on purpose: TRL treats a `prompt` column
    as prompt-completion data, which is not what ultrachat's `prompt` means.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidDataError(f"{path}: no such file")
    conversations: list[list[Message]] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                problem = f"not valid JSON ({error.msg})"
                raise InvalidDataError(f"{path}, line {number}: {problem}") from None
            problem = row_problem(row)
            if problem:
                raise InvalidDataError(f"{path}, line {number}: {problem}")
            conversations.append([_kept(message) for message in row["messages"]])
    if not conversations:
        raise InvalidDataError(f"{path}: no rows")
    return conversations
