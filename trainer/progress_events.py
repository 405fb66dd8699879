"""Progress events: one JSON object a line, so the jobs view draws progress without parsing prose.

Keys: `time` (unix s), `phase` (setup|loading|training|evaluating|saving|done|interrupted|
failed), `step`, `max_steps`, `epoch`, `loss`, `eval_loss`, `learning_rate`,
`tokens_per_second`, `eta_seconds`, `message`; absent values are omitted. Each line is
written with one `write` call on an O_APPEND file and flushed, so a reader polling the
file never sees half a line from a finished write.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import deque
from pathlib import Path
from typing import Any

PHASES = ("setup", "loading", "training", "evaluating", "saving", "done", "interrupted", "failed")
FIELDS = (
    "step",
    "max_steps",
    "epoch",
    "loss",
    "eval_loss",
    "learning_rate",
    "tokens_per_second",
    "eta_seconds",
    "message",
)


class EventLog:
    """Appends events to a file; a no-op on ranks other than the main one."""

    def __init__(self, path: str | Path | None, enabled: bool = True) -> None:
        self.path = Path(path) if path else None
        self.enabled = enabled and self.path is not None
        if self.enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def emit(self, phase: str, **values: Any) -> None:
        if not self.enabled:
            return
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}")
        event: dict[str, Any] = {"time": round(time.time(), 3), "phase": phase}
        for key in FIELDS:
            value = values.get(key)
            if value is None or (isinstance(value, float) and not math.isfinite(value)):
                continue
            event[key] = round(value, 6) if isinstance(value, float) else value
        line = json.dumps(event) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode("utf-8"))
        finally:
            os.close(fd)


class ThroughputMeter:
    """Tokens per second over the last few steps, and the time left at this session's pace.

    A single step's rate jumps with data-loader stalls and a busy CPU; a sliding window of
    `window` steps reads steadily. Evaluation and checkpoint time restart the window, so
    they do not show up as a drop in training speed.
    """

    def __init__(self, window: int = 10) -> None:
        self.samples: deque[tuple[float, int]] = deque(maxlen=window + 1)
        self.session_start: float | None = None
        self.session_first_step = 0
        self.tokens_per_second: float | None = None

    def start(self, step: int, tokens_seen: int) -> None:
        self.session_start = time.monotonic()
        self.session_first_step = step
        self.samples.clear()
        self.samples.append((self.session_start, tokens_seen))

    def update(self, tokens_seen: int) -> float | None:
        now = time.monotonic()
        self.samples.append((now, tokens_seen))
        (first_time, first_tokens) = self.samples[0]
        if now > first_time and tokens_seen > first_tokens:
            self.tokens_per_second = (tokens_seen - first_tokens) / (now - first_time)
        return self.tokens_per_second

    def skip(self) -> None:
        """Restart the window after evaluation or a checkpoint."""
        if self.samples:
            tokens = self.samples[-1][1]
            self.samples.clear()
            self.samples.append((time.monotonic(), tokens))

    def eta_seconds(self, step: int, max_steps: int) -> float | None:
        if self.session_start is None or step <= self.session_first_step:
            return None
        per_step = (time.monotonic() - self.session_start) / (step - self.session_first_step)
        return max(0.0, per_step * (max_steps - step))
