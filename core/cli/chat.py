"""`phiops chat`: one question, or a conversation, with the fine-tuned model.

Three routes: the Prompt flow flow in this process (default), a served flow (`--via URL`,
e.g. from `phiops flow serve`), or the endpoint itself (`--direct`). Sessions are kept in
the user's data dir: resume one with `--session ID`, list them with `--list`, export one
with `--export ID --format md|jsonl`.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import click

from core.cli.main import AppContext, pass_app
from core.cli.output import console, emit, err_console, json_option
from core.errors import PhiopsError
from core.text import plural

HELP = "/new starts a new session, /session shows this one, /exit (or Ctrl+D) leaves."


class ChatFailed(PhiopsError):
    """The question got no answer; the conversation is kept."""


@click.command()
@click.argument("question", required=False)
@click.option("--via", "via_url", metavar="URL", help="Ask a served flow (pf flow serve) at URL.")
@click.option("--direct", is_flag=True, help="Ask the endpoint directly, without the flow.")
@click.option("--session", "session_id", metavar="ID", help="Continue this session (id prefix).")
@click.option("--temperature", type=click.FloatRange(0, 5), default=0.7, show_default=True)
@click.option("--max-new-tokens", type=click.IntRange(1, 32768), default=256, show_default=True)
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), default=0.9, show_default=True)
@click.option("--list", "list_sessions", is_flag=True, help="List the chat sessions.")
@click.option("--export", "export_id", metavar="ID", help="Print a session as Markdown or JSONL.")
@click.option(
    "--format",
    "export_format",
    type=click.Choice(["md", "jsonl"]),
    default="md",
    show_default=True,
    help="Export format.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the export to this file instead of stdout.",
)
@click.option(
    "--import",
    "import_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read a JSONL export back as a session.",
)
@json_option
@pass_app
def chat(
    app: AppContext,
    question: str | None,
    via_url: str | None,
    direct: bool,
    session_id: str | None,
    temperature: float,
    max_new_tokens: int,
    top_p: float,
    list_sessions: bool,
    export_id: str | None,
    export_format: str,
    output: Path | None,
    import_file: Path | None,
    as_json: bool,
) -> None:
    """Chat with the fine-tuned model: one QUESTION, or a conversation when none is given."""
    from core.chat.service import ChatRoute, ChatService, GenerationParams
    from core.chat.sessions import SessionStore

    store = SessionStore()
    if list_sessions:
        _list(store, as_json)
        return
    if export_id:
        _export(store, export_id, export_format, output, as_json)
        return
    if import_file:
        info = store.import_jsonl(import_file.read_text(encoding="utf-8"))
        emit(info.to_dict(), as_json, lambda: console().print(f"Imported session {info.id}."))
        return
    if via_url and direct:
        raise click.UsageError("choose one route: --via URL or --direct")
    route = ChatRoute.SERVED if via_url else ChatRoute.DIRECT if direct else ChatRoute.FLOW
    params = GenerationParams(temperature, max_new_tokens, top_p).check()
    session = store.find(session_id) if session_id else None
    service = ChatService(app.config, store, backend_factory=app.backend)
    if question is not None:
        session = session or store.create(route=route.value)
        _one_shot(service, session.id, question, route, via_url, params, as_json)
        return
    if as_json:
        raise click.UsageError("--json needs a QUESTION (the conversation mode is for people)")
    _conversation(service, session.id if session else None, route, via_url, params)


def _list(store: Any, as_json: bool) -> None:
    sessions = store.list()

    def human() -> None:
        if not sessions:
            console().print("No chat sessions yet; start one with `phiops chat`.")
            return
        from rich.table import Table

        table = Table(show_edge=False)
        for column in ("id", "updated", "route", "title"):
            table.add_column(column, no_wrap=column != "title")
        for info in sessions:
            updated = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.updated_at))
            table.add_row(info.id, updated, info.route, info.title)
        console().print(table)

    emit([info.to_dict() for info in sessions], as_json, human)


def _export(store: Any, prefix: str, kind: str, output: Path | None, as_json: bool) -> None:
    info = store.find(prefix)
    text = store.export_markdown(info.id) if kind == "md" else store.export_jsonl(info.id)
    if output is None:
        click.echo(text, nl=False)
        return
    from core.atomic import write_text_atomic

    write_text_atomic(output, text)
    emit(
        {"session": info.id, "format": kind, "path": str(output)},
        as_json,
        lambda: err_console().print(f"Wrote session {info.id} to {output}."),
    )


async def _ask(service: Any, session_id: str, question: str, route, via_url, params, stream):
    """Ask once; stream pieces to stdout when `stream`; the AnswerDone, or ChatFailed."""
    from core.chat.service import AnswerDelta, AnswerDone, AnswerFailed

    try:
        async for event in service.ask(
            session_id, question, route=route, via_url=via_url, params=params
        ):
            if isinstance(event, AnswerDelta) and stream:
                sys.stdout.write(event.text)
                sys.stdout.flush()
            elif isinstance(event, AnswerDone):
                return event
            elif isinstance(event, AnswerFailed):
                raise ChatFailed(event.message)
    finally:
        await service.aclose()
    raise ChatFailed("the chat service ended without an answer")


def _stats(done: Any, session_id: str, route: Any) -> str:
    rate = f", ≈{done.tokens_per_s:.0f}/s" if done.tokens_per_s else ""
    return (
        f"session {session_id} · {route} · {done.latency_s:.2f} s · "
        f"~{plural(done.tokens, 'token')}{rate} (estimated)"
    )


def _one_shot(service, session_id, question, route, via_url, params, as_json) -> None:
    try:
        done = asyncio.run(
            _ask(service, session_id, question, route, via_url, params, stream=not as_json)
        )
    except ChatFailed:
        if not as_json:
            sys.stdout.write("\n")
        raise
    if as_json:
        emit(
            {
                "session": session_id,
                "route": str(route),
                "question": question,
                "answer": done.answer,
                "latency_s": done.latency_s,
                "first_token_s": done.first_token_s,
                "tokens": done.tokens,
                "tokens_estimated": True,
                "tokens_per_s": done.tokens_per_s,
            },
            True,
        )
        return
    sys.stdout.write("\n")
    err_console().print(f"[dim]{_stats(done, session_id, route)}[/]", highlight=False)


def _conversation(service, session_id, route, via_url, params) -> None:
    """The REPL: questions from stdin, answers streamed; errors shown, the session kept."""
    from rich.markup import escape

    interactive = sys.stdin.isatty()
    err = err_console()
    store = service.store
    if session_id is None:
        session_id = store.create(route=route.value).id
    else:
        _replay(store, session_id)
    if interactive:
        err.print(f"[dim]Session {session_id} · route {route}. {HELP}[/]", highlight=False)
        with err.status("Loading…"):
            try:
                asyncio.run(service.warm_up(route))
            except PhiopsError as error:
                err.print(f"[red]error:[/] {escape(str(error))}", highlight=False)
    while True:
        try:
            line = input("you › " if interactive else "")
        except EOFError:
            break
        except KeyboardInterrupt:
            break
        question = line.strip()
        if not question:
            continue
        if question in ("/exit", "/quit"):
            break
        if question == "/new":
            session_id = store.create(route=route.value).id
            err.print(f"[dim]New session {session_id}.[/]", highlight=False)
            continue
        if question == "/session":
            err.print(f"[dim]Session {session_id}.[/]", highlight=False)
            continue
        if question in ("/help", "/?"):
            err.print(f"[dim]{HELP}[/]", highlight=False)
            continue
        if interactive:
            sys.stdout.write("model › ")
            sys.stdout.flush()
        try:
            done = asyncio.run(
                _ask(service, session_id, question, route, via_url, params, stream=True)
            )
        except ChatFailed as error:
            sys.stdout.write("\n")
            err.print(
                f"[red]error:[/] {escape(str(error))} (the conversation is kept)", highlight=False
            )
            continue
        except KeyboardInterrupt:
            sys.stdout.write("\n")
            err.print("[dim](cancelled; the conversation is kept)[/]", highlight=False)
            continue
        sys.stdout.write("\n")
        if interactive:
            err.print(f"[dim]{_stats(done, session_id, route)}[/]", highlight=False)
    if interactive:
        err.print(f"[dim]Resume with: phiops chat --session {session_id}[/]", highlight=False)


def _replay(store: Any, session_id: str) -> None:
    """Show a resumed session's turns so the conversation reads on."""
    if not sys.stdin.isatty():
        return
    from rich.markup import escape

    out = console()
    for turn in store.turns(session_id):
        if turn.role == "user":
            out.print(f"[bold]you ›[/] {escape(turn.content)}", highlight=False)
        elif turn.role == "assistant":
            out.print(f"model › {turn.content}", highlight=False, markup=False)
        elif turn.role == "error":
            out.print(f"[red]error:[/] {escape(turn.content)}", highlight=False)
