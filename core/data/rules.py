"""What makes one chat row trainable: the checks `data validate`, `prepare` and preview share.

A row is ultrachat-shaped (`{"prompt", "prompt_id", "messages": [...]}`, only `messages`
required); an assistant message may carry OpenAI's `weight`, 0 or 1, where 0 means the turn
is context and not trained on. Other shapes are converted to this one first
(`formats.check_row`). Every problem a row has is reported, each under a short reason code,
so a summary can count rows by reason and a user can fix a whole file in one pass instead of
one error at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any

ROLES = ("system", "user", "assistant")

# reason code -> what the summary calls it
REASONS: dict[str, str] = {
    "not_utf8": "not valid UTF-8",
    "invalid_json": "not valid JSON",
    "not_object": "not a JSON object",
    "no_messages": '"messages" missing, not a list or empty',
    "bad_message": "a message that is not an object",
    "bad_role": "a role other than system, user or assistant",
    "empty_content": "a message without non-empty string content",
    "misplaced_system": "more than one system message, or one not first",
    "no_user_turn": "no user turn",
    "no_assistant_turn": "no assistant turn",
    "not_alternating": "user and assistant turns do not alternate",
    "last_not_assistant": "the last turn is not the assistant's",
    "bad_weight": "a weight other than 0 or 1, or on a message that is not the assistant's",
    "nothing_to_learn": "every assistant turn has weight 0",
    "unconvertible": "in a known shape (ShareGPT, Alpaca, …) that cannot be converted",
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a row: a reason code from REASONS and a sentence naming where."""

    code: str
    message: str


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages a user recognises."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def row_problems(row: Any) -> list[Problem]:
    """Every problem with one parsed row; an empty list means it is a usable chat example."""
    if not isinstance(row, dict):
        return [Problem("not_object", f"expected a JSON object, got {json_type(row)}")]
    if "messages" not in row:
        return [Problem("no_messages", 'no "messages" key')]
    messages = row["messages"]
    if not isinstance(messages, list):
        return [Problem("no_messages", f'"messages" is {json_type(messages)}, not a list')]
    if not messages:
        return [Problem("no_messages", '"messages" is an empty list')]

    problems: list[Problem] = []
    roles: list[tuple[int, str]] = []  # (position, role) of the messages whose role is valid
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            problems.append(Problem("bad_message", f"{where} is {json_type(message)}"))
            continue
        role = message.get("role")
        if isinstance(role, str) and role in ROLES:
            roles.append((index, role))
        elif "role" not in message:
            problems.append(Problem("bad_role", f'{where} has no "role"'))
        else:
            problems.append(
                Problem(
                    "bad_role", f"{where} has role {role!r}; expected system, user or assistant"
                )
            )
        content = message.get("content")
        if "content" not in message:
            problems.append(Problem("empty_content", f'{where} has no "content"'))
        elif not isinstance(content, str):
            problems.append(
                Problem("empty_content", f"{where} content is {json_type(content)}, not a string")
            )
        elif not content.strip():
            problems.append(Problem("empty_content", f"{where} has empty content"))
        if "weight" in message:
            weight = message["weight"]
            if role != "assistant":
                problems.append(
                    Problem("bad_weight", f"{where} has a weight but is not an assistant turn")
                )
            elif weight not in (0, 1) or isinstance(weight, bool):
                problems.append(
                    Problem("bad_weight", f"{where} has weight {weight!r}; expected 0 or 1")
                )

    systems = [index for index, role in roles if role == "system"]
    if len(systems) > 1:
        where = ", ".join(f"messages[{index}]" for index in systems)
        problems.append(Problem("misplaced_system", f"{len(systems)} system messages ({where})"))
    elif systems and systems[0] != 0:
        problems.append(
            Problem("misplaced_system", f"the system message is messages[{systems[0]}], not first")
        )

    turns = [(index, role) for index, role in roles if role != "system"]
    if not any(role == "user" for _, role in turns):
        problems.append(Problem("no_user_turn", "no user message"))
    if not any(role == "assistant" for _, role in turns):
        problems.append(Problem("no_assistant_turn", "no assistant message"))
    for (first, role), (second, next_role) in pairwise(turns):
        if role == next_role:
            problems.append(
                Problem(
                    "not_alternating",
                    f"messages[{first}] and messages[{second}] are both {role} turns",
                )
            )
            break
    answers = [m for m in messages if isinstance(m, dict) and m.get("role") == "assistant"]
    if answers and all(m.get("weight", 1) == 0 for m in answers):
        problems.append(
            Problem("nothing_to_learn", "every assistant turn has weight 0: nothing to learn from")
        )
    last = messages[-1]
    if isinstance(last, dict) and last.get("role") in ROLES and last["role"] != "assistant":
        problems.append(
            Problem(
                "last_not_assistant",
                f"the last message, messages[{len(messages) - 1}], is a {last['role']} turn",
            )
        )
    return problems


def conversation_size(row: Any) -> tuple[int, int]:
    """(turns, characters of content) of a row, whatever shape it is in; (0, 0) if none."""
    messages = row.get("messages") if isinstance(row, dict) else None
    if not isinstance(messages, list):
        return 0, 0
    chars = sum(
        len(message["content"])
        for message in messages
        if isinstance(message, dict) and isinstance(message.get("content"), str)
    )
    return len(messages), chars
