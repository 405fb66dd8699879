"""`phiops demo` (the README's first command) and `phiops down`."""

from __future__ import annotations

import time

import click

from core.cli.follow import raw_option
from core.cli.main import AppContext, pass_app
from core.cli.output import console, emit, err_console, json_option, report_problems


def wait_quietly(backend, name: str, poll: float = 1.0) -> int:
    """Follow a job without printing (for --json): 0 when it completed."""
    from core.backend import JobStatus

    while not (job := backend.job_status(name)).status.is_final:
        time.sleep(poll)
    return 0 if job.status == JobStatus.COMPLETED else 1


@click.command()
@click.option("--question", "-q", default=None, help="What to ask the fine-tuned model.")
@raw_option
@json_option
@pass_app
def demo(app: AppContext, question: str | None, raw: bool, as_json: bool) -> None:
    """Run the whole pipeline on the local backend: sample data, Phi-3-mini twin, fine-tune,
    register, deploy, and ask the flow a question. A second run reuses what is there."""
    from core.cli.follow import follow_job
    from core.demo import Demo

    started = time.perf_counter()
    out = err_console()
    answering = False

    def report(step: str, message: str) -> None:
        nonlocal answering
        if as_json:
            return
        if step == "answer":
            if not answering:
                out.print("[bold]answer[/] ", end="")
                answering = True
            out.print(message, end="", markup=False, highlight=False)
            return
        out.print(f"[cyan]{step:>10}[/] {message}", highlight=False, soft_wrap=True)

    def follow(backend, name: str) -> int:
        return wait_quietly(backend, name) if as_json else follow_job(backend, name, False, raw=raw)

    result = Demo(app.config, report, follow).run(question)
    total = round(time.perf_counter() - started, 1)
    if answering:
        out.print()

    def human() -> None:
        from core.demo import proof_sentence

        reused = f" (reused: {', '.join(result.reused)})" if result.reused else ""
        proof = result.evaluation
        console().print(
            f"\n[bold green]Done in {minutes(total)}[/]{reused}.\n"
            f"Q: {result.question}\nA: {result.answer}\n\n"
            f"{proof_sentence(proof)}\n"
            f"  phiops eval compare {proof['base_run'][:12]} {proof['fine_tuned_run'][:12]}"
            "   the comparison, conversation by conversation\n\n"
            f"The endpoint {result.endpoint} keeps running at {result.scoring_uri}.\n"
            "  phiops tui              open the app (jobs, endpoint, chat)\n"
            "  phiops chat             chat with the model through the flow\n"
            "  phiops endpoints list   see the endpoint and its deployments\n"
            "  phiops down             stop every local server phiops started",
            highlight=False,
            soft_wrap=True,
        )

    emit({**result.to_dict(), "total_seconds": total}, as_json, human)


def minutes(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 60} min {whole % 60:02d} s" if whole >= 60 else f"{seconds:.1f} s"


@click.command()
@json_option
@pass_app
def down(app: AppContext, as_json: bool) -> None:
    """Stop every local server phiops started (endpoints and flow servers); nothing is deleted."""
    from core.demo import down as stop_everything

    stopped = stop_everything(app.config)

    def human() -> None:
        names = [*stopped["endpoints"], *stopped["flow_servers"]]
        if not names and not stopped["problems"]:
            console().print("No phiops server was running.")
            return
        for name in stopped["endpoints"]:
            console().print(f"Stopped endpoint {name}.")
        for url in stopped["flow_servers"]:
            console().print(f"Stopped the flow server at {url}.")

    emit(stopped, as_json, human)
    report_problems(stopped["problems"])
