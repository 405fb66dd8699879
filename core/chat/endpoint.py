"""Talking HTTP for the chat routes: the scoring endpoint directly, and a served flow.

The endpoint contract is Azure ML's (see docs/architecture.md): the same request the flow's
tool sends, the same retries (429/503, `Retry-After` honoured) and the same one-sentence
failures naming the URL and never the key. `flow/` cannot import this module (it is served
on its own), so the two carry their own copy of the small protocol; the tests hold both to
the same behaviour.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.errors import PhiopsError

if TYPE_CHECKING:  # httpx costs ~100 ms to import; the TUI imports this module at start
    import httpx

RETRY_STATUSES = (429, 503)
DEFAULT_TIMEOUT_S = 120.0
# Prompt flow's serving wraps a tool's exception: "Execution failure in 'chat': (Kind) text".
_PF_WRAPPER = re.compile(r"^Execution failure in '[^']*': \((\w+)\) ")


class ChatError(PhiopsError):
    """A question that got no answer: one sentence naming where it was sent."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class EndpointTarget:
    """A scoring URI and its key; `repr` leaves the key out."""

    url: str
    key: str = field(repr=False)
    deployment: str = ""
    timeout_s: float = DEFAULT_TIMEOUT_S


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 3
    base_delay_s: float = 0.5
    max_wait_s: float = 20.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_wait_s)
        return min(self.base_delay_s * (2**attempt), self.max_wait_s)


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds: a number or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(float(value.strip()), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def connect_reason(error: BaseException) -> str:
    """Why a connection failed, in the OS's words ("Connection refused"), not the library's."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and (seen.errno or seen.strerror):
            return os.strerror(seen.errno) if seen.errno else str(seen.strerror)
        seen = seen.__cause__ or seen.__context__
    return str(error) or type(error).__name__


def request_body(messages: list[dict[str, str]], params: Any) -> dict[str, Any]:
    """The Azure ML request for one chat input (greedy when the temperature is 0)."""
    sampling = float(params.temperature) > 0
    body: dict[str, Any] = {
        "max_new_tokens": int(params.max_new_tokens),
        "do_sample": sampling,
        "return_full_text": False,
    }
    if sampling:
        body |= {"temperature": float(params.temperature), "top_p": float(params.top_p)}
    return {"input_data": [messages], "params": body}


def _short(text: str, secret: str = "") -> str:
    text = " ".join(text.split())
    if secret:
        text = text.replace(secret, "***")
    return text[:300]


def _error_text(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if isinstance(data, dict):
        inner = data.get("error", data)
        if isinstance(inner, dict):
            inner = inner.get("message") or inner.get("detail") or json.dumps(inner)
        return str(inner)
    return text


def unwrap_flow_error(message: str) -> str:
    """The tool's own sentence from Prompt flow's "Execution failure in 'chat': (X) ..."."""
    return _PF_WRAPPER.sub("", message.strip(), count=1)


def status_error(status: int, where: str, detail: str, retries: int) -> ChatError:
    """One sentence for a refused request; `where` names the URL ("the endpoint at …")."""
    suffix = f": {detail}" if detail else ""
    if status in (401, 403):
        text = (
            f"{where} refused the key (HTTP {status}); check the endpoint key "
            "(`phiops endpoints keys`, or PHIOPS_ENDPOINT_KEY)"
        )
    elif status == 404:
        text = f"{where} was not found (HTTP 404); check the scoring URL{suffix}"
    elif status == 429:
        text = f"{where} is still busy (HTTP 429) after {retries} retries{suffix}"
    elif status == 503:
        text = f"{where} is not ready (HTTP 503) after {retries} retries{suffix}"
    elif status == 504:
        text = f"{where} timed out on the request (HTTP 504){suffix}"
    elif status >= 500:
        text = f"{where} failed (HTTP {status}){suffix}"
    else:
        text = f"{where} rejected the request (HTTP {status}){suffix}"
    return ChatError(text, status=status)


async def open_stream(
    client: httpx.AsyncClient,
    url: str,
    *,
    body: dict[str, Any],
    headers: dict[str, str],
    where: str,
    timeout_s: float,
    secret: str = "",
    policy: RetryPolicy | None = None,
    relay: bool = False,
) -> httpx.Response:
    """POST and return the open 200 response, retrying 429/503; ChatError otherwise.

    `relay`: the server is a served flow whose error text is the tool's own sentence (about
    the endpoint behind it); say that sentence, and through which flow, instead of ours.
    """
    import httpx

    policy = policy or RetryPolicy()
    timeout = httpx.Timeout(timeout_s, connect=min(10.0, timeout_s))
    attempt = connect_failures = 0
    while True:
        request = client.build_request("POST", url, json=body, headers=headers, timeout=timeout)
        try:
            response = await client.send(request, stream=True)
        except httpx.ConnectError as error:
            connect_failures += 1
            if connect_failures <= 1:
                await asyncio.sleep(policy.base_delay_s)
                continue
            raise ChatError(f"cannot reach {where} ({connect_reason(error)})") from None
        except httpx.TimeoutException:
            raise ChatError(f"{where} did not answer within {timeout_s:g} s") from None
        except httpx.HTTPError as error:
            raise ChatError(f"the request to {where} failed ({type(error).__name__})") from None
        if response.status_code == 200:
            return response
        status = response.status_code
        if status in RETRY_STATUSES and attempt < policy.retries:
            wait = policy.delay(attempt, retry_after_seconds(response.headers.get("Retry-After")))
            await response.aclose()
            attempt += 1
            await asyncio.sleep(wait)
            continue
        try:
            detail = _short(unwrap_flow_error(_error_text(await response.aread())), secret)
        except httpx.HTTPError:
            detail = ""
        await response.aclose()
        if relay and detail and status != 404:
            raise ChatError(f"{detail} (through {where})", status=status)
        raise status_error(status, where, detail, attempt)


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """(event, data) for each server-sent event of an open response."""
    event, data = "message", []
    async for line in response.aiter_lines():
        if line.startswith(":"):
            continue
        if line:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
            continue
        if data:
            yield event, "\n".join(data)
        event, data = "message", []
    if data:
        yield event, "\n".join(data)


async def _guarded(pieces: AsyncIterator[str], where: str, timeout_s: float) -> AsyncIterator[str]:
    import httpx

    try:
        async for piece in pieces:
            yield piece
    except httpx.TimeoutException:
        raise ChatError(f"{where} stopped sending within {timeout_s:g} s") from None
    except httpx.HTTPError as error:
        raise ChatError(f"the stream from {where} broke ({type(error).__name__})") from None


async def endpoint_pieces(
    client: httpx.AsyncClient,
    target: EndpointTarget,
    messages: list[dict[str, str]],
    params: Any,
    *,
    policy: RetryPolicy | None = None,
) -> AsyncIterator[str]:
    """The answer from the scoring endpoint, piece by piece (SSE), or whole (JSON)."""
    where = f"the endpoint at {target.url}"
    headers = {
        "Authorization": f"Bearer {target.key}",
        "Accept": "text/event-stream, application/json",
    }
    if target.deployment:
        headers["azureml-model-deployment"] = target.deployment
    response = await open_stream(
        client,
        target.url,
        body=request_body(messages, params),
        headers=headers,
        where=where,
        timeout_s=target.timeout_s,
        secret=target.key,
        policy=policy,
    )
    try:
        if "text/event-stream" not in response.headers.get("content-type", ""):
            data = _json(await response.aread(), where)
            if isinstance(data, dict):
                data = data.get("output") or data.get("outputs") or data.get("result")
            if not (isinstance(data, list) and data and isinstance(data[0], str)):
                raise ChatError(f"{where} answered JSON that is not a list of strings")
            yield data[0]
            return
        async for piece in _guarded(_endpoint_sse(response, where), where, target.timeout_s):
            yield piece
    finally:
        await response.aclose()


async def _endpoint_sse(response: httpx.Response, where: str) -> AsyncIterator[str]:
    async for event, payload in sse_events(response):
        if payload == "[DONE]":
            return
        data = _loads(payload)
        if event == "error":
            message = data.get("error") if isinstance(data, dict) else data
            raise ChatError(f"{where} failed while answering: {message}")
        piece = str(data.get("delta") or "") if isinstance(data, dict) else str(data)
        if piece:
            yield piece
    raise ChatError(f"the stream from {where} ended before the answer was complete")


async def served_flow_pieces(
    client: httpx.AsyncClient,
    base_url: str,
    inputs: dict[str, Any],
    *,
    key: str = "",
    timeout_s: float = DEFAULT_TIMEOUT_S,
    policy: RetryPolicy | None = None,
) -> AsyncIterator[str]:
    """The answer from a served flow at `base_url` (`phiops flow serve`, which wants its
    `key`, or a `pf flow serve` of the user's), streamed (SSE)."""
    url = base_url.rstrip("/")
    url = url if url.endswith("/score") else url + "/score"
    where = f"the served flow at {url}"
    headers = {"Accept": "text/event-stream, application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    response = await open_stream(
        client,
        url,
        body=inputs,
        headers=headers,
        where=where,
        timeout_s=timeout_s,
        secret=key,
        policy=policy,
        relay=True,
    )
    try:
        if "text/event-stream" not in response.headers.get("content-type", ""):
            data = _json(await response.aread(), where)
            if not isinstance(data, dict) or not isinstance(data.get("answer"), str):
                raise ChatError(f"{where} answered JSON without an 'answer' text")
            yield data["answer"]
            return
        async for piece in _guarded(_served_sse(response, where), where, timeout_s):
            yield piece
    finally:
        await response.aclose()


async def _served_sse(response: httpx.Response, where: str) -> AsyncIterator[str]:
    # Prompt flow sends `data: {"answer": piece}` per piece and closes the stream at the end
    # (no end marker); a tool failure mid-answer breaks the chunked body, caught as HTTPError.
    async for _event, payload in sse_events(response):
        data = _loads(payload)
        if isinstance(data, dict) and "error" in data:
            raise ChatError(f"{where} failed while answering: {_error_text(payload.encode())}")
        if isinstance(data, dict) and data.get("answer"):
            yield str(data["answer"])


def _loads(payload: str) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return payload


def _json(raw: bytes, where: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise ChatError(f"{where} answered something that is not JSON") from None
