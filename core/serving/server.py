"""`python -m core.serving.server`: one scoring server process (one local deployment).

Keys arrive on an inherited pipe (`--secrets-fd`, see `core.serving.secretpipe`), never on
the command line or in the environment. The socket is bound before the model loads and its
port written to `--ready-file`, so the starter knows where to probe while the model loads
(liveness 200, readiness 503 until loaded). SIGTERM/SIGINT stop it gracefully: no new
connections, requests in flight finish (up to 10 s), queued and running generations are
stopped, exit 0. A model that cannot be loaded exits 3. Access-log lines never hold a
query string (it may carry a key); headers must arrive within 10 s, idle connections close
after 5 s (`core.serving.limits`).
"""

from __future__ import annotations

import argparse
import json
import logging.config
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.atomic import write_text_atomic
from core.backend import RequestSettings

LOAD_FAILED_EXIT = 3
GRACEFUL_SHUTDOWN_S = 10

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "filters": {"no_queries": {"()": "core.serving.logredact.QueryStringFilter"}},
    "handlers": {
        "out": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "stream": "ext://sys.stdout",
            "filters": ["no_queries"],
        }
    },
    "loggers": {
        "uvicorn": {"handlers": ["out"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO"},
        "uvicorn.access": {"handlers": ["out"], "level": "INFO", "propagate": False},
        "phiops": {"handlers": ["out"], "level": "INFO", "propagate": False},
    },
}


def read_keys(secrets_fd: int | None) -> list[str]:
    """The keys from the secrets pipe the starter handed us (`--secrets-fd`)."""
    from core.serving.secretpipe import read_secret_pipe

    keys = read_secret_pipe(secrets_fd).get("keys") if secrets_fd is not None else None
    if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys) or not keys:
        raise SystemExit("no keys: start this server with its keys on --secrets-fd")
    return keys


def bind(host: str, port: int):
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio turns Nagle off (TCP_NODELAY) only for sockets that do,
    # and with Nagle on, a response written in two parts waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        raise SystemExit(f"cannot listen on {host}:{port}: {error.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def watch_parent(server, parent: int) -> None:
    """Stop when the process that started us is gone (a test or CLI killed outright)."""

    def run() -> None:
        while not server.should_exit:
            if os.getppid() != parent:
                logging.getLogger("phiops.serving").info("parent process gone: stopping")
                server.should_exit = True
                return
            time.sleep(1.0)

    threading.Thread(target=run, name="watch-parent", daemon=True).start()


def serve(app, sock, *, exit_with_parent: bool = False) -> tuple[Any, Callable[[], None]]:
    """The uvicorn server for `app` on `sock`, and the call that runs it until SIGTERM/SIGINT."""
    import uvicorn

    from core.serving.limits import IDLE_TIMEOUT_S, protocol_class

    config = uvicorn.Config(
        app,
        log_config=LOGGING,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        timeout_keep_alive=IDLE_TIMEOUT_S,
        http=protocol_class(),
        lifespan="on",
        server_header=False,
    )
    server = uvicorn.Server(config)
    if exit_with_parent:
        watch_parent(server, os.getppid())
    # uvicorn re-raises the signal that stopped it once it has shut down; with a Python
    # handler in place that is a no-op, so a graceful stop exits 0 instead of dying by signal.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    return server, (lambda: server.run(sockets=[sock]))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m core.serving.server")
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--deployment", default="blue")
    parser.add_argument("--settings", default="{}", help="RequestSettings as JSON")
    parser.add_argument("--ready-file", type=Path, help="where to write the bound port")
    parser.add_argument("--max-batch-prompts", type=int, default=32)
    parser.add_argument("--batch-window-ms", type=float, default=100.0, help="most a batch waits")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: half the CPUs)")
    parser.add_argument("--exit-with-parent", action="store_true")
    parser.add_argument("--secrets-fd", type=int, help="the pipe the keys arrive on")
    parser.add_argument(
        "--max-body-bytes", type=int, default=0, help="largest body (0: from the model's context)"
    )
    return parser.parse_args(argv)


def write_ready_file(path: Path | None, port: int) -> None:
    if path is not None:
        write_text_atomic(path, json.dumps({"port": port, "pid": os.getpid()}))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    keys = read_keys(args.secrets_fd)
    logging.config.dictConfig(LOGGING)
    from core.serving.app import ServerState, create_app
    from core.serving.engine import Engine

    settings = RequestSettings(**json.loads(args.settings))
    sock = bind(args.host, args.port)
    port = sock.getsockname()[1]
    failed: list[str] = []

    def fatal(message: str) -> None:
        failed.append(message)
        server.should_exit = True

    state = ServerState(
        keys,
        deployment=args.deployment,
        settings=settings,
        loader=lambda: Engine.load(args.model_dir, threads=args.threads),
        max_batch_prompts=args.max_batch_prompts,
        batch_window_s=args.batch_window_ms / 1000,
        on_fatal=fatal,
        max_body_bytes=args.max_body_bytes,
    )
    server, run = serve(create_app(state), sock, exit_with_parent=args.exit_with_parent)
    logging.getLogger("phiops.serving").info(
        "deployment %s listening on http://%s:%d (model %s; %s)",
        args.deployment,
        args.host,
        port,
        args.model_dir,
        settings,
    )
    write_ready_file(args.ready_file, port)
    run()
    if failed:  # the last line of the log is the reason, for whoever started us
        logging.getLogger("phiops.serving").error("stopped: %s", failed[0])
        return LOAD_FAILED_EXIT
    logging.getLogger("phiops.serving").info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
