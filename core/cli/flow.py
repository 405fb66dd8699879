"""`phiops flow serve|stop|key|test`: the Prompt flow chat flow, served or run once."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import click

from core.cli.main import AppContext, pass_app
from core.cli.output import console, emit, err_console, json_option

if TYPE_CHECKING:
    from core.chat.endpoint import EndpointTarget
    from core.chat.flowserve import FlowServer


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
    """Serve the flow (Prompt flow's serving app, as `pf flow serve` runs it), wired to the
    configured endpoint and behind this project's flow key.

    Clients POST {"question": ..., "chat_history": [...]} to /score with
    `Authorization: Bearer <flow key>` (`phiops flow key --show-secrets`), and get the answer
    streamed when they send `Accept: text/event-stream`.
    """
    from core.chat.flowserve import serve_flow
    from core.chat.service import resolve_target

    config = app.config
    target = resolve_target(config, app.backend)
    host = host or config.host
    where = f"{host}:{port or 'a free port'}"
    waiting = (
        contextlib.nullcontext()
        if as_json
        else err_console().status(f"Starting the flow server on {where} (waiting for /health)…")
    )
    # In the foreground SIGTERM and SIGHUP stop the server as Ctrl+C does, from the start.
    signals = contextlib.nullcontext([]) if detach else stop_on_signals()
    with signals as stopped_by:
        try:
            with waiting:
                server = serve_flow(
                    config, target, host=host, port=port, detach=detach, ready_timeout=ready_timeout
                )
            if detach:
                report(server, target, detach, as_json)
            else:
                wait_in_foreground(config, server, lambda: report(server, target, False, as_json))
        except KeyboardInterrupt:
            if not stopped_by:
                raise
    if stopped_by:
        raise SystemExit(128 + stopped_by[0])


def report(server: FlowServer, target: EndpointTarget, detach: bool, as_json: bool) -> None:
    data = {
        "url": server.url,
        "score_url": server.score_url,
        "pid": server.pid,
        "detached": detach,
        "log": str(server.log),
        "endpoint": target.url,
    }

    def human() -> None:
        out = console()
        out.print(f"[green]Flow ready[/] at {server.url}", highlight=False)
        out.print(
            "  POST /score with Authorization: Bearer <flow key> (phiops flow key "
            "--show-secrets); send Accept: text/event-stream to stream",
            highlight=False,
            markup=False,
        )
        out.print(f"  endpoint  {target.url}", highlight=False)
        out.print(f"  log       {server.log}", highlight=False)
        if detach:
            out.print(f"  pid       {server.pid}; stop it with `phiops flow stop`")
        else:
            out.print("Ctrl+C stops it.")

    emit(data, as_json, human)


def wait_in_foreground(config: Any, server: FlowServer, announce: Callable[[], None]) -> None:
    """Say it is ready, then wait until the server ends or we are stopped; the server and its
    record go either way (a signal while the announcement prints included)."""
    from core.chat.flowserve import FlowServeError, forget_server

    code = None
    try:
        announce()
        code = server.process.wait()
    except KeyboardInterrupt:
        code = None
    finally:
        server.stop()
        recorded = forget_server(config, server.pid)
    if code and recorded:  # a record already gone: `phiops flow stop` or `down` stopped it
        raise FlowServeError(f"the flow server stopped with exit code {code}; see {server.log}")


@contextlib.contextmanager
def stop_on_signals() -> Iterator[list[int]]:
    """While serving in the foreground, SIGTERM and SIGHUP (a closed terminal) stop the flow
    server as Ctrl+C does; the list names the signal that came, if any."""
    received: list[int] = []

    def handler(signum: int, frame: object) -> None:
        if not received:  # a second signal must not cut the stop short
            received.append(signum)
            raise KeyboardInterrupt

    saved = {signum: signal.signal(signum, handler) for signum in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield received
    finally:
        for signum, previous in saved.items():
            signal.signal(signum, previous)


@flow.command("key")
@click.option("--show-secrets", is_flag=True, help="Print the keys themselves, not masked.")
@json_option
@pass_app
def key(app: AppContext, show_secrets: bool, as_json: bool) -> None:
    """The keys a served flow of this project takes (Authorization: Bearer KEY)."""
    from core.chat.flowserve import flow_keys
    from core.secrets import mask

    found = flow_keys(app.config)
    shown = (lambda value: value) if show_secrets else mask
    data = {"primary": shown(found.primary), "secondary": shown(found.secondary)}

    def human() -> None:
        console().print(f"primary    {data['primary']}", markup=False, highlight=False)
        console().print(f"secondary  {data['secondary']}", markup=False, highlight=False)

    emit(data, as_json, human)


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
