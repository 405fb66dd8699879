"""Hand a fast log stream to the UI in batches, with back-pressure.

A job can write 10,000 lines a second; one message per line would drown the app's message
queue and the key presses queued behind it. The stream's worker thread appends lines to a
`LogFeed`; the feed asks the UI to drain it with one message at a time (never a second one
while the first is unread) and at most every `interval` seconds. While the UI is behind,
lines accumulate in a bounded buffer: only the last `keep` lines can be shown anyway
(`Log(max_lines=...)`), so older ones are counted and dropped instead of queued.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class LogFeed:
    """Lines from a worker thread, drained in batches by the UI thread."""

    def __init__(self, notify: Callable[[], None], *, keep: int = 5000, interval: float = 0.1):
        self._notify = notify
        self._lines: deque[str] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self._interval = interval
        self._outstanding = False  # a drain request is queued and not yet handled
        self._last = 0.0
        self.dropped = 0  # lines that scrolled out before the UI could show them
        self.total = 0

    def add(self, lines: list[str]) -> None:
        """Add lines (worker thread); asks for a drain when one is due."""
        with self._lock:
            overflow = len(self._lines) + len(lines) - (self._lines.maxlen or 0)
            if overflow > 0:
                self.dropped += overflow
            self._lines.extend(lines)
            self.total += len(lines)
        self.flush(force=False)

    def flush(self, force: bool = True) -> None:
        """Ask the UI to drain, unless a request is pending (or, without `force`, too soon)."""
        now = time.monotonic()
        with self._lock:
            if self._outstanding or not self._lines:
                return
            if not force and now - self._last < self._interval:
                return
            self._outstanding = True
            self._last = now
        self._notify()

    def drain(self) -> list[str]:
        """Everything waiting (UI thread); the next add or flush may ask again."""
        with self._lock:
            lines = list(self._lines)
            self._lines.clear()
            self._outstanding = False
        return lines
