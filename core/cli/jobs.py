"""`phiops jobs …`: list jobs, show one, follow its log and progress, metrics, cancel, resume."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import click

from core.backend import JobInfo, JobStatus
from core.cli.follow import follow_job, raw_option, styled, write_job, write_line
from core.cli.main import AppContext, pass_app
from core.cli.output import console, emit, err_console, json_option, report_problems

backend_option = click.option(
    "--backend",
    type=click.Choice(["local", "azure"]),
    default=None,
    help="Backend to ask (default: the project's).",
)


@click.group()
def jobs() -> None:
    """List jobs, follow their logs and metrics, cancel them."""


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
@raw_option
@backend_option
@json_option
@pass_app
def logs(
    app: AppContext,
    name: str,
    follow: bool,
    since: int,
    raw: bool,
    backend: str | None,
    as_json: bool,
) -> None:
    """Print a job's log; with --follow, follow the job until it ends.

    In a terminal, --follow shows a progress bar (step, epoch, loss, eval loss, tokens/s,
    ETA) from the trainer's events, with the log's other lines above it; --raw, or output
    that is not a terminal, streams the plain log. With --json, one JSON object a line:
    {"text", "offset", "source"}; pass the last offset back with --since to continue where
    a stream stopped.
    """
    chosen = app.backend(backend)
    if follow:
        raise SystemExit(follow_job(chosen, name, as_json, since=since, raw=raw))

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
@click.option("--follow", "-f", is_flag=True, help="Follow the job until it ends.")
@raw_option
@backend_option
@json_option
@pass_app
def resume(
    app: AppContext, name: str, follow: bool, raw: bool, backend: str | None, as_json: bool
) -> None:
    """Continue a canceled or failed local job from its last checkpoint."""
    chosen = app.backend(backend)
    job = chosen.resume_job(name)
    if follow:
        write_job(job, as_json)
        raise SystemExit(follow_job(chosen, job.name, as_json, raw=raw))
    emit(job.to_dict(), as_json, lambda: write_job(job, False))
