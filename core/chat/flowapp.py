"""`python -m core.chat.flowapp`: the chat flow served by Prompt flow, behind the flow's key.

`pf flow serve` answers anyone who can reach its port and reflects any `Origin` in its CORS
headers, so any local user, or any web page open in the user's browser, could use the
model through it. This process runs the same Prompt flow serving app that `pf flow serve`
runs (its default Flask engine, built as `serve_python_flow` builds it) and wraps it in a
small WSGI layer:

- every route but `GET /health` needs `Authorization: Bearer KEY` with one of the served
  flow's keys, compared in constant time as the scoring server compares its keys;
- no CORS headers at all (Prompt flow's `CORS(app)`, which allows every origin, is not
  applied), so a browser page on another origin can neither preflight nor read an answer;
- bodies over `--max-body-bytes` get 413 before they are read.

Secrets (the flow's keys, the endpoint's key) arrive on an inherited pipe
(`--secrets-fd`), never in argv or the initial environment; the endpoint key reaches the
flow's tool through `os.environ` set here, which `/proc/PID/environ` does not show. With
`--parent-pid` the process asks the kernel for SIGTERM when that parent dies
(`PR_SET_PDEATHSIG`), so a foreground `phiops flow serve` never leaves it orphaned.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

OPEN_PATHS = {"/health"}
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """SIGTERM this process when `parent` ends; exit now if it already has (Linux only)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request took effect
        sys.exit(0)


class KeyedApp:
    """WSGI middleware: the key on every route but /health, no CORS, a body-size limit."""

    def __init__(self, app: Callable, keys: list[str], max_body_bytes: int) -> None:
        from core.serving.app import digest

        self.app = app
        self.digests = [digest(key) for key in keys if key]
        self.max_body_bytes = max_body_bytes

    @staticmethod
    def _answer(start_response: Callable, status: str, message: str, **headers: str) -> list:
        body = json.dumps({"error": {"message": message}}).encode()
        fields = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        start_response(status, fields + list(headers.items()))
        return [body]

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        from core.serving.app import key_matches

        open_route = (
            environ.get("REQUEST_METHOD") == "GET" and environ.get("PATH_INFO") in OPEN_PATHS
        )
        if not open_route and not key_matches(environ.get("HTTP_AUTHORIZATION"), self.digests):
            return self._answer(
                start_response,
                "401 Unauthorized",
                "missing or wrong key: send the header Authorization: Bearer <flow key> "
                "(`phiops flow key --show-secrets` prints it)",
                **{"WWW-Authenticate": "Bearer"},
            )
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > self.max_body_bytes:
            return self._answer(
                start_response,
                "413 Request Entity Too Large",
                f"the body is {length} bytes; this flow takes at most {self.max_body_bytes}",
            )

        def without_cors(status: str, headers: list, exc_info: Any = None) -> Any:
            kept = [(k, v) for k, v in headers if not k.lower().startswith("access-control-")]
            return start_response(status, kept, exc_info)

        return self.app(environ, without_cors)


def build_app(flow_dir: Path, keys: list[str], max_body_bytes: int) -> Any:
    """Prompt flow's serving app for `flow_dir`, as `pf flow serve` builds it, keyed."""
    from promptflow._sdk._configuration import Configuration
    from promptflow._sdk._utilities.serve_utils import _resolve_python_flow_additional_includes
    from promptflow._utils.flow_utils import resolve_flow_path
    from promptflow._utils.logger_utils import LoggerFactory
    from promptflow.core._serving.v1.app import PromptflowServingApp

    flow_dir, flow_file_name = resolve_flow_path(flow_dir, allow_prompty_dir=True)
    flow_file_path = flow_dir / flow_file_name
    flow_dir = _resolve_python_flow_additional_includes(flow_file_path, flow_dir)
    connection_provider = Configuration(overrides={}).get_connection_provider()
    os.environ["PROMPTFLOW_PROJECT_PATH"] = flow_dir.absolute().as_posix()
    os.chdir(flow_dir)
    logger = LoggerFactory.get_logger("pfserving-app", target_stdout=True)
    app = PromptflowServingApp("promptflow.core._serving.app")
    app.logger.handlers = logger.handlers
    app.logger.setLevel(logger.level)
    app.init(
        logger=logger,
        static_folder=None,
        environment_variables={},
        connection_provider=connection_provider,
        init={},
        flow_file_path=flow_file_path,
    )
    app.wsgi_app = KeyedApp(app.wsgi_app, keys, max_body_bytes)
    return app


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m core.chat.flowapp")
    parser.add_argument("--source", required=True, type=Path, help="the flow folder")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secrets-fd", type=int, required=True)
    parser.add_argument("--parent-pid", type=int, default=0, help="stop when it ends")
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.parent_pid:
        die_with_parent(args.parent_pid)
    from core.serving.secretpipe import read_secret_pipe

    secrets = read_secret_pipe(args.secrets_fd)
    keys = [key for key in secrets.get("flow_keys") or [] if isinstance(key, str) and key]
    if not keys:
        print("flowapp: no flow keys on the secrets pipe", file=sys.stderr)
        return 2
    if secrets.get("endpoint_key"):
        os.environ["PHIOPS_ENDPOINT_KEY"] = str(secrets["endpoint_key"])  # for the flow's tool
    from core.serving.logredact import redact_access_logs

    redact_access_logs("werkzeug")
    app = build_app(args.source.resolve(), keys, args.max_body_bytes)
    logging.getLogger("phiops.flow").warning(
        "serving flow %s on http://%s:%d (key required)", args.source, args.host, args.port
    )
    app.run(host=args.host, port=args.port, threaded=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
