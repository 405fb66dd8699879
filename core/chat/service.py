"""The chat service behind `phiops chat` and the TUI's chat pane: three routes, one contract.

- `flow` (default): the Prompt flow chat flow run in this process (`core/chat/inprocess.py`);
- `served`: a flow served by `pf flow serve` (e.g. `phiops flow serve`), streamed over SSE;
- `direct`: the scoring endpoint itself, no flow.

`ask()` is an async iterator of events: `AnswerDelta` pieces as they arrive, then one
`AnswerDone` or `AnswerFailed`. The question is stored before it is sent and the answer (or
the failure) after, so a failed request loses nothing and the next question carries every
answered turn as history. Blocking work (the SQLite store, the backend, the in-process
executor) runs in threads, so the TUI's loop never waits on it.

`tokens` is an estimate, not a tokenizer count: the number of streamed pieces when the
answer streamed (the scoring server sends about one per generated token), otherwise the
number of whitespace-separated words.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from core.chat.endpoint import (
    DEFAULT_TIMEOUT_S,
    ChatError,
    EndpointTarget,
    endpoint_pieces,
    served_flow_pieces,
)
from core.chat.inprocess import FLOW_DIR, InProcessFlow, iter_in_thread
from core.chat.sessions import SessionStore, Turn, history_pairs
from core.errors import PhiopsError

URL_ENV = "PHIOPS_ENDPOINT_URL"
TIMEOUT_ENV = "PHIOPS_ENDPOINT_TIMEOUT"


class ChatRoute(StrEnum):
    FLOW = "flow"
    SERVED = "served"
    DIRECT = "direct"


@dataclass
class GenerationParams:
    temperature: float = 0.7
    max_new_tokens: int = 256
    top_p: float = 0.9

    def check(self) -> GenerationParams:
        """Itself, or one sentence about the value that is out of range."""
        if not 0 <= float(self.temperature) <= 5:
            raise PhiopsError(f"temperature must be between 0 and 5, not {self.temperature}")
        if not 1 <= int(self.max_new_tokens) <= 32768:
            raise PhiopsError(
                f"max new tokens must be between 1 and 32768, not {self.max_new_tokens}"
            )
        if not 0 < float(self.top_p) <= 1:
            raise PhiopsError(f"top_p must be above 0 and at most 1, not {self.top_p}")
        return self


@dataclass
class AnswerDelta:
    text: str


@dataclass
class AnswerDone:
    answer: str
    latency_s: float
    tokens: int
    tokens_per_s: float
    first_token_s: float | None = None


@dataclass
class AnswerFailed:
    message: str


ChatEvent = AnswerDelta | AnswerDone | AnswerFailed


def flow_inputs(question: str, turns: list[Turn], params: GenerationParams) -> dict[str, Any]:
    """The flow's inputs: the question, the answered turns as chat history, the parameters."""
    history = [
        {"inputs": {"question": asked}, "outputs": {"answer": answered}}
        for asked, answered in history_pairs(turns)
    ]
    return {"question": question, "chat_history": history, **asdict(params)}


def chat_messages(question: str, turns: list[Turn]) -> list[dict[str, str]]:
    """The same conversation as chat messages, as the flow's tool builds them."""
    messages = []
    for asked, answered in history_pairs(turns):
        messages += [
            {"role": "user", "content": asked},
            {"role": "assistant", "content": answered},
        ]
    return [*messages, {"role": "user", "content": question}]


def estimate_tokens(pieces: list[str], answer: str) -> int:
    return len(pieces) if len(pieces) > 1 else len(answer.split())


def resolve_target(config: Any, backend: Callable[[], Any] | None = None) -> EndpointTarget:
    """The endpoint's scoring URI and key (blocking: it may ask the backend).

    URL: `PHIOPS_ENDPOINT_URL`, else the backend's endpoint `config.endpoint_name`.
    Key: `PHIOPS_ENDPOINT_KEY`, else the backend's primary key, else the secrets file.
    `backend` builds the backend only when it is needed.
    """
    from core.secrets import KEY_ENV_VAR, SecretStore, endpoint_key_name

    name = config.endpoint_name
    url = os.environ.get(URL_ENV, "")
    key = os.environ.get(KEY_ENV_VAR, "")
    if not url or not key:
        if backend is None:
            from core.backends import get_backend

            chosen = get_backend(config)
        else:
            chosen = backend()
        where = f"endpoint '{name}' on the {getattr(chosen, 'name', '')} backend"
        if not url:
            try:
                url = chosen.endpoint(name).scoring_uri
            except PhiopsError as error:
                raise ChatError(f"no {where} ({error}); deploy a model first") from None
            except Exception as error:
                raise ChatError(f"cannot look up the {where}: {error}") from None
            if not url:
                raise ChatError(f"the {where} has no scoring URI yet; is it deployed?")
        if not key:
            try:
                key = chosen.endpoint_keys(name).primary
            except Exception:
                key = SecretStore().get(endpoint_key_name(chosen.name, name)) or ""
            if not key:
                raise ChatError(
                    f"no key for the {where}: set {KEY_ENV_VAR} or run `phiops endpoints keys`"
                )
    try:
        timeout = float(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT_S)
    except ValueError:
        timeout = DEFAULT_TIMEOUT_S
    return EndpointTarget(url=url, key=key, timeout_s=timeout)


class ChatService:
    """Ask questions in stored sessions through one of the three routes."""

    def __init__(
        self,
        config: Any,
        store: SessionStore | None = None,
        *,
        backend: Any = None,
        backend_factory: Callable[[], Any] | None = None,
        flow_dir: Path = FLOW_DIR,
        target: EndpointTarget | None = None,
    ) -> None:
        self.config = config
        self.store = store or SessionStore()
        self.flow_dir = Path(flow_dir)
        self._backend = backend
        self._backend_factory = backend_factory
        self._fixed = target  # a given endpoint (one deployment, a temporary server)
        self._target: EndpointTarget | None = target
        self._flows: dict[EndpointTarget, InProcessFlow] = {}
        self._clients: dict[int, Any] = {}

    # -- where requests go ---------------------------------------------------------------

    def _backend_or_default(self) -> Any:
        if self._backend is None:
            if self._backend_factory is not None:
                self._backend = self._backend_factory()
            else:
                from core.backends import get_backend

                self._backend = get_backend(self.config)
        return self._backend

    def endpoint_target(self) -> EndpointTarget:
        """The endpoint's scoring URI and key (blocking: it may ask the backend); cached."""
        if self._target is None:
            self._target = resolve_target(self.config, self._backend_or_default)
        return self._target

    def forget_endpoint(self) -> None:
        """Look the endpoint up again next time (after a 401/404: a new key, a new URI)."""
        self._target = self._fixed
        self._flows.clear()

    def _flow(self, target: EndpointTarget) -> InProcessFlow:
        flow = self._flows.get(target)
        if flow is None:
            flow = self._flows[target] = InProcessFlow(target, self.flow_dir)
        return flow

    def _client(self) -> Any:
        """One pooled HTTP client per event loop (an AsyncClient belongs to its loop)."""
        import httpx

        loop = asyncio.get_running_loop()
        client = self._clients.get(id(loop))
        if client is None or client.is_closed:
            client = httpx.AsyncClient(trust_env=False, headers={"User-Agent": "phiops"})
            self._clients[id(loop)] = client
        return client

    async def warm_up(self, route: ChatRoute = ChatRoute.FLOW) -> None:
        """Resolve the endpoint and load the flow now, so the first question is not slower."""
        if route == ChatRoute.SERVED:
            return
        target = await asyncio.to_thread(self.endpoint_target)
        if route == ChatRoute.FLOW:
            await asyncio.to_thread(self._flow(target).executor)

    async def aclose(self) -> None:
        loop_id = id(asyncio.get_running_loop())
        client = self._clients.pop(loop_id, None)
        if client is not None:
            await client.aclose()

    # -- asking --------------------------------------------------------------------------

    async def _pieces(
        self,
        route: ChatRoute,
        via_url: str | None,
        question: str,
        turns: list[Turn],
        params: GenerationParams,
    ) -> AsyncIterator[str]:
        if route == ChatRoute.SERVED:
            if not via_url:
                raise ChatError("the served route needs the served flow's URL (--via URL)")
            from core.chat.flowserve import served_flow_key

            key = await asyncio.to_thread(served_flow_key, self.config, via_url)
            pieces = served_flow_pieces(
                self._client(), via_url, flow_inputs(question, turns, params), key=key
            )
        else:
            target = self._target or await asyncio.to_thread(self.endpoint_target)
            if route == ChatRoute.DIRECT:
                pieces = endpoint_pieces(
                    self._client(), target, chat_messages(question, turns), params
                )
            else:
                flow = self._flow(target)
                inputs = flow_inputs(question, turns, params)
                pieces = iter_in_thread(lambda: flow.answer_pieces(inputs))
        async for piece in pieces:
            yield piece

    async def ask(
        self,
        session_id: str,
        question: str,
        *,
        route: ChatRoute = ChatRoute.FLOW,
        via_url: str | None = None,
        params: GenerationParams | None = None,
    ) -> AsyncIterator[ChatEvent]:
        """Ask `question` in session `session_id`; the events of its answer.

        The question is stored first; the answer, or the failure as an `error` turn, after.
        """
        try:
            route = ChatRoute(route)
            params = (params or GenerationParams()).check()
        except (ValueError, PhiopsError) as error:
            yield AnswerFailed(str(error))
            return
        question = question.strip()
        if not question:
            yield AnswerFailed("the question is empty")
            return
        try:
            turns = await asyncio.to_thread(self.store.turns, session_id)
        except PhiopsError as error:
            yield AnswerFailed(str(error))
            return
        meta: dict[str, Any] = {"route": route.value, "params": asdict(params)}
        if route == ChatRoute.SERVED and via_url:
            meta["via"] = via_url
        await asyncio.to_thread(self.store.add_turn, session_id, "user", question, meta)

        started = time.perf_counter()
        first: float | None = None
        parts: list[str] = []
        failure = ""
        stale_endpoint = False
        try:
            async for piece in self._pieces(route, via_url, question, turns, params):
                if first is None:
                    first = time.perf_counter() - started
                parts.append(piece)
                yield AnswerDelta(piece)
        except ChatError as error:
            failure = str(error)
            stale_endpoint = error.status in (401, 403, 404)
        except PhiopsError as error:
            failure = str(error)
        except (asyncio.CancelledError, GeneratorExit):
            # the caller stopped listening: keep what arrived, say so, no await from here
            self._keep_failure(session_id, route, "the answer was cancelled", parts)
            raise
        except Exception as error:  # a bug or an unforeseen library error: still keep the turn
            failure = f"unexpected error ({type(error).__name__}): {error}"
        if failure:
            failure = self._redact(failure)
            if stale_endpoint:
                self.forget_endpoint()
            await asyncio.to_thread(self._keep_failure, session_id, route, failure, parts)
            yield AnswerFailed(failure)
            return

        latency = time.perf_counter() - started
        answer = "".join(parts)
        tokens = estimate_tokens(parts, answer)
        rate = tokens / latency if latency > 0 else 0.0
        done = AnswerDone(answer, latency, tokens, rate, first)
        await asyncio.to_thread(
            self.store.add_turn,
            session_id,
            "assistant",
            answer,
            {
                "route": route.value,
                "latency_s": round(latency, 4),
                "first_token_s": round(first, 4) if first is not None else None,
                "tokens": tokens,
                "tokens_estimated": True,
            },
        )
        yield done

    def _keep_failure(
        self, session_id: str, route: ChatRoute, message: str, parts: list[str]
    ) -> None:
        meta: dict[str, Any] = {"route": route.value}
        if parts:
            meta["partial_answer"] = "".join(parts)
        self.store.add_turn(session_id, "error", message, meta)

    def _redact(self, text: str) -> str:
        from core.secrets import known_secrets, redact

        secrets = known_secrets()
        if self._target is not None:
            secrets.append(self._target.key)
        return redact(text, secrets)
