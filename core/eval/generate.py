"""Answers for the evaluation set from a scoring endpoint, as many at once as it serves.

Each request is the one the chat flow's tool sends (`{"input_data": [messages], "params":
...}`, greedy when the temperature is 0) to the deployment's own contract, with the
`azureml-model-deployment` header when one deployment is named. Up to `concurrency`
requests are in flight (the deployment's `max_concurrent_requests_per_instance`); a 429 or
503 waits for `Retry-After` and is sent again. Every answer is handed to `on_row` as soon
as it arrives, so an interrupted evaluation keeps what it got.

A row the endpoint refuses on its own account (HTTP 400: e.g. a prompt longer than the
context) is recorded as failed and counted; anything that says the target itself is not
usable (a refused key, not found, 5xx, unreachable, retries exhausted) stops the run with
one sentence.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from core.chat.endpoint import ChatError, RetryPolicy, open_stream
from core.eval.data import Case
from core.serving.params import FINISH_HEADER, TOKENS_HEADER

DEPLOYMENT_HEADER = "azureml-model-deployment"

# Under a full evaluation the endpoint is busy on purpose: wait longer for a place than chat.
EVAL_RETRIES = RetryPolicy(retries=8, base_delay_s=0.5, max_wait_s=30.0)


@dataclass(frozen=True)
class Target:
    """Where the requests go. `repr` leaves the key out."""

    url: str
    key: str = field(repr=False)
    deployment: str = ""
    concurrency: int = 3
    timeout_s: float = 180.0


@dataclass(frozen=True)
class Params:
    """The flow's generation parameters; greedy by default, for reproducible scores."""

    temperature: float = 0.0
    max_new_tokens: int = 256
    top_p: float = 0.9

    def body(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        """The chat tool's request (flow/chat_tool.py:build_body) for one conversation."""
        sampling = float(self.temperature) > 0
        params: dict[str, Any] = {
            "max_new_tokens": int(self.max_new_tokens),
            "do_sample": sampling,
            "return_full_text": False,
        }
        if sampling:
            params |= {"temperature": float(self.temperature), "top_p": float(self.top_p)}
        return {"input_data": [messages], "params": params}


@dataclass
class Generated:
    """One answer and how it was produced (tokens/finished: None when not known)."""

    case: Case
    answer: str = ""
    latency_s: float | None = None
    tokens: int | None = None
    finished: bool | None = None
    deployment: str = ""
    error: str = ""


class Stopped(Exception):
    """The evaluation was asked to stop (the answers so far are kept)."""


class TargetFailed(ChatError):
    """The target cannot answer at all; the evaluation stops (rows done are kept)."""


def _first(header: str | None) -> str:
    return (header or "").split(",")[0].strip()


def read_answer(response_json: Any, headers: Any) -> tuple[str, int | None, bool | None]:
    """(answer, generated tokens, finished) from a JSON answer and its headers."""
    data = response_json
    if isinstance(data, dict):  # some servers wrap the list
        data = data.get("output") or data.get("outputs") or data.get("result")
    if not (isinstance(data, list) and data and isinstance(data[0], str)):
        raise TargetFailed("the endpoint answered JSON that is not a list of strings")
    tokens_text, finish = _first(headers.get(TOKENS_HEADER)), _first(headers.get(FINISH_HEADER))
    tokens = int(tokens_text) if tokens_text.isdigit() else None
    finished = {"stop": True, "length": False}.get(finish)
    return data[0], tokens, finished


async def ask_one(client: Any, target: Target, case: Case, params: Params) -> Generated:
    """One request; a per-row refusal (HTTP 400/413/422) is a failed row, not an exception."""
    headers = {"Authorization": f"Bearer {target.key}", "Accept": "application/json"}
    if target.deployment:
        headers[DEPLOYMENT_HEADER] = target.deployment
    where = f"the endpoint at {target.url}"
    started = time.perf_counter()
    try:
        response = await open_stream(
            client,
            target.url,
            body=params.body(case.messages()),
            headers=headers,
            where=where,
            timeout_s=target.timeout_s,
            secret=target.key,
            policy=EVAL_RETRIES,
        )
    except ChatError as error:
        if error.status in (400, 413, 422):
            return Generated(case, error=str(error))
        raise TargetFailed(str(error), status=error.status) from None
    try:
        raw = await response.aread()
    except Exception as error:
        raise TargetFailed(f"the answer from {where} broke ({type(error).__name__})") from None
    finally:
        await response.aclose()
    latency = time.perf_counter() - started
    import json

    try:
        data = json.loads(raw)
    except ValueError:
        raise TargetFailed(f"{where} answered something that is not JSON") from None
    answer, tokens, finished = read_answer(data, response.headers)
    return Generated(
        case,
        answer=answer,
        latency_s=latency,
        tokens=tokens,
        finished=finished,
        deployment=response.headers.get(DEPLOYMENT_HEADER, ""),
    )


async def generate(
    cases: Iterable[Case],
    target: Target,
    params: Params,
    on_row: Callable[[Generated], None],
    *,
    transport: Any = None,
    stop: threading.Event | None = None,
) -> float:
    """Answer every case, `target.concurrency` at a time; the seconds it took.

    `on_row` is called in this event loop as each answer arrives. The first TargetFailed
    stops the other requests and is raised. `stop` (set from another thread, e.g. a UI)
    cancels the requests in flight: Stopped is raised."""
    import httpx

    pending: asyncio.Queue[Case] = asyncio.Queue()
    for case in cases:
        pending.put_nowait(case)
    workers = max(1, min(target.concurrency, pending.qsize()))
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    started = time.perf_counter()
    async with httpx.AsyncClient(trust_env=False, limits=limits, transport=transport) as client:

        async def work() -> None:
            while True:
                try:
                    case = pending.get_nowait()
                except asyncio.QueueEmpty:
                    return
                on_row(await ask_one(client, target, case, params))

        async def watch() -> None:
            while not (stop is not None and stop.is_set()):
                await asyncio.sleep(0.05)
            raise Stopped()

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(work()) for _ in range(workers)]
            watcher = group.create_task(watch()) if stop is not None else None
            if watcher is not None:
                await asyncio.wait(tasks)
                watcher.cancel()
    return time.perf_counter() - started


def run_generation(
    cases: list[Case],
    target: Target,
    params: Params,
    on_row: Callable[[Generated], None],
    *,
    transport: Any = None,
    stop: threading.Event | None = None,
) -> float:
    """`generate` on its own event loop (blocking); the first failure comes out unwrapped
    (a TargetFailed before anything else)."""
    try:
        return asyncio.run(generate(cases, target, params, on_row, transport=transport, stop=stop))
    except BaseExceptionGroup as group:
        leaves = list(_leaves(group))
        first = next((e for e in leaves if isinstance(e, TargetFailed)), leaves[0])
        raise first from None


def _leaves(group: BaseExceptionGroup) -> Iterable[BaseException]:
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            yield from _leaves(error)
        else:
            yield error
