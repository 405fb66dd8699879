"""The Jobs tab's log view: the last lines of a job, filtered, wrapped, followed or paused.

A `Log` (plain and fast) that keeps the last `keep` lines it was given, each with a serial
number, and shows them through a filter (matches highlighted) and, with wrap on, cut to the
view's width. Every redraw puts back the line that was at the top, so clearing a filter or
wrapping while paused keeps your place. Following: new lines scroll the view to the end;
scrolling up (or `pause()`) stops that, and the badge on the border says which it is.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from rich.cells import chop_cells
from rich.highlighter import Highlighter
from rich.text import Text
from textual.widgets import Log


class MatchHighlighter(Highlighter):
    """Marks every occurrence of the filter text, in any case."""

    def __init__(self) -> None:
        self.needle = ""

    def highlight(self, text: Text) -> None:
        if self.needle:
            text.highlight_words([self.needle], "bold black on yellow", case_sensitive=False)


class JobLog(Log):
    """The selected job's log; `add` lines as they come, `reset` for another job."""

    def __init__(self, *, keep: int = 5000, id: str | None = None) -> None:
        super().__init__(id=id, max_lines=keep, auto_scroll=True)
        self.kept: deque[tuple[int, str]] = deque(maxlen=keep)  # (serial, line)
        self.rows: deque[int] = deque()  # the serial of each row shown
        self.serial = 0
        self.needle = ""
        self.wrap = False
        self.highlighter = MatchHighlighter()
        self.dropped = 0  # lines the stream skipped while the UI was behind
        self._last_width = 0

    # -- state ------------------------------------------------------------------------------

    @property
    def following(self) -> bool:
        """New lines scroll the view: not paused, and the view is at the end."""
        return self.auto_scroll and (self.is_vertical_scroll_end or not self.line_count)

    def badge(self) -> str:
        """What the border says: following or paused, wrap, filter."""
        parts = ["log ● following" if self.following else "log ⏸ paused · G follows"]
        if self.wrap:
            parts.append("wrap")
        if self.needle:
            parts.append(f"filter “{self.needle}”")
        return " " + " · ".join(parts) + " "

    def _show_badge(self) -> None:
        self.border_title = self.badge()

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        self._show_badge()

    def on_resize(self) -> None:
        width = self.scrollable_content_region.width
        if self.wrap and width != self._last_width:
            self.redraw()
        self._last_width = width
        self._show_badge()

    # -- lines ------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every line (another job was selected); follow from the start."""
        self.kept.clear()
        self.rows.clear()
        self.clear()
        self.dropped = 0
        self.auto_scroll = True
        self.scroll_to(0, 0, animate=False, immediate=True)
        self._show_badge()

    def add(self, lines: Iterable[str]) -> None:
        """New lines from the job: kept, and shown if they pass the filter."""
        batch = []
        for line in lines:
            self.serial += 1
            batch.append((self.serial, line))
        self.kept.extend(batch)
        self._write(batch)
        self._show_badge()

    def _write(self, batch: Iterable[tuple[int, str]]) -> None:
        needle = self.needle.lower()
        width = max(self.scrollable_content_region.width, 10)
        shown: list[str] = []
        serials: list[int] = []
        for serial, line in batch:
            if needle and needle not in line.lower():
                continue
            pieces = chop_cells(line, width) if self.wrap and line else [line]
            shown.extend(pieces)
            serials.extend([serial] * len(pieces))
        if shown:
            self.write_lines(shown)
            self.rows.extend(serials)
            while len(self.rows) > self.line_count:  # the Log dropped its oldest rows
                self.rows.popleft()

    def redraw(self) -> None:
        """Show the kept lines again (filter or wrap changed); the line at the top stays at
        the top unless the view follows the end."""
        following = self.following
        top = self.rows[int(self.scroll_y)] if self.rows and not following else None
        self.clear()
        self.rows.clear()
        self.highlighter.needle = self.needle
        self.highlight = bool(self.needle)
        self._write(self.kept)
        if following:
            self.scroll_end(animate=False, immediate=True)
        elif top is not None:
            row = next((i for i, serial in enumerate(self.rows) if serial >= top), 0)
            self.scroll_to(0, row, animate=False, immediate=True)
        self._show_badge()

    # -- what the keys do -------------------------------------------------------------------

    def set_filter(self, text: str) -> None:
        self.needle = text.strip()
        self.redraw()

    def toggle_wrap(self) -> None:
        self.wrap = not self.wrap
        self.redraw()

    def pause(self) -> None:
        self.auto_scroll = False
        self._show_badge()

    def follow(self) -> None:
        """Go to the end and follow it."""
        self.auto_scroll = True
        self.scroll_end(animate=False, immediate=True)
        self._show_badge()
