"""`phiops flow serve|stop|test`: the Prompt flow chat flow, served or run once."""

from __future__ import annotations

import asyncio
import contextlib

import click

from core.cli.main import AppContext, pass_app
from core.cli.output import console, emit, err_console, json_option


@click.group()
def flow() -> None:
    """Serve the Prompt flow chat flow, or run it once."""


@flow.command("serve")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="Port to serve on (0: any free port).",
)
@click.option("--host", default=None, help="Address to bind (default: the config's host).")
@click.option(
    "--detach",
    is_flag=True,
    help="Keep serving in the background; `phiops flow stop` or `phiops down` ends it.",
)
@click.option(
    "--timeout",
    "ready_timeout",
    type=float,
    default=120,
    show_default=True,
    help="Seconds to wait for the server to be ready.",
)
@json_option
@pass_app
def serve(
    app: AppContext,
    port: int,
    host: str | None,
    detach: bool,
    ready_timeout: float,
    as_json: bool,
) -> None:
    """Serve the flow with `pf flow serve`, wired to the configured endpoint.

    The endpoint's URL and key go to the server in its environment; clients POST
    {"question": ..., "chat_history": [...]} to /score, and get the answer streamed when
    they send `Accept: text/event-stream`.
    """
    from core.chat.flowserve import record_server, start_flow_server
    from core.chat.service import resolve_target

    config = app.config
    target = resolve_target(config, app.backend)
    host = host or config.host
    where = f"{host}:{port or 'a free port'}"
    waiting = (
        contextlib.nullcontext()
        if as_json
        else err_console().status(f"Starting pf flow serve on {where} (waiting for /health)…")
    )
    with waiting:
        server = start_flow_server(
            target, host=host, port=port, detach=detach, ready_timeout=ready_timeout
        )
    data = {
        "url": server.url,
        "score_url": server.score_url,
        "pid": server.pid,
        "detached": detach,
        "log": str(server.log),
        "endpoint": target.url,
    }
    if detach:
        record_server(config, server)

    def human() -> None:
        out = console()
        out.print(f"[green]Flow ready[/] at {server.url}", highlight=False)
        out.print("  POST /score; send Accept: text/event-stream to stream", highlight=False)
        out.print(f"  endpoint  {target.url}", highlight=False)
        out.print(f"  log       {server.log}", highlight=False)
        if detach:
            out.print(f"  pid       {server.pid}; stop it with `phiops flow stop`")
        else:
            out.print("Ctrl+C stops it.")

    emit(data, as_json, human)
    if detach:
        return
    try:
        code = server.process.wait()
    except KeyboardInterrupt:
        server.stop()
        return
    if code:
        from core.chat.flowserve import FlowServeError

        raise FlowServeError(f"pf flow serve stopped with exit code {code}; see {server.log}")


@flow.command("stop")
@json_option
@pass_app
def stop(app: AppContext, as_json: bool) -> None:
    """Stop the flow servers `phiops flow serve --detach` started for this project."""
    from core.chat.flowserve import stop_flow_servers

    stopped = stop_flow_servers(app.config)

    def human() -> None:
        if not stopped:
            console().print("No flow server was running.")
        for record in stopped:
            console().print(f"Stopped the flow server at {record.url} (pid {record.pid}).")

    emit([record.to_dict() for record in stopped], as_json, human)


@flow.command("test")
@click.argument("question")
@click.option("--temperature", type=float, default=0.0, show_default=True)
@click.option("--max-new-tokens", type=int, default=64, show_default=True)
@json_option
@pass_app
def test(
    app: AppContext, question: str, temperature: float, max_new_tokens: int, as_json: bool
) -> None:
    """Run the flow once in this process (like `pf flow test`), streaming the answer."""
    from core.chat.endpoint import ChatError
    from core.chat.inprocess import InProcessFlow, iter_in_thread
    from core.chat.service import GenerationParams, flow_inputs, resolve_target

    params = GenerationParams(temperature=temperature, max_new_tokens=max_new_tokens).check()
    target = resolve_target(app.config, app.backend)
    inputs = flow_inputs(question, [], params)
    flow_run = InProcessFlow(target)

    async def run() -> str:
        parts = []
        async for piece in iter_in_thread(lambda: flow_run.answer_pieces(inputs)):
            parts.append(piece)
            if not as_json:
                click.echo(piece, nl=False)
        return "".join(parts)

    try:
        answer = asyncio.run(run())
    except ChatError:
        if not as_json:
            click.echo()
        raise
    if as_json:
        emit({"question": question, "answer": answer, "endpoint": target.url}, True)
    else:
        click.echo()
