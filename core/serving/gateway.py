"""`python -m core.serving.gateway`: a local endpoint, in front of its deployments' servers.

Like an Azure ML online endpoint, it has one scoring URI and one pair of keys; each
request goes to the deployment named by the `azureml-model-deployment` header (any
deployment, even one at 0% — that is how a new deployment is smoke-tested before it takes
traffic), or else to one picked at random by the traffic split. The split and the
deployments' addresses are read from a routes file (`routes.json`) that phiops rewrites
atomically, re-read whenever it changes, so moving traffic needs no restart and no
request is dropped. Responses pass through as they come, so streams stay streams.

The key is checked here too, before anything is forwarded (401 costs the deployments
nothing); the deployment checks it again. So is the body's size (413 before it is read
further, with the target deployment's limit from the routes file), and the server's
header and idle timeouts apply (`core.serving.limits`). `/readiness` is 200 only while a
deployment that takes traffic answers its own readiness probe.
"""

from __future__ import annotations

import argparse
import json
import logging
import logging.config
import os
import random
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from core.serving.app import DEPLOYMENT_HEADER, digest, error, key_matches, unauthorized
from core.serving.limits import DEFAULT_CONTEXT, BodyRefused, body_limit, read_body
from core.serving.params import FINISH_HEADER, MAX_INPUTS, TOKENS_HEADER

log = logging.getLogger("phiops.gateway")
PASSED_HEADERS = (
    "content-type",
    "retry-after",
    "www-authenticate",
    DEPLOYMENT_HEADER,
    TOKENS_HEADER,
    FINISH_HEADER,
)
DEFAULT_MAX_BODY_BYTES = body_limit(DEFAULT_CONTEXT, MAX_INPUTS)
READY_CACHE_S = 1.0


@dataclass
class Target:
    url: str | None  # None: the deployment is not running
    timeout_s: float = 210.0
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES


@dataclass
class RouteTable:
    endpoint: str = ""
    traffic: dict[str, int] = field(default_factory=dict)
    deployments: dict[str, Target] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RouteTable:
        deployments = {
            name: Target(
                item.get("url"),
                float(item.get("timeout_s") or 210.0),
                int(item.get("max_body_bytes") or DEFAULT_MAX_BODY_BYTES),
            )
            for name, item in (data.get("deployments") or {}).items()
        }
        traffic = {str(k): int(v) for k, v in (data.get("traffic") or {}).items()}
        return cls(str(data.get("endpoint") or ""), traffic, deployments)

    def pick(self, rng: random.Random) -> str | None:
        """A deployment by the traffic split, or None when no deployment takes traffic."""
        names = [name for name, share in self.traffic.items() if share > 0]
        if not names:
            return None
        return rng.choices(names, weights=[self.traffic[name] for name in names])[0]


class RoutesFile:
    """The routes file, re-read when its modification time or size changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._table = RouteTable()

    def current(self) -> RouteTable:
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return self._table
        stamp = (info.st_mtime_ns, info.st_size)
        if stamp != self._stamp:
            try:
                self._table = RouteTable.from_dict(json.loads(self.path.read_text("utf-8")))
                self._stamp = stamp
            except (OSError, ValueError) as problem:  # half-written cannot happen (atomic)
                log.warning("cannot read %s (%s); keeping the last routes", self.path, problem)
        return self._table


def create_gateway(routes: RoutesFile, keys: list[str], seed: int | None = None) -> Starlette:
    import httpx

    digests = [digest(key) for key in keys if key]
    rng = random.Random(seed)
    clients: dict[str, httpx.AsyncClient] = {}

    async def alive(request: Request) -> Response:
        return JSONResponse({"status": "alive", "endpoint": routes.current().endpoint})

    ready_seen: dict[str, float] = {}  # deployment url -> when its readiness last said 200

    async def deployment_ready(url: str) -> bool:
        if time.monotonic() - ready_seen.get(url, -READY_CACHE_S) < READY_CACHE_S:
            return True
        try:
            answer = await clients["client"].get(url + "/readiness", timeout=2.0)
        except httpx.HTTPError:
            return False
        if answer.status_code == 200:
            ready_seen[url] = time.monotonic()
        return answer.status_code == 200

    async def readiness(request: Request) -> Response:
        table = routes.current()
        serving = [name for name, share in table.traffic.items() if share > 0]
        for name in serving:
            target = table.deployments.get(name)
            if target is not None and target.url and await deployment_ready(target.url):
                return JSONResponse({"status": "ready", "endpoint": table.endpoint})
        why = (
            "no deployment that takes traffic is ready"
            if serving
            else "no deployment takes traffic"
        )
        return error(503, f"endpoint {table.endpoint}: {why}", **{"Retry-After": "5"})

    async def score(request: Request) -> Response:
        if not key_matches(request.headers.get("authorization"), digests):
            return unauthorized()
        table = routes.current()
        named = request.headers.get(DEPLOYMENT_HEADER, "").strip()
        if named:
            if named not in table.deployments:
                known = ", ".join(sorted(table.deployments)) or "none"
                return error(
                    404,
                    f"endpoint {table.endpoint} has no deployment named {named} "
                    f"(deployments: {known})",
                )
            name = named
        else:
            name = table.pick(rng)
            if name is None:
                return error(
                    503,
                    f"endpoint {table.endpoint} sends no traffic to any deployment; set the "
                    "split with `phiops endpoints traffic` or deploy a model",
                )
        target = table.deployments.get(name)
        if target is None or not target.url:
            return error(
                503,
                f"deployment {name} of endpoint {table.endpoint} is not running; start it "
                f"with `phiops endpoints start {table.endpoint}`",
                **{"Retry-After": "5"},
            )
        try:
            body = await read_body(request, target.max_body_bytes)
        except BodyRefused as refused:
            return error(refused.status, str(refused))
        client = clients["client"]
        headers = {
            key: value
            for key, value in request.headers.items()
            if key in ("authorization", "content-type", "accept")
        }
        outgoing = client.build_request(
            "POST",
            target.url + "/score",
            content=body,
            headers=headers,
            timeout=httpx.Timeout(target.timeout_s, connect=5.0),
        )
        try:
            upstream = await client.send(outgoing, stream=True)
        except httpx.HTTPError as problem:
            return error(
                502,
                f"deployment {name} of endpoint {table.endpoint} did not answer "
                f"({type(problem).__name__}); see `phiops endpoints logs {table.endpoint} "
                f"--deployment {name}`",
            )
        passed = {k: v for k, v in upstream.headers.items() if k.lower() in PASSED_HEADERS}
        passed[DEPLOYMENT_HEADER] = name
        if "text/event-stream" not in upstream.headers.get("content-type", ""):
            try:
                body = await upstream.aread()
            finally:
                await upstream.aclose()
            return Response(body, status_code=upstream.status_code, headers=passed)

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for chunk in upstream.aiter_raw():
                    yield chunk
            finally:
                await upstream.aclose()

        passed.update({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        return StreamingResponse(
            relay(),
            status_code=upstream.status_code,
            headers=passed,
            background=BackgroundTask(upstream.aclose),
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
        clients["client"] = httpx.AsyncClient(trust_env=False, limits=limits)
        try:
            yield
        finally:
            await clients["client"].aclose()

    return Starlette(
        routes=[
            Route("/", alive),
            Route("/liveness", alive),
            Route("/readiness", readiness),
            Route("/score", score, methods=["POST"]),
        ],
        lifespan=lifespan,
    )


def main(argv: list[str] | None = None) -> int:
    from core.serving.server import LOGGING, bind, read_keys, serve, write_ready_file

    parser = argparse.ArgumentParser(prog="python -m core.serving.gateway")
    parser.add_argument("--routes", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", type=Path)
    parser.add_argument("--secrets-fd", type=int, help="the pipe the keys arrive on")
    args = parser.parse_args(argv)
    keys = read_keys(args.secrets_fd)
    logging.config.dictConfig(LOGGING)
    sock = bind(args.host, args.port)
    port = sock.getsockname()[1]
    app = create_gateway(RoutesFile(args.routes), keys)
    _server, run = serve(app, sock)
    log.info("endpoint gateway listening on http://%s:%d (routes %s)", args.host, port, args.routes)
    write_ready_file(args.ready_file, port)
    run()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
