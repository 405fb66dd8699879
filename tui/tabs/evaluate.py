"""The Evaluate tab: run an evaluation with progress, read the aggregates with their
intervals, and walk the conversations side by side.

A sixth tab rather than a part of Deployments: an evaluation is about models (a deployment,
a registered version, the base model) and outlives any deployment, and the side-by-side
rows need the whole width. `phiops eval` keeps the same records, so what the CLI ran is
here too, and the other way round.

- the evaluations, newest first (`core.eval.results.EvalStore.list`); the highlighted one
  is B, and `a` makes the highlighted one A (the baseline). With an A, the aggregate table
  shows A, B, the paired change with its interval and the verdict; without, B alone;
- the rows below: line, question, reference, answer A, answer B and the scores, the
  biggest change first; Enter opens a row in full;
- `e` asks what to evaluate (target, what to compare it with, limit, answer length) and runs
  `core.eval.runner.Evaluation` in a worker: a progress bar while the answers arrive, `x`
  stops it (the answers so far are kept; `phiops eval --resume` continues it).

Every read and the evaluation itself run in thread workers that post messages and let an
error go: `worker_failed` says it and undoes what waited (the running evaluation).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, ProgressBar, Static

from tui.messages import BackendChanged
from tui.tabs.base import AppTab

if TYPE_CHECKING:
    from core.eval.compare import Comparison
    from core.eval.results import EvalRecord
    from tui.tabs.evaluate_dialogs import EvalRequest

LABELS = {
    "rougeL": "ROUGE-L",
    "exact_match": "exact",
    "contains_match": "contains",
    "empty_rate": "empty",
    "stopped_rate": "stopped",
    "length_ratio": "length",
    "tokens_per_s": "tokens/s",
    "latency_p50_s": "p50 s",
    "latency_p95_s": "p95 s",
    "ref_loss": "ref loss",
    "ref_perplexity": "perplexity",
}
WIDE = 110  # columns from which the verdict and the reference have columns of their own
INTERVALS = 165  # columns from which A and B show their own intervals beside the change
PERCENT = {"exact_match", "contains_match", "empty_rate", "stopped_rate"}
VERDICT_STYLE = {"better": "green", "worse": "red"}
MARKS = {"better": "▲", "worse": "▼", "no clear change": "=", "higher": "↑", "lower": "↓"}


def number(name: str, value: Any) -> str:
    if value is None:
        return "–"
    if name in PERCENT:
        return f"{value * 100:.0f}%"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.2f}" if name in ("tokens_per_s", "ref_perplexity") else f"{value:.3f}"


def figures(name: str, found: dict[str, Any] | None) -> str:
    if not found:
        return "–"
    text = number(name, found.get("value"))
    if found.get("low") is not None:
        text += f" ({number(name, found['low'])}–{number(name, found['high'])})"
    return text


def text_width(total: int, texts: int, others: int, others_width: int) -> int:
    """How wide each of `texts` text columns may be in a table `total` columns wide that
    also holds `others` columns `others_width` wide in all (each column padded by one on
    either side; two for the scrollbar), so the last column is never cut."""
    return max(8, (total - 2 - 2 * (texts + others) - others_width) // texts)


def short(text: str, limit: int = 120) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class EvaluateTab(AppTab):
    """Evaluations: run one, read its aggregates, compare two row by row."""

    HELP = """
Evaluations of models on the test split (`phiops eval` keeps the same records).
The highlighted evaluation is B; `a` makes it A, the baseline, and the table shows
the change B − A with its 95% interval (paired bootstrap) and whether it is real.
The rows below put the two answers side by side, biggest change first; Enter opens one.
`e` runs a new evaluation (and, with "compare with", the other side too, reusing a
fresh result); `x` stops it, keeping the answers (`phiops eval --resume RUN`).
"""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("e", "evaluate", "Evaluate", id="evaluate.run"),
        Binding("a", "set_baseline", "Set A", id="evaluate.baseline"),
        Binding("x", "stop", "Stop", id="evaluate.stop"),
        Binding("r", "refresh", "Refresh", id="evaluate.refresh"),
    ]

    class Listed(Message, bubble=False):
        def __init__(self, records: list[EvalRecord]) -> None:
            super().__init__()
            self.records = records

    class Shown(Message, bubble=False):
        def __init__(self, a: EvalRecord | None, b: EvalRecord, comparison: Comparison | None):
            super().__init__()
            self.a, self.b, self.comparison = a, b, comparison

    class Progressed(Message, bubble=False):
        def __init__(self, done: int, total: int) -> None:
            super().__init__()
            self.done, self.total = done, total

    class Said(Message, bubble=False):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class Finished(Message, bubble=False):
        def __init__(self, run_id: str, against: str = "", sentence: str = "") -> None:
            super().__init__()
            self.run_id, self.against, self.sentence = run_id, against, sentence

    def __init__(self) -> None:
        super().__init__(id="evaluate-tab")
        self.records: list[EvalRecord] = []
        self.baseline: str = ""  # run id of A
        self.rows: list[dict[str, Any]] = []
        self.names = ("A", "B")
        self.running = False
        self._stop: threading.Event | None = None
        self._generation = 0
        self._select = ""  # the run to highlight once the list is read again
        self._outcome = ""  # how the last evaluation ended, kept on the status line

    def compose(self) -> ComposeResult:
        yield Static("Reading the evaluations…", id="eval-status", markup=False)
        yield ProgressBar(id="eval-progress", show_eta=True)
        with Horizontal(id="eval-top"):
            with Vertical(id="eval-runs-pane", classes="pane"):
                yield Static("Evaluations · a sets A", classes="eval-title", markup=False)
                runs = DataTable(id="eval-runs", cursor_type="row", zebra_stripes=True)
                runs.add_columns("run", "target", "rows", "ROUGE-L")
                yield runs
            with Vertical(id="eval-metrics-pane", classes="pane"):
                yield Static(
                    "Aggregates", id="eval-metrics-title", classes="eval-title", markup=False
                )
                yield DataTable(id="eval-metrics", cursor_type="none")
        with Vertical(id="eval-rows-pane", classes="pane"):
            yield Static(
                "Rows · Enter opens one", id="eval-rows-title", classes="eval-title", markup=False
            )
            yield DataTable(id="eval-rows", cursor_type="row")

    def on_mount(self) -> None:
        self.query_one("#eval-progress").display = False
        self.action_refresh()

    def focus_default(self) -> None:
        self.query_one("#eval-runs", DataTable).focus()

    # -- reading -------------------------------------------------------------------------

    def action_refresh(self) -> None:
        self._list()

    @work(
        thread=True,
        exclusive=True,
        group="evaluate-list",
        exit_on_error=False,
        name="Reading the evaluations",
    )
    def _list(self) -> None:
        from core.eval.results import EvalStore

        self.post_message(self.Listed(EvalStore(self.services.config).list()))

    def on_evaluate_tab_listed(self, message: Listed) -> None:
        table = self.query_one("#eval-runs", DataTable)
        keep, self._select = self._select or self._highlighted_id(), ""
        self.records = message.records
        table.clear()
        for record in self.records:
            mark = "A " if record.run_id == self.baseline else "  "
            rouge = (record.aggregates.get("rougeL") or {}).get("value")
            table.add_row(
                mark + record.run_id[:8],
                short(record.meta.label, 28),
                str(record.meta.rows_total),
                number("rougeL", rouge) if record.state == "finished" else record.state,
                key=record.run_id,
            )
        if not self.records:
            self._status("No evaluations yet: press e to evaluate a model on the test split.")
            return
        if not self.running:
            self._status(
                self._outcome
                or f"{len(self.records)} evaluations · a sets A · e evaluates · r refreshes"
            )
        index = next((i for i, r in enumerate(self.records) if r.run_id == keep), 0)
        table.move_cursor(row=index)
        self._show()

    def _highlighted_id(self) -> str:
        table = self.query_one("#eval-runs", DataTable)
        if not self.records or table.cursor_row is None:
            return ""
        index = min(max(table.cursor_row, 0), len(self.records) - 1)
        return self.records[index].run_id

    @on(DataTable.RowHighlighted, "#eval-runs")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show()

    def _show(self) -> None:
        chosen = self._highlighted_id()
        if chosen:
            self._generation += 1
            self._read(self.baseline, chosen, self._generation)

    @work(
        thread=True,
        exclusive=True,
        group="evaluate-read",
        exit_on_error=False,
        name="Reading the evaluation",
    )
    def _read(self, a_id: str, b_id: str, generation: int) -> None:
        from core.eval.compare import compare
        from core.eval.results import EvalStore

        store = EvalStore(self.services.config)
        b = store.get(b_id)
        a = store.get(a_id) if a_id and a_id != b_id else None
        comparison = compare(a, b, shown=len(a.rows)) if a is not None else None
        if generation == self._generation:
            self.post_message(self.Shown(a, b, comparison))

    def on_evaluate_tab_shown(self, message: Shown) -> None:
        metrics = self.query_one("#eval-metrics", DataTable)
        metrics.clear(columns=True)
        rows_table = self.query_one("#eval-rows", DataTable)
        rows_table.clear(columns=True)
        b = message.b
        if message.comparison is None:
            metrics.add_columns("metric", f"B {b.run_id[:8]} (95%)")
            for name, found in b.aggregates.items():
                metrics.add_row(LABELS.get(name, name), figures(name, found))
            self.names = ("", f"B {b.meta.label}")
            self._titles(f"B {b.meta.label} (95% intervals)", "lowest ROUGE-L first")
            self.rows = [
                {**row, "answer_b": row.get("answer"), "score_b": row.get("rougeL")}
                for row in sorted(b.rows, key=lambda r: (r.get("rougeL") or 0.0, r["line"]))
            ]
            rows_table.add_columns("line", "question", "reference", "answer", "ROUGE-L")
            width = text_width(self.app.size.width, 3, 2, len("line") + len("ROUGE-L"))
            for row in self.rows:
                rows_table.add_row(
                    str(row["line"]),
                    short(row.get("question", ""), width),
                    short(row.get("reference", ""), width),
                    short(
                        (row.get("error") and f"✗ {row['error']}") or row.get("answer", ""), width
                    ),
                    number("rougeL", row.get("rougeL")),
                )
            return
        a, comparison = message.a, message.comparison
        assert a is not None
        wide = self.app.size.width >= WIDE
        # A and B as values and the change with its interval (the one that decides); their
        # own intervals too where the aggregates' pane has room for them.
        shown_value = (
            figures
            if self.app.size.width >= INTERVALS
            else (lambda name, found: number(name, (found or {}).get("value")))
        )
        metrics.add_columns("metric", "A", "B", "B − A (95%)", *(["verdict"] if wide else []))
        for change in comparison.metrics:
            name = change.name
            moved = change.change or {}
            shown = number(name, moved.get("value"))
            if moved.get("low") is not None:
                shown += f" ({number(name, moved['low'])}…{number(name, moved['high'])})"
            style = VERDICT_STYLE.get(change.verdict, "")
            cells: list[Any] = [
                LABELS.get(name, name),
                shown_value(name, change.a),
                shown_value(name, change.b),
            ]
            if wide:
                cells += [shown, Text(change.verdict, style=style)]
            else:  # the verdict as a mark before the change, so it fits 80 columns
                cells.append(Text(f"{MARKS.get(change.verdict, ' ')} {shown}", style=style))
            metrics.add_row(*cells)
        self.names = (f"A {a.meta.label}", f"B {b.meta.label}")
        self._titles(" · ".join(self.names), "biggest change first")
        width = text_width(self.app.size.width, 4 if wide else 3, 2, len("line") + 9)
        columns = ["line", "question", "reference", "answer A", "answer B", "A → B"]
        if not wide:
            columns.remove("reference")  # Enter shows it, with everything else
        rows_table.add_columns(*columns)
        self.rows = [row.__dict__ for row in comparison.rows]
        for row in comparison.rows:
            delta = row.score_b - row.score_a
            cells = [
                str(row.line),
                short(row.question, width),
                short(row.reference, width),
                short(row.answer_a, width),
                short(row.answer_b, width),
                Text(
                    f"{row.score_a:.2f}→{row.score_b:.2f}",
                    style="green" if delta > 0 else "red" if delta < 0 else "",
                ),
            ]
            if not wide:
                del cells[2]
            rows_table.add_row(*cells)

    def _titles(self, metrics: str, order: str) -> None:
        """The panes' title bars say what the columns A and B are, and the rows' order."""
        self.query_one("#eval-metrics-title", Static).update(metrics)
        self.query_one("#eval-rows-title", Static).update(f"Rows · {order} · Enter opens one")

    def action_set_baseline(self) -> None:
        chosen = self._highlighted_id()
        if not chosen:
            return
        self.baseline = "" if chosen == self.baseline else chosen
        self.notify(f"A is {chosen[:8]}" if self.baseline else "No A: one evaluation shown.")
        self._list()

    @on(DataTable.RowSelected, "#eval-rows")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a row: the conversation and both answers in full."""
        self.action_open_row(event.cursor_row)

    def action_open_row(self, index: int | None = None) -> None:
        table = self.query_one("#eval-rows", DataTable)
        index = table.cursor_row if index is None else index
        if not self.rows or index is None:
            return
        from tui.tabs.evaluate_dialogs import RowScreen

        row = self.rows[min(max(index, 0), len(self.rows) - 1)]
        self.open_dialog(RowScreen(row, self.names), lambda _: None)

    # -- evaluating ------------------------------------------------------------------------

    def action_evaluate(self) -> None:
        if self.running:
            self.notify("An evaluation is running; x stops it.")
            return
        from tui.tabs.evaluate_dialogs import EvaluateScreen

        self.open_dialog(EvaluateScreen(self.services.config.endpoint_name), self._start)

    def _start(self, request: EvalRequest | None) -> None:
        if request is None:
            return
        self.running = True
        self._outcome = ""
        self._stop = threading.Event()
        bar = self.query_one("#eval-progress", ProgressBar)
        bar.update(total=None, progress=0)
        bar.display = True
        self._status(f"Evaluating {request.target}… (x stops)")
        self._evaluate(request, self._stop)

    @work(
        thread=True,
        exclusive=True,
        group="evaluate-run",
        exit_on_error=False,
        name="The evaluation",
    )
    def _evaluate(self, request: EvalRequest, stop: threading.Event) -> None:
        from core.eval.generate import Params
        from core.eval.runner import EvalOptions, Evaluation
        from core.eval.targets import TargetSpec

        services = self.services
        say = lambda text: self.post_message(self.Said(text))  # noqa: E731
        advance = lambda done, total: self.post_message(self.Progressed(done, total))  # noqa: E731
        evaluation = Evaluation(
            services.config, services.backend(), say=say, advance=advance, stop=stop
        )
        options = EvalOptions(
            limit=request.limit, params=Params(max_new_tokens=request.max_new_tokens)
        )
        record = evaluation.run(TargetSpec.parse(request.target), options)
        against = ""
        if request.against and not stop.is_set():
            say(f"now {request.against} (a fresh result is reused)")
            other, _ = evaluation.reuse_or_run(TargetSpec.parse(request.against), options)
            against = other.run_id
        rouge = (record.aggregates.get("rougeL") or {}).get("value")
        sentence = f"Evaluated {record.meta.label}: ROUGE-L {number('rougeL', rouge)}."
        self.post_message(self.Finished(record.run_id, against, sentence))

    def on_evaluate_tab_said(self, message: Said) -> None:
        self._status(message.text)

    def on_evaluate_tab_progressed(self, message: Progressed) -> None:
        bar = self.query_one("#eval-progress", ProgressBar)
        bar.update(total=message.total, progress=message.done)
        if self.running:
            self._status(f"{message.done} of {message.total} answered (x stops)")

    def on_evaluate_tab_finished(self, message: Finished) -> None:
        self._done()
        self._outcome = message.sentence
        self.notify(message.sentence, timeout=8)
        if message.against:
            self.baseline = message.against
        self._select = message.run_id
        self._list()

    def worker_failed(self, group: str, sentence: str) -> None:
        """A read failed: said. The evaluation failed or was stopped (`EvalInterrupted`
        keeps the answers): the bar goes, the outcome stays on the status line, and the
        list is read again (a stopped evaluation is there, resumable)."""
        if group == "evaluate-run":
            stopped = self._stop is not None and self._stop.is_set()
            self._done()
            self._outcome = f"✗ {sentence}"
            self._status(self._outcome)
            severity = "warning" if stopped else "error"
            self.notify(sentence, severity=severity, timeout=10, markup=False)
            self._list()
            return
        if group == "evaluate-list":
            self._status(f"✗ {sentence}")
        super().worker_failed(group, sentence)

    def _done(self) -> None:
        self.running = False
        self._stop = None
        self.query_one("#eval-progress").display = False

    def action_stop(self) -> None:
        if not self.running or self._stop is None:
            self.notify("No evaluation is running.")
            return
        self._stop.set()
        self._status("Stopping: the answers so far are kept…")

    def on_backend_changed(self, message: BackendChanged) -> None:
        self.action_refresh()

    def _status(self, text: str) -> None:
        self.query_one("#eval-status", Static).update(text)
