"""Following a job from the CLI: its log streamed until it ends, with the trainer's progress.

`phiops train submit --follow`, `phiops jobs logs|resume --follow` and `phiops demo` all
follow a job through `follow_job`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import click

from core.backend import JobInfo, JobStatus
from core.cli.output import console, err_console

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


def follow_job(backend: Any, name: str, as_json: bool, since: int = 0) -> int:
    """Stream the log until the job ends, under a progress line fed by the trainer's events.
    Returns the exit code: 0 when the job completed, 1 otherwise."""
    try:
        asyncio.run(_follow(backend, name, as_json, since))
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


async def _follow(backend: Any, name: str, as_json: bool, since: int) -> None:
    if as_json:
        async for line in backend.stream_logs(name, since):
            write_line(line, True)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

    from core.jobevents import ProgressSnapshot

    out = console()  # the log and, at its foot while stdout is a terminal, the progress line
    snapshot = ProgressSnapshot()
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
    )
    with Progress(*columns, console=out, transient=True) as bar:
        task = bar.add_task(name, total=None, info="waiting for the trainer")

        async def watch_events() -> None:
            offset = 0
            while True:
                events, offset = await asyncio.to_thread(backend.job_events, name, offset)
                if events:
                    snapshot.update(events)
                    bar.update(
                        task,
                        completed=snapshot.step or 0,
                        total=snapshot.max_steps or None,
                        info=snapshot.describe(),
                    )
                await asyncio.sleep(0.5)

        watcher = asyncio.create_task(watch_events())
        try:
            async for line in backend.stream_logs(name, since):
                out.print(line.text, markup=False, highlight=False, emoji=False, soft_wrap=True)
        finally:
            watcher.cancel()
