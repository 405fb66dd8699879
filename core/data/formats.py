"""The dataset shapes people have, turned into chat rows: one definition of a usable row.

Public datasets come as ShareGPT (`conversations` of `from`/`value` turns), Alpaca
(`instruction`/`input`/`output`), prompt/response pairs, `{"text"}` rows already rendered in
Phi-3's chat format, or OpenAI chat rows with tool calls and per-message `weight`. Each row is
recognised by its keys, converted to phiops's chat shape (`{"messages": [{"role",
"content"}, ...]}`, see `rules.py`), then checked by the chat rules. `data validate`,
`data prepare` and the preview all call `check_row`, so they agree on every input.

`weight` is part of the chat shape: an assistant message with `"weight": 0` is context the
model sees but is not trained to say (OpenAI's meaning). It is kept in the prepared rows for
the trainer, which masks that turn out of the loss.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.data.rules import Problem, json_type, row_problems

CHAT = "chat"
OPENAI = "openai"
SHAREGPT = "sharegpt"
ALPACA = "alpaca"
PROMPT_RESPONSE = "prompt-response"
PHI3_TEXT = "phi3-text"

# shape -> (what people call it, a one-line example of a row in that shape)
SHAPES: dict[str, tuple[str, str]] = {
    CHAT: (
        "chat messages",
        '{"messages": [{"role": "user", "content": "Hi"}, '
        '{"role": "assistant", "content": "Hello!"}]}',
    ),
    OPENAI: (
        "OpenAI chat",
        '{"messages": [{"role": "user", "content": "Weather in Oslo?"}, {"role": "assistant", '
        '"tool_calls": [{"type": "function", "function": {"name": "weather", '
        '"arguments": "{\\"city\\": \\"Oslo\\"}"}}]}, {"role": "tool", "content": "4 °C"}, '
        '{"role": "assistant", "content": "4 °C in Oslo.", "weight": 1}]}',
    ),
    SHAREGPT: (
        "ShareGPT",
        '{"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]}',
    ),
    ALPACA: ("Alpaca", '{"instruction": "Greet me", "input": "", "output": "Hello!"}'),
    PROMPT_RESPONSE: ("prompt/response", '{"prompt": "Hi", "response": "Hello!"}'),
    PHI3_TEXT: (
        "Phi-3 chat text",
        '{"text": "<|user|>\\nHi<|end|>\\n<|assistant|>\\nHello!<|end|>\\n"}',
    ),
}


def expected(shape: str) -> str:
    """`expected e.g. {...}` for a shape: the end of every conversion error."""
    return f"expected e.g. {SHAPES[shape][1]}"


@dataclass(frozen=True)
class Checked:
    """One row as training will see it.

    `row` is what `data prepare` writes (the input itself when it already is a chat row),
    `shape` the shape it was read as (None when none fits), `notes` what the conversion did,
    each a short phrase a report counts ("tool calls written as text").
    """

    row: dict | None
    shape: str | None
    problems: tuple[Problem, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def valid(self) -> bool:
        return not self.problems

    @property
    def converted(self) -> bool:
        return self.shape not in (None, CHAT)


class Unconvertible(Exception):
    """A row in a known shape that cannot become a chat row; the message says why."""


def check_row(data: Any) -> Checked:
    """Recognise a parsed row's shape, convert it to a chat row and check the chat rules."""
    if not isinstance(data, dict):
        return Checked(
            None, None, (Problem("not_object", f"expected a JSON object, got {json_type(data)}"),)
        )
    shape = shape_of(data)
    if shape is None:
        keys = ", ".join(f'"{key}"' for key in list(data)[:6]) or "no keys"
        message = (
            f'no "messages" (nor "conversations", "instruction"/"output", "prompt"/"response" '
            f'or "text"), only {keys}; {expected(CHAT)}'
        )
        return Checked(None, None, (Problem("no_messages", message),))
    if shape == CHAT:
        problems = row_problems(data)
        if problems and problems[0].code == "no_messages":
            problems = [Problem("no_messages", f"{problems[0].message}; {expected(CHAT)}")]
        return Checked(data, CHAT, tuple(problems))
    notes: list[str] = []
    try:
        row = CONVERTERS[shape](data, notes)
    except Unconvertible as error:
        return Checked(None, shape, (Problem("unconvertible", f"{error}; {expected(shape)}"),))
    title = SHAPES[shape][0]
    problems = [
        Problem(problem.code, f"{problem.message} (after conversion from {title})")
        for problem in row_problems(row)
    ]
    return Checked(row, shape, tuple(problems), tuple(notes))


def shape_of(data: dict) -> str | None:
    """Which shape a row is in, by its keys; None when it is none of them."""
    if "messages" in data:
        return OPENAI if _has_openai_extras(data) else CHAT
    if "conversations" in data:
        return SHAREGPT
    if "instruction" in data and "output" in data:
        return ALPACA
    if "prompt" in data and ("response" in data or "completion" in data):
        return PROMPT_RESPONSE
    if "text" in data:
        return PHI3_TEXT
    return None


# -- OpenAI chat: tool calls, tool results, content parts, weight -----------------------------

TOOL_CALL = "<tool_call>{}</tool_call>"
TOOL_RESPONSE = "<tool_response>{}</tool_response>"
_OPENAI_ROLES = {"tool", "function", "developer"}


def _has_openai_extras(data: dict) -> bool:
    messages = data.get("messages")
    if "tools" in data or "functions" in data:
        return True
    if not isinstance(messages, list):
        return False
    return any(
        isinstance(message, dict)
        and (
            message.get("role") in _OPENAI_ROLES
            or "tool_calls" in message
            or "function_call" in message
            or isinstance(message.get("content"), list)
            or (message.get("content") is None and "content" in message)
        )
        for message in messages
    )


def _text_of(content: Any, where: str) -> str:
    """A message's content as text: a string, or OpenAI's list of text parts joined."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        texts = []
        for index, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind != "text" or not isinstance(part.get("text"), str):
                raise Unconvertible(
                    f"{where} content[{index}] is a {kind or json_type(part)} part; "
                    "only text parts can be trained on"
                )
            texts.append(part["text"])
        return "\n".join(texts)
    raise Unconvertible(f"{where} content is {json_type(content)}, not text")


def _call_text(function: Any, where: str) -> str:
    """One tool call as the text the model learns to write: `<tool_call>{"name", "arguments"}`."""
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise Unconvertible(f"{where} has a tool call without a function name")
    arguments = function.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            raise Unconvertible(f"{where} has tool call arguments that are not JSON") from None
    call = {"name": function["name"], "arguments": arguments}
    return TOOL_CALL.format(json.dumps(call, ensure_ascii=False))


def _with_turn(messages: list[dict], role: str, content: str, extra: dict) -> None:
    """Append a turn, merging it into the previous one when that has the same role (several
    tool results in a row become one user turn)."""
    if messages and messages[-1]["role"] == role and role == "user" and not extra:
        messages[-1]["content"] += "\n" + content
        return
    messages.append({"role": role, "content": content, **extra})


def _from_openai(data: dict, notes: list[str]) -> dict:
    messages_in = data["messages"]
    if not isinstance(messages_in, list):
        raise Unconvertible(f'"messages" is {json_type(messages_in)}, not a list')
    messages: list[dict] = []
    for index, message in enumerate(messages_in):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise Unconvertible(f"{where} is {json_type(message)}")
        role = message.get("role")
        content = _text_of(message.get("content"), where)
        if isinstance(message.get("content"), list):
            notes.append("content parts joined")
        extra = {"weight": message["weight"]} if "weight" in message else {}
        if role == "developer":
            role = "system"
            notes.append("developer message taken as the system message")
        if role == "assistant":
            calls = message.get("tool_calls") or []
            if not isinstance(calls, list):
                raise Unconvertible(f"{where} tool_calls is {json_type(calls)}, not a list")
            functions = [call.get("function") if isinstance(call, dict) else None for call in calls]
            if message.get("function_call") is not None:
                functions.append(message["function_call"])
            texts = [_call_text(function, where) for function in functions]
            if texts:
                notes.append("tool calls written as <tool_call> text")
            content = "\n".join(part for part in (content, *texts) if part)
            messages.append({"role": "assistant", "content": content, **extra})
        elif role in ("tool", "function"):
            _with_turn(messages, "user", TOOL_RESPONSE.format(content), {})
            notes.append("tool results given as user turns")
        else:
            messages.append({"role": role, "content": content, **extra})
    tools = data.get("tools") or data.get("functions")
    if tools:
        described = json.dumps(tools, ensure_ascii=False)
        text = f"You can call these tools:\n<tools>{described}</tools>"
        if messages and messages[0]["role"] == "system":
            messages[0]["content"] = f"{messages[0]['content']}\n\n{text}"
        else:
            messages.insert(0, {"role": "system", "content": text})
        notes.append("tool definitions added to the system message")
    return {"messages": messages}


# -- ShareGPT ---------------------------------------------------------------------------------

SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "bing": "assistant",
    "model": "assistant",
    "system": "system",
    "function_call": "assistant",
    "observation": "user",
    "tool": "user",
}


def _from_sharegpt(data: dict, notes: list[str]) -> dict:
    turns = data["conversations"]
    if not isinstance(turns, list) or not turns:
        raise Unconvertible(f'"conversations" is {json_type(turns)}; it must be a non-empty list')
    messages: list[dict] = []
    system = data.get("system")
    if isinstance(system, str) and system.strip():
        messages.append({"role": "system", "content": system})
    for index, turn in enumerate(turns):
        where = f"conversations[{index}]"
        if not isinstance(turn, dict):
            raise Unconvertible(f"{where} is {json_type(turn)}")
        speaker = turn.get("from", turn.get("role"))
        value = turn.get("value", turn.get("content"))
        if speaker not in SHAREGPT_ROLES:
            raise Unconvertible(
                f"{where} has from {speaker!r}; expected human, gpt or system"
                if "from" in turn or "role" in turn
                else f'{where} has no "from"'
            )
        if not isinstance(value, str):
            raise Unconvertible(f'{where} "value" is {json_type(value)}, not a string')
        role = SHAREGPT_ROLES[speaker]
        extra = {"weight": turn["weight"]} if "weight" in turn else {}
        if speaker == "function_call":
            value = TOOL_CALL.format(value)
            notes.append("tool calls written as <tool_call> text")
        elif speaker in ("observation", "tool"):
            _with_turn(messages, "user", TOOL_RESPONSE.format(value), {})
            notes.append("tool results given as user turns")
            continue
        messages.append({"role": role, "content": value, **extra})
    return {"messages": messages}


# -- Alpaca and prompt/response pairs ---------------------------------------------------------


def _string(data: dict, key: str, optional: bool = False) -> str:
    value = data.get(key)
    if value is None and optional:
        return ""
    if not isinstance(value, str):
        raise Unconvertible(f'"{key}" is {json_type(value)}, not a string')
    return value


def _system(data: dict) -> list[dict]:
    system = _string(data, "system", optional=True)
    return [{"role": "system", "content": system}] if system.strip() else []


def _from_alpaca(data: dict, notes: list[str]) -> dict:
    messages = _system(data)
    history = data.get("history") or []
    if not isinstance(history, list) or not all(
        isinstance(pair, list) and len(pair) == 2 and all(isinstance(t, str) for t in pair)
        for pair in history
    ):
        raise Unconvertible('"history" must be a list of [question, answer] pairs')
    for question, answer in history:
        messages += [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    instruction, given = _string(data, "instruction"), _string(data, "input", optional=True)
    prompt = f"{instruction}\n\n{given}" if given.strip() else instruction
    messages += [{"role": "user", "content": prompt}]
    messages += [{"role": "assistant", "content": _string(data, "output")}]
    return {"messages": messages}


def _from_prompt_response(data: dict, notes: list[str]) -> dict:
    key = "response" if "response" in data else "completion"
    prompt, answer = data["prompt"], data[key]
    if isinstance(prompt, list) and isinstance(answer, list):  # TRL's conversational pairs
        return _from_openai({"messages": [*prompt, *answer]}, notes)
    return {
        "messages": [
            *_system(data),
            {"role": "user", "content": _string(data, "prompt")},
            {"role": "assistant", "content": _string(data, key)},
        ]
    }


# -- {"text"} in Phi-3's chat format ----------------------------------------------------------

_PHI3_TURN = re.compile(r"<\|(system|user|assistant)\|>\n?(.*?)<\|end\|>\n?", re.DOTALL)
_PHI3_EDGES = re.compile(r"^\s*(<s>)?\s*|\s*(<\|endoftext\|>)?\s*$")


def _from_phi3_text(data: dict, notes: list[str]) -> dict:
    text = data["text"]
    if not isinstance(text, str):
        raise Unconvertible(f'"text" is {json_type(text)}, not a string')
    body = _PHI3_EDGES.sub("", text)
    messages, position = [], 0
    for match in _PHI3_TURN.finditer(body):
        if body[position : match.start()].strip():
            break
        messages.append({"role": match[1], "content": match[2]})
        position = match.end()
    if not messages:
        raise Unconvertible('"text" is not in the Phi-3 chat format (no <|user|> … <|end|> turn)')
    rest = body[position:].strip()
    if rest:
        raise Unconvertible(f'"text" has {rest[:40]!r} outside a <|role|> … <|end|> turn')
    return {"messages": messages}


CONVERTERS: dict[str, Callable[[dict, list[str]], dict]] = {
    OPENAI: _from_openai,
    SHAREGPT: _from_sharegpt,
    ALPACA: _from_alpaca,
    PROMPT_RESPONSE: _from_prompt_response,
    PHI3_TEXT: _from_phi3_text,
}
