"""`phiops data …`: prepare the train/test files, validate a file, preview its rows."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from core.cli.main import AppContext, pass_app
from core.cli.output import console, emit, err_console, json_option
from core.errors import PhiopsError
from core.text import plural

ROLE_STYLE = {"system": "magenta", "user": "cyan", "assistant": "green"}
CUT = 600  # characters of a message shown unless --full
SHOWN_OVER_LIMIT = 20


@click.group()
def data() -> None:
    """Prepare, validate and preview chat datasets."""


@contextmanager
def progress_bar(on_stderr: bool) -> Iterator[Callable[[str, int, int | None], None]]:
    """A rich progress bar with one line per stage; yields `update(stage, done, total)`."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn())
    columns += (MofNCompleteColumn(), TimeElapsedColumn())
    out = err_console() if on_stderr else console()
    if not out.is_terminal:  # nobody to watch it; rich would leave a blank line behind

        def ignore(stage: str, done: int, total: int | None) -> None:
            pass

        ignore.console = out  # type: ignore[attr-defined]
        yield ignore
        return
    with Progress(*columns, console=out, transient=True) as bar:
        tasks: dict[str, int] = {}

        def update(stage: str, done: int, total: int | None) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        update.console = out  # type: ignore[attr-defined]
        yield update


def shown(path: str | Path) -> str:
    """A path as short as it can be said: relative to the working folder when inside it."""
    path = Path(path)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# -- prepare ---------------------------------------------------------------------------------


@data.command()
@click.option(
    "--source",
    help="Hub dataset id, or a local .jsonl/.json/.parquet file or folder "
    "(default: the project's dataset_id).",
)
@click.option(
    "--sample",
    is_flag=True,
    help="Use the built-in sample (chats about the island of Brindlemoor); works offline.",
)
@click.option("--dataset-config", help="Hub dataset configuration (default: the project's).")
@click.option("--split", help="Split expression, e.g. train_sft[:1%] (default: the project's).")
@click.option(
    "--test-fraction",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.2,
    show_default=True,
    help="Share of the rows that goes to the test file.",
)
@click.option("--seed", type=int, default=42, show_default=True, help="Seed of the split.")
@json_option
@pass_app
def prepare(
    app: AppContext,
    source: str | None,
    sample: bool,
    dataset_config: str | None,
    split: str | None,
    test_fraction: float,
    seed: int,
    as_json: bool,
) -> None:
    """Write the project's train and test files.

    From a hub dataset (default: the project's dataset_id), a local JSONL, JSON or Parquet
    file or folder (--source), or the built-in sample (--sample), split with a seed.
    """
    from core.data.prepare import prepare as run_prepare
    from core.data.sources import open_source

    if sample and source:
        raise click.UsageError("give --source or --sample, not both.")
    config = app.config
    chosen = open_source(
        source,
        sample=sample,
        dataset_id=config.dataset_id,
        dataset_config=dataset_config or config.dataset_config,
        split=split,
        default_split=config.dataset_split,
    )
    train_path = config.resolve(config.train_data_path)
    test_path = config.resolve(config.test_data_path)
    with progress_bar(on_stderr=as_json) as update:
        if chosen.describe()["kind"] == "hub":
            update("Loading " + chosen.dataset_id, 0, None)
            chosen.load()
        result = run_prepare(
            chosen,
            train_path,
            test_path,
            test_fraction=test_fraction,
            seed=seed,
            on_progress=update,
        )

    for warning in result.warnings:
        err_console().print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)

    def human() -> None:
        out = console()
        if result.skipped:
            reasons = ", ".join(
                f"{count:,} {code}" for code, count in result.skipped_by_reason.items()
            )
            out.print(f"[yellow]Skipped {plural(result.skipped, 'invalid row')}[/] ({reasons}):")
            for example in result.skipped_examples:
                out.print(f"  {escape(example)}", highlight=False, soft_wrap=True)
        for line in conversion_report(result.converted, result.conversions):
            out.print(escape(line), highlight=False, soft_wrap=True)
        out.print(
            f"Wrote {plural(result.train.rows, 'row')} to {shown(result.train.path)} and "
            f"{plural(result.test.rows, 'row')} to {shown(result.test.path)} (seed {seed}).",
            highlight=False,
            soft_wrap=True,
        )
        out.print(f"Manifest: {shown(result.manifest)}", highlight=False, soft_wrap=True)

    emit(result, as_json, human)


def conversion_report(converted: dict[str, int], conversions: dict[str, int]) -> list[str]:
    """What converting did: `Converted 5 rows to chat messages: 4 from ShareGPT, …` and one
    line per kind of change, with how many rows it touched."""
    if not converted:
        return []
    from core.data.formats import SHAPES

    shapes = ", ".join(f"{count:,} from {SHAPES[shape][0]}" for shape, count in converted.items())
    lines = [f"Converted {plural(sum(converted.values()), 'row')} to chat messages: {shapes}."]
    lines += [f"  {plural(count, 'row')}: {what}" for what, count in conversions.items()]
    return lines


# -- validate --------------------------------------------------------------------------------


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


@data.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--max-tokens",
    type=click.IntRange(min=1),
    help="Report rows longer than this many tokens (needs --tokenizer).",
)
@click.option(
    "--tokenizer",
    help="Tokenizer folder (or a hub id already in the local cache) to count tokens with.",
)
@click.option(
    "--write-clean",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the valid rows, as prepare would (converted rows as chat messages), to this "
    "new JSONL file; FILE itself is never changed.",
)
@json_option
def validate(
    file: Path,
    max_tokens: int | None,
    tokenizer: str | None,
    write_clean: Path | None,
    as_json: bool,
) -> None:
    """Check every row of a dataset file (JSON Lines, a JSON list or Parquet).

    Rows are judged as `data prepare` judges them: a ShareGPT, Alpaca, prompt/response,
    Phi-3 text or OpenAI row it would convert is valid. Each problem is printed with its line
    number, then a summary; exit 1 if any row of FILE is invalid.
    """
    from core.data.rules import REASONS
    from core.data.validate import validate_file

    size = file.stat().st_size if file.is_file() else 0
    with progress_bar(on_stderr=as_json) as update:
        out = update.console  # type: ignore[attr-defined]

        def show(problem) -> None:
            if not as_json:
                out.print(f"line {problem.line}: {escape(problem.message)}", soft_wrap=True)

        report = validate_file(
            file,
            tokenizer=tokenizer,
            max_tokens=max_tokens,
            write_clean=write_clean,
            on_problem=show,
            on_progress=lambda done: update("Validating (MB)", done // 10**6, size // 10**6),
        )

    def human() -> None:
        from rich.table import Table

        table = Table(title=f"{file}", show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column()
        table.add_row("rows", f"{report.rows:,}")
        table.add_row("valid", f"[green]{report.valid:,}[/]")
        if report.converted:
            from core.data.formats import SHAPES

            shapes = ", ".join(f"{n:,} {SHAPES[shape][0]}" for shape, n in report.converted.items())
            table.add_row("  converted", f"{shapes} (prepare writes them as chat messages)")
        table.add_row("invalid", f"[red]{report.invalid:,}[/]" if report.invalid else "0")
        for code, count in report.invalid_by_reason.items():
            table.add_row(f"  {code}", f"{count:,} ({REASONS[code]})")
        if report.blank_lines:
            table.add_row("blank lines", f"{report.blank_lines:,} (skipped)")

        for name, spread in (
            ("turns", report.turns),
            ("characters", report.chars),
            ("tokens", report.tokens),
        ):
            if spread is not None:
                table.add_row(
                    name,
                    f"min {spread.min:,} · mean {spread.mean:,} · median {spread.p50:,} · "
                    f"p95 {spread.p95:,} · max {spread.max:,}",
                )
        if report.max_tokens is not None:
            over = len(report.over_token_limit)
            table.add_row(f"over {report.max_tokens:,} tokens", f"{over:,}")
        console().print(table)
        for line, tokens in report.over_token_limit[:SHOWN_OVER_LIMIT]:
            console().print(
                f"line {line}: {plural(tokens, 'token')}, over the limit of {max_tokens:,}"
            )
        if len(report.over_token_limit) > SHOWN_OVER_LIMIT:
            console().print(f"… and {len(report.over_token_limit) - SHOWN_OVER_LIMIT:,} more")
        if report.clean_file:
            valid = plural(report.valid, "valid row")
            console().print(f"Wrote {valid} to {report.clean_file}", highlight=False)

    emit(report, as_json, human)
    if report.rows == 0:
        raise PhiopsError(f"{file} holds no rows; there is nothing to train on.")
    if report.invalid:
        raise PhiopsError(f"{invalid_share(report.invalid, report.rows, file)}.")


def invalid_share(invalid: int, rows: int, file: Path) -> str:
    """`1 of 3 rows in F is invalid`, `2 of 3 rows in F are invalid`, `the one row in F …`."""
    if rows == 1:
        return f"the one row in {file} is invalid"
    return f"{invalid:,} of {rows:,} rows in {file} {'is' if invalid == 1 else 'are'} invalid"


# -- preview ---------------------------------------------------------------------------------

_ROWS = re.compile(r"^\s*(-?\d*)\s*(?::\s*(-?\d*)\s*)?$")


def parse_rows(text: str) -> tuple[int, int]:
    """`A:B` (a Python slice, 0-based, B excluded), `A:`, `:B` or a single row `N`."""
    match = _ROWS.match(text)
    if not match or not (match[1] or match[2] or ":" in text):
        raise click.BadParameter(f"{text!r} is not A:B, A:, :B or N (0-based row numbers).")
    start = int(match[1]) if match[1] else 0
    if ":" not in text:
        return start, (start + 1) if start != -1 else (1 << 62)
    stop = int(match[2]) if match[2] else (1 << 62)
    return start, stop


def render_row(row, stats, full: bool):
    """A rich panel for one row: its messages with roles coloured, or why it cannot be read."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.text import Text

    from core.data.formats import CHAT, SHAPES, check_row

    def cut(text: str) -> str:
        if full or len(text) <= CUT:
            return text
        return f"{text[:CUT]}… ({len(text) - CUT:,} more characters)"

    messages = row.messages
    title = f"row {row.index} · line {row.line}"
    if stats.shape not in (None, CHAT):  # shown as prepare will write it
        converted = check_row(row.data).row
        messages = converted["messages"] if converted else None
        title += f" · {SHAPES[stats.shape][0]}"
    if not row.blank and messages is not None:
        title += f" · {plural(stats.turns, 'turn')} · {plural(stats.chars, 'char')}"
    border = "green" if stats.valid else ("dim" if stats.blank else "red")
    parts = []
    if row.blank:
        parts.append(Text("(blank line)", style="dim"))
    elif messages is None:
        parts.append(Text(cut(row.text), style="dim"))
    else:
        for message in messages:
            role = message.get("role") if isinstance(message, dict) else None
            content = message.get("content") if isinstance(message, dict) else message
            style = ROLE_STYLE.get(role, "red") if isinstance(role, str) else "red"
            line = Text(f"{role}: ", style=f"bold {style}")
            line.append(cut(content if isinstance(content, str) else repr(content)))
            if isinstance(message, dict) and message.get("weight") == 0:
                line.append("  (weight 0: seen, not trained on)", style="dim")
            parts.append(line)
    for problem in stats.problems:
        parts.append(Text(f"✗ {problem.message}", style="red"))
    if not row.terminated and row.data is None:
        parts.append(Text("(no line end yet: the file may still be being written)", style="dim"))
    return Panel(Group(*parts), title=title, title_align="left", border_style=border)


@data.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--rows",
    "rows_spec",
    default="0:5",
    show_default=True,
    help="Rows A:B as a Python slice (0-based, B excluded): 0:10, 100:, -5:, or one row N.",
)
@click.option("--full", is_flag=True, help=f"Show whole messages (else cut at {CUT} characters).")
@click.option(
    "--count", is_flag=True, help="Wait for the file's row count if it is still counting."
)
@json_option
def preview(file: Path, rows_spec: str, full: bool, count: bool, as_json: bool) -> None:
    """Show rows of a chat JSONL file, roles coloured.

    FILE opens at once whatever its size: only the rows asked for are read, and they are
    printed without waiting for the file's rows to be counted (negative rows excepted).
    """
    from core.data.index import DatasetIndex

    start, stop = parse_rows(rows_spec)
    with DatasetIndex.open(file) as index:
        rows = index.rows(start, stop)
        stats = [index.stats(row.index) for row in rows]
        if count:
            index.wait()
        complete, total = index.is_complete, index.row_count

    if as_json:
        emit(
            {
                "file": str(file),
                "rows": total if complete else None,
                "rows_counted": total,
                "complete": complete,
                "shown": [
                    {
                        "row": row.index,
                        "line": row.line,
                        "data": row.data,
                        "text": None if row.data is not None else row.text,
                        "shape": stat.shape,
                        "turns": stat.turns,
                        "chars": stat.chars,
                        "valid": stat.valid,
                        "problems": [problem.message for problem in stat.problems],
                    }
                    for row, stat in zip(rows, stats, strict=True)
                ],
            },
            True,
        )
        return
    out = console()
    for row, stat in zip(rows, stats, strict=True):
        out.print(render_row(row, stat, full))
    of = f"{total:,}" if complete else f"at least {total:,} (still counting; --count waits)"
    if rows:
        out.print(f"{file}: rows {rows[0].index}–{rows[-1].index} of {of}", soft_wrap=True)
    else:
        out.print(f"{file}: no rows in {rows_spec} (rows: {of})", soft_wrap=True)
