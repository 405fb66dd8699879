"""The evaluation set: each conversation of a test file as a prompt and its reference answer.

The turns before the last assistant turn are the prompt; the last assistant turn is the
reference. The prompt is laid out as the chat flow takes it (an optional system message,
the earlier turns as `chat_history` pairs, the last user message as `question`), so the same
rows feed a Prompt flow batch run and phiops' own requests. A row that cannot be evaluated
(no assistant turn, nothing asked before it, not JSON) is skipped and counted by reason,
never silently.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import PhiopsError

NO_ASSISTANT = "no assistant turn"
NO_QUESTION = "no user turn before the last assistant turn"
NOT_A_CHAT = "not a JSON object with a messages list"
BAD_TURNS = "turns that do not alternate user/assistant"


@dataclass(frozen=True)
class Case:
    """One conversation to evaluate. `line` is its 1-based line in the file."""

    line: int
    id: str
    system: str
    history: tuple[tuple[str, str], ...]
    question: str
    reference: str

    def messages(self) -> list[dict[str, str]]:
        """The prompt as chat messages, exactly as the flow's tool builds them."""
        messages = [{"role": "system", "content": self.system}] if self.system else []
        for asked, answered in self.history:
            messages += [
                {"role": "user", "content": asked},
                {"role": "assistant", "content": answered},
            ]
        return [*messages, {"role": "user", "content": self.question}]

    def flow_row(self) -> dict[str, Any]:
        """The row of the Prompt flow batch run's data file (the chat flow's inputs)."""
        return {
            "line": self.line,
            "id": self.id,
            "system": self.system,
            "chat_history": [
                {"inputs": {"question": asked}, "outputs": {"answer": answered}}
                for asked, answered in self.history
            ],
            "question": self.question,
            "reference": self.reference,
        }


@dataclass
class EvalSet:
    path: Path
    sha256: str
    cases: list[Case]
    rows_read: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    skipped_lines: dict[str, list[int]] = field(default_factory=dict)

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def skipped_sentence(self) -> str:
        """ "skipped 2 rows: 1 with no assistant turn (line 4), …" or ""."""
        if not self.skipped:
            return ""
        parts = []
        for reason, count in self.skipped.most_common():
            lines = self.skipped_lines.get(reason, [])
            shown = ", ".join(str(n) for n in lines[:5]) + (", …" if len(lines) > 5 else "")
            parts.append(f"{count} with {reason} (line{'s' if len(lines) > 1 else ''} {shown})")
        total = self.skipped_total
        return f"skipped {total} row{'s' if total != 1 else ''}: " + "; ".join(parts)


def case_of(row: Any, line: int) -> Case | str:
    """The row as a Case, or the reason it cannot be evaluated."""
    if not isinstance(row, dict) or not isinstance(row.get("messages"), list):
        return NOT_A_CHAT
    messages = [
        m
        for m in row["messages"]
        if isinstance(m, dict) and isinstance(m.get("content"), str) and m.get("role")
    ]
    last = max(
        (index for index, m in enumerate(messages) if m["role"] == "assistant"), default=None
    )
    if last is None:
        return NO_ASSISTANT
    before = messages[:last]
    system = ""
    if before and before[0]["role"] == "system":
        system, before = before[0]["content"], before[1:]
    if not before or before[-1]["role"] != "user":
        return NO_QUESTION
    history: list[tuple[str, str]] = []
    turns = before[:-1]
    if len(turns) % 2:
        return BAD_TURNS
    for asked, answered in zip(turns[::2], turns[1::2], strict=True):
        if asked["role"] != "user" or answered["role"] != "assistant":
            return BAD_TURNS
        history.append((asked["content"], answered["content"]))
    ident = str(row.get("prompt_id") or "") or _digest(messages[: last + 1])
    return Case(
        line=line,
        id=ident,
        system=system,
        history=tuple(history),
        question=before[-1]["content"],
        reference=messages[last]["content"],
    )


def _digest(messages: list[dict[str, Any]]) -> str:
    text = json.dumps(messages, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def load_eval_set(path: str | Path, limit: int | None = None) -> EvalSet:
    """Read a chat JSONL file; `limit` keeps the first N evaluable rows."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PhiopsError(
            f"the test file {path} does not exist; run `phiops data prepare` or give --data FILE"
        ) from None
    except OSError as error:
        raise PhiopsError(f"cannot read the test file {path}: {error.strerror}") from None
    result = EvalSet(path=path, sha256=hashlib.sha256(raw).hexdigest(), cases=[])
    for number, line in enumerate(raw.decode("utf-8", "replace").splitlines(), start=1):
        if not line.strip():
            continue
        result.rows_read += 1
        try:
            found = case_of(json.loads(line), number)
        except ValueError:
            found = NOT_A_CHAT
        if isinstance(found, str):
            result.skipped[found] += 1
            result.skipped_lines.setdefault(found, []).append(number)
        elif limit is None or len(result.cases) < limit:
            result.cases.append(found)
    if not result.cases:
        why = f" ({result.skipped_sentence()})" if result.skipped else ""
        raise PhiopsError(f"the test file {path} has no conversation to evaluate{why}")
    return result
