"""Start a scoring server (or an endpoint gateway) as a separate process and wait until ready.

`start_scoring_server` is what tests, the flow and the chat use: a server tied to the
calling process (it stops when its parent goes). `spawn` + `wait_until_ready` are the
parts the local endpoints use for detached servers that outlive phiops. Keys travel on an
inherited pipe (`core.serving.secretpipe`), never in argv or the environment; the port comes
back through a small ready file written by the server once its socket is bound. Logs are
owner-only (0600).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

from core.backend import RequestSettings
from core.errors import PhiopsError

# Never passed on to a server's environment (its keys go through the secrets pipe).
PRIVATE_ENV = ("PHIOPS_ENDPOINT_KEY", "PHIOPS_FLOW_KEY", "PHIOPS_SCORING_KEYS")
REPO_ROOT = Path(__file__).resolve().parents[2]


def log_tail(path: Path | None, lines: int = 8) -> str:
    if path is None:
        return ""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    kept = [line for line in text.splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def child_env() -> dict[str, str]:
    """This process's environment for a phiops child: no keys (they go on pipes), and
    this repository importable."""
    env = {name: value for name, value in os.environ.items() if name not in PRIVATE_ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def spawn(
    module: str,
    args: list[str],
    *,
    keys: list[str],
    log_file: Path,
    detached: bool,
) -> subprocess.Popen:
    """`python -m MODULE ARGS` with the keys on a pipe and output in `log_file` (0600)."""
    from core.serving.secretpipe import SECRETS_FD_FLAG, secret_pipe

    log_file.parent.mkdir(parents=True, exist_ok=True)
    env = child_env()
    env["PYTHONUNBUFFERED"] = "1"
    secrets_fd = secret_pipe({"keys": list(keys)})
    try:
        with open_private_log(log_file) as log:
            process = subprocess.Popen(
                [sys.executable, "-m", module, *args, SECRETS_FD_FLAG, str(secrets_fd)],
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=detached,
                # Not detached, still a group of its own: a terminal's Ctrl-C is for the
                # parent, which stops it (see start_scoring_server).
                process_group=None if detached else 0,
                pass_fds=(secrets_fd,),
            )
    finally:
        os.close(secrets_fd)
    # Reap it when it ends, so a long-lived caller (the TUI) collects no zombies.
    threading.Thread(target=process.wait, daemon=True).start()
    return process


def open_private_log(path: Path) -> IO[bytes]:
    """`path` for appending, readable by its owner only (it may hold what clients sent)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "ab")


def read_port(ready_file: Path) -> int | None:
    try:
        return int(json.loads(ready_file.read_text(encoding="utf-8"))["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def wait_until_ready(
    ready_file: Path,
    alive: Callable[[], bool],
    *,
    host: str,
    timeout: float,
    what: str,
    log_file: Path | None = None,
    path: str = "/readiness",
    progress: Callable[[float], None] | None = None,
) -> int:
    """Wait for the port, then for `path` to answer 200; the port, or one sentence why not."""
    import httpx

    deadline = time.monotonic() + timeout
    started = time.monotonic()
    port: int | None = None
    last = ""
    with httpx.Client(trust_env=False, timeout=5.0) as client:
        while True:
            if not alive():
                last = log_tail(log_file, lines=1)
                raise PhiopsError(f"{what} stopped while starting" + (f": {last}" if last else ""))
            if port is None:
                port = read_port(ready_file)
            if port is not None:
                try:
                    response = client.get(f"http://{url_host(host)}:{port}{path}")
                    if response.status_code == 200:
                        return port
                    last = f" (readiness answered {response.status_code})"
                except httpx.HTTPError as problem:
                    last = f" ({type(problem).__name__})"
            if time.monotonic() > deadline:
                raise PhiopsError(f"{what} was not ready within {timeout:g} s{last}")
            if progress is not None:
                progress(time.monotonic() - started)
            time.sleep(0.1 if port is None else 0.2)


def url_host(host: str) -> str:
    """The host as it goes in a URL; a wildcard bind is reached on the loopback address."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def terminate(pid: int, timeout: float = 15.0, *, group: bool = False) -> bool:
    """SIGTERM, wait up to `timeout`, then SIGKILL; True when the process is gone."""
    import psutil

    try:
        process = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return True
    send = (lambda s: os.killpg(pid, s)) if group else (lambda s: os.kill(pid, s))
    with contextlib.suppress(ProcessLookupError, PermissionError):
        send(signal.SIGTERM)
    try:
        process.wait(timeout)
        return True
    except psutil.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        send(signal.SIGKILL)
    try:
        process.wait(5)
    except psutil.TimeoutExpired:
        return False
    return True


@dataclass
class ScoringServer:
    """A running scoring server. `stop()` (or leaving the `with` block) ends it cleanly."""

    url: str
    pid: int
    deployment: str = "blue"
    log_file: Path | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)
    _cleanup: list[Path] = field(default_factory=list, repr=False)

    @property
    def scoring_uri(self) -> str:
        return self.url + "/score"

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        import psutil

        return psutil.pid_exists(self.pid)

    def stop(self, timeout: float = 15.0) -> int | None:
        """Stop it (SIGTERM, then SIGKILL after `timeout`); its exit code when known."""
        terminate(self.pid, timeout)
        code = None
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self.process.wait(5)
        for path in self._cleanup:
            with contextlib.suppress(OSError):
                path.unlink()
        return code

    def __enter__(self) -> ScoringServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def server_args(
    model_dir: Path,
    *,
    host: str,
    port: int,
    deployment: str,
    settings: RequestSettings,
    ready_file: Path,
    exit_with_parent: bool,
    max_body_bytes: int = 0,
) -> list[str]:
    args = [
        "--model-dir",
        str(model_dir),
        "--host",
        host,
        "--port",
        str(port),
        "--deployment",
        deployment,
        "--settings",
        json.dumps(asdict(settings)),
        "--ready-file",
        str(ready_file),
        "--max-body-bytes",
        str(max_body_bytes),
    ]
    return args + (["--exit-with-parent"] if exit_with_parent else [])


def start_scoring_server(
    model_dir: str | Path,
    *,
    keys: list[str],
    host: str = "127.0.0.1",
    port: int = 0,
    deployment: str = "blue",
    settings: RequestSettings | None = None,
    log_file: str | Path | None = None,
    ready_timeout: float = 180,
) -> ScoringServer:
    """Start a scoring server for `model_dir` and return once its readiness probe is 200.

    The server stops with its parent process; keys reach it on a pipe. It
    runs in a process group of its own, so a terminal's Ctrl-C reaches only the parent,
    which then stops it: sharing the signal, it died under requests the parent was still
    waiting on (an interrupted `phiops eval --base` failed instead of interrupting).
    Fails with one sentence (and the end of its log) if it exits or is not ready in time.
    """
    from core.serving.modelfiles import find_model_files

    if not keys or not all(isinstance(key, str) and key for key in keys):
        raise PhiopsError("a scoring server needs at least one non-empty key")
    model_dir = Path(model_dir).expanduser().resolve()
    find_model_files(model_dir)  # a wrong folder fails here, in one sentence, not in the log
    cleanup: list[Path] = []
    if log_file is None:
        handle, name = tempfile.mkstemp(prefix="phiops-server-", suffix=".log")
        os.close(handle)
        log_path = Path(name)
        cleanup.append(log_path)
    else:
        log_path = Path(log_file)
    handle, name = tempfile.mkstemp(prefix="phiops-server-", suffix=".ready")
    os.close(handle)
    ready_file = Path(name)
    ready_file.unlink()
    settings = settings or RequestSettings()
    args = server_args(
        model_dir,
        host=host,
        port=port,
        deployment=deployment,
        settings=settings,
        ready_file=ready_file,
        exit_with_parent=True,
    )
    process = spawn("core.serving.server", args, keys=keys, log_file=log_path, detached=False)
    server = ScoringServer(
        url="", pid=process.pid, deployment=deployment, log_file=log_path, process=process
    )
    server._cleanup = cleanup
    try:
        bound = wait_until_ready(
            ready_file,
            server.alive,
            host=host,
            timeout=ready_timeout,
            what=f"the scoring server for {model_dir.name}",
            log_file=log_path,
        )
    except BaseException:
        server.stop(timeout=5)
        raise
    finally:
        with contextlib.suppress(OSError):
            ready_file.unlink()
    server.url = f"http://{url_host(host)}:{bound}"
    return server
