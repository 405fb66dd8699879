"""`phiops resources ensure`: create what the check found missing, never touch what exists.

The plan comes from the check's facts (what Azure confirmed absent), in dependency order:
resource group, then a container registry and the workspace (Azure ML makes its storage
account, key vault and application insights), the user-assigned identity, its client id
recorded in phiops.toml, the three role assignments, and the compute cluster (min 0
nodes). Every step looks again right before it creates, and role assignment names are
fixed GUIDs, so a second run, or a run after a failed one, creates nothing twice. Quota
and anything "wrong" are never changed by code: they are listed with their fix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from core.azure.blueprint import (
    ACR_API_VERSION,
    COMPUTE,
    IDENTITY,
    IDENTITY_CLIENT_ID,
    LINKED,
    RESOURCE_GROUP,
    ROLE_NEEDS,
    WORKSPACE,
    RoleNeed,
    build_cluster,
    build_identity,
    build_registry,
    build_resource_group,
    build_role_assignment,
    build_workspace,
    registry_name,
    resource_group_id,
    role_assignment_name,
)
from core.azure.resources import (
    Survey,
    check_resources,
    get_or_none,
    needs_attention,
    reading,
    survey_resources,
)
from core.backend import Finding, FindingState, Progress
from core.config import Config
from core.errors import PhiopsError

# -- ensure: the plan and its steps ---------------------------------------------------------


@dataclass
class Step:
    """One thing `ensure` creates: the finding it fixes and what it does, in words."""

    fixes: str
    action: str
    run: Callable[[Progress], None] = field(repr=False)

    def to_dict(self) -> dict[str, str]:
        return {"fixes": self.fixes, "action": self.action}


@dataclass
class Plan:
    """What `ensure` will create, and what it cannot (with the fix a person applies)."""

    steps: list[Step]
    manual: list[Finding]
    findings: list[Finding]
    done: list[str] = field(default_factory=list)

    def apply(
        self,
        progress: Progress | None = None,
        on_step: Callable[[int, Step], None] | None = None,
    ) -> list[str]:
        """Run the steps in order; returns what was done, in words. `on_step(i, step)` is
        called before each step (a progress bar), `progress` with every message."""
        say = progress or (lambda message: None)
        self.done = []
        for index, step in enumerate(self.steps):
            if on_step is not None:
                on_step(index, step)
            say(step.action)
            step.run(say)
            self.done.append(step.action)
        return self.done

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": [step.to_dict() for step in self.steps],
            "manual": [_finding_dict(item) for item in self.manual],
        }


def _finding_dict(finding: Finding) -> dict[str, Any]:
    return {
        "name": finding.name,
        "state": str(finding.state),
        "detail": finding.detail,
        "fix": finding.fix,
        "required": finding.required,
    }


class Ensurer:
    """Builds the steps for what the survey found missing. Each step looks again right
    before it creates (a get, then a create), so a step that raced another run or an
    earlier partial run reuses what is there instead of changing it."""

    def __init__(self, config: Config, clients: Any, survey: Survey) -> None:
        self.config = config
        self.clients = clients
        self.survey = survey
        self.workspace = survey.workspace
        self.identity = survey.identity

    def plan(self) -> Plan:
        survey, config = self.survey, self.config
        absent = survey.absent
        steps: list[Step] = []
        group_missing = RESOURCE_GROUP in absent
        workspace_missing = bool(config.workspace) and (group_missing or WORKSPACE in absent)
        identity_missing = bool(config.identity_name) and (group_missing or IDENTITY in absent)
        identity_known = identity_missing or survey.identity is not None
        compute_missing = workspace_missing or COMPUTE in absent
        if group_missing:
            steps.append(
                Step(
                    RESOURCE_GROUP,
                    f"create resource group {config.resource_group} in {config.location}",
                    self.create_resource_group,
                )
            )
        if workspace_missing:
            steps.append(
                Step(
                    WORKSPACE,
                    f"create workspace {config.workspace} with a storage account, key vault, "
                    f"application insights and container registry {registry_name(config)} "
                    "(takes a few minutes)",
                    self.create_workspace,
                )
            )
        if identity_missing:
            steps.append(
                Step(
                    IDENTITY,
                    f"create managed identity {config.identity_name}",
                    self.create_identity,
                )
            )
        if identity_known and not config.identity_client_id:
            steps.append(
                Step(
                    IDENTITY_CLIENT_ID,
                    f"record the identity's client id in {config.path.name}",
                    self.record_client_id,
                )
            )
        if identity_known:
            for need in ROLE_NEEDS:
                new_scope = group_missing if need.target == RESOURCE_GROUP else workspace_missing
                scope_exists = new_scope or bool(self._scope(need))
                if scope_exists and (identity_missing or new_scope or need.finding in absent):
                    steps.append(
                        Step(
                            need.finding,
                            f"grant {need.role} on the {need.target} to {config.identity_name}",
                            self._grant(need),
                        )
                    )
        if compute_missing and config.compute_name:
            steps.append(
                Step(
                    COMPUTE,
                    f"create compute cluster {config.compute_name} ({config.compute_vm_size}, "
                    f"0-{config.compute_max_nodes} nodes, idle nodes released)",
                    self.create_compute,
                )
            )
        covered = {step.fixes for step in steps}
        if WORKSPACE in covered:
            covered |= {name for name, _, _ in LINKED}
        findings = survey.ordered()
        manual = [
            item for item in findings if item.state != FindingState.OK and item.name not in covered
        ]
        return Plan(steps, manual, findings)

    # -- the steps -------------------------------------------------------------------

    def create_resource_group(self, say: Progress) -> None:
        config = self.config
        groups = self.clients.resource_client.resource_groups
        if get_or_none("the resource group", lambda: groups.get(config.resource_group)) is None:
            with creating(f"resource group {config.resource_group}"):
                groups.create_or_update(config.resource_group, build_resource_group(config))

    def create_workspace(self, say: Progress) -> None:
        config = self.config
        workspaces = self.clients.ml_client.workspaces
        existing = get_or_none("the workspace", lambda: workspaces.get(config.workspace))
        if existing is not None:
            self.workspace = existing
            return
        registry = self.create_registry(say)
        say(f"creating workspace {config.workspace}")
        with creating(f"workspace {config.workspace}"):
            self.workspace = workspaces.begin_create(build_workspace(config, registry)).result()

    def create_registry(self, say: Progress) -> str:
        config = self.config
        name = registry_name(config)
        registry_id = (
            f"{resource_group_id(config)}/providers/Microsoft.ContainerRegistry/registries/{name}"
        )
        resources = self.clients.resource_client.resources
        with reading("the container registry"):
            exists = resources.check_existence_by_id(registry_id, api_version=ACR_API_VERSION)
        if not exists:
            say(f"creating container registry {name}")
            with creating(f"container registry {name}"):
                resources.begin_create_or_update(
                    config.resource_group,
                    "Microsoft.ContainerRegistry",
                    "",
                    "registries",
                    name,
                    build_registry(config),
                    api_version=ACR_API_VERSION,
                ).result()
        return registry_id

    def create_identity(self, say: Progress) -> None:
        config = self.config
        identities = self.clients.msi_client.user_assigned_identities
        found = get_or_none(
            "the managed identity",
            lambda: identities.get(config.resource_group, config.identity_name),
        )
        if found is None:
            with creating(f"managed identity {config.identity_name}"):
                found = identities.create_or_update(
                    config.resource_group, config.identity_name, build_identity(config)
                )
        self.identity = found

    def record_client_id(self, say: Progress) -> None:
        """phiops.toml is phiops' own file: filling an empty value changes nothing in Azure."""
        from core.config import set_value

        client_id = str(self._identity().client_id)
        self.config.identity_client_id = client_id
        if self.config.path.is_file():
            set_value(self.config.path, "identity_client_id", client_id)
        else:
            say(f"no {self.config.path.name} to record it in: set PHIOPS_IDENTITY_CLIENT_ID")

    def _identity(self) -> Any:
        if self.identity is None:
            self.create_identity(lambda message: None)
        return self.identity

    def _workspace(self) -> Any:
        if self.workspace is None:
            workspaces = self.clients.ml_client.workspaces
            self.workspace = get_or_none(
                "the workspace", lambda: workspaces.get(self.config.workspace)
            )
        return self.workspace

    def _scope(self, need: RoleNeed) -> str | None:
        """The resource the role applies to, if it exists: the group, or the workspace's
        storage account or registry."""
        if need.target == RESOURCE_GROUP:
            return resource_group_id(self.config)
        return need.scope_in(self.workspace)

    def _grant(self, need: RoleNeed) -> Callable[[Progress], None]:
        def grant(say: Progress) -> None:
            from azure.core.exceptions import ResourceExistsError

            principal = str(self._identity().principal_id)
            if need.target != RESOURCE_GROUP:
                self._workspace()  # the one this run created, or the one that exists
            scope = self._scope(need)
            if not scope:
                say(f"skipped {need.role}: the workspace has no {need.target}")
                return
            assignments = self.clients.authorization_client.role_assignments
            try:
                with creating(f"the {need.role} role assignment"):
                    assignments.create(
                        scope,
                        role_assignment_name(scope, need, principal),
                        build_role_assignment(self.config, need, principal),
                    )
            except ResourceExistsError:
                pass  # already granted: what ensure wanted

        return grant

    def create_compute(self, say: Progress) -> None:
        config = self.config
        compute = self.clients.ml_client.compute
        if get_or_none("the compute", lambda: compute.get(config.compute_name)) is None:
            with creating(f"compute cluster {config.compute_name}"):
                compute.begin_create_or_update(build_cluster(config)).result()


@contextmanager
def creating(what: str) -> Iterator[None]:
    """Errors while creating, as one sentence that names what could not be created."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceExistsError,
        ServiceRequestError,
    )

    try:
        yield
    except ResourceExistsError:
        raise
    except ClientAuthenticationError as error:
        raise PhiopsError(
            f"Azure did not accept the sign-in to create {what} ({error.message})"
        ) from None
    except ServiceRequestError as error:
        raise PhiopsError(f"cannot reach Azure to create {what} ({error.message})") from None
    except HttpResponseError as error:
        hint = (
            "; creating it needs Owner or User Access Administrator on the scope"
            if error.status_code == 403
            else ""
        )
        raise PhiopsError(f"Azure refused to create {what} ({error.message}){hint}") from None


def plan_resources(config: Config, clients: Any) -> Plan:
    """Check, then list what `ensure` would create and what a person must do."""
    return Ensurer(config, clients, survey_resources(config, clients)).plan()


@dataclass
class EnsureReport:
    plan: Plan
    created: list[str]
    dry_run: bool
    findings: list[Finding]

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.plan.to_dict(),
            "dry_run": self.dry_run,
            "created": self.created,
            "findings": [_finding_dict(item) for item in self.findings],
            "ok": not needs_attention(self.findings),
        }


def ensure_resources(
    config: Config, clients: Any, dry_run: bool = False, progress: Progress | None = None
) -> EnsureReport:
    """Create what is missing and can be created by code; then check again."""
    plan = plan_resources(config, clients)
    if dry_run or not plan.steps:
        return EnsureReport(plan, [], dry_run, plan.findings)
    created = plan.apply(progress)
    return EnsureReport(plan, created, dry_run, check_resources(config, clients))
