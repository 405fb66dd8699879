"""Azure ML managed online endpoints: deploy blue/green, keys, status, logs, rollback, delete.

What the seed's `deploy_model.py` did, without its flaws. The endpoint is created only when
it is absent and never deleted to be remade (that cost downtime and a new key). Each model
gets a new deployment (the seed's request settings, probes, instance type and managed
identity as defaults) beside the old one, at 0% traffic; it is smoke-tested directly
(`invoke(..., deployment_name=...)`, which sends the `azureml-model-deployment` header) and
only then given its share. The split in place before each shift is kept on the endpoint as
the tag `phiops.previous-traffic` (JSON), so `rollback` works from any machine. A deployment
that fails to provision or its smoke test leaves the traffic where it was.

The traffic rules themselves are `core.bluegreen`'s, shared with the local backend.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
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
from core.errors import ConfigError, NotFoundError, PhiopsError
from core.secrets import SecretStore, endpoint_key_name

BACKEND = "azure"
PREVIOUS_TRAFFIC_TAG = "phiops.previous-traffic"
SMOKE_REQUEST = {
    "input_data": ["Reply with one word: ready?"],
    "params": {"max_new_tokens": 8, "do_sample": False},
}
# What the flow tool, `phiops chat` and the TUI send: a conversation as chat messages.
SMOKE_CHAT_REQUEST = {
    "input_data": [
        [
            {"role": "user", "content": "Hello!"},
            {"role": "assistant", "content": "Hello. How can I help?"},
            {"role": "user", "content": "Reply with one word: ready?"},
        ]
    ],
    "params": {"max_new_tokens": 8, "do_sample": False},
}
UPGRADE_RESERVE = 1.2  # Azure ML keeps 20% more instances' worth of quota for upgrades
QUOTA_HELP = (
    "request more in Azure ML studio (Quotas page) or the Azure portal "
    "(Subscriptions > Usage + quotas), or set deployment_instance_type to a size with quota"
)
_NAME = re.compile(r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")


def check_name(name: str, kind: str) -> str:
    """Azure ML's rule for endpoint and deployment names, said before Azure says it."""
    if not (3 <= len(name or "") <= 32 and _NAME.match(name)):
        raise PhiopsError(
            f"{kind} name {name!r} is not valid: use 3 to 32 letters, digits and hyphens, "
            "starting with a letter and ending with a letter or digit"
        )
    return name


def logs_hint(endpoint: str, deployment: str) -> str:
    return f"`phiops endpoints logs {endpoint} --deployment {deployment}`"


def _one_line(text: Any, limit: int = 400) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _text(value: Any) -> str:
    """An SDK enum (`EndpointProvisioningState.SUCCEEDED`) or string, as Azure spells it."""
    return str(getattr(value, "value", value) or "")


def nonzero(traffic: dict[str, int] | None) -> dict[str, int]:
    return {name: int(share) for name, share in (traffic or {}).items() if int(share)}


# -- the entities ------------------------------------------------------------------------


def identity_configuration(config: Config) -> Any:
    """The configured user-assigned identity; without one, a system-assigned identity, which
    Azure ML grants access to the workspace's registry and storage itself."""
    from azure.ai.ml.entities import IdentityConfiguration, ManagedIdentityConfiguration

    if not config.identity_resource_id:
        return IdentityConfiguration(type="system_assigned")
    return IdentityConfiguration(
        type="user_assigned",
        user_assigned_identities=[
            ManagedIdentityConfiguration(resource_id=config.identity_resource_id)
        ],
    )


def build_endpoint(config: Config, name: str) -> Any:
    """A key-authenticated managed online endpoint with the managed identity.

    Build a fresh one for each use: `_to_dict()` turns the identity list into plain dicts
    in place, after which the SDK can no longer send the entity.
    """
    from azure.ai.ml.entities import ManagedOnlineEndpoint

    return ManagedOnlineEndpoint(
        name=check_name(name, "endpoint"),
        auth_mode="key",
        description="Fine-tuned Phi-3, deployed by phiops.",
        identity=identity_configuration(config),
        tags={"phiops": "endpoint"},
    )


def deployment_environment(config: Config) -> dict[str, str]:
    """The seed's variables, plus AZURE_CLIENT_ID so azure-identity in the container picks
    the user-assigned identity without being told."""
    values = {
        "SUBSCRIPTION_ID": config.subscription_id,
        "RESOURCE_GROUP_NAME": config.resource_group,
        "UAI_CLIENT_ID": config.identity_client_id,
        "AZURE_CLIENT_ID": config.identity_client_id,
    }
    return {key: value for key, value in values.items() if value}


def build_deployment(
    config: Config,
    model: ModelVersion,
    endpoint: str,
    name: str,
    *,
    settings: RequestSettings | None = None,
    probe: ProbeSettings | None = None,
    code: Path | None = None,
) -> Any:
    """The deployment, with the seed's request settings and probes as defaults: phiops's
    scoring code (`code`, the folder `core.azure.scoring.code_folder` assembles) in its
    environment, serving the registered model."""
    from azure.ai.ml.entities import (
        CodeConfiguration,
        ManagedOnlineDeployment,
        OnlineRequestSettings,
    )
    from azure.ai.ml.entities import ProbeSettings as AzureProbe

    from core.azure import scoring

    settings = settings or RequestSettings()
    probe = probe or ProbeSettings()
    if config.deployment_instance_count < 1:
        raise ConfigError("deployment_instance_count must be at least 1")
    if not (model.name and model.version):
        raise PhiopsError(f"deploy needs a model name and version, not {model.ref!r}")

    def probe_settings() -> Any:
        return AzureProbe(
            initial_delay=probe.initial_delay,
            period=probe.period,
            failure_threshold=probe.failure_threshold,
            success_threshold=probe.success_threshold,
            timeout=probe.timeout,
        )

    return ManagedOnlineDeployment(
        name=check_name(name, "deployment"),
        endpoint_name=check_name(endpoint, "endpoint"),
        model=f"azureml:{model.name}:{model.version}",
        code_configuration=CodeConfiguration(
            code=str(code) if code is not None else "<the scoring code folder>",
            scoring_script=scoring.SCORING_SCRIPT,
        ),
        environment=f"azureml:{scoring.ENVIRONMENT_NAME}:{scoring.environment_version()}",
        instance_type=config.deployment_instance_type,
        instance_count=config.deployment_instance_count,
        environment_variables=deployment_environment(config),
        request_settings=OnlineRequestSettings(
            max_concurrent_requests_per_instance=settings.max_concurrent_requests_per_instance,
            request_timeout_ms=settings.request_timeout_ms,
            max_queue_wait_ms=settings.max_queue_wait_ms,
        ),
        liveness_probe=probe_settings(),
        readiness_probe=probe_settings(),
        tags={"phiops": "deployment", "model": model.ref},
    )


def plan_documents(
    config: Config,
    model: ModelVersion,
    endpoint: str,
    deployment: str,
    settings: RequestSettings | None = None,
) -> list[tuple[str, dict]]:
    """What a deploy sends, as the SDK serialises it, built without Azure (`deploy
    --dry-run`): the endpoint (created only if absent), the environment (created only if
    that version is absent) and the new deployment."""
    from core.azure import scoring

    environment = scoring.build_environment()
    entity = build_deployment(
        config, model, endpoint, deployment, settings=settings, code=scoring.HERE
    )
    deployment_dict = entity._to_dict()
    deployment_dict["code_configuration"]["code"] = (
        "core/azure/scoring/score.py with core/serving/{engine,params,modelfiles}.py, "
        "assembled and uploaded at deploy time"
    )
    return [
        (
            f"endpoint {endpoint} (created only if absent)",
            build_endpoint(config, endpoint)._to_dict(),
        ),
        (f"environment {environment.name}:{environment.version}", environment._to_dict()),
        (f"deployment {deployment} at 0% traffic until its smoke test passes", deployment_dict),
    ]


# -- errors --------------------------------------------------------------------------------


def _is_quota(error: Any) -> bool:
    text = f"{getattr(error, 'message', '')} {error}".lower()
    return "quota" in text


@contextmanager
def endpoint_errors(what: str) -> Iterator[None]:
    """The jobs side's translations, plus quota refusals and the SDK's own validation."""
    from azure.ai.ml.exceptions import MlException
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

    from core.azure.jobs import azure_errors

    with azure_errors(what):
        try:
            yield
        except MlException as error:
            raise PhiopsError(f"cannot {what}: {_one_line(error.message)}") from None
        except HttpResponseError as error:
            if isinstance(error, ResourceNotFoundError) or not _is_quota(error):
                raise
            raise PhiopsError(
                f"Azure ML refused to {what} for lack of quota "
                f"({_one_line(error.message)}); {QUOTA_HELP}"
            ) from None


# -- the endpoints part ------------------------------------------------------------------------


class AzureEndpoints:
    """The endpoints part of the Azure backend. `secrets` and `poll_seconds` are for tests."""

    def __init__(
        self,
        config: Config,
        clients: Any,
        registry: Any,
        *,
        secrets: SecretStore | None = None,
        poll_seconds: float = 30.0,
    ) -> None:
        self.config = config
        self.clients = clients
        self.registry = registry
        self.secrets = secrets or SecretStore()
        self.poll_seconds = poll_seconds

    @property
    def ml_client(self) -> Any:
        return self.clients.ml_client

    # -- deploying ---------------------------------------------------------------------

    def deploy(
        self,
        model: ModelVersion,
        endpoint: str,
        deployment: str | None = None,
        traffic: int = 100,
        progress: Progress | None = None,
        *,
        request_settings: RequestSettings | None = None,
    ) -> EndpointInfo:
        """Endpoint if absent → new deployment at 0% → smoke test → its share of traffic."""
        say = progress or (lambda message: None)
        check_name(endpoint, "endpoint")
        wanted = deployment or self.config.deployment_name
        if wanted:
            check_name(wanted, "deployment")
        if not 0 <= traffic <= 100:
            raise PhiopsError(f"traffic must be between 0 and 100, not {traffic}")
        ml = self.ml_client

        say(f"checking model {model.ref}")
        model = self.registry.get(model.name, model.version or None)
        self._check_quota(say)  # before anything is created

        existing = self._find_endpoint(endpoint)
        if existing is None:
            say(f"creating endpoint {endpoint}")
            with endpoint_errors(f"create endpoint {endpoint}"):
                poller = ml.online_endpoints.begin_create_or_update(
                    build_endpoint(self.config, endpoint)
                )
                self._wait(poller, say, f"creating endpoint {endpoint}")
        elif _text(existing.auth_mode).lower() != "key":
            raise PhiopsError(
                f"endpoint {endpoint} uses {_text(existing.auth_mode)} authentication; phiops "
                "deploys to key-authenticated endpoints, so pick another endpoint name"
            )

        names = self._deployments(endpoint)
        name = wanted or bluegreen.next_deployment_name(list(names))
        if name in names:
            raise PhiopsError(
                f"deployment {name} already exists on endpoint {endpoint}; leave the "
                "deployment name out to deploy blue/green beside it, or delete it first"
            )
        from core.azure import scoring
        from core.azure.jobs import ensure_environment

        environment = scoring.build_environment()
        say(f"checking environment {environment.name}:{environment.version}")
        ensure_environment(ml, environment)
        count, size = self.config.deployment_instance_count, self.config.deployment_instance_type
        say(f"creating deployment {name} ({model.ref} on {count} x {size}) at 0% traffic")
        with tempfile.TemporaryDirectory(prefix="phiops-scoring-") as folder:
            code = scoring.code_folder(Path(folder) / "scoring")
            entity = build_deployment(
                self.config, model, endpoint, name, settings=request_settings, code=code
            )
            with endpoint_errors(f"create deployment {name} on endpoint {endpoint}"):
                poller = ml.online_deployments.begin_create_or_update(entity)  # uploads code
        self._provision(poller, endpoint, name, say)

        say(f"smoke-testing deployment {name}")
        self._smoke_test(endpoint, name)

        current = self._traffic(endpoint)
        plan = bluegreen.shift_traffic(current, name, traffic)
        if nonzero(plan) != nonzero(current):
            say(f"moving traffic to {plan[name]}% on {name}")
            self._apply_traffic(endpoint, plan, previous=current)
        try:
            self.keys(endpoint)  # kept in the secret store for `phiops score` and the flow
        except PhiopsError as error:  # the deployment stands; only the key could not be kept
            say(f"deployed, but the key was not kept: {error}")
        return self.get(endpoint)

    def _provision(self, poller: Any, endpoint: str, name: str, say: Progress) -> None:
        from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

        with endpoint_errors(f"wait for deployment {name} on endpoint {endpoint}"):
            try:
                created = self._wait(poller, say, f"provisioning deployment {name}")
            except HttpResponseError as error:
                if _is_quota(error) or isinstance(error, ClientAuthenticationError):
                    raise
                raise self._failed(endpoint, name, _one_line(error.message)) from None
        state = _text(getattr(created, "provisioning_state", ""))
        if state and state.lower() != "succeeded":
            raise self._failed(endpoint, name, f"it ended {state}")

    def _failed(self, endpoint: str, name: str, reason: str) -> PhiopsError:
        tail = self._log_tail(endpoint, name)
        ends = f"; its log ends: {tail}" if tail else ""
        return PhiopsError(
            f"deployment {name} on endpoint {endpoint} failed to provision ({reason}); the "
            f"traffic is unchanged{ends} (whole log: {logs_hint(endpoint, name)})"
        )

    def _log_tail(self, endpoint: str, name: str, lines: int = 3) -> str:
        """The last few log lines, best effort: a failure to read them must not hide why."""
        with suppress(Exception):
            text = self.ml_client.online_deployments.get_logs(name, endpoint, 50)
            kept = [line.strip() for line in str(text).splitlines() if line.strip()]
            return " | ".join(_one_line(line, 160) for line in kept[-lines:])
        return ""

    def _smoke_test(self, endpoint: str, name: str) -> None:
        """A plain question and a conversation (what chat sends), straight to the new
        deployment; each must come back as the contract's list of one string."""
        reason = ""
        with tempfile.TemporaryDirectory(prefix="phiops-smoke-") as folder:
            for number, body in enumerate((SMOKE_REQUEST, SMOKE_CHAT_REQUEST)):
                request = Path(folder) / f"request-{number}.json"
                request.write_text(json.dumps(body), encoding="utf-8")
                try:
                    answer = self.ml_client.online_endpoints.invoke(
                        endpoint_name=endpoint, request_file=str(request), deployment_name=name
                    )
                except Exception as error:  # any failure here is the deployment's, said below
                    reason = _one_line(getattr(error, "message", None) or error, 200)
                else:
                    reason = _answer_problem(answer, len(body["input_data"]))
                if reason:
                    kind = "a chat request" if body is SMOKE_CHAT_REQUEST else "a plain request"
                    reason = f"{kind}: {reason}"
                    break
        if reason:
            raise PhiopsError(
                f"deployment {name} on endpoint {endpoint} is up but failed its smoke test "
                f"({reason}); the traffic is unchanged and {name} stays at 0% (log: "
                f"{logs_hint(endpoint, name)})"
            )

    def _check_quota(self, say: Progress) -> None:
        """Stop before Azure queues a deployment the quota cannot hold; unknown → go on."""
        from core.azure.quota import vm_quota

        size, count = self.config.deployment_instance_type, self.config.deployment_instance_count
        say(f"checking the quota for {count} x {size}")
        try:
            quota = vm_quota(self.ml_client, size, self.config.location)
        except Exception:  # not listed, not readable: Azure will say so itself
            return
        needed = quota.vcpus_per_node * math.ceil(count * UPGRADE_RESERVE)
        if needed > quota.limit - quota.used:
            raise PhiopsError(
                f"not enough quota for {count} x {size}: VM family {quota.family} uses "
                f"{quota.used} of {quota.limit} vCPUs and the deployment needs {needed} "
                f"(Azure ML keeps 20% more for upgrades); {QUOTA_HELP}"
            )

    # -- traffic -----------------------------------------------------------------------

    def set_traffic(self, endpoint: str, traffic: dict[str, int]) -> EndpointInfo:
        states = self._deployments(endpoint)
        plan = bluegreen.validate_traffic(traffic, list(states))
        full = {name: plan.get(name, 0) for name in states}
        current = self._traffic(endpoint)
        if nonzero(full) != nonzero(current):
            self._apply_traffic(endpoint, full, previous=current, states=states)
        return self.get(endpoint)

    def rollback(self, endpoint: str) -> EndpointInfo:
        raw = self._endpoint(endpoint)
        current = self._traffic(endpoint, raw)
        plan = bluegreen.rollback_plan(nonzero(current), self._previous(raw))
        states = self._deployments(endpoint)
        gone = sorted(set(plan) - set(states))
        if gone:
            raise PhiopsError(
                f"cannot roll back endpoint {endpoint}: the split before the last shift used "
                f"{', '.join(gone)}, which no longer exists; set the traffic instead"
            )
        self._apply_traffic(endpoint, plan, previous=current, states=states)
        return self.get(endpoint)

    def _apply_traffic(
        self,
        endpoint: str,
        plan: dict[str, int],
        *,
        previous: dict[str, int],
        states: dict[str, str] | None = None,
    ) -> None:
        """Send the new split, keeping the one it replaces in the endpoint's tag."""
        states = states if states is not None else self._deployments(endpoint)
        for name, share in plan.items():
            state = states.get(name, "")
            if share and state.lower() != "succeeded":
                raise PhiopsError(
                    f"deployment {name} on endpoint {endpoint} is {state or 'not ready'}; "
                    "only a deployment that provisioned can take traffic"
                )
        raw = self._endpoint(endpoint)
        raw.traffic = nonzero(plan)
        raw.tags = self._with_previous(raw.tags, nonzero(previous))
        with endpoint_errors(f"update the traffic of endpoint {endpoint}"):
            self._wait(
                self.ml_client.online_endpoints.begin_create_or_update(raw),
                lambda message: None,
                "",
            )

    @staticmethod
    def _with_previous(tags: dict[str, str] | None, previous: dict[str, int]) -> dict[str, str]:
        tags = dict(tags or {})
        if sum(previous.values()) == 100:
            tags[PREVIOUS_TRAFFIC_TAG] = json.dumps(previous, sort_keys=True, separators=(",", ":"))
        else:  # nothing served before: there is nothing to roll back to
            tags.pop(PREVIOUS_TRAFFIC_TAG, None)
        return tags

    @staticmethod
    def _previous(raw: Any) -> dict[str, int] | None:
        text = (raw.tags or {}).get(PREVIOUS_TRAFFIC_TAG)
        if not text:
            return None
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return None
        if not isinstance(data, dict):
            return None
        return {str(name): int(share) for name, share in data.items()}

    # -- keys, status, logs --------------------------------------------------------------

    def keys(self, name: str) -> EndpointKeys:
        """The endpoint's keys from Azure; the primary is kept in the secret store."""
        with endpoint_errors(f"read the keys of endpoint {name}"):
            credentials = self.ml_client.online_endpoints.get_keys(name)
        primary = getattr(credentials, "primary_key", None)
        if not primary:
            raise PhiopsError(
                f"endpoint {name} does not use key authentication, so it has no keys; "
                "phiops deploys to key-authenticated endpoints"
            )
        self.secrets.set(endpoint_key_name(BACKEND, name), primary)
        return EndpointKeys(primary, getattr(credentials, "secondary_key", None) or "")

    def get(self, name: str) -> EndpointInfo:
        raw = self._endpoint(name)
        with endpoint_errors(f"list the deployments of endpoint {name}"):
            deployments = list(self.ml_client.online_deployments.list(name))
        return self._info(raw, deployments)

    def list(self) -> list[EndpointInfo]:
        found = []
        with endpoint_errors("list online endpoints"):
            for raw in self.ml_client.online_endpoints.list():
                deployments = list(self.ml_client.online_deployments.list(raw.name))
                found.append(self._info(raw, deployments))
        return sorted(found, key=lambda info: info.name)

    def logs(self, endpoint: str, deployment: str, lines: int = 100) -> str:
        with endpoint_errors(f"read the logs of deployment {deployment} on endpoint {endpoint}"):
            return str(self.ml_client.online_deployments.get_logs(deployment, endpoint, lines))

    def _info(self, raw: Any, deployments: list[Any]) -> EndpointInfo:
        from core.azure.registry import model_reference

        traffic = {item.name: 0 for item in deployments}
        traffic.update(nonzero(raw.traffic))
        scoring_uri = raw.scoring_uri or ""
        infos = []
        for item in sorted(deployments, key=lambda item: item.name):
            name, version = model_reference(item.model)
            settings = item.request_settings
            infos.append(
                DeploymentInfo(
                    name=item.name,
                    endpoint=raw.name,
                    model=f"{name}:{version}" if version else name,
                    state=_text(item.provisioning_state),
                    instance_type=item.instance_type or "",
                    instance_count=int(item.instance_count or 0),
                    scoring_uri=scoring_uri,
                    request_settings=RequestSettings(
                        max_concurrent_requests_per_instance=settings.max_concurrent_requests_per_instance,
                        request_timeout_ms=settings.request_timeout_ms,
                        max_queue_wait_ms=settings.max_queue_wait_ms,
                    )
                    if settings is not None
                    else RequestSettings(),
                )
            )
        return EndpointInfo(
            name=raw.name,
            state=_text(raw.provisioning_state),
            scoring_uri=scoring_uri,
            auth_mode=_text(raw.auth_mode),
            traffic=traffic,
            deployments=infos,
            backend=BACKEND,
            previous_traffic=self._previous(raw),
        )

    # -- deleting ------------------------------------------------------------------------

    def delete_deployment(self, endpoint: str, deployment: str) -> None:
        """Refuses while the deployment takes traffic beside another one (bluegreen.without)."""
        raw = self._endpoint(endpoint)
        states = self._deployments(endpoint)
        if deployment not in states:
            raise NotFoundError(f"endpoint {endpoint} has no deployment named {deployment}")
        current = self._traffic(endpoint, raw)
        remaining = bluegreen.without(current, deployment)
        previous = self._previous(raw) or {}
        if current.get(deployment, 0) or deployment in previous:
            # Azure refuses to delete a deployment that has traffic; and a rollback must
            # not name a deployment that is gone.
            previous.pop(deployment, None)
            raw.traffic = nonzero(remaining)
            raw.tags = self._with_previous(raw.tags, previous)
            with endpoint_errors(f"take deployment {deployment} out of endpoint {endpoint}"):
                self._wait(
                    self.ml_client.online_endpoints.begin_create_or_update(raw),
                    lambda message: None,
                    "",
                )
        with endpoint_errors(f"delete deployment {deployment} of endpoint {endpoint}"):
            self.ml_client.online_deployments.begin_delete(
                name=deployment, endpoint_name=endpoint
            ).result()

    def delete_endpoint(self, endpoint: str) -> None:
        """The endpoint and its deployments; its key leaves the secret store too."""
        with endpoint_errors(f"delete endpoint {endpoint}"):
            self.ml_client.online_endpoints.begin_delete(name=endpoint).result()
        self.secrets.delete(endpoint_key_name(BACKEND, endpoint))

    # -- reading Azure -------------------------------------------------------------------

    def _find_endpoint(self, name: str) -> Any | None:
        from azure.core.exceptions import ResourceNotFoundError

        with endpoint_errors(f"read endpoint {name}"):
            try:
                return self.ml_client.online_endpoints.get(name)
            except ResourceNotFoundError:
                return None

    def _endpoint(self, name: str) -> Any:
        found = self._find_endpoint(name)
        if found is None:
            raise NotFoundError(f"there is no online endpoint named {name} in the workspace")
        return found

    def _deployments(self, endpoint: str) -> dict[str, str]:
        """Deployment name → provisioning state."""
        with endpoint_errors(f"list the deployments of endpoint {endpoint}"):
            return {
                item.name: _text(item.provisioning_state)
                for item in self.ml_client.online_deployments.list(endpoint)
            }

    def _traffic(self, endpoint: str, raw: Any = None) -> dict[str, int]:
        """Every deployment's share, 0 included (`get` fills those in)."""
        raw = raw if raw is not None else self._endpoint(endpoint)
        return {name: int(share) for name, share in (raw.traffic or {}).items()}

    def _wait(self, poller: Any, say: Progress, what: str) -> Any:
        """A long-running operation's result, saying every so often that it still runs."""
        started = time.monotonic()
        done: Callable[[], bool] = getattr(poller, "done", lambda: True)
        while not done():
            poller.wait(timeout=self.poll_seconds)
            if what and not done():
                say(f"{what} ({int(time.monotonic() - started) // 60} min so far)")
        return poller.result()


def _answer_problem(answer: Any, expected: int) -> str:
    """Why a scoring answer is not the contract's list of strings ("" when it is)."""
    try:
        data = json.loads(answer) if isinstance(answer, str | bytes) else answer
    except (TypeError, ValueError):
        return f"the answer is not JSON: {_one_line(answer, 120)!r}"
    if not isinstance(data, list) or not all(isinstance(item, str) for item in data):
        return f"the answer is not a JSON list of strings: {_one_line(answer, 120)!r}"
    if len(data) != expected:
        return f"{len(data)} answers came back for {expected} input"
    return ""
