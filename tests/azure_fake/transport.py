"""The fake's wire: a `requests` adapter that answers Azure's hosts from an in-memory world.

azure-core's `RequestsTransport` runs for real (headers, streaming, retries, the SDKs' LRO
polling); only the socket is replaced. Clients phiops builds get the transport explicitly
(`AzureClients(config, transport=...)`); clients the SDK builds inside itself (blob uploads,
ARM template deployments) reach the same adapter through `install()`, which routes every
`requests` call to an Azure host here, lets loopback addresses through (the tests' own
servers), and refuses everything else, so a test can never reach the network.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import requests
from requests.adapters import BaseAdapter, HTTPAdapter

AZURE_HOSTS = re.compile(
    r"(^|\.)(azure\.com|azure\.net|windows\.net|azureml\.ms|microsoftonline\.com)$", re.I
)
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass
class Request:
    method: str
    url: str
    host: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def header(self, name: str) -> str:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), "")


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict or list: JSON; str or bytes: as they are
    headers: dict[str, str] = field(default_factory=dict)

    def content(self) -> tuple[bytes, str]:
        if self.body is None:
            return b"", ""
        if isinstance(self.body, bytes):
            return self.body, "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return json.dumps(self.body).encode(), "application/json; charset=utf-8"


class AzureError(Exception):
    """Raised by a handler: the service's error answer (ARM's `{"error": {code, message}}`)."""

    def __init__(self, status: int, code: str, message: str, **headers: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.reply = Reply(
            status,
            {"error": {"code": code, "message": message}},
            {"x-ms-error-code": code, **headers},
        )


def not_found(message: str, code: str = "ResourceNotFound") -> AzureError:
    return AzureError(404, code, message)


Handler = Callable[..., Reply | dict | list | None]


@dataclass
class Route:
    method: str
    host: re.Pattern[str]
    path: re.Pattern[str]
    handler: Handler
    name: str
    bearer: bool  # the request must carry `Authorization: Bearer` (blob and scoring use keys)


class Router:
    """Handlers by (method, host, path pattern); named groups become keyword arguments."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(
        self, method: str, host: str, path: str, name: str = "", bearer: bool = True
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes.append(
                Route(
                    method,
                    re.compile(host, re.I),
                    re.compile(path + r"/?$", re.I),
                    handler,
                    name or handler.__name__,
                    bearer,
                )
            )
            return handler

        return register

    def find(self, request: Request) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            if route.method != request.method:
                continue
            host = route.host.fullmatch(request.host)
            path = route.path.match(request.path)
            if host and path:
                return route, {**host.groupdict(), **path.groupdict()}
        return None


def parse(prepared: requests.PreparedRequest) -> Request:
    parts = urlsplit(prepared.url or "")
    body = prepared.body
    if hasattr(body, "read"):
        body = body.read()
    elif body is not None and not isinstance(body, bytes | str):
        body = b"".join(chunk if isinstance(chunk, bytes) else chunk.encode() for chunk in body)
    if isinstance(body, str):
        body = body.encode()
    return Request(
        method=(prepared.method or "GET").upper(),
        url=prepared.url or "",
        host=(parts.hostname or "").lower(),
        path=unquote(parts.path),
        query={k.lower(): v for k, v in parse_qsl(parts.query, keep_blank_values=True)},
        headers=dict(prepared.headers),
        body=body or b"",
    )


def to_response(prepared: requests.PreparedRequest, reply: Reply) -> requests.Response:
    from urllib3 import HTTPResponse

    content, kind = reply.content()
    headers = {"Content-Length": str(len(content)), **reply.headers}
    if kind and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = kind
    raw = HTTPResponse(
        body=io.BytesIO(content),
        headers=headers,
        status=reply.status,
        reason=REASONS.get(reply.status, "OK"),
        preload_content=False,
        decode_content=False,
        request_method=prepared.method,  # a HEAD answer has a length but no body
    )
    return HTTPAdapter().build_response(prepared, raw)


REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    206: "Partial Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    416: "Range Not Satisfiable",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


class FakeAzureAdapter(BaseAdapter):
    """A `requests` adapter whose far end is `serve(Request) -> Reply`."""

    def __init__(self, serve: Callable[[Request], Reply]) -> None:
        super().__init__()
        self.serve = serve
        self._loopback = HTTPAdapter()

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        host = (urlsplit(request.url).hostname or "").lower()
        if host in LOOPBACK:
            return self._loopback.send(request, stream, timeout, verify, cert, proxies)
        if not AZURE_HOSTS.search(host):
            raise requests.ConnectionError(f"the tests reach no network: {request.url}")
        return to_response(request, self.serve(parse(request)))

    def close(self) -> None:
        self._loopback.close()


def session(adapter: FakeAzureAdapter) -> requests.Session:
    made = requests.Session()
    made.trust_env = False
    made.mount("https://", adapter)
    made.mount("http://", adapter)
    return made


def transport(adapter: FakeAzureAdapter) -> Any:
    """azure-core's own `RequestsTransport`, over the fake adapter."""
    from azure.core.pipeline.transport import RequestsTransport

    return RequestsTransport(session=session(adapter), session_owner=False)


def install(monkeypatch: Any, adapter: FakeAzureAdapter) -> None:
    """Every `requests` session in this process sends through `adapter` (see the doc)."""
    monkeypatch.setattr(requests.Session, "get_adapter", lambda self, url: adapter)
