"""The flow's one tool: send the conversation to the scoring endpoint and return the answer.

The endpoint speaks the Azure ML online-endpoint contract (`POST /score`, `Authorization:
Bearer KEY`, `{"input_data": [[messages]], "params": {...}}` → a JSON list of strings). The
tool asks for `text/event-stream`; an endpoint that streams answers with SSE deltas and the
tool returns a generator of them, so `pf flow serve` streams to clients that ask for it (and
joins the pieces for those that do not). An endpoint that does not stream answers JSON, and
the generator yields the whole answer at once.

The URL and key come from a Prompt flow `CustomConnection` (`endpoint_url`, secret
`endpoint_key`, optional `deployment`) or from `PHIOPS_ENDPOINT_URL` / `PHIOPS_ENDPOINT_KEY`
(/ `PHIOPS_ENDPOINT_DEPLOYMENT`) — never from a file here. Errors name the URL, never the key.

This folder is served as it is, so it imports only promptflow, httpx and the standard library.
"""

import email.utils
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from promptflow.connections import CustomConnection
from promptflow.core import tool

URL_ENV = "PHIOPS_ENDPOINT_URL"
KEY_ENV = "PHIOPS_ENDPOINT_KEY"
DEPLOYMENT_ENV = "PHIOPS_ENDPOINT_DEPLOYMENT"
TIMEOUT_ENV = "PHIOPS_ENDPOINT_TIMEOUT"
DEFAULT_TIMEOUT_S = 120.0
RETRY_STATUSES = (429, 503)
USER_AGENT = "phiops-flow/1"


class EndpointError(Exception):
    """The endpoint could not give an answer; the message is one sentence naming its URL."""

    def __init__(self, message: str, *, status: int | None = None, url: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.url = url


@dataclass(frozen=True)
class Endpoint:
    """Where to send requests. `repr` leaves the key out so it never reaches a log."""

    url: str
    key: str = field(repr=False)
    deployment: str = ""
    timeout_s: float = DEFAULT_TIMEOUT_S


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait when the endpoint says "busy" (429) or "not ready" (503).

    The wait is the server's `Retry-After` when it sends one (capped at `max_wait_s`), else an
    exponential backoff from `base_delay_s`.
    """

    retries: int = 3
    base_delay_s: float = 0.5
    max_wait_s: float = 20.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_wait_s)
        return min(self.base_delay_s * (2**attempt), self.max_wait_s)


def _config(connection: Any, name: str) -> str:
    """A value of a CustomConnection, from its secrets or its configs; "" when absent."""
    if connection is None:
        return ""
    for part in ("secrets", "configs"):
        values = getattr(connection, part, None) or {}
        if values.get(name):
            return str(values[name])
    try:
        return str(connection[name] or "")
    except (KeyError, TypeError):
        return ""


def resolve_endpoint(connection: Any = None, environ: dict[str, str] | None = None) -> Endpoint:
    """The endpoint from the connection, else the environment; one sentence when missing."""
    env = os.environ if environ is None else environ
    url = _config(connection, "endpoint_url") or env.get(URL_ENV, "")
    key = _config(connection, "endpoint_key") or env.get(KEY_ENV, "")
    deployment = _config(connection, "deployment") or env.get(DEPLOYMENT_ENV, "")
    if not url:
        raise EndpointError(
            f"no endpoint URL: set {URL_ENV} or give the flow a connection with endpoint_url"
        )
    if not url.startswith(("http://", "https://")):
        raise EndpointError(f"the endpoint URL {url!r} must start with http:// or https://")
    if not key:
        raise EndpointError(
            f"no key for the endpoint at {url}: set {KEY_ENV} or give the flow a connection "
            "with the secret endpoint_key"
        )
    try:
        timeout = float(env.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT_S)
    except ValueError:
        timeout = DEFAULT_TIMEOUT_S
    return Endpoint(url=url, key=key, deployment=deployment, timeout_s=timeout)


def build_messages(
    question: str, chat_history: list | None, system: str = ""
) -> list[dict[str, str]]:
    """An optional system message, history items `{"inputs": {"question"}, "outputs":
    {"answer"}}`, then the question."""
    messages: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    for item in chat_history or []:
        if not isinstance(item, dict):
            continue
        asked = (item.get("inputs") or {}).get("question")
        answered = (item.get("outputs") or {}).get("answer")
        if asked:
            messages.append({"role": "user", "content": str(asked)})
        if answered:
            messages.append({"role": "assistant", "content": str(answered)})
    messages.append({"role": "user", "content": question})
    return messages


def build_body(
    messages: list[dict[str, str]], temperature: float, max_new_tokens: int, top_p: float
) -> dict[str, Any]:
    """The Azure ML request: one chat input; greedy decoding when the temperature is 0."""
    sampling = float(temperature) > 0
    params: dict[str, Any] = {
        "max_new_tokens": int(max_new_tokens),
        "do_sample": sampling,
        "return_full_text": False,
    }
    if sampling:
        params |= {"temperature": float(temperature), "top_p": float(top_p)}
    return {"input_data": [messages], "params": params}


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` as seconds: a number, or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def connect_reason(error: BaseException) -> str:
    """Why a connection failed, in the OS's words ("Connection refused"), not the library's."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and (seen.errno or seen.strerror):
            return os.strerror(seen.errno) if seen.errno else str(seen.strerror)
        seen = seen.__cause__ or seen.__context__
    return str(error) or type(error).__name__


_client: httpx.Client | None = None
_client_lock = threading.Lock()


def shared_client() -> httpx.Client:
    """One pooled client per process: building one costs milliseconds (its SSL context)."""
    global _client
    with _client_lock:
        if _client is None or _client.is_closed:
            _client = httpx.Client(headers={"User-Agent": USER_AGENT}, trust_env=False)
        return _client


def _detail(response: httpx.Response, endpoint: Endpoint) -> str:
    """The server's own error sentence, short, with the key scrubbed should it echo it."""
    try:
        text = response.read().decode("utf-8", "replace")
    except httpx.HTTPError:
        return ""
    try:
        data = json.loads(text)
        if isinstance(data, dict):
            text = str(data.get("error") or data.get("message") or data.get("detail") or text)
    except ValueError:
        pass
    text = " ".join(text.split())
    if endpoint.key:
        text = text.replace(endpoint.key, "***")
    return text[:300]


def _status_error(status: int, endpoint: Endpoint, detail: str, retries: int) -> EndpointError:
    where = f"the endpoint at {endpoint.url}"
    suffix = f": {detail}" if detail else ""
    if status == 401 or status == 403:
        message = (
            f"{where} refused the key (HTTP {status}); check {KEY_ENV} or the connection's "
            "endpoint_key"
        )
    elif status == 404:
        message = f"{where} was not found (HTTP 404); check the scoring URL{suffix}"
    elif status == 429:
        message = f"{where} is still busy (HTTP 429) after {retries} retries{suffix}"
    elif status == 503:
        message = f"{where} is not ready (HTTP 503) after {retries} retries{suffix}"
    elif status == 504:
        message = f"{where} timed out on the request (HTTP 504){suffix}"
    elif status >= 500:
        message = f"{where} failed (HTTP {status}){suffix}"
    else:
        message = f"{where} rejected the request (HTTP {status}){suffix}"
    return EndpointError(message, status=status, url=endpoint.url)


def open_answer(
    endpoint: Endpoint,
    body: dict[str, Any],
    *,
    stream: bool = True,
    client: httpx.Client | None = None,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> httpx.Response:
    """Send the request, retrying 429/503; an open 200 response, or EndpointError."""
    client = client or shared_client()
    policy = policy or RetryPolicy()
    headers = {
        "Authorization": f"Bearer {endpoint.key}",
        "Accept": "text/event-stream, application/json" if stream else "application/json",
    }
    if endpoint.deployment:
        headers["azureml-model-deployment"] = endpoint.deployment
    timeout = httpx.Timeout(endpoint.timeout_s, connect=min(10.0, endpoint.timeout_s))
    attempt = 0
    connect_failures = 0
    while True:
        request = client.build_request(
            "POST", endpoint.url, json=body, headers=headers, timeout=timeout
        )
        try:
            response = client.send(request, stream=True)
        except httpx.ConnectError as error:
            connect_failures += 1
            if connect_failures <= 1:  # one quick retry: a server restarting, a dropped socket
                sleep(policy.base_delay_s)
                continue
            raise EndpointError(
                f"cannot reach the endpoint at {endpoint.url} ({connect_reason(error)})",
                url=endpoint.url,
            ) from None
        except httpx.TimeoutException:
            raise EndpointError(
                f"the endpoint at {endpoint.url} did not answer within {endpoint.timeout_s:g} s",
                url=endpoint.url,
            ) from None
        except httpx.HTTPError as error:
            raise EndpointError(
                f"the request to the endpoint at {endpoint.url} failed ({type(error).__name__})",
                url=endpoint.url,
            ) from None
        if response.status_code == 200:
            return response
        status = response.status_code
        if status in RETRY_STATUSES and attempt < policy.retries:
            wait = policy.delay(attempt, retry_after_seconds(response.headers.get("Retry-After")))
            response.close()
            attempt += 1
            sleep(wait)
            continue
        detail = _detail(response, endpoint)
        response.close()
        raise _status_error(status, endpoint, detail, attempt)


def _answer_from_json(text: str, endpoint: Endpoint) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        raise EndpointError(
            f"the endpoint at {endpoint.url} answered something that is not JSON",
            url=endpoint.url,
        ) from None
    if isinstance(data, dict):  # some servers wrap the list
        data = data.get("output") or data.get("outputs") or data.get("result")
    if isinstance(data, list) and data and isinstance(data[0], str):
        return data[0]
    raise EndpointError(
        f"the endpoint at {endpoint.url} answered JSON that is not a list of strings",
        url=endpoint.url,
    )


def iter_answer(response: httpx.Response, endpoint: Endpoint) -> Iterator[str]:
    """The answer's pieces from an open response (SSE deltas or one JSON answer); closes it."""
    try:
        kind = response.headers.get("content-type", "")
        if "text/event-stream" not in kind:
            yield _answer_from_json(response.read().decode("utf-8", "replace"), endpoint)
            return
        event, data = "message", []
        try:
            for line in response.iter_lines():
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
                if not data:
                    continue
                payload, data = "\n".join(data), []
                if payload == "[DONE]":
                    return
                piece = _sse_piece(event, payload, endpoint)
                event = "message"
                if piece:
                    yield piece
        except httpx.TimeoutException:
            raise EndpointError(
                f"the endpoint at {endpoint.url} stopped sending within {endpoint.timeout_s:g} s",
                url=endpoint.url,
            ) from None
        except httpx.HTTPError as error:
            raise EndpointError(
                f"the stream from the endpoint at {endpoint.url} broke ({type(error).__name__})",
                url=endpoint.url,
            ) from None
        raise EndpointError(
            f"the stream from the endpoint at {endpoint.url} ended before the answer was complete",
            url=endpoint.url,
        )
    finally:
        response.close()


def _sse_piece(event: str, payload: str, endpoint: Endpoint) -> str:
    try:
        data = json.loads(payload)
    except ValueError:
        data = payload
    if event == "error":
        message = data.get("error") if isinstance(data, dict) else data
        raise EndpointError(
            f"the endpoint at {endpoint.url} failed while answering: {message}", url=endpoint.url
        )
    if isinstance(data, dict):
        return str(data.get("delta") or "")
    return str(data)


def ask(
    endpoint: Endpoint,
    messages: list[dict[str, str]],
    *,
    temperature: float = 0.7,
    max_new_tokens: int = 256,
    top_p: float = 0.9,
    stream: bool = True,
    client: httpx.Client | None = None,
    policy: RetryPolicy | None = None,
) -> Iterator[str]:
    """Open the request now (so status errors surface here) and return the answer's pieces."""
    body = build_body(messages, temperature, max_new_tokens, top_p)
    response = open_answer(endpoint, body, stream=stream, client=client, policy=policy)
    return iter_answer(response, endpoint)


@tool
def chat(
    question: str,
    chat_history: list | None = None,
    temperature: float = 0.7,
    max_new_tokens: int = 256,
    top_p: float = 0.9,
    connection: CustomConnection = None,
    system: str = "",
) -> Iterator[str]:
    """Answer `question` given the chat history (and an optional system message), streaming
    the answer as it arrives."""
    if not question or not str(question).strip():
        raise EndpointError("the question is empty")
    endpoint = resolve_endpoint(connection)
    messages = build_messages(str(question), chat_history, str(system or ""))
    return ask(
        endpoint,
        messages,
        temperature=temperature,
        max_new_tokens=max_new_tokens,
        top_p=top_p,
    )
