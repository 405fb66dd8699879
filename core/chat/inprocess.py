"""The chat flow run by Prompt flow's own executor inside this process.

`promptflow.core.Flow.invoke` builds a new executor (tool loading, validation: tens of
milliseconds) on every call and can only pass connections the flow names; this module
builds one `FlowExecutor` per endpoint, hands the tool the endpoint as a `CustomConnection`
(`node_override` on the chat node's `connection` input — the key stays in memory, never in
the environment or a file) and keeps it for the next question. The executor is synchronous;
`iter_in_thread` runs it in a worker thread and hands the answer's pieces to asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import core
from core.chat.endpoint import ChatError, EndpointTarget, unwrap_flow_error

FLOW_DIR = Path(core.__file__).resolve().parent.parent / "flow"
FLOW_FILE = "flow.dag.yaml"
CHAT_NODE = "chat"
CONNECTION_NAME = "phiops_endpoint"


# Prompt flow builds an Azure Monitor log exporter on import (for its telemetry) even when
# telemetry is off, and that exporter polls a Microsoft settings host from a thread, logging
# a warning to stderr each time it fails; this switch (the exporter's own) stops the polling.
QUIET_ENV = {"APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true", "PF_DISABLE_TRACING": "true"}


def _quiet_promptflow() -> None:
    """The executor logs every node to stdout; the CLI's JSON and the TUI's screen need it not."""
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    from promptflow._utils import logger_utils

    for name in ("flow_logger", "bulk_logger", "logger", "service_logger"):
        found = getattr(logger_utils, name, None)
        if isinstance(found, logging.Logger):
            found.setLevel(logging.CRITICAL + 1)


def connection_dict(target: EndpointTarget) -> dict[str, Any]:
    """The endpoint as the executor's connection record (a CustomConnection)."""
    configs = {"endpoint_url": target.url}
    if target.deployment:
        configs["deployment"] = target.deployment
    return {
        "type": "CustomConnection",
        "module": "promptflow.connections",
        "value": {**configs, "endpoint_key": target.key},
        "secret_keys": ["endpoint_key"],
    }


class InProcessFlow:
    """One executor of `flow_dir` bound to one endpoint; thread-safe to call."""

    def __init__(self, target: EndpointTarget, flow_dir: Path = FLOW_DIR) -> None:
        self.target = target
        self.flow_dir = Path(flow_dir)
        self._executor: Any = None
        self._lock = threading.Lock()

    def executor(self) -> Any:
        with self._lock:
            if self._executor is None:
                self._executor = self._build()
            return self._executor

    def _build(self) -> Any:
        _quiet_promptflow()
        from promptflow.executor import FlowExecutor

        flow_file = self.flow_dir / FLOW_FILE
        if not flow_file.is_file():
            raise ChatError(f"the chat flow is missing: {flow_file} does not exist")
        try:
            return FlowExecutor.create(
                flow_file,
                {CONNECTION_NAME: connection_dict(self.target)},
                working_dir=self.flow_dir,
                node_override={f"{CHAT_NODE}.connection": CONNECTION_NAME},
                raise_ex=True,
                env_exporter_setup=False,
            )
        except Exception as error:  # promptflow's load errors: one sentence, not a traceback
            raise ChatError(f"the chat flow in {self.flow_dir} cannot be loaded: {error}") from None

    def answer_pieces(self, inputs: dict[str, Any]) -> Iterator[str]:
        """Run the flow on `inputs`; the `answer` output piece by piece (blocking)."""
        executor = self.executor()
        try:
            result = executor.exec_line(inputs, allow_generator_output=True)
        except Exception as error:
            raise ChatError(flow_error_message(error)) from None
        answer = (result.output or {}).get("answer")
        if isinstance(answer, str):
            yield answer
            return
        if answer is None:
            raise ChatError("the chat flow gave no answer")
        try:
            for piece in answer:
                if piece:
                    yield str(piece)
        except Exception as error:
            raise ChatError(flow_error_message(error)) from None
        finally:
            with contextlib.suppress(Exception):
                answer.close()


def flow_error_message(error: BaseException) -> str:
    """The tool's own sentence (e.g. the endpoint's), not Prompt flow's wrapping of it."""
    inner: BaseException = error
    seen = set()
    while id(inner) not in seen:
        seen.add(id(inner))
        nested = getattr(inner, "inner_exception", None) or inner.__cause__
        if nested is None:
            break
        inner = nested
    text = unwrap_flow_error(str(inner) or type(inner).__name__)
    return text.rstrip(".")


_DONE = object()


async def iter_in_thread(make: Callable[[], Iterator[str]]) -> AsyncIterator[str]:
    """Run a blocking iterator in a worker thread and yield its items on this event loop.

    Leaving early (the consumer stops, or is cancelled) tells the worker to stop at its
    next item and close the iterator, which closes the HTTP stream under it.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    stop = threading.Event()

    def post(kind: str, value: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is listening
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))

    def work() -> None:
        try:
            iterator = make()
            try:
                for item in iterator:
                    if stop.is_set():
                        break
                    post("item", item)
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:
                    with contextlib.suppress(Exception):
                        close()
        except BaseException as error:
            post("error", error)
        else:
            post("end", _DONE)

    thread = threading.Thread(target=work, name="phiops-chat-flow", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = await queue.get()
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        stop.set()
