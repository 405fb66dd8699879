"""Following a job from the CLI: its log streamed until it ends, with the trainer's progress.

`phiops train submit --follow`, `phiops jobs logs|resume --follow` and `phiops demo` all
follow a job through `follow_job`.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import click

from core.backend import JobInfo, JobStatus
from core.cli.output import console, err_console
from core.jobevents import ProgressSnapshot

STATUS_STYLE = {
    JobStatus.NOT_STARTED: "dim",
    JobStatus.QUEUED: "yellow",
    JobStatus.RUNNING: "cyan",
    JobStatus.COMPLETED: "green",
    JobStatus.FAILED: "red",
    JobStatus.CANCELED: "magenta",
}


def styled(status: JobStatus) -> str:
    return f"[{STATUS_STYLE[status]}]{status}[/]"


def write_line(line: Any, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"text": line.text, "offset": line.offset, "source": line.source}))
    else:
        click.echo(line.text)


def write_job(job: JobInfo, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(job.to_dict()))
    else:
        err_console().print(f"{job.name}  {styled(job.status)}", highlight=False)


BAR_WIDTH = 12

raw_option = click.option(
    "--raw",
    is_flag=True,
    help="With --follow: the plain log, as written (the default when output is not a terminal).",
)


def follow_job(backend: Any, name: str, as_json: bool, since: int = 0, raw: bool = False) -> int:
    """Stream the job until it ends: in a terminal, a progress bar fed by the trainer's
    events above which the log's other lines scroll; with `raw`, or when stdout is not a
    terminal, the plain log. Returns the exit code: 0 when the job completed, 1 otherwise."""
    plain = as_json or raw or not console().is_terminal
    try:
        asyncio.run(
            _follow_plain(backend, name, as_json, since) if plain else _follow(backend, name, since)
        )
    except KeyboardInterrupt:
        err_console().print(
            f"\nStopped following; {name} keeps running. "
            f"Follow it again with: phiops jobs logs {name} --follow"
        )
        return 130
    job = backend.job_status(name)
    if as_json:
        click.echo(json.dumps(job.to_dict()))
    if job.status == JobStatus.COMPLETED:
        if not as_json:
            err_console().print(f"{name} [green]Completed[/]; model in {job.output_dir}")
        return 0
    if not as_json:
        message = f"{name} {styled(job.status)}"
        if job.error:
            message += f": {job.error}"
        if job.status == JobStatus.CANCELED and job.backend == "local":
            message += f"\nResume it with: phiops jobs resume {name}"
        err_console().print(message, highlight=False)
    return 1


async def _follow_plain(backend: Any, name: str, as_json: bool, since: int) -> None:
    async for line in backend.stream_logs(name, since):
        write_line(line, as_json)


async def _follow(backend: Any, name: str, since: int) -> None:
    """The terminal view: lines that stay scroll above one live progress bar."""
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

    out = console()
    view = TrainingView()
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(bar_width=BAR_WIDTH),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
    )
    with Progress(*columns, console=out) as bar:
        task = bar.add_task("waiting", total=None, info="")
        offset, polling = 0, threading.Lock()

        def poll() -> None:  # from the watcher, and early when a metrics line needs it
            nonlocal offset
            with polling:
                events, offset = backend.job_events(name, offset)
                show(events)

        def show(events: list[dict]) -> None:
            for label, text in view.feed(events):
                out.print(f"[cyan]{label:>10}[/] {escape(text)}", highlight=False, soft_wrap=True)
            step, total = view.steps()
            used = (
                BAR_WIDTH + len(view.phase) + len(f"{step}/{total or '?'}") + 6
            )  # + spinner, gaps
            info = view.info(out.width - used)
            bar.update(task, description=view.phase, completed=step, total=total, info=info)

        async def watch_events() -> None:
            while True:
                await asyncio.to_thread(poll)
                await asyncio.sleep(0.5)

        watcher = asyncio.create_task(watch_events())
        try:
            async for line in backend.stream_logs(name, since):
                if is_metrics_line(line.text) and not view.events_seen:
                    await asyncio.to_thread(poll)  # the events say it better, if there are any
                if view.events_seen and is_metrics_line(line.text):
                    continue
                out.print(line.text, markup=False, highlight=False, emoji=False, soft_wrap=True)
        finally:
            watcher.cancel()
        await asyncio.to_thread(poll)  # the last events, so the bar ends where the job did


def is_metrics_line(text: str) -> bool:
    """A metrics dict the trainer's log prints at each logging step (transformers'
    PrinterCallback): `{'loss': '2.345', 'grad_norm': …, 'epoch': '0.5'}`."""
    text = text.strip()
    return (
        text.startswith("{'")
        and text.endswith("}")
        and any(f"'{key}':" in text for key in ("loss", "eval_loss", "train_runtime"))
    )


class TrainingView:
    """The trainer's events (`core/jobevents.py`) as a follower shows them: the bar's step,
    total and figures, and a line that stays for each thing worth finding in the scrollback
    (a phase starting, a checkpoint, an evaluation's loss, the end)."""

    QUIET = ("evaluating",)  # its result is the line worth keeping
    ENDS = ("done", "failed", "interrupted")

    def __init__(self) -> None:
        self.snapshot = ProgressSnapshot()
        self.events_seen = False

    @property
    def phase(self) -> str:
        return self.snapshot.phase or "waiting"

    def feed(self, events: list[dict]) -> list[tuple[str, str]]:
        """Take new events; return (label, text) lines to print above the bar."""
        lines = []
        for event in events:
            before = self.snapshot.phase
            self.snapshot.update([event])
            self.events_seen = True
            phase, message = event.get("phase", ""), event.get("message", "")
            if "eval_loss" in event:
                lines.append(("evaluated", f"eval loss {event['eval_loss']:.4f} at {self.where()}"))
            elif message and phase not in self.QUIET:
                if phase == "training" and message == "training started":
                    message = f"training started at {self.where()}"
                elif message.startswith("checkpoint-"):
                    message = f"{message} at {self.where()}"
                lines.append((phase, message))
            elif phase != before and phase in self.ENDS:
                lines.append((phase, ""))
        return lines

    def where(self) -> str:
        snapshot = self.snapshot
        at = f"step {snapshot.step or 0:,}"
        if snapshot.max_steps:
            at += f"/{snapshot.max_steps:,}"
        if snapshot.epoch is not None:
            at += f", epoch {snapshot.epoch:.2f}"
        return at

    def steps(self) -> tuple[int, int | None]:
        return self.snapshot.step or 0, self.snapshot.max_steps or None

    def info(self, width: int) -> str:
        """Epoch, loss, eval loss, tokens/s and ETA, as many as fit in `width` columns."""
        snapshot = self.snapshot
        shown: dict[str, str] = {}  # in the order shown
        if snapshot.epoch is not None:
            shown["epoch"] = f"epoch {snapshot.epoch:.2f}"
        if snapshot.loss is not None:
            shown["loss"] = f"loss {snapshot.loss:.4f}"
        if snapshot.eval_loss is not None:
            shown["eval"] = f"eval {snapshot.eval_loss:.4f}"
        if snapshot.tokens_per_second is not None:
            shown["speed"] = f"{snapshot.tokens_per_second:,.0f} tok/s"
        if snapshot.eta_seconds is not None and snapshot.phase == "training":
            minutes, seconds = divmod(round(snapshot.eta_seconds), 60)
            shown["eta"] = f"ETA {minutes}:{seconds:02d}"
        for least_needed in ("speed", "epoch", "eval", "eta"):
            if len(" · ".join(shown.values())) <= width:
                break
            shown.pop(least_needed, None)
        return " · ".join(shown.values())
