"""`phiops jobs …`: list jobs, show one, follow its log and progress, metrics, cancel, resume."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import click

from core.backend import JobInfo, JobStatus
from core.cli.main import AppContext, pass_app
from core.cli.output import console, emit, err_console, json_option, report_problems

STATUS_STYLE = {
    JobStatus.NOT_STARTED: "dim",
    JobStatus.QUEUED: "yellow",
    JobStatus.RUNNING: "cyan",
    JobStatus.COMPLETED: "green",
    JobStatus.FAILED: "red",
    JobStatus.CANCELED: "magenta",
}

backend_option = click.option(
    "--backend",
    type=click.Choice(["local", "azure"]),
    default=None,
    help="Backend to ask (default: the project's).",
)


@click.group()
def jobs() -> None:
    """List jobs, follow their logs and metrics, cancel them."""


def styled(status: JobStatus) -> str:
    return f"[{STATUS_STYLE[status]}]{status}[/]"


def when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if stamp else ""


def duration(job: JobInfo) -> str:
    if not job.started_at:
        return ""
    seconds = int((job.ended_at or time.time()) - job.started_at)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


@jobs.command("list")
@backend_option
@json_option
@pass_app
def list_(app: AppContext, backend: str | None, as_json: bool) -> None:
    """List jobs, newest first."""
    chosen = app.backend(backend)
    found = chosen.jobs()
    problems = chosen.record_problems()

    def human() -> None:
        if not found:
            if not problems:
                console().print("No jobs yet; start one with `phiops train submit`.")
            return
        from rich.table import Table

        table = Table(show_edge=False)
        table.add_column("name", no_wrap=True)
        for column in ("status", "created", "duration", "display name"):
            table.add_column(column, no_wrap=column != "display name")
        for job in found:
            shown = job.display_name if job.display_name != job.name else ""
            table.add_row(job.name, styled(job.status), when(job.created_at), duration(job), shown)
        console().print(table)

    emit([job.to_dict() for job in found], as_json, human)
    report_problems(problems)


@jobs.command("show")
@click.argument("name")
@backend_option
@json_option
@pass_app
def show(app: AppContext, name: str, backend: str | None, as_json: bool) -> None:
    """Show one job: status, times, where its outputs go, its progress and any error."""
    chosen = app.backend(backend)
    job = chosen.job_status(name)
    from core.jobevents import ProgressSnapshot

    progress = ProgressSnapshot().update(chosen.job_events(name)[0])
    data = {**job.to_dict(), "progress": progress.__dict__}

    def human() -> None:
        out = console()
        out.print(f"[bold]{job.name}[/]  {styled(job.status)}  ({job.backend})")
        rows = [
            ("display name", job.display_name),
            ("experiment", job.experiment_name),
            ("created", when(job.created_at)),
            ("started", when(job.started_at)),
            ("ended", when(job.ended_at)),
            ("duration", duration(job)),
            ("progress", progress.describe() if progress.time else ""),
            ("outputs", job.output_dir),
            ("mlflow run", job.run_id),
            ("studio", job.studio_url),
        ]
        for label, value in rows:
            if value:
                out.print(f"  {label:<13}{value}", markup=False, highlight=False)
        if job.error:
            out.print(f"\n[red]error:[/] {job.error}", highlight=False)
        if job.status == JobStatus.CANCELED and job.backend == "local":
            out.print(f"\nResume it from its last checkpoint: phiops jobs resume {job.name}")

    emit(data, as_json, human)


@jobs.command("logs")
@click.argument("name")
@click.option("--follow", "-f", is_flag=True, help="Keep streaming until the job ends.")
@click.option("--since", type=int, default=0, help="Start at this byte offset of the log.")
@backend_option
@json_option
@pass_app
def logs(
    app: AppContext, name: str, follow: bool, since: int, backend: str | None, as_json: bool
) -> None:
    """Print a job's log; with --follow, stream it with a progress line until the job ends.

    With --json, one JSON object a line: {"text", "offset", "source"}; pass the last
    offset back with --since to continue where a stream stopped.
    """
    chosen = app.backend(backend)
    if follow:
        raise SystemExit(follow_job(chosen, name, as_json, since=since))

    async def dump() -> None:
        async for line in chosen.stream_logs(name, since, follow=False):
            write_line(line, as_json)

    asyncio.run(dump())


@jobs.command("metrics")
@click.argument("name")
@backend_option
@json_option
@pass_app
def metrics(app: AppContext, name: str, backend: str | None, as_json: bool) -> None:
    """Show the metrics a job logged to MLflow (loss, eval_loss, learning_rate, …) by step."""
    points = app.backend(backend).metrics(name)

    def human() -> None:
        if not points:
            console().print(f"Job {name} has logged no metrics yet.")
            return
        from rich.table import Table

        series: dict[str, list[Any]] = {}
        for point in points:
            series.setdefault(point.key, []).append(point)
        table = Table(show_edge=False)
        for column in ("metric", "points", "first", "last", "min", "last step"):
            table.add_column(column, justify="left" if column == "metric" else "right")
        for key, values in series.items():
            numbers = [point.value for point in values]
            table.add_row(
                key,
                str(len(values)),
                f"{numbers[0]:.4g}",
                f"{numbers[-1]:.4g}",
                f"{min(numbers):.4g}",
                str(values[-1].step),
            )
        console().print(table)

    emit([point.__dict__ for point in points], as_json, human)


@jobs.command("cancel")
@click.argument("name")
@backend_option
@json_option
@pass_app
def cancel(app: AppContext, name: str, backend: str | None, as_json: bool) -> None:
    """Cancel a job; a running local job saves a checkpoint first, so it can be resumed."""
    chosen = app.backend(backend)
    if as_json:
        job = chosen.cancel(name)
    else:
        with err_console().status(f"Canceling {name} (the trainer saves a checkpoint first)…"):
            job = chosen.cancel(name)
    emit(job.to_dict(), as_json, lambda: console().print(f"{job.name}  {styled(job.status)}"))


@jobs.command("resume")
@click.argument("name")
@click.option("--follow", "-f", is_flag=True, help="Stream the log until the job ends.")
@backend_option
@json_option
@pass_app
def resume(app: AppContext, name: str, follow: bool, backend: str | None, as_json: bool) -> None:
    """Continue a canceled or failed local job from its last checkpoint."""
    chosen = app.backend(backend)
    job = chosen.resume_job(name)
    if follow:
        write_job(job, as_json)
        raise SystemExit(follow_job(chosen, job.name, as_json))
    emit(job.to_dict(), as_json, lambda: write_job(job, False))


# -- following ---------------------------------------------------------------------------


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
