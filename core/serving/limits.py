"""What a client may cost the scoring server and the gateway before it is refused.

- **Body size**: a body over the limit gets 413 before any of it is parsed: at once when
  its `Content-Length` says so, else as soon as the bytes read pass the limit (chunked).
  The limit comes from the model's context (`body_limit`), so a body that cannot be a
  request the model could take is never held in memory, and is configurable.
- **Body time**: a body that does not arrive within `BODY_TIMEOUT_S` gets 408.
- **Headers**: a connection must finish its request line and headers within
  `HEADER_TIMEOUT_S` of being opened (or of its last response), else it is closed; uvicorn
  only times out idle keep-alive connections, so one that sends a header byte now and then
  would hold its place for ever.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.requests import Request

HEADER_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 5.0
BODY_TIMEOUT_S = 30.0
# The most bytes one token of a request can take, JSON-escaped, with room for chat-message
# structure: plain English is ~4 bytes a token.
BYTES_PER_TOKEN = 8
MIN_BODY_BYTES = 64 * 1024
DEFAULT_CONTEXT = 4096


def body_limit(context_tokens: int, max_inputs: int) -> int:
    """The largest body a model with this context could need: `max_inputs` prompts filling
    the context, at `BYTES_PER_TOKEN` each (1 MiB for a 4k-token model and 32 inputs)."""
    context = context_tokens if context_tokens > 0 else DEFAULT_CONTEXT
    return max(MIN_BODY_BYTES, max_inputs * context * BYTES_PER_TOKEN)


class BodyRefused(Exception):
    """The body was refused before it was parsed; `status` and the sentence say why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def read_body(request: Request, limit: int, timeout_s: float = BODY_TIMEOUT_S) -> bytes:
    """The request's body, or BodyRefused (413 too large, 408 too slow, 400 cut short)."""
    from starlette.requests import ClientDisconnect

    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise BodyRefused(400, "the Content-Length header is not a number") from None
        if size > limit:
            raise BodyRefused(413, too_large(size, limit))

    async def collect() -> bytes:
        parts: list[bytes] = []
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise BodyRefused(413, too_large(received, limit, at_least=True))
            parts.append(chunk)
        return b"".join(parts)

    try:
        return await asyncio.wait_for(collect(), timeout_s)
    except TimeoutError:
        raise BodyRefused(408, f"the body did not arrive within {timeout_s:g} s") from None
    except ClientDisconnect:
        raise BodyRefused(400, "the client closed the connection before the body ended") from None


def too_large(size: int, limit: int, *, at_least: bool = False) -> str:
    return (
        f"the body is {'more than ' if at_least else ''}{size} bytes; this endpoint takes at "
        f"most {limit} bytes (a request the model's context could hold)"
    )


def protocol_class() -> type:
    """uvicorn's h11 protocol with a deadline for the request line and headers."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    log = logging.getLogger("phiops.serving")

    class H11WithHeaderTimeout(H11Protocol):
        header_timeout_s = HEADER_TIMEOUT_S
        _header_timer: Any = None

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._expired)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _expired(self) -> None:
            self._header_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                log.info("closing a connection whose request headers took too long")
                self.transport.close()

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state is not h11.IDLE:
                self._disarm()  # the request line and headers are in

        def on_response_complete(self) -> None:
            self._arm()  # the next request on this connection gets the same deadline...
            super().on_response_complete()  # ...disarmed here if it is already pipelined in

    return H11WithHeaderTimeout
