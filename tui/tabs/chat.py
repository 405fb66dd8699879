"""The Chat tab: a conversation with the deployed model, the answer streamed as it comes.

Three routes reach the model, as `core.chat.service.ChatRoute` names them: the Prompt flow
flow in-process, a served flow (`pf flow serve`) at a URL, or the endpoint directly.

How a question travels: `ctrl+j` sends the input's text; a thread worker runs the chat
service's async iterator on its own event loop (so neither a slow import nor a blocking call
in the service can freeze the screen) and posts one message per event. The handlers own
the conversation: `Markdown.get_stream()` appends each chunk (re-rendering the whole answer
per token would be quadratic) while the scroll container's anchor keeps the bottom in
view. A failure is shown in the conversation and the question goes back into the input;
the service has already kept both in the session store.

Public actions (for the command palette): `action_send`, `action_stop`, `action_new_chat`,
`action_load_session`, `action_export_session`, `action_copy_answer`, `action_focus_input`,
`action_serve_flow` (start `pf flow serve` for the endpoint, detached and recorded as
`phiops flow serve --detach` does, and switch to the served route), `action_stop_flow`.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Label, Markdown, Select, Static, TextArea

from tui.streaming import run_stream
from tui.tabs.base import AppTab
from tui.tabs.focus import SteadyFocus
from tui.tabs.sentences import as_sentence

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from textual.timer import Timer
    from textual.widgets._markdown import MarkdownStream

    from core.chat.sessions import ChatSessionInfo, Turn

ROUTES = [
    ("In-process flow", "flow"),
    ("Served flow URL", "served"),
    ("Direct endpoint", "direct"),
]
DEFAULT_SERVED_URL = "http://127.0.0.1:8080"
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
SPIN_SECONDS = 0.25


def check_params(temperature: str, max_tokens: str) -> tuple[float, int]:
    """The generation settings as typed, or a ValueError with the sentence to show.

    The ranges are `GenerationParams.check`'s, said before the question is sent."""
    try:
        temp = float(temperature.strip())
    except ValueError:
        raise ValueError(
            f"Temperature must be a number from 0 to 5, not {temperature!r}."
        ) from None
    if not 0 <= temp <= 5:
        raise ValueError(f"Temperature must be from 0 to 5, not {temp:g}.")
    try:
        tokens = int(max_tokens.strip())
    except ValueError:
        raise ValueError(f"Max tokens must be a whole number, not {max_tokens!r}.") from None
    if not 1 <= tokens <= 32768:
        raise ValueError(f"Max tokens must be from 1 to 32768, not {tokens}.")
    return temp, tokens


def answer_meta(latency_s: float, tokens: int, tokens_per_s: float, route: str) -> str:
    return f"{latency_s:.2f} s · {tokens} tokens · {tokens_per_s:.1f} tok/s · {route}"


def answer_problem(answer: str, tokens: int, max_tokens: int) -> str:
    """Why an answer that arrived is not a good one, in a sentence ("" when it is)."""
    if not answer.strip():
        return (
            "The model answered nothing: the conversation may fill its context window (the "
            "prompt leaves no room to answer). ctrl+t trims the history to the last exchange."
        )
    if tokens >= max_tokens:
        return (
            f"The answer stopped at the max tokens limit ({max_tokens}): raise max, or ask it "
            "to go on."
        )
    return ""


def stored_meta(meta: dict[str, Any] | None, route: str) -> str:
    """The figures line of an answer read back from the store ("" when it has none)."""
    meta = meta or {}
    try:
        latency = float(meta["latency_s"])
        tokens = int(meta.get("tokens") or 0)
    except (KeyError, TypeError, ValueError):
        return ""
    rate = tokens / latency if latency > 0 else 0.0
    return answer_meta(latency, tokens, rate, str(meta.get("route") or route))


class PromptInput(SteadyFocus, TextArea):
    """The question box: ↑ on the first line and ↓ on the last walk the input history."""

    class HistoryMove(Message, bubble=True):
        def __init__(self, step: int) -> None:
            super().__init__()
            self.step = step

    def action_cursor_up(self, select: bool = False) -> None:
        if not select and self.cursor_at_first_line:
            self.post_message(self.HistoryMove(-1))
            return
        super().action_cursor_up(select)

    def action_cursor_down(self, select: bool = False) -> None:
        if not select and self.cursor_at_last_line:
            self.post_message(self.HistoryMove(+1))
            return
        super().action_cursor_down(select)


class QuestionView(Static):
    """One question as the user typed it (never parsed as markup)."""

    def __init__(self, question: str) -> None:
        super().__init__(Text.assemble(("› ", "bold"), question), classes="chat-question")
        self.question = question


class AnswerView(Vertical):
    """One answer: Markdown that grows while it streams, then a line of figures."""

    def __init__(self, markdown: str = "", meta: str = "") -> None:
        super().__init__(classes="chat-answer")
        self.initial = markdown
        self.meta = meta

    def compose(self) -> ComposeResult:
        yield Markdown(self.initial, classes="chat-markdown")
        yield Static(self.meta, classes="chat-meta", markup=False)

    @property
    def markdown(self) -> Markdown:
        return self.query_one(Markdown)

    def set_meta(self, meta: str) -> None:
        self.meta = meta
        self.query_one(".chat-meta", Static).update(meta)


class ErrorView(Static):
    """A failed answer, in the conversation where the answer would have been."""

    def __init__(self, message: str) -> None:
        super().__init__(Text.assemble(("✗ ", "bold"), message), classes="chat-error")
        self.message = message


class NoticeView(Static):
    """An answer that came but is not a good one (empty, cut off): what happened, and what
    to do about it."""

    def __init__(self, message: str) -> None:
        super().__init__(Text.assemble(("! ", "bold"), message), classes="chat-notice")
        self.message = message


class ChatTab(AppTab):
    """Chat with the model through the flow, a served flow, or the endpoint."""

    HELP = (
        "Ask in the box at the bottom and press ctrl+j to send (Enter adds a line); ↑/↓ on "
        "the first/last line bring back earlier questions. The answer streams in as Markdown, "
        "with its latency and tokens/s under it. The route picks how the model is reached: "
        "the Prompt flow flow in this process, a served flow at a URL (pf flow serve), or the "
        "endpoint directly. Esc stops an answer; ctrl+n starts a new chat, ctrl+o loads a "
        "saved one, ctrl+s exports this one (.md or .jsonl), ctrl+r copies the last answer. "
        "With no answer coming, Esc leaves the box for the conversation (↑/↓ scroll, 1…5 "
        "switch tabs, ctrl+l comes back). While an answer is awaited the status line spins "
        "and counts the seconds. A failed answer is shown here and your question returns to "
        "the box; an empty answer (the context window may be full) or one cut at max tokens "
        "is said so, and ctrl+t goes on in a new chat keeping only the last exchange."
    )

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+j", "send", "Send", id="chat.send"),
        Binding("escape", "stop", "Stop", show=False, id="chat.stop"),
        Binding("ctrl+n", "new_chat", "New", id="chat.new"),
        Binding("ctrl+o", "load_session", "Load", id="chat.load"),
        Binding("ctrl+s", "export_session", "Export", id="chat.export"),
        Binding("ctrl+r", "copy_answer", "Copy", id="chat.copy"),
        Binding("ctrl+t", "trim_history", "Trim history", show=False, id="chat.trim"),
        Binding("ctrl+l", "focus_input", "Input", show=False, id="chat.input"),
        Binding("ctrl+b", "compare", "A|B", id="chat.compare"),
    ]

    # -- messages from workers --------------------------------------------------------

    class SessionReady(Message, bubble=False):
        def __init__(self, info: ChatSessionInfo) -> None:
            super().__init__()
            self.info = info

    class Delta(Message, bubble=False):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class Done(Message, bubble=False):
        def __init__(self, answer: str, latency_s: float, tokens: int, tokens_per_s: float):
            super().__init__()
            self.answer = answer
            self.latency_s = latency_s
            self.tokens = tokens
            self.tokens_per_s = tokens_per_s

    class Failed(Message, bubble=False):
        def __init__(self, error: str, stopped: bool = False) -> None:
            super().__init__()
            self.error = error
            self.stopped = stopped

    class SessionsListed(Message, bubble=False):
        def __init__(self, sessions: list[ChatSessionInfo], turns: dict[str, int]) -> None:
            super().__init__()
            self.sessions = sessions
            self.turns = turns  # session id -> how many turns it holds

    class SessionLoaded(Message, bubble=False):
        def __init__(self, info: ChatSessionInfo, turns: list[Turn], trimmed: bool = False) -> None:
            super().__init__()
            self.info = info
            self.turns = turns
            self.trimmed = trimmed  # a new chat holding the last exchange of the one shown

    class Exported(Message, bubble=False):
        def __init__(self, path: str, exists: bool = False) -> None:
            super().__init__()
            self.path = path
            self.exists = exists

    class FlowServers(Message, bubble=False):
        """The URLs of this project's running flow servers (the newest first)."""

        def __init__(self, urls: list[str], started: bool = False) -> None:
            super().__init__()
            self.urls = urls
            self.started = started

    class FlowStopped(Message, bubble=False):
        def __init__(self, count: int) -> None:
            super().__init__()
            self.count = count

    class Problem(Message, bubble=False):
        def __init__(self, error: str) -> None:
            super().__init__()
            self.error = error

    # -- state and structure ----------------------------------------------------------

    def __init__(self) -> None:
        super().__init__(id="chat-tab")
        self.session: ChatSessionInfo | None = None
        self.history: list[str] = []
        self.history_pos: int | None = None  # index into history while walking it
        self.draft = ""  # what was in the box before walking the history
        self.asking: str | None = None  # the question being answered, if any
        self.answer_view: AnswerView | None = None
        self.stream: MarkdownStream | None = None
        self.last_answer = ""
        self.streamed = ""
        self._service: Any = None  # core.chat.service.ChatService, built by a worker
        self.serving = False  # a flow server is being started
        self.max_tokens = 0  # of the question being answered
        self._asked_at = 0.0  # when it was sent (monotonic), for the spinner's seconds
        self._spinner: Timer | None = None
        self._stopping = False
        # Two-target mode (tui/tabs/chat_compare.py): the ChatPair once open, its labels.
        self._pair: Any = None
        self.pair_labels: tuple[str, str] | None = None
        self.pair_targets = ("base", "")
        self.pair_view: Any = None
        self.pair_pending = 0

    def compose(self) -> ComposeResult:
        with Horizontal(id="chat-settings"):
            yield Select(ROUTES, value="flow", allow_blank=False, compact=True, id="chat-route")
            yield Input(DEFAULT_SERVED_URL, placeholder="flow URL", compact=True, id="chat-url")
            yield Label("temp", classes="chat-label")
            yield Input("0.7", compact=True, id="chat-temperature", max_length=4)
            yield Label("max", classes="chat-label")
            yield Input("256", compact=True, id="chat-max-tokens", type="integer", max_length=5)
        with VerticalScroll(id="chat-conversation"):
            yield Static(
                "Ask the model something below; ctrl+j sends. ctrl+o loads a saved chat.",
                id="chat-empty",
            )
        with Horizontal(id="chat-statusbar"):
            yield Static("", id="chat-status")
            yield Static("new chat", id="chat-session")
        yield PromptInput(
            id="chat-input",
            compact=True,
            placeholder="Ask… (ctrl+j sends, ↑ history, Esc leaves the box)",
            soft_wrap=True,
            show_line_numbers=False,
        )

    def on_mount(self) -> None:
        self.query_one("#chat-url", Input).display = False
        self._status(f"Answers come from {self._route_words()}.")
        self.focus_default()
        self._find_flow_servers()

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="chat-flow-servers",
        name="Looking for flow servers",
    )
    def _find_flow_servers(self) -> None:
        """Offer a flow server this project already runs (`phiops flow serve --detach`)."""
        from core.chat.flowserve import flow_servers

        records = flow_servers(self.services.config)
        newest = sorted(records, key=lambda record: record.started_at, reverse=True)
        if newest:
            self.post_message(self.FlowServers([record.url for record in newest]))

    @on(FlowServers)
    def _flow_servers(self, message: FlowServers) -> None:
        self.query_one("#chat-url", Input).value = message.urls[0]
        if message.started:
            self.serving = False
            self.query_one("#chat-route", Select).value = "served"
            self.notify(
                f"The flow is served at {message.urls[0]}; questions now go through it "
                "(ctrl+p › stop flow server stops it).",
                title="Chat",
                markup=False,
            )

    def action_serve_flow(self) -> None:
        """Start `pf flow serve` for the endpoint (detached, recorded) and chat through it."""
        if self.serving:
            self._status("The flow server is still starting…", "yellow")
            return
        self.serving = True
        self._status("Starting pf flow serve (this takes a few seconds)…")
        self._serve_flow()

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="chat-serve",
        name="Serving the flow",
    )
    def _serve_flow(self) -> None:
        from core.chat.flowserve import serve_flow

        target = self._chat_service().endpoint_target()
        server = serve_flow(self.services.config, target, port=0, detach=True)
        self.post_message(self.FlowServers([server.url], started=True))

    def action_stop_flow(self) -> None:
        """Stop the flow servers this project started (`phiops flow stop`)."""
        self._stop_flows()

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="chat-serve",
        name="Stopping the flow server",
    )
    def _stop_flows(self) -> None:
        from core.chat.flowserve import stop_flow_servers

        stopped = stop_flow_servers(self.services.config)
        self.post_message(self.FlowStopped(len(stopped)))

    @on(FlowStopped)
    def _flow_stopped(self, message: FlowStopped) -> None:
        if message.count:
            self._status(f"Stopped {message.count} flow server(s).")
            if self.route == "served":
                self.query_one("#chat-route", Select).value = "flow"
        else:
            self._status("No flow server was running.")

    def focus_default(self) -> None:
        self.query_one("#chat-input", PromptInput).focus()

    @property
    def route(self) -> str:
        return str(self.query_one("#chat-route", Select).value)

    @on(Select.Changed, "#chat-route")
    def _route_changed(self) -> None:
        self.query_one("#chat-url", Input).display = self.route == "served"
        if self.query_one("#chat-route", Select).has_focus:  # the user's choice, not a load
            self._status(f"Answers come from {self._route_words()}.")

    def _route_words(self) -> str:
        return {
            "flow": "the flow in this process",
            "served": "the served flow at the URL",
            "direct": f"endpoint {self.services.config.endpoint_name}",
        }[self.route]

    def _spin(self) -> None:
        """While an answer is awaited: a spinner and the seconds since the question left."""
        if self._stopping:
            return
        elapsed = time.monotonic() - self._asked_at
        frame = SPINNER[int(elapsed / SPIN_SECONDS) % len(SPINNER)]
        pieces = f", {len(self.streamed.split())} words so far" if self.streamed else ""
        self._status(f"{frame} Answering via {self.route}… {elapsed:.0f} s{pieces}  (Esc stops)")

    def _status(self, text: str, style: str = "") -> None:
        self.query_one("#chat-status", Static).update(Text(text, style=style))

    def _conversation(self) -> VerticalScroll:
        return self.query_one("#chat-conversation", VerticalScroll)

    # -- sending ----------------------------------------------------------------------

    def action_focus_input(self) -> None:
        """Put the keyboard in the question box."""
        self.focus_default()

    def action_send(self) -> None:
        """Send the question in the box on the chosen route."""
        box = self.query_one("#chat-input", PromptInput)
        question = box.text.strip()
        if not question:
            self._status("Type a question first.", "yellow")
            return
        if self.asking is not None:
            self._status("Still answering: wait, or press Esc to stop it.", "yellow")
            return
        try:
            temperature, max_tokens = check_params(
                self.query_one("#chat-temperature", Input).value,
                self.query_one("#chat-max-tokens", Input).value,
            )
        except ValueError as problem:
            self._status(str(problem), "red")
            return
        url = self.query_one("#chat-url", Input).value.strip()
        if self.route == "served" and not re.match(r"https?://", url):
            self._status("The served flow URL must start with http:// or https://.", "red")
            return
        if self.pair_labels is not None:
            self._send_pair(box, question, temperature, max_tokens)
            return
        self.asking = question
        if not self.history or self.history[-1] != question:
            self.history.append(question)
        self.history_pos = None
        box.clear()
        self._show_question(question)
        self.max_tokens = max_tokens
        self._asked_at = time.monotonic()
        self._spin()
        self._spinner = self.set_interval(SPIN_SECONDS, self._spin)
        self.add_class("-asking")
        self._ask(
            self.session.id if self.session else None,
            question,
            self.route,
            url if self.route == "served" else None,
            temperature,
            max_tokens,
        )

    def _show_question(self, question: str) -> None:
        conversation = self._conversation()
        for empty in self.query("#chat-empty"):
            empty.remove()
        conversation.mount(QuestionView(question))
        self.answer_view = AnswerView()
        conversation.mount(self.answer_view)
        self.streamed = ""
        self.stream = None
        conversation.anchor()

    @work(thread=True, exclusive=True, exit_on_error=False, group="chat-ask", name="Asking")
    def _ask(
        self,
        session_id: str | None,
        question: str,
        route: str,
        url: str | None,
        temperature: float,
        max_tokens: int,
    ) -> None:
        """Run the chat service's stream on this thread's own loop (`tui.streaming`) and post
        every event. Esc cancels the worker, which cancels the stream at once (not at the
        next piece); the service keeps what arrived as an error turn."""

        async def answer() -> AsyncIterator[object]:
            from core.chat.service import ChatRoute, GenerationParams
            from core.chat.sessions import title_from

            service = self._chat_service()
            sid = session_id
            if sid is None:
                info = await asyncio.to_thread(
                    service.store.create, title=title_from(question), route=route
                )
                yield self.SessionReady(info)
                sid = info.id
            params = GenerationParams(temperature=temperature, max_new_tokens=max_tokens)
            events = service.ask(sid, question, route=ChatRoute(route), via_url=url, params=params)
            try:
                async for event in events:
                    yield event
            finally:
                await events.aclose()
                await service.aclose()  # its HTTP client belongs to this thread's loop

        if not run_stream(answer, self._post_event):
            self.post_message(self.Failed("Stopped.", stopped=True))

    def _post_event(self, event: object) -> None:
        """One of the chat service's events (or a message of ours) as this tab's message."""
        from core.chat.service import AnswerDelta, AnswerDone, AnswerFailed

        if isinstance(event, Message):
            self.post_message(event)
        elif isinstance(event, AnswerDelta):
            self.post_message(self.Delta(event.text))
        elif isinstance(event, AnswerDone):
            self.post_message(
                self.Done(event.answer, event.latency_s, event.tokens, event.tokens_per_s)
            )
        elif isinstance(event, AnswerFailed):
            self.post_message(self.Failed(as_sentence(event.message)))

    def _chat_service(self) -> Any:
        """One service for the tab's life (it keeps the endpoint and the loaded flow), built
        on the app's backend; called from workers only."""
        if self._service is None:
            from core.chat.service import ChatService

            self._service = ChatService(self.services.config, backend=self.services.backend())
        return self._service

    @on(SessionReady)
    def _session_ready(self, message: SessionReady) -> None:
        self.session = message.info
        self._show_session()

    def _show_session(self) -> None:
        label = self.query_one("#chat-session", Static)
        if self.session is None:
            label.update("new chat")
        else:
            label.update(Text(self.session.title or "(untitled)", style="dim", overflow="ellipsis"))

    @on(Delta)
    async def _delta(self, message: Delta) -> None:
        view = self.answer_view
        if view is None:
            return
        if self.stream is None:
            self.stream = Markdown.get_stream(view.markdown)
        self.streamed += message.text
        await self.stream.write(message.text)

    async def _end_stream(self) -> None:
        if self.stream is not None:
            await self.stream.stop()
            self.stream = None

    @on(Done)
    async def _done(self, message: Done) -> None:
        await self._end_stream()
        view = self.answer_view
        if view is not None:
            if message.answer.strip() != self.streamed.strip():
                await view.markdown.update(message.answer)
            meta = answer_meta(message.latency_s, message.tokens, message.tokens_per_s, self.route)
            view.set_meta(meta)
        problem = answer_problem(message.answer, message.tokens, self.max_tokens)
        self._finish()
        if problem:
            await self._conversation().mount(NoticeView(problem))
            self._conversation().anchor()
            self._status(problem.split(":")[0] + ".", "yellow")
        else:
            self._status(
                f"Answered in {message.latency_s:.2f} s ({message.tokens_per_s:.1f} tok/s)."
            )
        self.last_answer = message.answer

    @on(Failed)
    async def _failed(self, message: Failed) -> None:
        await self._end_stream()
        view, question = self.answer_view, self.asking
        if view is not None and not self.streamed:
            await view.remove()
        elif view is not None:
            view.set_meta("(partial answer)")
        self._conversation().mount(ErrorView(message.error))
        self._conversation().anchor()
        box = self.query_one("#chat-input", PromptInput)
        if question and not box.text.strip():
            box.load_text(question)
            box.move_cursor(box.document.end)
        self._status(
            "Stopped; the question is back in the box."
            if message.stopped
            else "That failed; your question is back in the box.",
            "red",
        )
        self._finish()

    def _finish(self) -> None:
        self.asking = None
        self.answer_view = None
        self.remove_class("-asking")
        self._stopping = False
        if self._spinner is not None:
            self._spinner.stop()
            self._spinner = None

    def action_stop(self) -> None:
        """Stop the answer being streamed (what came so far stays on screen); with none,
        leave the question box for the conversation, where ↑/↓ scroll and 1…5 switch tabs."""
        if self.asking is None:
            self._conversation().focus()
            return
        for worker in self.workers:
            if worker.group in ("chat-ask", "chat-pair-ask"):
                worker.cancel()
        self._stopping = True
        self._status("Stopping…", "yellow")

    # -- input history ----------------------------------------------------------------

    @on(PromptInput.HistoryMove)
    def _history_move(self, message: PromptInput.HistoryMove) -> None:
        message.stop()
        if not self.history:
            return
        box = self.query_one("#chat-input", PromptInput)
        if self.history_pos is None:
            if message.step > 0:
                return
            self.draft = box.text
            position = len(self.history) - 1
        else:
            position = self.history_pos + message.step
        if position >= len(self.history):
            self.history_pos = None
            box.load_text(self.draft)
        else:
            self.history_pos = max(0, position)
            box.load_text(self.history[self.history_pos])
        box.move_cursor(box.document.end if message.step > 0 else (0, 0))

    # -- sessions ---------------------------------------------------------------------

    async def action_new_chat(self) -> None:
        """Start a new conversation (the current one is already saved)."""
        if self.asking is not None:
            self._status("Still answering: press Esc to stop it first.", "yellow")
            return
        self._leave_pair()
        self.session = None
        self.last_answer = ""
        await self._clear_conversation()
        self._show_session()
        self._status("New chat: the first question names it.")
        self.focus_default()

    async def _clear_conversation(self) -> None:
        conversation = self._conversation()
        await conversation.remove_children()
        await conversation.mount(
            Static(
                "Ask the model something below; ctrl+j sends. ctrl+o loads a saved chat.",
                id="chat-empty",
            )
        )

    def action_load_session(self) -> None:
        """Pick a saved session and show it."""
        if self.asking is not None:
            self._status("Still answering: press Esc to stop it first.", "yellow")
            return
        self._list_sessions()

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="chat-store",
        name="Listing chat sessions",
    )
    def _list_sessions(self) -> None:
        from core.chat.sessions import SessionStore

        store = SessionStore()
        sessions = store.list()
        counts = {info.id: len(store.turns(info.id)) for info in sessions}
        self.post_message(self.SessionsListed(sessions, counts))

    @on(SessionsListed)
    def _sessions_listed(self, message: SessionsListed) -> None:
        from tui.tabs.chat_dialogs import LoadSessionScreen

        if not message.sessions:
            self._status("No saved chats yet.", "yellow")
            return
        sessions = sorted(message.sessions, key=lambda s: s.updated_at, reverse=True)
        self.open_dialog(LoadSessionScreen(sessions, message.turns), self._session_chosen)

    def _session_chosen(self, session_id: str | None) -> None:
        if session_id:
            self._load_session(session_id)

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="chat-store",
        name="Loading the chat",
    )
    def _load_session(self, session_id: str) -> None:
        from core.chat.sessions import SessionStore

        store = SessionStore()
        info = store.get(session_id)
        self.post_message(self.SessionLoaded(info, store.turns(session_id)))

    @on(SessionLoaded)
    async def _session_loaded(self, message: SessionLoaded) -> None:
        self.session = message.info
        conversation = self._conversation()
        await conversation.remove_children()
        views: list[Static | AnswerView] = []
        self.last_answer = ""
        for turn in message.turns:
            if turn.role == "user":
                views.append(QuestionView(turn.content))
                if not self.history or self.history[-1] != turn.content:
                    self.history.append(turn.content)
            elif turn.role == "assistant":
                views.append(AnswerView(turn.content, stored_meta(turn.meta, message.info.route)))
                self.last_answer = turn.content
            elif turn.role == "error":
                partial = (turn.meta or {}).get("partial_answer")
                if partial:
                    views.append(AnswerView(str(partial), "(partial answer)"))
                views.append(ErrorView(as_sentence(turn.content)))
        if not views:
            views.append(Static("This chat is empty.", id="chat-empty"))
        await conversation.mount_all(views)
        conversation.anchor()
        if message.info.route in {value for _, value in ROUTES}:
            self.query_one("#chat-route", Select).value = message.info.route
        self._show_session()
        if message.trimmed:
            self._status("History trimmed: the next question carries only the last exchange.")
        else:
            self._status(
                f"Loaded {len(message.turns)} turns; answers come from {self._route_words()}."
            )
        self.focus_default()

    def action_trim_history(self) -> None:
        """Go on in a new chat that keeps only the last answered exchange, for a
        conversation that fills the model's context window (the old chat stays saved)."""
        if self.asking is not None:
            self._status("Still answering: press Esc to stop it first.", "yellow")
            return
        if self.session is None:
            self._status("Nothing to trim yet.", "yellow")
            return
        self._trim(self.session)

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="chat-store",
        name="Trimming the history",
    )
    def _trim(self, session: ChatSessionInfo) -> None:
        from core.chat.sessions import SessionStore, history_pairs

        store = SessionStore()
        answered = [pair for pair in history_pairs(store.turns(session.id)) if pair[1].strip()]
        if not answered:  # a new chat holding nothing is ctrl+n's
            self.post_message(
                self.Problem("Nothing to keep: no question here has an answer; ctrl+n starts anew.")
            )
            return
        info = store.create(title=session.title, route=session.route)
        for question, answer in answered[-1:]:
            store.add_turn(info.id, "user", question, {"route": session.route})
            store.add_turn(info.id, "assistant", answer, {"route": session.route})
        self.post_message(
            self.SessionLoaded(store.get(info.id), store.turns(info.id), trimmed=True)
        )

    # -- two targets side by side (tui/tabs/chat_compare.py) ----------------------------

    def action_compare(self) -> None:
        """Ask two targets the same question (base and fine-tuned, blue and green)."""
        if self.asking is not None:
            self._status("Still answering: press Esc to stop it first.", "yellow")
            return
        from tui.tabs.chat_compare import CompareScreen

        a, b = self.pair_targets
        b = b or self.services.config.endpoint_name
        self.open_dialog(CompareScreen(a, b), self._compare_chosen)

    def _compare_chosen(self, chosen: tuple[str, str] | None) -> None:
        if chosen is None:
            return
        self._leave_pair()
        if not any(chosen):
            self._status("One answer per question again.")
            return
        self.pair_targets = chosen
        self._status(f"Opening {chosen[0]} and {chosen[1]}…")
        self._open_pair(*chosen)

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="chat-pair-open",
        name="Opening the targets",
    )
    def _open_pair(self, a: str, b: str) -> None:
        from core.chat.pair import ChatPair
        from tui.tabs.chat_compare import PairOpened, PairSaid

        pair = ChatPair(self.services.config, self.services.backend())
        sides = pair.open(a, b, say=lambda text: self.post_message(PairSaid(text)))
        self._pair = pair
        self.post_message(PairOpened((sides[0].label, sides[1].label)))

    def on_pair_said(self, message: Any) -> None:
        self._status(message.text[:1].upper() + message.text[1:] + "…")

    def on_pair_opened(self, message: Any) -> None:
        if message.labels is None:
            self._status(message.error, "red")
            return
        self.pair_labels = message.labels
        self.add_class("-pair")
        self._status(f"A: {message.labels[0]} · B: {message.labels[1]} — ctrl+j asks both.")

    def _leave_pair(self) -> None:
        pair, self._pair = self._pair, None
        self.pair_labels = None
        self.remove_class("-pair")
        if pair is not None:
            self._close_pair(pair)

    @work(thread=True, exit_on_error=False, group="chat-pair-close")
    def _close_pair(self, pair: Any) -> None:
        pair.close()  # stops a temporary scoring server

    def on_unmount(self) -> None:
        if self._pair is not None:
            self._pair.close()

    def _send_pair(self, box: Any, question: str, temperature: float, max_tokens: int) -> None:
        from tui.tabs.chat_compare import PairAnswers

        assert self.pair_labels is not None
        self.asking = question
        if not self.history or self.history[-1] != question:
            self.history.append(question)
        self.history_pos = None
        box.clear()
        conversation = self._conversation()
        for empty in self.query("#chat-empty"):
            empty.remove()
        conversation.mount(QuestionView(question))
        self.pair_view = PairAnswers((f"A · {self.pair_labels[0]}", f"B · {self.pair_labels[1]}"))
        conversation.mount(self.pair_view)
        conversation.anchor()
        self.pair_pending = 2
        self.add_class("-asking")
        self._status("Both answering…")
        route = "direct" if self.route == "direct" else "flow"
        self._ask_pair(question, route, temperature, max_tokens)

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="chat-pair-ask",
        name="Asking",
    )
    def _ask_pair(self, question: str, route: str, temperature: float, max_tokens: int) -> None:
        from core.chat.service import AnswerDelta, AnswerDone, ChatRoute, GenerationParams
        from tui.tabs.chat_compare import PairEvent

        pair = self._pair
        if pair is None:
            for side in (0, 1):
                self.post_message(PairEvent(side, done=True, error="The targets are not open."))
            return
        params = GenerationParams(temperature=temperature, max_new_tokens=max_tokens)
        ended: set[int] = set()

        def on_item(item: tuple[int, object]) -> None:
            side, event = item
            if isinstance(event, AnswerDelta):
                self.post_message(PairEvent(side, event.text))
                return
            ended.add(side)
            if isinstance(event, AnswerDone):
                meta = answer_meta(event.latency_s, event.tokens, event.tokens_per_s, route)
                self.post_message(PairEvent(side, done=True, answer=event.answer, meta=meta))
            else:
                self.post_message(PairEvent(side, done=True, error=as_sentence(event.message)))

        def answers() -> AsyncIterator[tuple[int, object]]:
            return pair.ask(question, route=ChatRoute(route), params=params)

        try:
            run_stream(answers, on_item)
        finally:  # Esc, or a failure (worker_failed says it): the sides still waiting end
            for side in {0, 1} - ended:
                self.post_message(PairEvent(side, done=True, error="Stopped."))

    async def on_pair_event(self, message: Any) -> None:
        view = self.pair_view
        if view is None:
            return
        if not message.done:
            await view.write(message.side, message.text)
            return
        if message.error:
            await view.end(message.side, None, f"✗ {message.error}")
        else:
            await view.end(message.side, message.answer, message.meta)
        self.pair_pending -= 1
        if self.pair_pending <= 0:
            self.pair_view = None
            self.asking = None
            self.remove_class("-asking")
            self._status("Both answered; ctrl+j asks both again, ctrl+b changes the targets.")

    def action_export_session(self) -> None:
        """Write this chat to a Markdown (.md) or JSON lines (.jsonl) file."""
        from tui.tabs.chat_dialogs import ExportScreen

        if self.session is None:
            self._status("Nothing to export yet: ask something first.", "yellow")
            return
        slug = re.sub(r"[^a-z0-9]+", "-", (self.session.title or "chat").lower()).strip("-")
        default = self.services.config.project_dir / f"chat-{slug[:40] or 'session'}.md"
        self.open_dialog(ExportScreen(str(default)), self._export_chosen)

    def _export_chosen(self, path: str | None, overwrite: bool = False) -> None:
        if path and self.session is not None:
            self._export(self.session.id, path, overwrite)

    def _export(self, session_id: str, path: str, overwrite: bool) -> None:
        """Write the session to `path` in a worker (named after the file it writes)."""
        from core.atomic import write_text_atomic
        from core.chat.sessions import SessionStore

        target = self.services.config.resolve(path)

        def export() -> None:
            if target.exists() and not overwrite:
                self.post_message(self.Exported(str(target), exists=True))
                return
            store = SessionStore()
            jsonl = target.suffix.lower() in (".jsonl", ".ndjson")
            text = store.export_jsonl(session_id) if jsonl else store.export_markdown(session_id)
            write_text_atomic(target, text)
            self.post_message(self.Exported(str(target)))

        self.run_worker(
            export,
            name=f"Exporting to {target}",
            group="chat-export",
            thread=True,
            exclusive=True,
            exit_on_error=False,
        )

    @on(Exported)
    def _exported(self, message: Exported) -> None:
        from tui.screens import ConfirmScreen

        if message.exists:
            screen = ConfirmScreen(
                "Replace the file?", f"{message.path} exists. Replace it?", yes="Replace"
            )
            self.open_dialog(
                screen, lambda yes: yes and self._export_chosen(message.path, overwrite=True)
            )
        else:
            self.notify(f"Exported the chat to {message.path}", markup=False)

    def worker_failed(self, group: str, sentence: str) -> None:
        from tui.tabs.chat_compare import PairOpened

        if group == "chat-ask":  # the service's own failures arrive as AnswerFailed
            self.post_message(self.Failed(sentence))
        elif group == "chat-pair-open":  # the status line keeps it; the note says it whole
            self.post_message(PairOpened(None, sentence))
            super().worker_failed(group, sentence)
        elif group == "chat-pair-ask":  # the sides still open were ended "Stopped."
            self._status(sentence, "red")
        elif group == "chat-export":
            super().worker_failed(group, sentence)
        else:
            self.post_message(self.Problem(sentence))

    @on(Problem)
    def _problem(self, message: Problem) -> None:
        self.serving = False
        self._status(message.error, "red")

    def action_copy_answer(self) -> None:
        """Copy the last answer (Markdown source) to the clipboard."""
        if not self.last_answer:
            self._status("No answer to copy yet.", "yellow")
            return
        self.app.copy_to_clipboard(self.last_answer)
        self._status("Copied the last answer.")

    def on_backend_changed(self) -> None:
        """`tui.messages.BackendChanged`: the endpoint now is the new backend's."""
        self._service = None  # the next question builds one on the new backend
        self._status("Backend switched: answers now come from its endpoint.")
