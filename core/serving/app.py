"""The scoring server's routes: Azure ML's `/score` contract, probes, and the request rules.

Order of checks for `POST /score`, cheapest first, so a request that will be refused costs
no model work: the key (401, constant-time), readiness (503), the body's size (413, before
any of it is parsed; `core.serving.limits`), the body (400: strict JSON, the contract, the
prompt's length — rendered and tokenized on a worker thread, never on the event loop or the
generation thread), a place among the deployment's `max_concurrent_requests_per_instance`
(waits up to `max_queue_wait_ms`, then 429), then the model, within `request_timeout_ms`
(504). A place is given back when the model is done with the request — for a timed-out or
abandoned one, when its rows have stopped — so the limit counts real model work. `/stats`
needs the key too; the probes do not.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from core.backend import RequestSettings
from core.serving.batcher import Batcher, Job, JobFailed, Stats
from core.serving.engine import Answer, Engine
from core.serving.limits import BodyRefused, body_limit, read_body
from core.serving.params import (
    FINISH_HEADER,
    MAX_INPUTS,
    TOKENS_HEADER,
    BadRequest,
    loads,
    parse_score_request,
)

log = logging.getLogger("phiops.serving")
DEPLOYMENT_HEADER = "azureml-model-deployment"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def key_matches(header: str | None, digests: list[bytes]) -> bool:
    """`Authorization: Bearer KEY` against every key, in constant time (digests compared)."""
    scheme, _, presented = (header or "").partition(" ")
    candidate = digest(presented.strip() if scheme.lower() == "bearer" else "\x00")
    matched = False
    for known in digests:  # no early exit: the time does not say which key matched
        matched |= hmac.compare_digest(candidate, known)
    return matched and bool(presented.strip())


def error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


def unauthorized() -> JSONResponse:
    return error(
        401,
        "missing or wrong key: send the header Authorization: Bearer <endpoint key>",
        **{"WWW-Authenticate": "Bearer"},
    )


def sse(data: Any, event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"{head}data: {payload}\n\n"


class ServerState:
    """What the routes share: keys, settings, the model once loaded, the counters."""

    def __init__(
        self,
        keys: list[str],
        *,
        deployment: str = "blue",
        settings: RequestSettings | None = None,
        loader: Callable[[], Engine] | None = None,
        max_batch_prompts: int = 32,
        batch_window_s: float = 0.1,
        on_fatal: Callable[[str], None] | None = None,
        max_body_bytes: int = 0,
    ) -> None:
        self.digests = [digest(key) for key in keys if key]
        self.max_body_bytes = max_body_bytes  # 0: from the model's context once loaded
        self.deployment = deployment
        self.settings = settings or RequestSettings()
        self.loader = loader
        self.max_batch_prompts = max_batch_prompts
        self.batch_window_s = batch_window_s
        self.on_fatal = on_fatal
        self.stats = Stats()
        self.engine: Engine | None = None
        self.batcher: Batcher | None = None
        self.load_error = ""
        self.slots: asyncio.Semaphore | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start_loading(self) -> None:
        """Load the model in a thread, so the probes answer while it loads."""
        if self.loader is None:
            return
        threading.Thread(target=self._load, name="load-model", daemon=True).start()

    def _load(self) -> None:
        assert self.loader is not None
        try:
            engine = self.loader()
        except Exception as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            self.load_error = f"the model could not be loaded: {reason}"
            log.exception("the model could not be loaded")
            if self.on_fatal:
                self.on_fatal(self.load_error)
            return
        batcher = Batcher(
            engine,
            self.stats,
            max_batch_prompts=self.max_batch_prompts,
            window_s=self.batch_window_s,
        )
        batcher.start()
        if not self.max_body_bytes:
            self.max_body_bytes = body_limit(engine.context, MAX_INPUTS)
        self.engine, self.batcher = engine, batcher
        log.info("ready: deployment %s serves requests", self.deployment)

    def shutdown(self) -> None:
        if self.batcher is not None:
            self.batcher.stop()

    @property
    def ready(self) -> bool:
        return self.batcher is not None


def prepare(engine: Engine, inputs: list, max_new_tokens: int) -> list:
    """The token ids of a request's inputs; BadRequest when one cannot be served. In a
    worker thread: a long input costs its own request, not the event loop."""
    return [engine.encode(engine.render(item), max_new_tokens) for item in inputs]


def create_app(state: ServerState) -> Starlette:
    settings = state.settings

    async def liveness(request: Request) -> Response:
        return JSONResponse({"status": "alive", "deployment": state.deployment})

    async def readiness(request: Request) -> Response:
        if state.ready:
            return JSONResponse({"status": "ready", "deployment": state.deployment})
        if state.load_error:
            return error(503, state.load_error)
        return JSONResponse({"status": "loading"}, status_code=503, headers={"Retry-After": "5"})

    async def stats(request: Request) -> Response:
        if not key_matches(request.headers.get("authorization"), state.digests):
            return unauthorized()
        return JSONResponse(
            {**asdict(state.stats), "deployment": state.deployment, "ready": state.ready}
        )

    async def score(request: Request) -> Response:
        if not key_matches(request.headers.get("authorization"), state.digests):
            state.stats.unauthorized += 1
            return unauthorized()
        engine, batcher = state.engine, state.batcher
        if engine is None or batcher is None or state.slots is None:
            message = state.load_error or "the model is still loading; retry in a few seconds"
            return error(503, message, **{"Retry-After": "5"})
        try:
            raw = await read_body(request, state.max_body_bytes)
        except BodyRefused as refused:
            state.stats.bad_requests += 1
            return error(refused.status, str(refused))
        stream = "text/event-stream" in request.headers.get("accept", "")
        try:
            parsed = parse_score_request(loads(raw))
            if stream and len(parsed.inputs) != 1:
                count = len(parsed.inputs)
                raise BadRequest(f"a streamed request takes exactly one input, not {count}")
            del raw
            rows = await asyncio.to_thread(
                prepare, engine, parsed.inputs, parsed.generation["max_new_tokens"]
            )
        except BadRequest as problem:
            state.stats.bad_requests += 1
            return error(400, str(problem))

        try:
            await asyncio.wait_for(state.slots.acquire(), timeout=settings.max_queue_wait_ms / 1000)
        except TimeoutError:
            state.stats.rejected_busy += 1
            return error(
                429,
                f"deployment {state.deployment} is busy: "
                f"{settings.max_concurrent_requests_per_instance} requests in flight and none "
                f"finished within {settings.max_queue_wait_ms} ms; retry later",
                **{"Retry-After": "1"},
            )
        state.stats.requests += 1
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        slots = state.slots

        def done(answers: list[Answer] | None, failure: JobFailed | None) -> None:
            # In the worker thread; the place is given back once the model is done.
            loop.call_soon_threadsafe(slots.release)
            item = ("error", failure) if failure is not None else ("done", answers)
            loop.call_soon_threadsafe(events.put_nowait, item)

        def emit(text: str) -> None:
            loop.call_soon_threadsafe(events.put_nowait, ("delta", text))

        job = Job(rows, parsed.key, parsed.generation, done=done, emit=emit if stream else None)
        try:
            batcher.submit(job)
        except JobFailed as failure:
            slots.release()
            return error(failure.status, str(failure))
        deadline = loop.time() + settings.request_timeout_ms / 1000
        headers = {DEPLOYMENT_HEADER: state.deployment}

        async def next_event() -> tuple[str, Any]:
            try:
                return await asyncio.wait_for(events.get(), max(deadline - loop.time(), 0))
            except TimeoutError:
                job.cancelled = True
                state.stats.timed_out += 1
                return "timeout", None

        timeout_message = (
            f"the request took longer than deployment {state.deployment}'s request timeout "
            f"({settings.request_timeout_ms} ms)"
        )
        first = await next_event()
        kind, value = first
        if kind == "timeout":
            return error(504, timeout_message)
        if kind == "error":
            return error(value.status, str(value))
        if not stream:
            facts = {
                TOKENS_HEADER: ",".join(str(answer.tokens) for answer in value),
                FINISH_HEADER: ",".join("stop" if a.finished else "length" for a in value),
            }
            return JSONResponse([answer.text for answer in value], headers={**headers, **facts})

        async def body_events() -> AsyncIterator[str]:
            item = first
            try:
                while True:
                    kind, value = item
                    if kind == "delta":
                        yield sse({"delta": value})
                    elif kind == "done":
                        yield sse("[DONE]")
                        return
                    else:
                        message = timeout_message if kind == "timeout" else str(value)
                        yield sse({"error": message}, event="error")
                        return
                    item = await next_event()
            finally:
                job.cancelled = True  # a client that left stops its row; harmless when done

        return StreamingResponse(
            body_events(), media_type="text/event-stream", headers={**headers, **SSE_HEADERS}
        )

    async def lifespan_context(app: Starlette) -> AsyncIterator[None]:
        state.slots = asyncio.Semaphore(settings.max_concurrent_requests_per_instance)
        state.start_loading()
        try:
            yield
        finally:
            await asyncio.to_thread(state.shutdown)

    from contextlib import asynccontextmanager

    return Starlette(
        routes=[
            Route("/", liveness),
            Route("/liveness", liveness),
            Route("/readiness", readiness),
            Route("/stats", stats),
            Route("/score", score, methods=["POST"]),
        ],
        lifespan=asynccontextmanager(lifespan_context),
    )
