"""The Dataset tab: preview a train/test file, check it, and prepare new ones.

The table is a virtual view over the core preview engine (`DatasetIndex`), so a 1.3 GB
file shows its first rows at once while the rest is indexed in the background. Beside it:
the selected conversation by role, the file's statistics with a length histogram, and the
validation findings (Enter jumps to the row). Opening, reading rows, validating and
preparing all run in workers that post messages; the handlers own the widgets.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import ContentSwitcher, OptionList, ProgressBar, Static
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from tui.messages import BackendChanged, DataPrepared
from tui.tabs.base import AppTab
from tui.widgets.rowtable import RowTable

if TYPE_CHECKING:
    from core.config import Config
    from core.data.index import DatasetIndex, IndexProgress, Row, RowStats
    from core.data.prepare import PrepareResult
    from core.data.validate import ValidationReport
    from tui.tabs.dataset_dialogs import PrepareRequest

ROLE_STYLE = {"system": "magenta", "user": "cyan", "assistant": "green"}
MESSAGE_CHARS = 4000  # of one message in the conversation view; the rest is counted
FINDINGS_SHOWN = 2000
BINS = 10
PROGRESS_SECONDS = 0.25  # workers post progress at most this often


def shown(path: Path, project: Path) -> str:
    """A path relative to the project when inside it: short, and the same on every machine."""
    try:
        return str(path.resolve().relative_to(project.resolve()))
    except ValueError:
        return str(path)


def histogram(values: list[int], bins: int = BINS) -> list[tuple[int, int, int]]:
    """(low, high, count) over `bins` equal ranges up to the 99th percentile, the last range
    open-ended so one giant row does not squash every bar into the first."""
    if not values:
        return []
    ordered = sorted(values)
    top = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    low = ordered[0]
    step = max((top - low + bins) // bins, 1)
    counts = [0] * bins
    for value in values:
        counts[min((value - low) // step, bins - 1)] += 1
    return [
        (low + i * step, ordered[-1] if i == bins - 1 else low + (i + 1) * step - 1, count)
        for i, count in enumerate(counts)
    ]


def render_histogram(bars: list[tuple[int, int, int]], width: int = 30) -> Text:
    text = Text()
    most = max((count for _, _, count in bars), default=0) or 1
    for low, high, count in bars:
        filled = round(count / most * width)
        text.append(f"{low:>7,}–{high:<7,} ", style="dim")
        text.append("█" * filled, style="cyan")
        text.append(f" {count:,}\n")
    return text


def render_conversation(row: Row, stats: RowStats) -> Text:
    """The row's messages by role; an invalid row shows why, then its text."""
    text = Text()
    text.append(f"Row {row.line}", style="bold")
    text.append(f"  {stats.turns} turns, {stats.chars:,} characters\n", style="dim")
    if stats.blank:
        text.append("(a blank line: validation skips it)\n", style="dim")
        return text
    for problem in stats.problems:
        text.append(f"✗ {problem.message}\n", style="red")
    messages = row.messages
    if not messages:
        text.append("\n" + row.text[:MESSAGE_CHARS] + "\n")
        return text
    for message in messages:
        if not isinstance(message, dict):
            text.append(f"\n{message!r}\n"[:MESSAGE_CHARS], style="red")
            continue
        role, content = str(message.get("role")), message.get("content")
        text.append(f"\n{role}\n", style=f"bold {ROLE_STYLE.get(role, 'red')}")
        body = content if isinstance(content, str) else repr(content)
        text.append(body[:MESSAGE_CHARS])
        if len(body) > MESSAGE_CHARS:
            text.append(f" … ({len(body) - MESSAGE_CHARS:,} more characters)", style="dim")
        text.append("\n")
    return text


def render_stats(report: ValidationReport, bars: list[tuple[int, int, int]]) -> Text:
    from core.data.rules import REASONS

    text = Text()
    verdict = ("✓ trainable", "green") if report.ok else ("✗ not trainable as it is", "red")
    text.append(verdict[0] + "\n", style=f"bold {verdict[1]}")
    text.append(f"{report.rows:,} rows: {report.valid:,} valid, {report.invalid:,} invalid")
    text.append(f"; {report.blank_lines:,} blank lines\n" if report.blank_lines else "\n")
    for code, count in report.invalid_by_reason.items():
        text.append(f"  {count:,} {REASONS.get(code, code)}\n", style="red")
    for title, dist in (("turns", report.turns), ("chars", report.chars)):
        if dist is not None:
            text.append(f"{title:<6}", style="bold")
            text.append(
                f" min {dist.min:,}  mean {dist.mean:,}  median {dist.p50:,}  "
                f"p95 {dist.p95:,}  max {dist.max:,}\n"
            )
    if bars:
        text.append("\nconversation length (characters)\n", style="bold")
        text.append(render_histogram(bars))
    return text


class DatasetTab(AppTab):
    """Rows of a chat JSONL file, one conversation, statistics and problems; prepare data."""

    HELP = """
The table lists the file's rows (row = line number, turns, characters, first user
message; ✗ marks an invalid row). The panel beside it shows the selected conversation (c),
the statistics and length histogram (s, after v validates the whole file) or the problems
found (f; Enter jumps to the row). t / e open the project's train / test file, o any file,
g goes to a row, p prepares new train/test files (the sample works offline).
"""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("o", "open", "Open", id="dataset.open"),
        Binding("p", "prepare", "Prepare", id="dataset.prepare"),
        Binding("v", "validate", "Validate", id="dataset.validate"),
        Binding("g", "go_to_row", "Go to", id="dataset.goto"),
        Binding("t", "open_train", "Train file", show=False, id="dataset.train"),
        Binding("e", "open_test", "Test file", show=False, id="dataset.test"),
        Binding("c", "side('conversation')", "Conversation", show=False, id="dataset.conv"),
        Binding("s", "side('stats')", "Stats", show=False, id="dataset.stats"),
        Binding("f", "side('findings')", "Findings", show=False, id="dataset.findings"),
    ]

    # -- messages from the workers ------------------------------------------------------------

    class Opened(Message, bubble=False):
        def __init__(self, index: DatasetIndex, generation: int) -> None:
            super().__init__()
            self.index, self.generation = index, generation

    class Indexed(Message, bubble=False):
        def __init__(self, progress: IndexProgress, generation: int) -> None:
            super().__init__()
            self.progress, self.generation = progress, generation

    class RowRead(Message, bubble=False):
        def __init__(self, row: Row, stats: RowStats, generation: int) -> None:
            super().__init__()
            self.row, self.stats, self.generation = row, stats, generation

    class Working(Message, bubble=False):
        """A long job's progress: `what` (e.g. "Validating"), done of total (None: unknown)."""

        def __init__(self, what: str, done: float, total: float | None) -> None:
            super().__init__()
            self.what, self.done, self.total = what, done, total

    class Validated(Message, bubble=False):
        def __init__(self, report: ValidationReport, bars: list, generation: int) -> None:
            super().__init__()
            self.report, self.bars, self.generation = report, bars, generation

    class Prepared(Message, bubble=False):
        def __init__(self, result: PrepareResult) -> None:
            super().__init__()
            self.result = result

    class Failed(Message, bubble=False):
        """A worker failed; `reason` is one sentence."""

        def __init__(self, reason: str) -> None:
            super().__init__()
            self.reason = reason

    def __init__(self) -> None:
        super().__init__(id="dataset-tab")
        self.index: DatasetIndex | None = None
        self.path: Path | None = None
        self.generation = 0
        self.report: ValidationReport | None = None
        self.busy = ""  # the long job running ("Validating", "Preparing"), if any
        self.selected = 0

    def compose(self) -> ComposeResult:
        yield Static("No file open.", id="ds-status", markup=False)
        with Container(id="ds-working"):
            yield Static("", id="ds-working-label", markup=False)
            yield ProgressBar(id="ds-progress", show_eta=False)
        with Container(id="ds-body"):
            with Vertical(id="ds-table-box"):
                yield Static("", id="ds-header")
                yield RowTable(id="ds-table")
            with Vertical(id="ds-side", classes="pane"):
                yield Static("", id="ds-side-title", markup=False)
                with ContentSwitcher(initial="ds-conversation", id="ds-switcher"):
                    with VerticalScroll(id="ds-conversation"):
                        yield Static("", id="ds-conversation-text")
                    with VerticalScroll(id="ds-stats"):
                        yield Static("Press v to validate the whole file.", id="ds-stats-text")
                    yield OptionList(id="ds-findings")

    def on_mount(self) -> None:
        self._findings_placeholder()
        self._set_side_title()
        self.set_interval(2.0, self._refresh_index)
        self._open_default()

    def on_unmount(self) -> None:
        if self.index is not None:
            self.index.close()

    def focus_default(self) -> None:
        self.query_one(RowTable).focus()

    @property
    def config(self) -> Config:
        return self.services.config

    # -- opening --------------------------------------------------------------------------

    @work(thread=True, group="dataset-open", exit_on_error=False)
    def _open_default(self) -> None:
        """The project's train file if there is one, else a hint on how to make one."""
        path = self.config.resolve(self.config.train_data_path)
        if path.is_file():
            self.app.call_from_thread(self.open_path, path)
        else:
            self.post_message(
                self.Failed(
                    f"No training data at {shown(path, self.config.project_dir)} yet: press p "
                    "to prepare it (the sample works offline) or o to open a file."
                )
            )

    def open_path(self, path: Path) -> None:
        """Show `path`: the old index is closed, the new one opened, both in a worker."""
        self.generation += 1
        self.path = path
        self.report = None
        old, self.index = self.index, None
        table = self.query_one(RowTable)
        table.set_index(None)
        self.query_one("#ds-header", Static).update(table.header())
        self.query_one("#ds-status", Static).update(f"Opening {self._shown(path)}…")
        self.query_one("#ds-conversation-text", Static).update("")
        self.query_one("#ds-stats-text", Static).update("Press v to validate the whole file.")
        self._findings_placeholder()
        self._open(path, old, self.generation)

    def _findings_placeholder(self) -> None:
        """Before validation the problems list says how to fill it (it was just empty)."""
        findings = self.query_one("#ds-findings", OptionList)
        findings.clear_options()
        findings.add_option(
            Option("Not checked yet: press v to validate the whole file.", disabled=True)
        )

    @work(
        thread=True,
        exclusive=True,
        group="dataset-open",
        exit_on_error=False,
        name="Opening the file",
    )
    def _open(self, path: Path, old: DatasetIndex | None, generation: int) -> None:
        from core.data.index import DatasetIndex

        if old is not None:
            old.close()
        index = DatasetIndex.open(
            path,
            on_progress=lambda progress: self.post_message(self.Indexed(progress, generation)),
        )
        self.post_message(self.Opened(index, generation))

    def on_dataset_tab_opened(self, message: Opened) -> None:
        if message.generation != self.generation:
            message.index.close()  # another file was asked for meanwhile
            return
        self.index = message.index
        table = self.query_one(RowTable)
        table.set_index(message.index, message.index.row_count)
        self._show_status()
        self.selected = 0
        self._read_row(0)

    def on_dataset_tab_indexed(self, message: Indexed) -> None:
        if message.generation != self.generation or self.index is None:
            return
        table = self.query_one(RowTable)
        table.set_row_count(message.progress.rows)
        self.query_one("#ds-header", Static).update(table.header())
        self._show_status()
        if message.progress.rows and self.selected == 0:
            self._read_row(0)

    def _show_status(self) -> None:
        if self.index is None or self.path is None:
            return
        progress = self.index.progress
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(self._shown(self.path), style="bold")
        text.append(f"  {progress.rows:,} rows  {_size(progress.bytes_total)}")
        if not progress.complete and progress.bytes_total:
            text.append(f"  indexing {progress.bytes_scanned / progress.bytes_total:.0%}")
        if self.report is not None:
            if self.report.ok:
                text.append("  ✓ valid", style="green")
            else:
                text.append(f"  ✗ {self.report.invalid:,} invalid", style="red")
        self.query_one("#ds-status", Static).update(text)

    @work(thread=True, exclusive=True, group="dataset-refresh", exit_on_error=False)
    def _refresh_index(self) -> None:
        index = self.index
        if index is not None:
            with contextlib.suppress(OSError, ValueError):
                index.refresh()  # one stat; growth or a replaced file shows up via on_progress

    def _shown(self, path: Path) -> str:
        return shown(path, self.config.project_dir)

    def action_open(self) -> None:
        from tui.tabs.dataset_dialogs import PathScreen

        start = self._shown(self.path) if self.path else self.config.train_data_path
        screen = PathScreen(
            "Open a JSONL file",
            start,
            base=self.config.project_dir,
            hint="A path, relative to the project folder or absolute; Tab completes it.",
            check=self._check_path,
            suggestions=[self.config.train_data_path, self.config.test_data_path],
        )
        self.open_dialog(screen, lambda path: path is not None and self.open_path(path))

    def _check_path(self, text: str) -> Path:
        if not text.strip():
            raise ValueError("Give a file's path.")
        path = self.config.resolve(text.strip())
        if not path.is_file():
            raise ValueError(f"There is no file at {path}.")
        return path

    def action_open_train(self) -> None:
        self._open_config_file(self.config.train_data_path)

    def action_open_test(self) -> None:
        self._open_config_file(self.config.test_data_path)

    def _open_config_file(self, value: str) -> None:
        try:
            self.open_path(self._check_path(value))
        except ValueError as error:
            self.notify(f"{error} Press p to prepare it.", severity="warning")

    # -- rows -----------------------------------------------------------------------------

    @on(RowTable.Highlighted)
    def _row_highlighted(self, event: RowTable.Highlighted) -> None:
        self.selected = event.index
        self._read_row(event.index)

    def _read_row(self, number: int) -> None:
        if self.index is not None and self.index.row_count > number:
            self._load_row(self.index, number, self.generation)

    @work(thread=True, exclusive=True, group="dataset-row", exit_on_error=False)
    def _load_row(self, index: DatasetIndex, number: int, generation: int) -> None:
        try:
            row, stats = index.row(number), index.stats(number)
        except (IndexError, ValueError, OSError):
            return  # the file changed under us; the table shows what is there now
        self.post_message(self.RowRead(row, stats, generation))

    def on_dataset_tab_row_read(self, message: RowRead) -> None:
        if message.generation != self.generation or message.row.index != self.selected:
            return
        self.query_one("#ds-conversation-text", Static).update(
            render_conversation(message.row, message.stats)
        )
        self.query_one("#ds-conversation", VerticalScroll).scroll_home(animate=False)
        self._set_side_title()

    def action_go_to_row(self) -> None:
        from tui.screens import AskScreen

        table = self.query_one(RowTable)
        if not table.row_count:
            return

        def check(text: str) -> int:
            try:
                number = int(text.strip())
            except ValueError:
                raise ValueError(f"A row number from 1 to {table.row_count:,}, please.") from None
            if not 1 <= number <= table.row_count:
                raise ValueError(f"Rows go from 1 to {table.row_count:,}.")
            return number

        self.open_dialog(
            AskScreen("Go to row", str(table.cursor + 1), check=check),
            lambda number: number is not None and self.jump_to(number - 1),
        )

    def jump_to(self, index: int) -> None:
        table = self.query_one(RowTable)
        table.go_to(index)
        table.focus()
        self.action_side("conversation", focus=False)

    # -- side panel -----------------------------------------------------------------------

    def action_side(self, which: str, focus: bool = True) -> None:
        """Show the conversation, statistics or problems; the last two take the focus, so
        arrows scroll them and Enter on a problem jumps to its row."""
        self.query_one(ContentSwitcher).current = f"ds-{which}"
        self._set_side_title()
        if focus and which != "conversation":
            self.query_one(f"#ds-{which}").focus()

    def _set_side_title(self) -> None:
        current = self.query_one(ContentSwitcher).current or "ds-conversation"
        names = {
            "ds-conversation": f"row {self.selected + 1}" if self.index else "conversation",
            "ds-stats": "statistics",
            "ds-findings": "problems",
        }
        keys = {"ds-conversation": "c", "ds-stats": "s", "ds-findings": "f"}
        text = Text(no_wrap=True, overflow="ellipsis")
        for name, key in keys.items():
            style = "bold reverse" if name == current else "dim"
            text.append(f" {key} {names[name]} ", style=style)
        self.query_one("#ds-side-title", Static).update(text)

    # -- validation -----------------------------------------------------------------------

    def action_validate(self) -> None:
        if self.path is None:
            self.notify("Open a file first (o, or t for the train file).", severity="warning")
            return
        if self.busy:
            self.notify(f"{self.busy} is still running.", severity="warning")
            return
        self._start_busy("Validating")
        self._validate(self.path, self.generation)

    @work(
        thread=True,
        exclusive=True,
        group="dataset-validate",
        exit_on_error=False,
        name="Validating",
    )
    def _validate(self, path: Path, generation: int) -> None:
        from core.data.validate import validate_file

        total = path.stat().st_size
        sizes: list[int] = []
        last = [0.0]
        worker = get_current_worker()

        def progress(done: int) -> None:
            if worker.is_cancelled:
                raise InterruptedError
            now = time.monotonic()
            if now - last[0] >= PROGRESS_SECONDS:
                last[0] = now
                self.post_message(self.Working("Validating", done, total))

        try:
            report = validate_file(
                path, on_progress=progress, on_valid=lambda line, turns, chars: sizes.append(chars)
            )
        except InterruptedError:
            return
        self.post_message(self.Validated(report, histogram(sizes), generation))

    def on_dataset_tab_validated(self, message: Validated) -> None:
        self._stop_busy()
        if message.generation != self.generation:
            return
        self.report = message.report
        self.query_one("#ds-stats-text", Static).update(render_stats(message.report, message.bars))
        findings = self.query_one("#ds-findings", OptionList)
        findings.clear_options()
        problems = message.report.problems
        findings.add_options(
            [
                Option(
                    Text(f"line {p.line}: {p.message}", no_wrap=True, overflow="ellipsis"),
                    id=f"line-{p.line}-{i}",
                )
                for i, p in enumerate(problems[:FINDINGS_SHOWN])
            ]
        )
        if len(problems) > FINDINGS_SHOWN:
            findings.add_option(
                Option(
                    f"… {len(problems) - FINDINGS_SHOWN:,} more (phiops data validate lists "
                    "them all)",
                    disabled=True,
                )
            )
        if not problems:
            findings.add_option(Option("No problems found.", disabled=True))
        self._show_status()
        self.action_side("findings" if problems else "stats", focus=False)
        if problems:
            findings.highlighted = 0
        valid = "valid" if message.report.ok else f"{message.report.invalid:,} invalid rows"
        self.notify(f"{self._shown(Path(message.report.path))}: {valid}.", title="Validate")

    @on(OptionList.OptionSelected, "#ds-findings")
    def _finding_selected(self, event: OptionList.OptionSelected) -> None:
        option_id = event.option.id or ""
        if option_id.startswith("line-"):
            self.jump_to(int(option_id.split("-")[1]) - 1)

    # -- preparing ------------------------------------------------------------------------

    def action_prepare(self) -> None:
        from tui.tabs.dataset_dialogs import PrepareScreen

        if self.busy:
            self.notify(f"{self.busy} is still running.", severity="warning")
            return
        config = self.config
        self.open_dialog(
            PrepareScreen("sample", config.train_data_path, config.test_data_path),
            self._prepare_chosen,
        )

    def _prepare_chosen(self, request: PrepareRequest | None) -> None:
        if request is None:
            return
        self._start_busy("Preparing")
        self._prepare(request)

    @work(
        thread=True,
        exclusive=True,
        group="dataset-prepare",
        exit_on_error=False,
        name="Preparing the data",
    )
    def _prepare(self, request: PrepareRequest) -> None:
        from core.data.prepare import prepare
        from core.data.sources import open_source

        config = self.config
        last = [0.0]

        def progress(stage: str, done: int, total: int | None) -> None:
            now = time.monotonic()
            if now - last[0] >= PROGRESS_SECONDS or (total is not None and done >= total):
                last[0] = now
                self.post_message(self.Working(stage, done, total))

        name = None if request.sample else request.source
        if name and config.resolve(name).exists():
            name = str(config.resolve(name))  # a path relative to the project, not the cwd
        source = open_source(
            name,
            sample=request.sample,
            dataset_id=config.dataset_id,
            dataset_config=config.dataset_config,
            split=None,
            default_split=config.dataset_split,
        )
        if source.describe().get("kind") == "hub":
            self.post_message(self.Working(f"Loading {request.source}", 0, None))
            source.load()
        result = prepare(
            source,
            config.resolve(config.train_data_path),
            config.resolve(config.test_data_path),
            test_fraction=request.test_fraction,
            seed=request.seed,
            on_progress=progress,
        )
        self.post_message(self.Prepared(result))

    def on_dataset_tab_prepared(self, message: Prepared) -> None:
        self._stop_busy()
        result = message.result
        skipped = f", {result.skipped:,} invalid rows skipped" if result.skipped else ""
        self.notify(
            f"Wrote {result.train.rows:,} training and {result.test.rows:,} test rows{skipped}.",
            title="Prepare",
        )
        self.post_message(DataPrepared(result.train.path, result.test.path))
        self.open_path(Path(result.train.path))

    # -- long jobs ------------------------------------------------------------------------

    def _start_busy(self, what: str) -> None:
        self.busy = what
        self.query_one("#ds-working").display = True
        self.query_one("#ds-working-label", Static).update(f"{what}…")
        self.query_one(ProgressBar).update(total=None, progress=0)

    def _stop_busy(self) -> None:
        self.busy = ""
        self.query_one("#ds-working").display = False

    def on_dataset_tab_working(self, message: Working) -> None:
        if not self.busy:
            return
        label = f"{message.what}…"
        if message.total and message.what.startswith(("Checking", "Writing")):
            label += f" {int(message.done):,} of {int(message.total):,} rows"
        self.query_one("#ds-working-label", Static).update(label)
        self.query_one(ProgressBar).update(total=message.total, progress=message.done)

    def worker_failed(self, group: str, sentence: str) -> None:
        self.post_message(self.Failed(sentence))

    def on_dataset_tab_failed(self, message: Failed) -> None:
        was_busy = self.busy
        self._stop_busy()
        if was_busy:
            self.notify(message.reason, title=was_busy, severity="error", timeout=10)
        self.query_one("#ds-status", Static).update(Text(message.reason))

    def on_backend_changed(self, message: BackendChanged) -> None:
        pass  # the data lives in the project folder on every backend


def _size(count: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"
