"""The trainer's progress events (`events.jsonl`), read incrementally for charts and progress.

The trainer appends one JSON object a line (`time`, `phase`, `step`, `max_steps`, `epoch`,
`loss`, `eval_loss`, `learning_rate`, `tokens_per_second`, `eta_seconds`, `message`), so a
UI can draw the loss while the job runs without parsing prose. A reader remembers its byte
offset and parses only what was added since its last poll, which keeps a chart that polls
a few times a second cheap however long the run.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from core.logfollow import Line, LogReader

Event = dict[str, Any]


def parse_events(lines: list[Line]) -> list[Event]:
    """The JSON objects among `lines`; a malformed line (a crash mid-write) is skipped."""
    events = []
    for text, _ in lines:
        try:
            event = json.loads(text)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


class EventsReader:
    """Polls an events file for what was appended since the last poll."""

    def __init__(self, path: str | os.PathLike[str], offset: int = 0) -> None:
        self._reader = LogReader(path, offset)

    @property
    def offset(self) -> int:
        return self._reader.offset

    def poll(self) -> list[Event]:
        events: list[Event] = []
        while lines := self._reader.read():
            events.extend(parse_events(lines))
        return events

    def close(self) -> None:
        self._reader.close()


def read_events(path: str | os.PathLike[str], offset: int = 0) -> tuple[list[Event], int]:
    """Every event after byte `offset`, and the offset to pass next time."""
    reader = EventsReader(path, offset)
    try:
        return reader.poll(), reader.offset
    finally:
        reader.close()


@dataclass
class ProgressSnapshot:
    """The latest known value of each progress field, for a one-line status."""

    phase: str = ""
    step: int | None = None
    max_steps: int | None = None
    epoch: float | None = None
    loss: float | None = None
    eval_loss: float | None = None
    learning_rate: float | None = None
    tokens_per_second: float | None = None
    eta_seconds: float | None = None
    message: str = ""
    time: float | None = None

    def update(self, events: list[Event]) -> ProgressSnapshot:
        for event in events:
            for key, value in event.items():
                if key in self.__dataclass_fields__ and value is not None:
                    setattr(self, key, value)
        return self

    def describe(self) -> str:
        """E.g. `training  step 40/120  loss 1.234  eval 1.301  eta 2m05s`."""
        parts = [self.phase or "waiting"]
        if self.step is not None:
            parts.append(f"step {self.step}" + (f"/{self.max_steps}" if self.max_steps else ""))
        if self.loss is not None:
            parts.append(f"loss {self.loss:.4f}")
        if self.eval_loss is not None:
            parts.append(f"eval {self.eval_loss:.4f}")
        if self.eta_seconds is not None and self.phase == "training":
            minutes, seconds = divmod(int(self.eta_seconds), 60)
            parts.append(f"eta {minutes}m{seconds:02d}s")
        return "  ".join(parts)
