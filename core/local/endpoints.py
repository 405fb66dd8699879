"""Local endpoints: Azure ML's online endpoints as processes on this machine.

An endpoint is a small gateway process (`core.serving.gateway`) with a stable scoring
URI and a pair of keys; each deployment is a scoring server process
(`core.serving.server`) with the deployment's request settings. Both run detached, so
they outlive phiops; their pids are recorded (`core.local.endpointstore`), so a later
phiops sees what runs, reports a dead process as Stopped, and `start` (or `deploy`)
brings it back on the same URI. Starting and stopping the processes is
`core.local.endpointprocs`; this class decides what should run. It is also the local
backend's `EndpointControl` (start, stop, stop_all).

Deploying is blue/green, as on Azure (`core.bluegreen`): the endpoint is created if
absent and never deleted; the new deployment starts at 0% traffic, must become ready and
answer a smoke test sent straight to it (the `azureml-model-deployment` header) before
it gets its share; the split before the shift is kept for `rollback`. A deployment that
fails leaves the traffic where it was. Keys are generated here and kept in the per-user
secret store (named per project store, so two projects' endpoints never share keys), the
primary also under the name `phiops score` and the flow read for the backend.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Callable
from typing import Any

from core import bluegreen
from core.backend import (
    DeploymentInfo,
    EndpointInfo,
    EndpointKeys,
    ModelVersion,
    ProbeSettings,
    Progress,
    RequestSettings,
)
from core.config import Config
from core.errors import NotFoundError, PhiopsError, UnreadableRecord
from core.local.endpointprocs import EndpointProcesses, StartFailed, recorded_processes
from core.local.endpointstore import (
    CREATING,
    FAILED,
    GATEWAY_LOG,
    SERVER_LOG,
    STOPPED,
    SUCCEEDED,
    DeploymentRecord,
    EndpointRecord,
    EndpointStore,
)
from core.local.jobstore import ProcessRef, log_tail
from core.secrets import (
    SecretStore,
    endpoint_key_name,
    ensure_key_pair,
    key_pair_names,
    store_scope,
    stored_key_pair,
)
from core.serving.limits import body_limit
from core.serving.logredact import redact_log
from core.serving.modelfiles import find_model_files
from core.serving.params import MAX_INPUTS

BACKEND = "local"
INSTANCE_TYPE = "local"
DEPLOYMENT_HEADER = "azureml-model-deployment"
SMOKE_REQUEST = {
    "input_data": ["Reply with one word: ready?"],
    "params": {"max_new_tokens": 8, "do_sample": False},
}
_NAME = re.compile(r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")


def check_name(name: str, kind: str) -> str:
    """Azure ML's naming rule, kept locally so a name that works here works on Azure."""
    if not (3 <= len(name or "") <= 32 and _NAME.match(name)):
        raise PhiopsError(
            f"{kind} name {name!r} is not valid: use 3 to 32 letters, digits and hyphens, "
            "starting with a letter and ending with a letter or digit"
        )
    return name


def nonzero(traffic: dict[str, int] | None) -> dict[str, int]:
    return {name: share for name, share in (traffic or {}).items() if share}


class LocalEndpoints:
    """The endpoints part of the local backend."""

    def __init__(
        self,
        config: Config,
        registry: Any,
        *,
        secrets: SecretStore | None = None,
        ready_timeout: float | None = None,
    ) -> None:
        self.config = config
        self.registry = registry
        self.secrets = secrets or SecretStore()
        self.store = EndpointStore(config.store_path / "endpoints", config.host)
        self.host = config.host
        self.processes = EndpointProcesses(self.store, ready_timeout=ready_timeout)
        self.problems: list[str] = []  # records the last list or stop_all could not read

    # -- keys ----------------------------------------------------------------------------

    def _secret_base(self, endpoint: str) -> str:
        return f"{endpoint_key_name(BACKEND, endpoint)}@{store_scope(self.config.store_path)}"

    def _stored_keys(self, endpoint: str) -> EndpointKeys | None:
        found = stored_key_pair(self.secrets, self._secret_base(endpoint))
        return EndpointKeys(*found) if found else None

    def _ensure_keys(self, endpoint: str) -> tuple[EndpointKeys, bool]:
        """The endpoint's keys, made now if the secret store has none; (keys, made)."""
        primary, secondary, made = ensure_key_pair(self.secrets, self._secret_base(endpoint))
        return EndpointKeys(primary, secondary), made

    def _mirror(self, endpoint: str, keys: EndpointKeys) -> None:
        """The primary also under the name the rest of phiops looks keys up by."""
        name = endpoint_key_name(BACKEND, endpoint)
        if self.secrets.get(name) != keys.primary:
            self.secrets.set(name, keys.primary)

    def keys(self, name: str) -> EndpointKeys:
        self.store.read(name)
        keys = self._stored_keys(name)
        if keys is None:
            raise PhiopsError(
                f"the keys of endpoint {name} are missing from the secret store "
                f"({self.secrets.path}); `phiops endpoints start {name}` makes new ones"
            )
        self._mirror(name, keys)
        return keys

    # -- reading -------------------------------------------------------------------------

    def scoring_uri(self, record: EndpointRecord) -> str:
        from core.serving.process import url_host

        return f"http://{url_host(self.host)}:{record.port}/score" if record.port else ""

    def _deployment_state(self, deployment: DeploymentRecord) -> str:
        if deployment.state == CREATING:
            if deployment.deployer is not None and not deployment.deployer.alive():
                return FAILED  # the deploy creating it was interrupted
            return CREATING
        if deployment.state == SUCCEEDED:
            if not deployment.running():
                return STOPPED
            return SUCCEEDED if deployment.port else "Starting"
        return deployment.state

    def _info(self, record: EndpointRecord) -> EndpointInfo:
        uri = self.scoring_uri(record)
        if record.gateway_running():
            state = SUCCEEDED
        elif record.gateway is None and record.port is None:
            state = CREATING
        else:
            state = STOPPED
        deployments = [
            DeploymentInfo(
                name=item.name,
                endpoint=record.name,
                model=item.model,
                state=self._deployment_state(item),
                instance_type=INSTANCE_TYPE,
                instance_count=1,
                scoring_uri=uri,
                request_settings=item.request_settings,
            )
            for item in sorted(record.deployments.values(), key=lambda d: d.name)
        ]
        traffic = {item.name: 0 for item in deployments}
        traffic.update(record.traffic)
        return EndpointInfo(
            name=record.name,
            state=state,
            scoring_uri=uri,
            auth_mode="key",
            traffic=traffic,
            deployments=deployments,
            backend=BACKEND,
            previous_traffic=record.previous_traffic,
        )

    def get(self, name: str) -> EndpointInfo:
        return self._info(self.store.read(name))

    def list(self) -> list[EndpointInfo]:
        """Every readable endpoint; the damaged records are said in `problems`."""
        found, self.problems = [], []
        for name in self.store.names():
            try:
                found.append(self.get(name))
            except UnreadableRecord as problem:
                self.problems.append(str(problem))
            except NotFoundError:
                pass  # deleted while we looked
        return found

    def logs(self, endpoint: str, deployment: str, lines: int = 100) -> str:
        """The end of a deployment's server log (or of the gateway's, for `gateway`)."""
        record = self.store.read(endpoint)
        if deployment == "gateway" and "gateway" not in record.deployments:
            path = self.store.folder(endpoint) / GATEWAY_LOG
        elif deployment in record.deployments:
            path = self.store.deployment_folder(endpoint, deployment) / SERVER_LOG
        else:
            known = ", ".join(sorted(record.deployments)) or "none"
            raise NotFoundError(
                f"endpoint {endpoint} has no deployment named {deployment} (deployments: {known})"
            )
        text = log_tail(path, lines=lines, max_bytes=max(64 * 1024, lines * 400))
        return redact_log(text)  # a log written before query strings were masked, too

    # -- changing the record -------------------------------------------------------------

    def _update(self, endpoint: str, change: Callable[[EndpointRecord], Any]) -> Any:
        return self.store.update(endpoint, change)

    def _settle(self, record: EndpointRecord) -> None:
        """A deployment left Creating by an interrupted deploy is Failed."""
        for item in record.deployments.values():
            if item.state == CREATING and self._deployment_state(item) == FAILED:
                item.state, item.error = FAILED, "the deploy that created it was interrupted"
                item.deployer = None

    # -- processes -----------------------------------------------------------------------

    def _start_deployment(
        self, endpoint: str, name: str, keys: EndpointKeys, say: Progress
    ) -> None:
        """Start its server and wait until ready; on failure it is Failed, with why."""
        try:
            self.processes.start_server(endpoint, name, keys, say)
        except StartFailed as problem:
            raise self._failed(endpoint, name, str(problem)) from None

    def _failed(self, endpoint: str, name: str, reason: str) -> PhiopsError:
        """Stop the deployment's server, record it Failed, and say so (traffic untouched)."""
        record = self.store.read(endpoint)
        item = record.deployments.get(name)
        if item is not None and item.process is not None:
            self.processes.stop_server(item.process, grace=5)

        def failed(current: EndpointRecord) -> None:
            found = current.deployments.get(name)
            if found is not None:
                found.state, found.error = FAILED, reason
                found.process = found.port = found.deployer = None

        self._update(endpoint, failed)
        return PhiopsError(
            f"deployment {name} on endpoint {endpoint} failed ({reason}); the traffic is "
            f"unchanged (log: phiops endpoints logs {endpoint} --deployment {name})"
        )

    def _bring_up(self, endpoint: str, say: Progress) -> EndpointKeys:
        """Gateway and every provisioned deployment running (as `endpoints start` does)."""
        keys, made = self._ensure_keys(endpoint)
        record = self.store.read(endpoint)
        running = [ref for ref in recorded_processes(record) if ref.alive()]
        if made and running:
            say(f"the keys of endpoint {endpoint} were missing; restarting it with new ones")
            self.processes.stop(endpoint)
        self._update(endpoint, lambda current: setattr(current, "stopped", False))
        self.processes.start_gateway(endpoint, keys, say)
        for name, item in sorted(self.store.read(endpoint).deployments.items()):
            if item.state == SUCCEEDED and not item.running():
                say(f"starting deployment {name} ({item.model})")
                try:
                    self._start_deployment(endpoint, name, keys, say)
                except PhiopsError as problem:
                    say(str(problem))
        self._mirror(endpoint, keys)
        return keys

    def _smoke_test(self, endpoint: str, name: str, keys: EndpointKeys) -> None:
        """One request in the contract's shape, through the endpoint, to `name` only."""
        import httpx

        record = self.store.read(endpoint)
        timeout = record.deployments[name].request_settings.request_timeout_ms / 1000 + 10
        headers = {"Authorization": f"Bearer {keys.primary}", DEPLOYMENT_HEADER: name}
        try:
            response = httpx.post(
                self.scoring_uri(record),
                json=SMOKE_REQUEST,
                headers=headers,
                timeout=timeout,
                trust_env=False,
            )
        except httpx.HTTPError as problem:
            raise self._failed(
                endpoint, name, f"the smoke test could not reach it ({type(problem).__name__})"
            ) from None
        answer: Any = None
        with contextlib.suppress(ValueError):
            answer = response.json()
        if response.status_code != 200:
            detail = answer.get("error") if isinstance(answer, dict) else response.text[:200]
            raise self._failed(
                endpoint, name, f"the smoke test got HTTP {response.status_code}: {detail}"
            )
        if not (isinstance(answer, list) and len(answer) == 1 and isinstance(answer[0], str)):
            raise self._failed(endpoint, name, "the smoke test's answer is not a list of strings")

    # -- deploying -----------------------------------------------------------------------

    def deploy(
        self,
        model: ModelVersion,
        endpoint: str,
        deployment: str | None = None,
        traffic: int = 100,
        progress: Progress | None = None,
        *,
        request_settings: RequestSettings | None = None,
        probe_settings: ProbeSettings | None = None,
    ) -> EndpointInfo:
        """Endpoint if absent → new deployment at 0% → ready → smoke test → its share."""
        say = progress or (lambda message: None)
        check_name(endpoint, "endpoint")
        if not 0 <= traffic <= 100:
            raise PhiopsError(f"traffic must be between 0 and 100, not {traffic}")
        say(f"checking model {model.ref}")
        version = self.registry.get(model.name, model.version or None)
        model_path = self.registry.local_path(version)
        max_body = body_limit(find_model_files(model_path).context_tokens(), MAX_INPUTS)

        waiting = lambda: say(f"waiting for another phiops operation on endpoint {endpoint}")  # noqa: E731
        with self.store.operation(endpoint, waiting):
            with self.store.locked():
                if self.store.exists(endpoint):
                    record = self.store.read(endpoint)
                    self._settle(record)
                else:
                    say(f"creating endpoint {endpoint}")
                    record = EndpointRecord(endpoint)
                name = (
                    deployment
                    or self.config.deployment_name
                    or bluegreen.next_deployment_name(list(record.deployments))
                )
                check_name(name, "deployment")
                if name in record.deployments:
                    raise PhiopsError(
                        f"deployment {name} already exists on endpoint {endpoint}; leave the "
                        "deployment name out to deploy blue/green beside it, or delete it first"
                    )
                record.deployments[name] = DeploymentRecord(
                    name=name,
                    model=version.ref,
                    model_path=str(model_path),
                    request_settings=request_settings or RequestSettings(),
                    probe_settings=probe_settings or ProbeSettings(),
                    deployer=ProcessRef.of(os.getpid()),
                    max_body_bytes=max_body,
                )
                record.traffic.setdefault(name, 0)
                self.store.write(record)
            try:
                try:
                    keys = self._bring_up(endpoint, say)
                except PhiopsError as problem:
                    reason = f"endpoint {endpoint} could not start: {problem}"
                    raise self._failed(endpoint, name, reason) from None
                say(f"creating deployment {name} ({version.ref}) at 0% traffic")
                self._start_deployment(endpoint, name, keys, say)
                say(f"smoke-testing deployment {name}")
                self._smoke_test(endpoint, name, keys)
            except PhiopsError:
                raise
            except BaseException as interrupted:  # Ctrl-C, or a bug: never leave it Creating
                raise self._failed(endpoint, name, f"interrupted ({interrupted!r})") from None

            def shift(current: EndpointRecord) -> dict[str, int]:
                item = current.deployments[name]
                item.state, item.deployer, item.error = SUCCEEDED, None, ""
                before = {n: current.traffic.get(n, 0) for n in current.deployments}
                plan = bluegreen.shift_traffic(before, name, traffic)
                if nonzero(plan) != nonzero(before):
                    current.previous_traffic = before
                    current.traffic = plan
                return current.traffic

            split = self._update(endpoint, shift)
            say(f"traffic: {describe(split)}")
        info = self.get(endpoint)
        info.deployed = name  # decided under the lock, whatever else deploys beside us
        return info

    # -- traffic -------------------------------------------------------------------------

    def _apply(self, record: EndpointRecord, plan: dict[str, int]) -> None:
        for name, share in plan.items():
            item = record.deployments[name]
            if share > 0 and item.state != SUCCEEDED:
                raise PhiopsError(
                    f"deployment {name} is {self._deployment_state(item)}, so it cannot take "
                    "traffic; deploy again or give its share to another deployment"
                )
        current = {name: record.traffic.get(name, 0) for name in record.deployments}
        if plan != current:
            record.previous_traffic = current
            record.traffic = plan

    def set_traffic(self, endpoint: str, traffic: dict[str, int]) -> EndpointInfo:
        """Set the split (deployments left out get 0%); the split before is kept for rollback."""

        def change(record: EndpointRecord) -> None:
            plan = {name: 0 for name in record.deployments}
            plan.update(traffic)
            plan = bluegreen.validate_traffic(plan, list(record.deployments))
            self._apply(record, plan)

        self._update(endpoint, change)
        return self.get(endpoint)

    def rollback(self, endpoint: str) -> EndpointInfo:
        """Back to the split before the last change (twice: forward again)."""

        def change(record: EndpointRecord) -> None:
            current = {name: record.traffic.get(name, 0) for name in record.deployments}
            plan = bluegreen.rollback_plan(current, record.previous_traffic)
            gone = sorted(name for name, share in plan.items() if share and name not in current)
            if gone:
                raise PhiopsError(
                    f"cannot roll back: the split before named deployment {', '.join(gone)}, "
                    "which has been deleted"
                )
            self._apply(record, {name: plan.get(name, 0) for name in record.deployments})

        self._update(endpoint, change)
        return self.get(endpoint)

    # -- starting and stopping -------------------------------------------------------------

    def start(self, endpoint: str, progress: Progress | None = None) -> EndpointInfo:
        """Start the endpoint's gateway and provisioned deployments that are not running."""
        say = progress or (lambda message: None)
        waiting = lambda: say(f"waiting for another phiops operation on endpoint {endpoint}")  # noqa: E731
        with self.store.operation(endpoint, waiting):
            with self.store.locked():
                record = self.store.read(endpoint)
                self._settle(record)
                self.store.write(record)
            self._bring_up(endpoint, say)
        return self.get(endpoint)

    def stop(self, endpoint: str) -> EndpointInfo:
        """Stop the endpoint's processes; its deployments, split and URI are kept."""
        with self.store.operation(endpoint):
            self._update(endpoint, lambda record: setattr(record, "stopped", True))
            self.processes.stop(endpoint)
        return self.get(endpoint)

    def stop_all(self) -> list[str]:
        """Stop every local endpoint's processes (for `phiops down`); the names stopped.

        Each endpoint on its own: a damaged record does not stop the others. Its processes
        are found by their command lines (they name the endpoint's folder) and stopped too;
        the record is said in `problems`.
        """
        stopped, self.problems = [], []
        for name in self.store.names():
            try:
                if self.processes.running(name):
                    self.stop(name)
                    stopped.append(name)
            except UnreadableRecord as problem:
                found = self.processes.stop_unrecorded(name)
                note = f"; stopped {len(found)} of its processes found by command line"
                self.problems.append(str(problem) + (note if found else ""))
                if found:
                    stopped.append(name)
        return stopped

    # -- deleting ------------------------------------------------------------------------

    def delete_deployment(self, endpoint: str, deployment: str) -> None:
        """Refuses while the deployment takes traffic beside another one (bluegreen.without)."""
        with self.store.operation(endpoint):

            def detach(record: EndpointRecord) -> ProcessRef | None:
                if deployment not in record.deployments:
                    raise NotFoundError(f"endpoint {endpoint} has no deployment named {deployment}")
                record.traffic = bluegreen.without(record.traffic, deployment)
                if deployment in (record.previous_traffic or {}):
                    record.previous_traffic = None  # nothing left to roll back to
                item = record.deployments[deployment]
                item.state, process, item.port = "Deleting", item.process, None
                return process

            process = self._update(endpoint, detach)  # the gateway stops routing to it first
            self.processes.stop_server(process)
            self._update(endpoint, lambda record: record.deployments.pop(deployment, None))
            shutil.rmtree(self.store.deployment_folder(endpoint, deployment), ignore_errors=True)

    def delete_endpoint(self, endpoint: str) -> None:
        """Stop everything the endpoint runs, then remove it and its keys."""
        with self.store.operation(endpoint):
            self.store.read(endpoint)
            self.processes.stop(endpoint)
            keys = self._stored_keys(endpoint)
            shutil.rmtree(self.store.folder(endpoint), ignore_errors=True)
            for name in key_pair_names(self._secret_base(endpoint)):
                self.secrets.delete(name)
            mirror = endpoint_key_name(BACKEND, endpoint)
            if keys is not None and self.secrets.get(mirror) == keys.primary:
                self.secrets.delete(mirror)


def describe(traffic: dict[str, int]) -> str:
    shown = [f"{name} {share}%" for name, share in sorted(traffic.items())]
    return ", ".join(shown) or "none"


def stop_all(config: Config) -> list[str]:
    """Stop every local endpoint of the project (what `phiops down` calls)."""
    from core.local.registry import LocalRegistry

    return LocalEndpoints(config, LocalRegistry(config)).stop_all()
