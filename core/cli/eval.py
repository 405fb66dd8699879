"""`phiops eval`: a target's answers on the test split, scored; `eval list|show|compare`.

    phiops eval [--target ENDPOINT[:DEPLOYMENT] | --model NAME[:VERSION] | --base]
                [--data FILE] [--limit N] [--compare OTHER] [--resume RUN] [--json]

Without a target, the project's endpoint (`endpoint_name`). OTHER is an evaluation's run id
(or a prefix of it), `base`, `model:NAME[:VERSION]` or `ENDPOINT[:DEPLOYMENT]`; a fresh
finished evaluation of it is reused, else it is evaluated too.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import click

from core.cli.main import AppContext, pass_app
from core.cli.output import console, emit, err_console, json_option
from core.errors import NotFoundError

PERCENT = {"exact_match", "contains_match", "empty_rate", "stopped_rate"}
LABELS = {
    "rougeL": "ROUGE-L F1",
    "exact_match": "exact match",
    "contains_match": "contains reference",
    "empty_rate": "empty answers",
    "stopped_rate": "stopped at <|end|>",
    "length_ratio": "length / reference",
    "tokens_per_s": "tokens/s",
    "latency_p50_s": "latency p50 (s)",
    "latency_p95_s": "latency p95 (s)",
    "ref_loss": "reference loss",
    "ref_perplexity": "reference perplexity",
}


def number(name: str, value: Any) -> str:
    if value is None:
        return "–"
    if name in PERCENT:
        return f"{value * 100:.1f}%"
    if name in ("tokens_per_s", "ref_perplexity"):
        return f"{value:.2f}" if value < 100 else f"{value:.0f}"
    return f"{value:.3f}"


def interval(name: str, figures: dict[str, Any] | None) -> str:
    if not figures or figures.get("low") is None:
        return ""
    return f"{number(name, figures['low'])}–{number(name, figures['high'])}"


def signed(name: str, value: Any) -> str:
    if value is None:
        return "–"
    text = number(name, abs(value))
    return ("+" if value >= 0 else "−") + text


@contextlib.contextmanager
def reporting(as_json: bool) -> Iterator[tuple[Any, Any]]:
    """(say, advance): phases as lines on stderr, rows answered as a progress bar."""
    out = err_console()
    if as_json or not out.is_terminal:
        yield (
            (lambda message: out.print(f"· {message}", markup=False, highlight=False)),
            (lambda done, total: None),
        )
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("answering"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, TimeRemainingColumn(), console=out, transient=True) as bar:
        task = bar.add_task("answering", total=None)

        def say(message: str) -> None:
            bar.console.print(f"[dim]·[/] {message}", highlight=False, markup=True)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield say, advance


def print_record(record: Any, title: str = "Evaluation") -> None:
    from rich.table import Table

    out = console()
    meta = record.meta
    skipped = sum(meta.skipped.values())
    extra = f", {skipped} skipped" if skipped else ""
    took = f" · generation {record.generation_s:.1f} s" if record.generation_s else ""
    out.print(
        f"[bold]{title} {record.run_id[:12]}[/] {meta.label} · {meta.rows_total} rows{extra}"
        f" · {record.state}{took}",
        highlight=False,
    )
    if skipped:
        out.print(
            "  skipped: " + ", ".join(f"{n} {why}" for why, n in meta.skipped.items()),
            markup=False,
        )
    table = Table(show_edge=False, box=None, padding=(0, 2))
    for column in ("metric", "value", "95% interval", "rows"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for name, figures in record.aggregates.items():
        table.add_row(
            LABELS.get(name, name),
            number(name, figures.get("value")),
            interval(name, figures),
            str(figures.get("n", "")),
        )
    out.print(table)


def print_comparison(result: Any) -> None:
    from rich.table import Table

    out = console()
    a, b = result.a, result.b
    out.print(
        f"[bold]A[/] {a.run_id[:12]} {a.meta.label}   [bold]B[/] {b.run_id[:12]} {b.meta.label}"
        f"   ({result.paired} conversations in both)",
        highlight=False,
    )
    table = Table(show_edge=False, box=None, padding=(0, 2))
    for column in ("metric", "A", "B", "B − A (95%)", ""):
        table.add_column(column, justify="left" if column in ("metric", "") else "right")
    style = {"better": "green", "worse": "red"}
    for change in result.metrics:
        name = change.name
        moved = change.change or {}
        shown = signed(name, moved.get("value"))
        if moved.get("low") is not None:
            shown += f"\n[dim]{signed(name, moved['low'])} … {signed(name, moved['high'])}[/]"
        colour = style.get(change.verdict)
        word = f"[{colour}]{change.verdict}[/]" if colour else change.verdict
        table.add_row(
            LABELS.get(name, name),
            _value_with_interval(name, change.a),
            _value_with_interval(name, change.b),
            shown,
            word,
        )
    out.print(table)
    if result.rows:
        out.print("\n[bold]Conversations whose ROUGE-L changed most[/]")
        rows = Table(show_lines=True, expand=True)
        for column in ("line", "question", "reference", "answer A", "answer B", "A → B"):
            rows.add_column(column, overflow="fold", ratio=None if column == "line" else 2)
        for row in result.rows:
            rows.add_row(
                str(row.line),
                clip(row.question),
                clip(row.reference),
                clip(row.answer_a),
                clip(row.answer_b),
                f"{row.score_a:.2f} → {row.score_b:.2f}",
            )
        out.print(rows)


def _value_with_interval(name: str, figures: dict[str, Any] | None, sep: str = "\n") -> str:
    """The value, and its interval dimmed below it (or beside it with `sep=" "`)."""
    if not figures:
        return "–"
    text = number(name, figures.get("value"))
    if figures.get("low") is None:
        return text
    return f"{text}{sep}[dim]{interval(name, figures)}[/]"


def clip(text: str, limit: int = 160) -> str:
    """A long answer cut for a table cell (the whole row is in `eval show --json`)."""
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def target_spec(
    target: str | None, model: str | None, base: bool, base_model: str | None, config: Any
) -> Any:
    from core.eval.targets import TargetSpec

    chosen = sum(bool(x) for x in (target, model, base or base_model))
    if chosen > 1:
        raise click.UsageError("give one of --target, --model and --base")
    if model:
        return TargetSpec.model_of(model)
    if base or base_model:
        return TargetSpec.base_of(base_model or "")
    return TargetSpec.endpoint_of(target or config.endpoint_name)


def other_record(evaluation: Any, other: str, options: Any) -> Any:
    """`--compare OTHER`: an earlier evaluation, or a target evaluated (or reused) now."""
    from core.eval.targets import TargetSpec

    with contextlib.suppress(NotFoundError):
        return evaluation.store.get(other)
    record, _ = evaluation.reuse_or_run(TargetSpec.parse(other), options)
    return record


@click.group("eval", invoke_without_command=True)
@click.option(
    "--target",
    default=None,
    metavar="ENDPOINT[:DEPLOYMENT]",
    help="Evaluate an endpoint (default: endpoint_name), or one deployment of it.",
)
@click.option(
    "--model",
    default=None,
    metavar="NAME[:VERSION]",
    help="Evaluate a registered model (locally: on a temporary server).",
)
@click.option(
    "--base",
    is_flag=True,
    help="Evaluate the un-tuned base model (base_model) on a temporary server.",
)
@click.option(
    "--base-model",
    default=None,
    metavar="PATH",
    help="With --base: this folder instead of base_model.",
)
@click.option(
    "--data",
    default=None,
    metavar="FILE",
    help="Chat JSONL to evaluate on (default: test_data_path).",
)
@click.option(
    "--limit", type=click.IntRange(1), default=None, help="Evaluate the first N conversations."
)
@click.option(
    "--compare",
    "compare_with",
    default=None,
    metavar="OTHER",
    help="Also show the change from OTHER: a run id, base, model:NAME[:VERSION] or "
    "ENDPOINT[:DEPLOYMENT].",
)
@click.option("--resume", default=None, metavar="RUN", help="Continue an interrupted evaluation.")
@click.option(
    "--max-new-tokens",
    type=click.IntRange(1, 4096),
    default=None,
    help="Longest answer, in tokens.  [default: the flow's, 256]",
)
@click.option(
    "--temperature",
    type=click.FloatRange(0, 5),
    default=0.0,
    show_default=True,
    help="0 is greedy (reproducible scores).",
)
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), default=0.9, show_default=True)
@click.option(
    "--concurrency",
    type=click.IntRange(1),
    default=None,
    help="Requests at once (at most the deployment's max_concurrent_requests_per_instance).",
)
@click.option(
    "--engine",
    type=click.Choice(["inprocess", "promptflow"]),
    default="inprocess",
    show_default=True,
    help="promptflow: a Prompt flow batch run of the chat flow, then of the evaluation flow.",
)
@click.option(
    "--loss/--no-loss",
    default=True,
    show_default=True,
    help="The references' loss under the model, where its files are on this machine.",
)
@click.option(
    "--backend",
    type=click.Choice(["local", "azure"]),
    default=None,
    help="Backend to use (default: the project's).",
)
@json_option
@click.pass_context
def eval_(ctx: click.Context, **options: Any) -> None:
    """Evaluate a model on the test split: ROUGE-L, matches, stops, lengths, latency, with
    95% bootstrap intervals; each evaluation is kept as an MLflow run."""
    if ctx.invoked_subcommand is not None:
        return
    run_evaluation(ctx.ensure_object(AppContext), **options)


def run_evaluation(
    app: AppContext,
    target: str | None,
    model: str | None,
    base: bool,
    base_model: str | None,
    data: str | None,
    limit: int | None,
    compare_with: str | None,
    resume: str | None,
    max_new_tokens: int | None,
    temperature: float,
    top_p: float,
    concurrency: int | None,
    engine: str,
    loss: bool,
    backend: str | None,
    as_json: bool,
) -> None:
    from core.eval.compare import compare
    from core.eval.generate import Params
    from core.eval.runner import EvalOptions, Evaluation

    config = app.config
    started = time.perf_counter()
    with reporting(as_json) as (say, advance):
        evaluation = Evaluation(config, app.backend(backend), say=say, advance=advance)
        options = EvalOptions(
            data=data,
            limit=limit,
            params=Params(temperature, max_new_tokens or Params().max_new_tokens, top_p),
            concurrency=concurrency,
            engine=engine,
            loss=loss,
        )
        if resume:
            if target or model or base or base_model or data or limit:
                raise click.UsageError("--resume continues an evaluation as it was started")
            record = evaluation.resume(resume, loss=loss)
        else:
            spec = target_spec(target, model, base, base_model, config)
            record = evaluation.run(spec, options)
        other = other_record(evaluation, compare_with, options) if compare_with else None
    comparison = compare(other, record) if other is not None else None
    data_out = record.to_dict(rows=False)
    data_out["seconds"] = round(time.perf_counter() - started, 3)
    if comparison is not None:
        data_out["comparison"] = comparison.to_dict()

    def human() -> None:
        print_record(record)
        if comparison is not None:
            console().print()
            print_comparison(comparison)
        console().print(f"\nRows: phiops eval show {record.run_id[:12]}", markup=False)

    emit(data_out, as_json, human)


@eval_.command("list")
@json_option
@pass_app
def list_(app: AppContext, as_json: bool) -> None:
    """List the project's evaluations, newest first."""
    from core.eval.results import EvalStore

    records = EvalStore(app.config).list()

    def human() -> None:
        if not records:
            console().print("No evaluations yet; run `phiops eval`.")
            return
        from rich.table import Table

        table = Table(show_edge=False)
        for column in ("run", "when", "target", "rows", "state", "ROUGE-L (95%)"):
            table.add_column(
                column, no_wrap=column != "target", min_width=12 if column == "target" else None
            )
        for record in records:
            figures = record.aggregates.get("rougeL")
            table.add_row(
                record.run_id[:12],
                time.strftime("%m-%d %H:%M", time.localtime(record.meta.started_at)),
                record.meta.label,
                str(record.meta.rows_total),
                record.state,
                _value_with_interval("rougeL", figures, " "),
            )
        console().print(table)

    emit([record.to_dict(rows=False) for record in records], as_json, human)


@eval_.command("show")
@click.argument("run")
@click.option(
    "--rows",
    "shown",
    type=click.IntRange(0),
    default=10,
    show_default=True,
    help="Rows to print (lowest ROUGE-L first).",
)
@json_option
@pass_app
def show(app: AppContext, run: str, shown: int, as_json: bool) -> None:
    """One evaluation: its aggregates, then its rows (the per-row table)."""
    from core.eval.results import EvalStore

    record = EvalStore(app.config).get(run)

    def human() -> None:
        print_record(record)
        rows = sorted(record.rows, key=lambda row: (row.get("rougeL") or 0.0, row["line"]))
        if not rows or not shown:
            return
        from rich.table import Table

        table = Table(show_lines=True, expand=True)
        for column in ("line", "question", "reference", "answer", "ROUGE-L", "tokens"):
            table.add_column(column, overflow="fold")
        for row in rows[:shown]:
            answer = row.get("answer") or ""
            if row.get("error"):
                answer = f"✗ {row['error']}"
            stop = {True: " ⏹", False: " ✂"}.get(row.get("finished"), "")
            table.add_row(
                str(row["line"]),
                clip(row["question"]),
                clip(row["reference"]),
                clip(answer),
                number("rougeL", row.get("rougeL")),
                f"{row.get('tokens') if row.get('tokens') is not None else '–'}{stop}",
            )
        console().print(
            f"\n{min(shown, len(rows))} of {len(rows)} rows, lowest ROUGE-L first "
            "(⏹ stopped at <|end|>, ✂ cut at max tokens)"
        )
        console().print(table)

    emit(record.to_dict(rows=True), as_json, human)


@eval_.command("compare")
@click.argument("a")
@click.argument("b")
@click.option(
    "--rows",
    "shown",
    type=click.IntRange(0),
    default=5,
    show_default=True,
    help="Conversations to show side by side.",
)
@json_option
@pass_app
def compare_(app: AppContext, a: str, b: str, shown: int, as_json: bool) -> None:
    """B against A: aggregates with intervals, the change with a paired interval, and the
    conversations whose score changed most, side by side."""
    from core.eval.compare import compare
    from core.eval.results import EvalStore

    store = EvalStore(app.config)
    result = compare(store.get(a), store.get(b), shown)
    emit(result.to_dict(), as_json, lambda: print_comparison(result))
