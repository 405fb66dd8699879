"""A virtual table over `DatasetIndex`: only the rows on screen are ever read.

toolong's shape: a Line API `ScrollView` whose height is the row count, so a 200,000-row
file scrolls at once. Textual's `DataTable` would build every row up front. Rows are read
and summarised in a thread worker (the UI thread never waits on the disk, not even for a
`pread`), a page beyond each side of the view at a time; until a row arrives its line shows
"…". Summaries sit in a bounded cache keyed by the index's generation, so a replaced file
never shows stale rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from rich.style import Style
from rich.text import Text
from textual import work
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.worker import get_current_worker

if TYPE_CHECKING:
    from core.data.index import DatasetIndex

CACHE_ROWS = 4096
PREVIEW_CHARS = 300  # of the first user message, before the screen cuts it


@dataclass(frozen=True)
class RowSummary:
    """What the table shows of one row."""

    index: int
    turns: int
    chars: int
    text: str  # the first user message, on one line
    problem: str = ""  # the first validation problem's sentence, if any
    blank: bool = False


def summarize(index: DatasetIndex, number: int) -> RowSummary:
    """One row's summary, read through the index (call from a worker)."""
    row, stats = index.row(number), index.stats(number)
    if stats.blank:
        return RowSummary(number, 0, 0, "", blank=True)
    first = ""
    for message in row.messages or ():
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                first = " ".join(content[: PREVIEW_CHARS * 2].split())[:PREVIEW_CHARS]
                break
    problem = stats.problems[0].message if stats.problems else ""
    if not first and problem:
        first = " ".join(row.text[:PREVIEW_CHARS].split())
    return RowSummary(number, stats.turns, stats.chars, first, problem)


class RowTable(ScrollView, can_focus=True):
    """Rows of a JSONL file: number, turns, length and the first user message."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "row-table--cursor",
        "row-table--invalid",
        "row-table--dim",
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "move(-1)", "Up", show=False),
        Binding("down,j", "move(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown,space", "page(1)", "Page down", show=False),
        Binding("home", "jump(0)", "First row", show=False),
        Binding("end", "jump(-1)", "Last row", show=False),
    ]

    cursor: reactive[int] = reactive(0, always_update=True)

    class Highlighted(Message):
        """The cursor is on row `index` (0-based)."""

        def __init__(self, table: RowTable, index: int) -> None:
            super().__init__()
            self.table, self.index = table, index

    class RowsLoaded(Message, bubble=False):
        def __init__(self, generation: int, rows: list[RowSummary]) -> None:
            super().__init__()
            self.generation, self.rows = generation, rows

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.index: DatasetIndex | None = None
        self.row_count = 0
        self.generation = 0
        self._rows: dict[int, RowSummary] = {}
        self._wanted: tuple[int, int] | None = None
        self._loading: tuple[int, int] | None = None

    # -- data -----------------------------------------------------------------------------

    def set_index(self, index: DatasetIndex | None, row_count: int = 0) -> None:
        """Show another file (or none); the cursor goes back to the first row."""
        self.index = index
        self.generation += 1
        self._rows.clear()
        self._loading = None
        self.row_count = 0
        self.set_row_count(row_count)
        self.cursor = 0
        self.scroll_to(0, 0, animate=False, immediate=True)
        self.refresh()

    def set_row_count(self, count: int) -> None:
        """The index found more rows (or the file was replaced and has fewer)."""
        if count < self.row_count:  # replaced or truncated: what we hold is stale
            self.generation += 1
            self._rows.clear()
            self._loading = None
        self.row_count = count
        self.virtual_size = Size(self.size.width, count)
        if self.cursor >= count > 0:
            self.cursor = count - 1
        self._request_visible()
        self.refresh()

    def summary(self, number: int) -> RowSummary | None:
        return self._rows.get(number)

    def _request_visible(self) -> None:
        """Load the rows on screen, a page before and a page after, if any is missing."""
        if self.index is None or not self.row_count:
            return
        page = max(self.size.height, 1)
        top = int(self.scroll_offset.y)
        start, stop = max(0, top - page), min(self.row_count, top + 2 * page)
        bottom = min(self.row_count, top + page)
        missing = [n for n in range(top, bottom) if n not in self._rows]
        if not missing or (
            self._loading and self._loading[0] <= top and bottom <= self._loading[1]
        ):
            return  # nothing to read, or the load under way covers the view
        self._loading = (start, stop)
        self._load(self.index, self.generation, start, stop)

    @work(thread=True, exclusive=True, group="row-table", exit_on_error=False)
    def _load(self, index: DatasetIndex, generation: int, start: int, stop: int) -> None:
        worker = get_current_worker()
        rows: list[RowSummary] = []
        for number in range(start, stop):
            if worker.is_cancelled:
                return
            if number in self._rows:
                continue
            try:
                rows.append(summarize(index, number))
            except (IndexError, ValueError, OSError):
                break  # the file changed or was closed under us; the next request retries
            if len(rows) >= 64:
                self.post_message(self.RowsLoaded(generation, rows))
                rows = []
        self.post_message(self.RowsLoaded(generation, rows))

    def on_row_table_rows_loaded(self, message: RowsLoaded) -> None:
        if message.generation != self.generation:
            return
        if len(self._rows) > CACHE_ROWS:
            self._rows.clear()
        for row in message.rows:
            self._rows[row.index] = row
        if not message.rows or (self._loading and message.rows[-1].index >= self._loading[1] - 1):
            self._loading = None
            if message.rows:  # (none read: the file changed; the next scroll or scan retries)
                self._request_visible()  # the view may have moved or grown while it loaded
        self.refresh()

    # -- cursor ---------------------------------------------------------------------------

    def watch_cursor(self, old: int, new: int) -> None:
        if not self.row_count:
            return
        self.refresh_line(old)
        self.refresh_line(new)
        top, height = int(self.scroll_offset.y), max(self.size.height, 1)
        if new < top:
            self.scroll_to(y=new, animate=False, immediate=True)
        elif new >= top + height:
            self.scroll_to(y=new - height + 1, animate=False, immediate=True)
        self.post_message(self.Highlighted(self, new))

    def action_move(self, delta: int) -> None:
        if self.row_count:
            self.cursor = min(max(self.cursor + delta, 0), self.row_count - 1)

    def action_page(self, direction: int) -> None:
        self.action_move(direction * max(self.size.height - 1, 1))

    def action_jump(self, row: int) -> None:
        self.go_to(row if row >= 0 else self.row_count - 1)

    def go_to(self, row: int) -> None:
        """Put the cursor on `row` (clipped), centred when it had to scroll."""
        if not self.row_count:
            return
        row = min(max(row, 0), self.row_count - 1)
        top, height = int(self.scroll_offset.y), max(self.size.height, 1)
        if not top <= row < top + height:
            self.scroll_to(y=max(row - height // 2, 0), animate=False, immediate=True)
        self.cursor = row

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        self._request_visible()

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, self.row_count)
        self._request_visible()

    def on_click(self, event) -> None:
        row = int(self.scroll_offset.y) + event.y
        if 0 <= row < self.row_count:
            self.cursor = row

    # -- drawing --------------------------------------------------------------------------

    def number_width(self) -> int:
        return max(len(str(self.row_count)), 3)

    def header(self) -> Text:
        """The column titles, aligned with `render_line`."""
        width = self.number_width()
        return Text(f"{'row':>{width}} {'turns':>5} {'chars':>7}  first user message", style="bold")

    def render_line(self, y: int) -> Strip:
        number = int(self.scroll_offset.y) + y
        width = self.size.width
        base = self.rich_style
        if number >= self.row_count:
            return Strip.blank(width, base)
        summary = self._rows.get(number)
        text = self._row_text(number, summary)
        style = base
        if number == self.cursor:
            style = base + self.get_component_rich_style("row-table--cursor")
        segments = list(text.render(self.app.console, end=""))
        strip = Strip(segments).crop_extend(0, width, style).apply_style(style)
        return strip

    def _row_text(self, number: int, summary: RowSummary | None) -> Text:
        width = self.number_width()
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        text.append(f"{number + 1:>{width}} ")
        if summary is None:
            text.append("    …", style=self._dim)
            return text
        if summary.blank:
            text.append("    -       -  (blank line)", style=self._dim)
            return text
        text.append(f"{summary.turns:>5} {summary.chars:>7}  ")
        if summary.problem:
            text.append("✗ ", style=self._invalid)
            text.append(summary.problem, style=self._invalid)
            return text
        text.append(summary.text)
        return text

    @property
    def _dim(self) -> Style:
        return self.get_component_rich_style("row-table--dim", partial=True)

    @property
    def _invalid(self) -> Style:
        return self.get_component_rich_style("row-table--invalid", partial=True)
