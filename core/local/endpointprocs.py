"""The processes behind a local endpoint: its gateway and its deployments' scoring servers.

`LocalEndpoints` decides what should run (keys, blue/green, traffic); this module runs it.
Each process is spawned detached, so it outlives phiops; its pid and start time are
recorded in the endpoint's record (`ProcessRef`) before phiops waits for it to answer, so
a phiops killed mid-start still leaves a record `stop` can act on. Stopping sends SIGTERM
to every live process at once, SIGKILL to what is left after a grace period, and forgets
the pids.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

from core.backend import EndpointKeys, Progress
from core.errors import PhiopsError
from core.local.endpointstore import GATEWAY_LOG, ROUTES, SERVER_LOG, EndpointRecord, EndpointStore
from core.local.jobstore import ProcessRef

GATEWAY_READY_S = 60.0
STOP_GRACE_S = 15.0
SERVING_MODULES = ("core.serving.gateway", "core.serving.server")


class StartFailed(PhiopsError):
    """A deployment's server did not start or get ready; the message is the reason."""


def port_free(host: str, port: int | None) -> bool:
    if not port:
        return False
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def stop_processes(refs: list[ProcessRef], grace: float = STOP_GRACE_S) -> None:
    """SIGTERM every live one at once, wait up to `grace`, SIGKILL what is left."""
    import psutil

    procs = []
    for ref in refs:
        if ref is not None and ref.alive():
            with contextlib.suppress(psutil.Error):
                procs.append(psutil.Process(ref.pid))
    terminate_all(procs, grace)


def terminate_all(procs: list, grace: float) -> None:
    """SIGTERM these psutil processes, wait up to `grace`, SIGKILL what is left."""
    import psutil

    for process in procs:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, left = psutil.wait_procs(procs, timeout=grace)
    for process in left:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(left, timeout=5)


def recorded_processes(record: EndpointRecord) -> list[ProcessRef]:
    """Every process the record names: its gateway and its deployments' servers."""
    refs = [record.gateway] + [item.process for item in record.deployments.values()]
    return [ref for ref in refs if ref is not None]


class EndpointProcesses:
    """Starts and stops the gateway and servers of the endpoints in one store."""

    def __init__(self, store: EndpointStore, *, ready_timeout: float | None = None) -> None:
        self.store = store
        self.host = store.host
        self.ready_timeout = ready_timeout  # None: each deployment's probe initial delay

    def start_gateway(self, endpoint: str, keys: EndpointKeys, say: Progress) -> None:
        """The endpoint's gateway, on its old port when that is free; waits for liveness."""
        from core.serving.process import spawn, wait_until_ready

        record = self.store.read(endpoint)
        if record.gateway_running() and record.port:
            return
        folder = self.store.folder(endpoint)
        ready = folder / "gateway.ready"
        ready.unlink(missing_ok=True)
        port = record.port if port_free(self.host, record.port) else 0
        say(f"starting endpoint {endpoint}")
        args = ["--routes", str(folder / ROUTES), "--host", self.host, "--port", str(port)]
        process = spawn(
            "core.serving.gateway",
            [*args, "--ready-file", str(ready)],
            keys=[keys.primary, keys.secondary],
            log_file=folder / GATEWAY_LOG,
            detached=True,
        )
        ref = ProcessRef.of(process.pid)
        self.store.update(endpoint, lambda current: setattr(current, "gateway", ref))
        try:
            bound = wait_until_ready(
                ready,
                ref.alive,
                host=self.host,
                timeout=GATEWAY_READY_S,
                what=f"the gateway of endpoint {endpoint}",
                log_file=folder / GATEWAY_LOG,
                path="/liveness",
            )
        except BaseException:
            stop_processes([ref])
            raise
        finally:
            ready.unlink(missing_ok=True)
        self.store.update(endpoint, lambda current: setattr(current, "port", bound))

    def start_server(self, endpoint: str, name: str, keys: EndpointKeys, say: Progress) -> None:
        """Deployment `name`'s scoring server, waited for until ready; StartFailed if not."""
        from core.serving.modelfiles import find_model_files
        from core.serving.process import server_args, spawn, wait_until_ready

        deployment = self.store.read(endpoint).deployments[name]
        folder = self.store.deployment_folder(endpoint, name)
        ready = folder / "server.ready"
        folder.mkdir(parents=True, exist_ok=True)
        ready.unlink(missing_ok=True)
        try:
            find_model_files(deployment.model_path)
        except PhiopsError as problem:
            raise StartFailed(f"its model is unusable: {problem}") from None
        args = server_args(
            Path(deployment.model_path),
            host=self.host,
            port=0,
            deployment=name,
            settings=deployment.request_settings,
            ready_file=ready,
            exit_with_parent=False,
            max_body_bytes=deployment.max_body_bytes,
        )
        process = spawn(
            "core.serving.server",
            args,
            keys=[keys.primary, keys.secondary],
            log_file=folder / SERVER_LOG,
            detached=True,
        )
        ref = ProcessRef.of(process.pid)

        def started(current: EndpointRecord) -> None:
            item = current.deployments[name]
            item.process, item.port, item.error = ref, None, ""

        self.store.update(endpoint, started)
        timeout = self.ready_timeout or float(deployment.probe_settings.initial_delay)
        reported = [0.0]

        def waiting(elapsed: float) -> None:
            if elapsed - reported[0] >= 5:
                reported[0] = elapsed
                say(f"deployment {name} is loading its model ({elapsed:.0f} s)")

        try:
            port = wait_until_ready(
                ready,
                ref.alive,
                host=self.host,
                timeout=timeout,
                what=f"the server of deployment {name}",
                log_file=folder / SERVER_LOG,
                progress=waiting,
            )
        except PhiopsError as problem:
            raise StartFailed(str(problem)) from None
        finally:
            ready.unlink(missing_ok=True)

        def listening(current: EndpointRecord) -> None:
            current.deployments[name].port = port

        self.store.update(endpoint, listening)

    def stop_server(self, ref: ProcessRef | None, grace: float = STOP_GRACE_S) -> None:
        if ref is not None:
            stop_processes([ref], grace=grace)

    def stop(self, endpoint: str) -> None:
        """Stop the gateway first (no new requests), then every server; forget their pids."""
        record = self.store.read(endpoint)
        if record.gateway is not None:
            stop_processes([record.gateway])
        stop_processes([item.process for item in record.deployments.values() if item.process])

        def forget(current: EndpointRecord) -> None:
            current.gateway = None
            for item in current.deployments.values():
                item.process = item.port = None

        self.store.update(endpoint, forget)

    def running(self, endpoint: str) -> bool:
        return any(ref.alive() for ref in recorded_processes(self.store.read(endpoint)))

    def stop_unrecorded(self, endpoint: str, grace: float = STOP_GRACE_S) -> list[int]:
        """Stop the gateway and servers of an endpoint whose record cannot be read: this
        user's `core.serving.gateway|server` processes whose arguments name a file in the
        endpoint's folder (the routes file, a ready file). Their pids."""
        import psutil

        folder = self.store.folder(endpoint)
        prefixes = tuple({str(folder) + os.sep, str(folder.resolve()) + os.sep})
        found = []
        for process in psutil.process_iter(["pid", "cmdline", "uids"]):
            with contextlib.suppress(psutil.Error, TypeError):
                cmdline = process.info["cmdline"] or []
                ours = process.info["uids"].real == os.getuid()
                serving = any(arg in SERVING_MODULES for arg in cmdline)
                if ours and serving and any(arg.startswith(prefixes) for arg in cmdline):
                    found.append(process)
        terminate_all(found, grace)
        return [process.pid for process in found]
