"""Test instruments for the flow and chat tests: real HTTP servers on 127.0.0.1.

- `ScriptedEndpoint`: answers `/score` from a script of replies (429/503 with Retry-After,
  401, 404, 500, SSE streams that break) — a double for the error paths only; the answers
  themselves are tested against the real scoring server.
- `RecordingProxy`: forwards every request to a real server unchanged (streaming included)
  and records what was sent, so a test can see the history the flow put in the request.
- helpers to load `flow/chat_tool.py` as Prompt flow does and to find leftover processes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FLOW_DIR = REPO / "flow"


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None
    sse: list[str] | None = None  # deltas, sent as data: {"delta": ...}
    done: bool = True  # end an SSE stream with data: [DONE]
    error_event: str | None = None  # after the deltas: event: error
    delay_s: float = 0.0  # before answering
    piece_delay_s: float = 0.0


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class ScriptedEndpoint:
    """A real HTTP server whose replies come from `script` (then `default`)."""

    def __init__(self, script: list[Reply] | None = None, default: Reply | None = None) -> None:
        self.script = list(script or [])
        self.default = default or Reply(json=["default answer"])
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._send(200, {"Content-Type": "application/json"}, b'{"status": "ok"}')

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                with owner._lock:
                    owner.requests.append(
                        Recorded("POST", self.path, dict(self.headers.items()), body)
                    )
                    reply = owner.script.pop(0) if owner.script else owner.default
                time.sleep(reply.delay_s)
                if reply.sse is not None:
                    self._stream(reply)
                    return
                data = json.dumps(reply.json).encode()
                headers = {"Content-Type": "application/json", **reply.headers}
                self._send(reply.status, headers, data)

            def _send(self, status: int, headers: dict[str, str], data: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, reply: Reply) -> None:
                self.send_response(reply.status)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.close_connection = True
                for piece in reply.sse or []:
                    self.wfile.write(f"data: {json.dumps({'delta': piece})}\n\n".encode())
                    self.wfile.flush()
                    time.sleep(reply.piece_delay_s)
                if reply.error_event:
                    message = json.dumps({"error": reply.error_event})
                    self.wfile.write(f"event: error\ndata: {message}\n\n".encode())
                elif reply.done:
                    self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.scoring_uri = self.url + "/score"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> ScriptedEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class RecordingProxy:
    """Forwards each request to `target` (a base URL) as it is, and records it."""

    def __init__(self, target: str) -> None:
        import httpx

        self.target = target.rstrip("/")
        self.requests: list[Recorded] = []
        self._client = httpx.Client(timeout=300, trust_env=False)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._forward("GET", b"")

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                owner.requests.append(Recorded("POST", self.path, dict(self.headers.items()), body))
                self._forward("POST", raw)

            def _forward(self, method: str, raw: bytes) -> None:
                skip = {"host", "content-length", "connection", "accept-encoding"}
                headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                request = owner._client.build_request(
                    method, owner.target + self.path, content=raw, headers=headers
                )
                response = owner._client.send(request, stream=True)
                try:
                    self.send_response(response.status_code)
                    hop = {"content-length", "transfer-encoding", "connection"}
                    for name, value in response.headers.items():
                        if name.lower() not in hop:
                            self.send_header(name, value)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.close_connection = True
                    for chunk in response.iter_raw():
                        self.wfile.write(chunk)
                        self.wfile.flush()
                finally:
                    response.close()

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.scoring_uri = self.url + "/score"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._client.close()


def load_chat_tool():
    """`flow/chat_tool.py` as a module of its own (Prompt flow loads it by path too)."""
    name = "phiops_flow_chat_tool"
    from core.chat.inprocess import QUIET_ENV

    for variable, value in QUIET_ENV.items():
        os.environ.setdefault(variable, value)
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, FLOW_DIR / "chat_tool.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def promptflow_processes(pf_home: str | None = None) -> list[str]:
    """Prompt flow processes (`pf ...`, its service, `pf flow serve`) of this test session.

    A process belongs to the session when its environment has the session's
    PF_HOME_DIRECTORY, so other test runs on the same machine are never counted.
    """
    import psutil

    home = pf_home or os.environ.get("PF_HOME_DIRECTORY", "")
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            cmdline = " ".join(process.info["cmdline"] or [])
            served = "core.chat.flowapp" in cmdline  # phiops' keyed Prompt flow server
            if "promptflow" not in cmdline and "/pf " not in cmdline + " " and not served:
                continue
            if process.pid == os.getpid() or process.environ().get("PF_HOME_DIRECTORY") != home:
                continue
            found.append(f"{process.info['pid']}: {cmdline[:160]}")
    return found
