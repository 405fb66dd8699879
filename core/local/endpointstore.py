"""The local endpoints' records: one folder per endpoint under `<store>/endpoints/`.

```
<store>/endpoints/<name>/endpoint.json        the record (written atomically)
                         routes.json          what the gateway routes by (written with it)
                         gateway.log          the endpoint gateway's log
                         <deployment>/server.log   a deployment's scoring server log
```

State changes are read-decide-write under `<store>/endpoints/.lock`; long operations on
one endpoint (deploy, start, stop, delete) also hold that endpoint's `.operation.lock`,
so two phiops processes never start two gateways for one endpoint. Processes are recorded
by pid and start time (`ProcessRef`), so a recycled pid is never mistaken for a server.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.atomic import write_text_atomic
from core.backend import ProbeSettings, RequestSettings
from core.local.jobstore import ProcessRef
from core.local.records import load_record, read_record

RECORD = "endpoint.json"
ROUTES = "routes.json"
GATEWAY_LOG = "gateway.log"
SERVER_LOG = "server.log"

# Provisioning states, in Azure ML's words; "Stopped" is the local backend's own.
CREATING, SUCCEEDED, FAILED, STOPPED = "Creating", "Succeeded", "Failed", "Stopped"


@dataclass
class DeploymentRecord:
    name: str
    model: str  # name:version
    model_path: str
    state: str = CREATING
    error: str = ""
    created_at: float = field(default_factory=time.time)
    request_settings: RequestSettings = field(default_factory=RequestSettings)
    probe_settings: ProbeSettings = field(default_factory=ProbeSettings)
    process: ProcessRef | None = None
    port: int | None = None
    deployer: ProcessRef | None = None  # the phiops process creating it, while Creating
    max_body_bytes: int = 0  # the largest request body (0: from the model's context)

    def running(self) -> bool:
        return self.process is not None and self.process.alive()


@dataclass
class EndpointRecord:
    name: str
    created_at: float = field(default_factory=time.time)
    traffic: dict[str, int] = field(default_factory=dict)
    previous_traffic: dict[str, int] | None = None  # the split before the last shift
    gateway: ProcessRef | None = None
    port: int | None = None
    stopped: bool = False  # stopped on purpose (`endpoints stop`, `phiops down`)
    deployments: dict[str, DeploymentRecord] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> EndpointRecord:
        """The record in `data`; RecordError when it does not have an endpoint record's shape."""
        return load_record(cls, data)

    def gateway_running(self) -> bool:
        return self.gateway is not None and self.gateway.alive()


class EndpointStore:
    """Reads and writes the endpoint folders of one local store.

    `host` is where the servers listen, for the deployments' addresses in the routes file.
    """

    def __init__(self, root: Path, host: str = "127.0.0.1") -> None:
        self.root = root
        self.host = host

    def folder(self, name: str) -> Path:
        return self.root / name

    def deployment_folder(self, endpoint: str, deployment: str) -> Path:
        return self.root / endpoint / deployment

    @contextlib.contextmanager
    def _flock(self, path: Path) -> Iterator[None]:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """The store's lock, for read-decide-write changes of any record."""
        return self._flock(self.root / ".lock")

    @contextlib.contextmanager
    def operation(self, name: str, waiting: Callable[[], None] | None = None) -> Iterator[None]:
        """One long operation at a time on endpoint `name`, across processes."""
        path = self.root / f".{name}.operation.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if waiting is not None:
                    waiting()
                fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def exists(self, name: str) -> bool:
        return (self.folder(name) / RECORD).is_file()

    def read(self, name: str) -> EndpointRecord:
        return read_record(
            EndpointRecord,
            self.folder(name) / RECORD,
            name,
            what=f"endpoint {name}",
            missing=f"no local endpoint named {name}; see `phiops endpoints list`",
        )

    def write(self, record: EndpointRecord) -> None:
        """The record, then the routes the gateway reads (each file atomically)."""
        folder = self.folder(record.name)
        write_text_atomic(folder / RECORD, record.to_json())
        write_text_atomic(folder / ROUTES, json.dumps(routes(record, self.host), indent=2) + "\n")

    def update(self, name: str, change: Callable[[EndpointRecord], Any]) -> Any:
        """Read-decide-write one record under the store's lock; what `change` returns."""
        with self.locked():
            record = self.read(name)
            result = change(record)
            self.write(record)
            return result

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            entry.name
            for entry in os.scandir(self.root)
            if entry.is_dir() and (Path(entry.path) / RECORD).is_file()
        )


def routes(record: EndpointRecord, host: str) -> dict[str, Any]:
    """The gateway's view: the split and where each live deployment listens."""
    from core.serving.process import url_host

    deployments = {}
    for name, deployment in record.deployments.items():
        # A deployment being created is reachable by name (the smoke test) at 0% traffic.
        live = deployment.state in (CREATING, SUCCEEDED) and deployment.port and deployment.process
        deployments[name] = {
            "url": f"http://{url_host(host)}:{deployment.port}" if live else None,
            "timeout_s": deployment.request_settings.request_timeout_ms / 1000
            + deployment.request_settings.max_queue_wait_ms / 1000
            + 30,
            "max_body_bytes": deployment.max_body_bytes,
        }
    return {"endpoint": record.name, "traffic": record.traffic, "deployments": deployments}
