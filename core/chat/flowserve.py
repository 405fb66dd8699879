"""Serving the chat flow with Prompt flow's own `pf flow serve`, as a child process.

The endpoint's URL and key reach the server through its environment (never argv, where
`ps` shows them, nor a file); Prompt flow gets its own home with telemetry and tracing off.
Detached servers are recorded under the project's local store (`.phiops/flow-servers/`)
so `stop_flow_servers()` (used by `phiops flow stop` and `phiops down`) can stop them, and
only them: a record whose process has gone or is another program is dropped, never killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from core.atomic import write_text_atomic
from core.chat.endpoint import EndpointTarget
from core.chat.inprocess import FLOW_DIR, QUIET_ENV
from core.errors import PhiopsError
from core.paths import user_data_dir

RECORDS_DIRNAME = "flow-servers"
PF_CONFIG = "telemetry:\n  enabled: false\ntrace:\n  destination: none\n"


class FlowServeError(PhiopsError):
    """The flow server could not start, or stopped."""


@dataclass
class FlowServerRecord:
    pid: int
    url: str
    started_at: float
    create_time: float
    log: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pf_executable() -> str:
    """`pf` from this environment (the one phiops runs in), else from PATH."""
    beside = Path(sys.executable).parent / "pf"
    if beside.exists():
        return str(beside)
    found = shutil.which("pf")
    if not found:
        raise FlowServeError("Prompt flow's `pf` command is not installed in this environment")
    return found


def pf_home() -> Path:
    """Prompt flow's home for phiops: `PF_HOME_DIRECTORY` if set, else one in the data dir.

    Its pf.yaml turns telemetry off (it otherwise retries a Microsoft host without network)
    and tracing off (`pf` would otherwise start a background trace service).
    """
    given = os.environ.get("PF_HOME_DIRECTORY")
    home = Path(given) if given else user_data_dir() / "promptflow"
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    config = home / "pf.yaml"
    if not config.exists():
        write_text_atomic(config, PF_CONFIG)
    return home


def server_environment(target: EndpointTarget) -> dict[str, str]:
    """The child's environment: ours, plus the endpoint and Prompt flow's settings."""
    env = {
        **os.environ,
        "PHIOPS_ENDPOINT_URL": target.url,
        "PHIOPS_ENDPOINT_KEY": target.key,
        "PHIOPS_ENDPOINT_TIMEOUT": f"{target.timeout_s:g}",
        "PF_HOME_DIRECTORY": str(pf_home()),
        **QUIET_ENV,
        "PF_LOGGING_LEVEL": os.environ.get("PF_LOGGING_LEVEL", "WARNING"),  # a line per step
        "PYTHONUNBUFFERED": "1",
    }
    if target.deployment:
        env["PHIOPS_ENDPOINT_DEPLOYMENT"] = target.deployment
    return env


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def url_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else host


class FlowServer:
    """A running `pf flow serve`; `stop()` ends it (and is safe to call twice)."""

    def __init__(self, process: subprocess.Popen, url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self.score_url = url + "/score"
        self.log = log

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = 10) -> None:
        if self.process.poll() is None:
            _terminate(self.process.pid, timeout)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=timeout)

    def __enter__(self) -> FlowServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _terminate(pid: int, timeout: float) -> None:
    """SIGTERM the server's process group, then SIGKILL what is left after `timeout`."""
    import psutil

    try:
        parent = psutil.Process(pid)
        family = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for process in family:
        with contextlib.suppress(psutil.Error):
            process.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(family, timeout=timeout)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=5)


def _log_tail(log: Path, lines: int = 8) -> str:
    with contextlib.suppress(OSError):
        text = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        meaningful = [line for line in text if line.strip()][-lines:]
        return " | ".join(line.strip() for line in meaningful)
    return ""


def wait_healthy(server: FlowServer, timeout: float, progress=None) -> None:
    """Poll `GET /health` until it answers 200; one sentence when the server dies or stalls."""
    import httpx

    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2, trust_env=False) as client:
        while True:
            code = server.process.poll()
            if code is not None:
                tail = _log_tail(server.log)
                raise FlowServeError(
                    f"pf flow serve exited with code {code} before it was ready"
                    + (f"; its log ends: {tail}" if tail else f"; see {server.log}")
                )
            with contextlib.suppress(httpx.HTTPError):
                if client.get(server.url + "/health").status_code == 200:
                    return
            if time.monotonic() > deadline:
                server.stop()
                raise FlowServeError(
                    f"pf flow serve did not answer {server.url}/health within {timeout:g} s; "
                    f"see {server.log}"
                )
            if progress is not None:
                progress()
            time.sleep(0.2)


def start_flow_server(
    target: EndpointTarget,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    flow_dir: Path = FLOW_DIR,
    log_file: Path | None = None,
    detach: bool = False,
    ready_timeout: float = 120,
    progress=None,
) -> FlowServer:
    """Start `pf flow serve --source flow_dir` and wait until `/health` answers.

    `port=0` picks a free one. `detach` puts the server in its own session so it outlives
    this process (record it with `record_server`); otherwise it shares our process group
    and Ctrl+C in the terminal reaches both.
    """
    if not (Path(flow_dir) / "flow.dag.yaml").is_file():
        raise FlowServeError(f"no flow to serve: {flow_dir}/flow.dag.yaml does not exist")
    if port == 0:
        port = free_port(host)
    elif port_in_use(host, port):
        raise FlowServeError(f"port {port} on {host} is in use; choose another with --port")
    log = Path(log_file) if log_file else pf_home() / f"flow-serve-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [pf_executable(), "flow", "serve", "--source", str(flow_dir)]
    command += ["--port", str(port), "--host", host, "--skip-open-browser"]
    handle: IO[bytes] = open(log, "ab")  # noqa: SIM115 - the child keeps writing to it
    try:
        process = subprocess.Popen(
            command,
            cwd=Path(flow_dir).parent,  # the project's pf.yaml applies too
            env=server_environment(target),
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=detach,
        )
    finally:
        handle.close()
    server = FlowServer(process, f"http://{url_host(host)}:{port}", log)
    try:
        wait_healthy(server, ready_timeout, progress)
    except BaseException:
        server.stop()
        raise
    return server


# -- records of detached servers --------------------------------------------------------


def records_dir(config: Any) -> Path:
    return Path(config.store_path) / RECORDS_DIRNAME


def record_server(config: Any, server: FlowServer) -> FlowServerRecord:
    import psutil

    record = FlowServerRecord(
        pid=server.pid,
        url=server.url,
        started_at=time.time(),
        create_time=psutil.Process(server.pid).create_time(),
        log=str(server.log),
    )
    folder = records_dir(config)
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / f"{server.pid}.json", json.dumps(record.to_dict(), indent=2))
    return record


def _read_records(config: Any) -> list[tuple[Path, FlowServerRecord | None]]:
    folder = records_dir(config)
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            found.append((path, FlowServerRecord(**json.loads(path.read_text()))))
        except (OSError, ValueError, TypeError):
            found.append((path, None))
    return found


def _alive(record: FlowServerRecord) -> bool:
    """The recorded process still runs and is the same process (not a reused pid)."""
    import psutil

    try:
        process = psutil.Process(record.pid)
        return abs(process.create_time() - record.create_time) < 1 and process.is_running()
    except psutil.Error:
        return False


def flow_servers(config: Any) -> list[FlowServerRecord]:
    """The detached flow servers of this project that are still running."""
    return [record for _, record in _read_records(config) if record and _alive(record)]


def stop_flow_servers(config: Any, timeout: float = 10) -> list[FlowServerRecord]:
    """Stop every detached flow server this project recorded; the ones stopped.

    For `phiops down`. Records of processes that are gone are removed quietly.
    """
    stopped = []
    for path, record in _read_records(config):
        if record is not None and _alive(record):
            _terminate(record.pid, timeout)
            stopped.append(record)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return stopped
