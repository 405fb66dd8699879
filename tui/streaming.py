"""Run an async stream to its end on a thread worker's own event loop: one way for every tab.

The backend's log stream and the chat service's answer are async iterators. The UI's loop
must never wait on them (a slow import, a blocking call inside a service, a sign-in), so a
thread worker runs each under its own `asyncio.run`. While the stream runs, a tick every
`tick_s` calls `on_tick` (e.g. hand batched lines to the UI) and, once the worker is
cancelled (another job selected, Esc in the chat), cancels the stream at once instead of at
its next item. Call it from inside a `@work(thread=True)` method only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from textual.worker import get_current_worker

ItemT = TypeVar("ItemT")
TICK_S = 0.05


def run_stream(
    open_stream: Callable[[], AsyncIterator[ItemT]],
    on_item: Callable[[ItemT], object],
    *,
    on_tick: Callable[[], object] | None = None,
    tick_s: float = TICK_S,
) -> bool:
    """Consume `open_stream()` with `on_item`; True when it ended, False when the worker was
    cancelled. The stream's own exceptions propagate to the caller (the worker)."""
    worker = get_current_worker()

    async def consume() -> None:
        stream = open_stream()
        try:
            async for item in stream:
                on_item(item)
        finally:
            close = getattr(stream, "aclose", None)
            if close is not None:
                await close()

    async def main() -> None:
        task = asyncio.ensure_future(consume())
        while not task.done():
            await asyncio.wait({task}, timeout=tick_s)
            if on_tick is not None:
                on_tick()
            if worker.is_cancelled and not task.done():
                task.cancel()
        task.result()  # the stream's error, or CancelledError

    try:
        asyncio.run(main())
    except asyncio.CancelledError:
        return False
    return True
