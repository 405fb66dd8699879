"""Serving the chat flow with Prompt flow's serving app, behind a key, as a child process.

The child is `python -m core.chat.flowapp`: the serving app `pf flow serve` runs, wrapped
so that every request needs one of the served flow's keys (`Authorization: Bearer`) and no
other origin is allowed. phiops makes the flow's keys per project and keeps them in the
user's secret store, as it does endpoint keys. The endpoint's key and the flow's keys reach
the child on an inherited pipe (never argv, where `ps` shows them, nor its environment,
which `/proc/PID/environ` keeps); Prompt flow gets its own home with telemetry and tracing
off. Every served flow, foreground or detached, is recorded under the project's local store
(`.phiops/flow-servers/`) so `stop_flow_servers()` (`phiops flow stop`, `phiops down`) can
stop them, and only them: a record whose process has gone or is another program is
dropped, never killed. A foreground server also dies with the phiops that started it
(`PR_SET_PDEATHSIG`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from core.atomic import write_text_atomic
from core.backend import EndpointKeys
from core.chat.endpoint import EndpointTarget
from core.chat.inprocess import FLOW_DIR, QUIET_ENV
from core.errors import PhiopsError
from core.paths import user_data_dir
from core.pfconfig import TEXT as PF_TEXT
from core.secrets import SecretStore, ensure_key_pair, store_scope

RECORDS_DIRNAME = "flow-servers"
FLOW_KEY_ENV = "PHIOPS_FLOW_KEY"
FLOW_APP = "core.chat.flowapp"
REPO_ROOT = Path(__file__).resolve().parents[2]
# Never passed on to the served flow's environment: the key goes through the pipe.
PRIVATE_ENV = ("PHIOPS_ENDPOINT_KEY", FLOW_KEY_ENV, "PHIOPS_SCORING_KEYS")


class FlowServeError(PhiopsError):
    """The flow server could not start, or stopped."""


@dataclass
class FlowServerRecord:
    pid: int
    url: str
    started_at: float
    create_time: float
    log: str
    detached: bool = True
    parent: int = 0  # the phiops process a foreground server belongs to

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- the served flow's keys --------------------------------------------------------------


def _keys_base(config: Any) -> str:
    return f"flow/local@{store_scope(Path(config.store_path))}"


def flow_keys(config: Any, secrets: SecretStore | None = None) -> EndpointKeys:
    """This project's served-flow keys (made on first use), kept like endpoint keys."""
    primary, secondary, _ = ensure_key_pair(secrets or SecretStore(), _keys_base(config))
    return EndpointKeys(primary, secondary)


def _origin(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def served_flow_key(config: Any, url: str) -> str:
    """The key to send to the served flow at `url`: `PHIOPS_FLOW_KEY`, else this project's
    flow key when `url` is a flow this project serves (so the key never goes to another
    program listening on a port phiops used to serve on); "" otherwise."""
    given = os.environ.get(FLOW_KEY_ENV)
    if given:
        return given
    wanted = _origin(url)
    with contextlib.suppress(OSError, PhiopsError):
        if any(_origin(record.url) == wanted for record in flow_servers(config)):
            return flow_keys(config).primary
    return ""


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
        write_text_atomic(config, PF_TEXT)
    return home


def server_environment(target: EndpointTarget) -> dict[str, str]:
    """The child's environment: ours without any key, plus the endpoint's URL and Prompt
    flow's settings (the keys go through the secrets pipe)."""
    env = {
        **{name: value for name, value in os.environ.items() if name not in PRIVATE_ENV},
        "PHIOPS_ENDPOINT_URL": target.url,
        "PHIOPS_ENDPOINT_TIMEOUT": f"{target.timeout_s:g}",
        "PF_HOME_DIRECTORY": str(pf_home()),
        **QUIET_ENV,
        "PF_LOGGING_LEVEL": os.environ.get("PF_LOGGING_LEVEL", "WARNING"),  # a line per step
        "PYTHONUNBUFFERED": "1",
    }
    if target.deployment:
        env["PHIOPS_ENDPOINT_DEPLOYMENT"] = target.deployment
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
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
    """A running served flow; `stop()` ends it (and is safe to call twice)."""

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
    keys: list[str],
    host: str = "127.0.0.1",
    port: int = 8080,
    flow_dir: Path = FLOW_DIR,
    log_file: Path | None = None,
    detach: bool = False,
    ready_timeout: float = 120,
    progress=None,
) -> FlowServer:
    """Serve the flow in `flow_dir` behind `keys` and wait until `/health` answers.

    `port=0` picks a free one. `detach` puts the server in its own session so it outlives
    this process (record it with `record_server`); otherwise it shares our process group,
    Ctrl+C in the terminal reaches both, and it dies with this process.
    """
    from core.serving.process import open_private_log
    from core.serving.secretpipe import SECRETS_FD_FLAG, secret_pipe

    if not keys or not all(isinstance(key, str) and key for key in keys):
        raise FlowServeError("a served flow needs at least one non-empty key")
    if not (Path(flow_dir) / "flow.dag.yaml").is_file():
        raise FlowServeError(f"no flow to serve: {flow_dir}/flow.dag.yaml does not exist")
    if port == 0:
        port = free_port(host)
    elif port_in_use(host, port):
        raise FlowServeError(f"port {port} on {host} is in use; choose another with --port")
    log = Path(log_file) if log_file else pf_home() / f"flow-serve-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    secrets_fd = secret_pipe({"flow_keys": list(keys), "endpoint_key": target.key})
    command = [sys.executable, "-m", FLOW_APP, "--source", str(Path(flow_dir).resolve())]
    command += ["--port", str(port), "--host", host, SECRETS_FD_FLAG, str(secrets_fd)]
    if not detach:
        command += ["--parent-pid", str(os.getpid())]
    handle: IO[bytes] = open_private_log(log)
    try:
        process = subprocess.Popen(
            command,
            cwd=Path(flow_dir).parent,  # the project's pf.yaml applies too
            env=server_environment(target),
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=detach,
            pass_fds=(secrets_fd,),
        )
    finally:
        handle.close()
        os.close(secrets_fd)
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


def record_server(config: Any, server: FlowServer, *, detached: bool = True) -> FlowServerRecord:
    import psutil

    record = FlowServerRecord(
        pid=server.pid,
        url=server.url,
        started_at=time.time(),
        create_time=psutil.Process(server.pid).create_time(),
        log=str(server.log),
        detached=detached,
        parent=0 if detached else os.getpid(),
    )
    folder = records_dir(config)
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / f"{server.pid}.json", json.dumps(record.to_dict(), indent=2))
    return record


def forget_server(config: Any, pid: int) -> bool:
    """Remove the record of server `pid`; False when it was already gone (stopped by
    `phiops flow stop` or `phiops down`)."""
    try:
        (records_dir(config) / f"{pid}.json").unlink()
    except FileNotFoundError:
        return False
    return True


def serve_flow(
    config: Any,
    target: EndpointTarget,
    *,
    host: str | None = None,
    port: int = 8080,
    detach: bool = False,
    ready_timeout: float = 120,
    progress=None,
    log_file: Path | None = None,
) -> FlowServer:
    """Serve the project's chat flow behind its keys, and record it (foreground too)."""
    keys = flow_keys(config)
    server = start_flow_server(
        target,
        keys=[keys.primary, keys.secondary],
        host=host or config.host,
        port=port,
        detach=detach,
        ready_timeout=ready_timeout,
        progress=progress,
        log_file=log_file,
    )
    try:
        record_server(config, server, detached=detach)
    except BaseException:
        server.stop()
        raise
    return server


def _read_records(config: Any) -> list[tuple[Path, FlowServerRecord | None]]:
    from core.local.records import load_record

    folder = records_dir(config)
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            found.append((path, load_record(FlowServerRecord, json.loads(path.read_text()))))
        except (OSError, ValueError):
            found.append((path, None))
    return found


def _unrecorded_server(path: Path) -> int | None:
    """The pid a damaged record's file name gives, if that process is this user's flow
    server (its command line says so); None otherwise."""
    import psutil

    with contextlib.suppress(ValueError, psutil.Error, TypeError):
        process = psutil.Process(int(path.stem))
        if process.uids().real == os.getuid() and FLOW_APP in process.cmdline():
            return process.pid
    return None


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


def stop_flow_servers(
    config: Any, timeout: float = 10, problems: list[str] | None = None
) -> list[FlowServerRecord]:
    """Stop every flow server this project recorded (foreground or detached); the ones
    stopped. For `phiops flow stop` and `phiops down`.

    Records of processes that are gone are removed quietly. A damaged record is removed
    too, after stopping the flow server its file name points at, and said in `problems`.
    """
    stopped = []
    for path, record in _read_records(config):
        # The record goes first: a foreground server's command, seeing its server end,
        # then finds it gone and knows `flow stop` or `down` stopped it (not a crash).
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        if record is not None and _alive(record):
            _terminate(record.pid, timeout)
            stopped.append(record)
        elif record is None:
            pid = _unrecorded_server(path)
            if pid is not None:
                _terminate(pid, timeout)
            if problems is not None:
                done = f"; stopped the flow server it named (pid {pid})" if pid else ""
                problems.append(f"the flow server record {path} cannot be read{done}")
    return stopped
