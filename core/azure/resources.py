"""Check the Azure resources phiops needs and say, for each, ok / missing / wrong and the fix.

The seed's first scenario is an hour of portal clicks, and most of its failures are a
missing step found only when a job or a deployment fails. `check_resources` looks at every
step up front: the subscription, the resource group, the workspace and its linked
resources (read from the `Workspace` entity, then asked of ARM), the managed identity and
its client id, its three role assignments at their scopes (inherited ones count), the
compute cluster (size, state, nodes, identity) and the vCPU quota of the VM size's family
in the region. Sign-in is tried first, so "not signed in" is one sentence, said once.
Reads that Azure refuses (403) become findings; other failures stop with one sentence.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from core.azure.blueprint import (
    API_VERSIONS,
    COMPUTE,
    GUID,
    IDENTITY,
    IDENTITY_CLIENT_ID,
    LINKED,
    NOT_REQUIRED,
    ORDER,
    QUOTA,
    QUOTA_REQUEST,
    REGISTRY,
    RESOURCE_GROUP,
    ROLE_NEEDS,
    SUBSCRIPTION,
    WORKSPACE,
    RoleNeed,
    az_compute_create,
    az_group_create,
    az_identity_create,
    az_registry_attach,
    az_role_create,
    az_workspace_create,
    fix_config,
    last_segment,
    resource_group_id,
    resource_type,
    state_text,
    with_ensure,
)
from core.backend import Finding, FindingState, Progress
from core.config import Config
from core.errors import PhiopsError

# -- reading Azure -----------------------------------------------------------------------


class Denied(Exception):
    """Azure answered 403: the signed-in account may not read this."""


@contextmanager
def reading(what: str) -> Iterator[None]:
    """Errors while reading: 403 → `Denied` (a finding), the rest → one sentence."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
    )

    try:
        yield
    except (PhiopsError, Denied):
        raise
    except ClientAuthenticationError as error:
        raise PhiopsError(
            f"Azure did not accept the sign-in to read {what} ({error.message})"
        ) from None
    except ServiceRequestError as error:
        raise PhiopsError(f"cannot reach Azure to read {what} ({error.message})") from None
    except HttpResponseError as error:
        if error.status_code == 403:
            raise Denied(error.message) from None
        raise PhiopsError(f"Azure refused to read {what} ({error.message})") from None


def get_or_none(what: str, read: Callable[[], Any]) -> Any:
    """`read()`, or None when Azure says it does not exist."""
    from azure.core.exceptions import ResourceNotFoundError

    with reading(what):
        try:
            return read()
        except ResourceNotFoundError:
            return None


# -- the check ---------------------------------------------------------------------------


@dataclass
class Survey:
    """What the check saw. `ensure` plans from these facts, not from the sentences."""

    config: Config
    findings: dict[str, Finding] = field(default_factory=dict)
    resource_group_exists: bool | None = None
    workspace: Any = None
    identity: Any = None
    compute: Any = None
    absent: set[str] = field(default_factory=set)  # findings Azure confirmed do not exist
    extra: list[Finding] = field(default_factory=list)

    def add(
        self,
        name: str,
        state: FindingState,
        detail: str = "",
        fix: str = "",
        required: bool | None = None,
    ) -> Finding:
        finding = Finding(
            name, state, detail, fix, name not in NOT_REQUIRED if required is None else required
        )
        self.findings[name] = finding
        return finding

    def denied(self, name: str, what: str, message: str) -> None:
        self.add(
            name,
            FindingState.UNKNOWN,
            f"the signed-in account may not read {what} ({message})",
            "ask an Owner of the subscription for the Reader role on the resource group",
        )

    def ordered(self) -> list[Finding]:
        """Every finding in report order; what could not be looked at says so."""
        result = []
        for name in ORDER:
            finding = self.findings.get(name)
            if finding is None:
                finding = Finding(
                    name,
                    FindingState.UNKNOWN,
                    "not checked until the items above are fixed",
                    required=name not in NOT_REQUIRED,
                )
            result.append(finding)
        return result + self.extra


class Checker:
    """One pass over the resources; each step records facts and a finding."""

    def __init__(self, config: Config, clients: Any) -> None:
        self.config = config
        self.clients = clients
        self.survey = Survey(config)

    def run(self) -> Survey:
        self.clients.ensure_signed_in()
        if self.subscription():
            self.resource_group()
            if self.survey.resource_group_exists:
                self.workspace()
            self.identity()
            self.roles()
            if self.survey.workspace is not None:
                self.compute()
            self.quota()
        return self.survey

    # each step returns nothing unless later steps depend on its answer

    def subscription(self) -> bool:
        config, add = self.config, self.survey.add
        if not config.subscription_id:
            add(
                SUBSCRIPTION,
                FindingState.MISSING,
                "no subscription_id in phiops.toml",
                fix_config("subscription_id", "ID"),
            )
            return False
        if not GUID.match(config.subscription_id):
            add(
                SUBSCRIPTION,
                FindingState.WRONG,
                f"subscription_id {config.subscription_id!r} is not a subscription id (a GUID)",
                fix_config("subscription_id", "ID") + "; `az account list -o table` lists them",
            )
            return False
        subscriptions = self.clients.subscription_client.subscriptions
        try:
            found = get_or_none(
                "the subscription", lambda: subscriptions.get(config.subscription_id)
            )
        except Denied:
            found = None
        if found is None:
            visible = self._visible_subscriptions()
            add(
                SUBSCRIPTION,
                FindingState.WRONG,
                f"subscription {config.subscription_id} is not visible to the signed-in account"
                + (f"; it sees {visible}" if visible else "; it sees no subscription"),
                fix_config("subscription_id", "ID")
                + "; or sign in to the right tenant: `az login --tenant TENANT`",
            )
            return False
        state = state_text(found.state)
        name = found.display_name or config.subscription_id
        if state and state.lower() != "enabled":
            add(
                SUBSCRIPTION,
                FindingState.WRONG,
                f"{name} ({config.subscription_id}) is {state}",
                "re-enable it in the Azure portal > Subscriptions, or use another subscription_id",
            )
            return False
        add(
            SUBSCRIPTION,
            FindingState.OK,
            f"{name} ({config.subscription_id}), {state or 'enabled'}",
        )
        return True

    def _visible_subscriptions(self) -> str:
        try:
            with reading("the subscriptions"):
                found = list(self.clients.subscription_client.subscriptions.list())
        except (Denied, PhiopsError):
            return ""
        return ", ".join(f"{item.display_name} ({item.subscription_id})" for item in found[:5])

    def resource_group(self) -> None:
        config, add = self.config, self.survey.add
        if not config.resource_group:
            add(
                RESOURCE_GROUP,
                FindingState.MISSING,
                "no resource_group in phiops.toml",
                fix_config("resource_group"),
            )
            return
        groups = self.clients.resource_client.resource_groups
        try:
            group = get_or_none("the resource group", lambda: groups.get(config.resource_group))
        except Denied as error:
            self.survey.denied(
                RESOURCE_GROUP, f"resource group {config.resource_group}", str(error)
            )
            return
        self.survey.resource_group_exists = group is not None
        if group is None:
            self.survey.absent.add(RESOURCE_GROUP)
            add(
                RESOURCE_GROUP,
                FindingState.MISSING,
                f"resource group {config.resource_group} does not exist",
                with_ensure(az_group_create(config)),
            )
        else:
            add(RESOURCE_GROUP, FindingState.OK, f"{group.name} in {group.location}")

    def workspace(self) -> None:
        config, add = self.config, self.survey.add
        if not config.workspace:
            add(
                WORKSPACE,
                FindingState.MISSING,
                "no workspace in phiops.toml",
                fix_config("workspace"),
            )
            return
        workspaces = self.clients.ml_client.workspaces
        try:
            workspace = get_or_none("the workspace", lambda: workspaces.get(config.workspace))
        except Denied as error:
            self.survey.denied(WORKSPACE, f"workspace {config.workspace}", str(error))
            return
        self.survey.workspace = workspace
        if workspace is None:
            self.survey.absent.add(WORKSPACE)
            add(
                WORKSPACE,
                FindingState.MISSING,
                f"workspace {config.workspace} does not exist in {config.resource_group}",
                with_ensure(az_workspace_create(config)),
            )
            return
        location = (workspace.location or "").lower().replace(" ", "")
        if location and config.location and location != config.location.lower():
            add(
                WORKSPACE,
                FindingState.WRONG,
                f"workspace {workspace.name} is in {workspace.location}, but location is "
                f"{config.location} (quota and compute are looked up there)",
                f"`phiops config set location {workspace.location}`",
            )
        else:
            add(WORKSPACE, FindingState.OK, f"{workspace.name} in {workspace.location}")
        for name, attribute, required in LINKED:
            self.linked(name, getattr(workspace, attribute, None), required)

    def linked(self, name: str, resource_id: str | None, required: bool) -> None:
        config, add = self.config, self.survey.add
        if not resource_id:
            fix = (
                az_registry_attach(config)
                if name == REGISTRY
                else "attach one in the Azure portal > the workspace"
            )
            detail = f"workspace {config.workspace} has no {name}"
            if name == REGISTRY:
                detail += "; AcrPull cannot be granted until it has one"
            add(name, FindingState.MISSING, detail, fix, required)
            return
        kind = resource_type(resource_id)
        api_version = API_VERSIONS.get(kind)
        if api_version is None:
            add(name, FindingState.OK, last_segment(resource_id), required=required)
            return
        try:
            with reading(name):
                exists = self.clients.resource_client.resources.check_existence_by_id(
                    resource_id, api_version=api_version
                )
        except Denied:
            exists = True  # listed by the workspace; reading it needs more rights than phiops'
        if exists:
            add(name, FindingState.OK, last_segment(resource_id), required=required)
        else:
            add(
                name,
                FindingState.WRONG,
                f"the workspace uses {name} {last_segment(resource_id)}, which no longer exists",
                "restore it (Azure portal > the resource group > Deleted resources) or attach "
                "another one with `az ml workspace update --update-dependent-resources`",
                required,
            )

    def identity(self) -> None:
        config, add = self.config, self.survey.add
        if not config.identity_name:
            add(
                IDENTITY,
                FindingState.MISSING,
                "no identity_name in phiops.toml: the compute and endpoints need a "
                "user-assigned managed identity",
                "`phiops config set identity_name phi3-identity`, then `phiops resources ensure`",
            )
            return
        if self.survey.resource_group_exists is False:
            add(
                IDENTITY,
                FindingState.MISSING,
                f"identity {config.identity_name} does not exist (no resource group yet)",
                with_ensure(az_identity_create(config)),
            )
            return
        identities = self.clients.msi_client.user_assigned_identities
        try:
            found = get_or_none(
                "the managed identity",
                lambda: identities.get(config.resource_group, config.identity_name),
            )
        except Denied as error:
            self.survey.denied(IDENTITY, f"identity {config.identity_name}", str(error))
            return
        self.survey.identity = found
        if found is None:
            self.survey.absent.add(IDENTITY)
            add(
                IDENTITY,
                FindingState.MISSING,
                f"identity {config.identity_name} does not exist in {config.resource_group}",
                with_ensure(az_identity_create(config)),
            )
            return
        add(
            IDENTITY,
            FindingState.OK,
            f"{found.name}: client id {found.client_id}, principal id {found.principal_id}",
        )
        if not config.identity_client_id:
            add(
                IDENTITY_CLIENT_ID,
                FindingState.MISSING,
                "identity_client_id is empty in phiops.toml",
                "`phiops resources ensure` records it, or "
                f"`phiops config set identity_client_id {found.client_id}`",
            )
        elif config.identity_client_id.lower() != str(found.client_id).lower():
            add(
                IDENTITY_CLIENT_ID,
                FindingState.WRONG,
                f"identity_client_id is {config.identity_client_id}, but identity "
                f"{found.name} has client id {found.client_id}",
                f"`phiops config set identity_client_id {found.client_id}`",
            )
        else:
            add(IDENTITY_CLIENT_ID, FindingState.OK, str(found.client_id))

    def role_scope(self, need: RoleNeed) -> str | None:
        if need.target == RESOURCE_GROUP:
            return resource_group_id(self.config) if self.survey.resource_group_exists else None
        return need.scope_in(self.survey.workspace)

    def roles(self) -> None:
        identity = self.survey.identity
        if identity is None:
            return
        assignments = self.clients.authorization_client.role_assignments
        for need in ROLE_NEEDS:
            scope = self.role_scope(need)
            if scope is None:
                if need.target == REGISTRY and self.survey.workspace is not None:
                    self.survey.add(
                        need.finding,
                        FindingState.MISSING,
                        f"{need.role} waits for the workspace's container registry",
                        az_registry_attach(self.config),
                    )
                continue
            principal = str(identity.principal_id)
            try:
                with reading(f"the role assignments of {identity.name}"):
                    found = list(
                        assignments.list_for_scope(scope, filter=f"principalId eq '{principal}'")
                    )
            except Denied as error:
                self.survey.denied(
                    need.finding, f"role assignments on {last_segment(scope)}", str(error)
                )
                continue
            match = self._matching(found, need, principal, scope)
            where = f"{need.target} {last_segment(scope)}"
            if match is None:
                self.survey.absent.add(need.finding)
                self.survey.add(
                    need.finding,
                    FindingState.MISSING,
                    f"{identity.name} lacks {need.role} on {where}",
                    with_ensure(az_role_create(need, principal, scope)),
                )
            else:
                inherited = (
                    ""
                    if match.scope.lower() == scope.lower()
                    else f" (inherited from {match.scope})"
                )
                self.survey.add(need.finding, FindingState.OK, f"{need.role} on {where}{inherited}")

    @staticmethod
    def _matching(found: list[Any], need: RoleNeed, principal: str, scope: str) -> Any:
        """An assignment of this role to this principal at the scope or above it."""
        for assignment in found:
            same_role = str(assignment.role_definition_id).lower().endswith(need.definition_guid)
            applies = scope.lower().startswith(str(assignment.scope).lower().rstrip("/"))
            if same_role and applies and str(assignment.principal_id) == principal:
                return assignment
        return None

    def compute(self) -> None:
        config, add = self.config, self.survey.add
        compute_ops = self.clients.ml_client.compute
        try:
            with reading("the compute"):
                clusters = [
                    c for c in compute_ops.list() if state_text(c.type).lower() == "amlcompute"
                ]
        except Denied as error:
            self.survey.denied(COMPUTE, "the workspace's compute", str(error))
            return
        mine = None
        for cluster in clusters:
            if cluster.name == config.compute_name:
                mine = cluster
            else:
                self.survey.extra.append(
                    Finding(
                        f"compute {cluster.name}",
                        FindingState.OK,
                        self._describe(cluster),
                        required=False,
                    )
                )
        if mine is None:
            other = get_or_none("the compute", lambda: compute_ops.get(config.compute_name))
            if other is not None:
                add(
                    COMPUTE,
                    FindingState.WRONG,
                    f"{config.compute_name} is a {state_text(other.type)}, not a compute cluster",
                    "`phiops config set compute_name NEW_NAME`, then `phiops resources ensure`",
                )
                return
            self.survey.absent.add(COMPUTE)
            add(
                COMPUTE,
                FindingState.MISSING,
                f"cluster {config.compute_name} does not exist (the first `phiops train submit` "
                "would also create it)",
                with_ensure(az_compute_create(config)),
                required=False,
            )
            return
        self.survey.compute = mine
        problems = []
        if (mine.size or "").lower() != config.compute_vm_size.lower():
            problems.append(
                f"its VM size is {mine.size}, not compute_vm_size {config.compute_vm_size}"
            )
        if state_text(mine.provisioning_state).lower() == "failed":
            problems.append(
                f"its provisioning failed ({mine.provisioning_errors or 'no reason given'})"
            )
        wanted = config.identity_resource_id.lower()
        attached = [str(item.resource_id).lower() for item in _user_identities(mine)]
        if wanted and wanted not in attached:
            problems.append(f"identity {config.identity_name} is not attached")
        if problems:
            fix = (
                f"az ml compute update --name {config.compute_name} --resource-group "
                f"{config.resource_group} --workspace-name {config.workspace} --identity-type "
                f"UserAssigned --user-assigned-identities {config.identity_resource_id}"
                if problems == [f"identity {config.identity_name} is not attached"]
                else f"`phiops config set compute_vm_size {mine.size}`, or a new compute_name "
                "and `phiops resources ensure`"
            )
            add(COMPUTE, FindingState.WRONG, f"{mine.name}: " + "; ".join(problems), fix)
        else:
            add(COMPUTE, FindingState.OK, self._describe(mine))

    def _describe(self, cluster: Any) -> str:
        try:
            with reading("the cluster's nodes"):
                nodes = len(list(self.clients.ml_client.compute.list_nodes(cluster.name)))
        except (Denied, PhiopsError):
            nodes = None
        state = state_text(cluster.provisioning_state) or "unknown state"
        now = "" if nodes is None else f", {nodes} node(s) now"
        idle = cluster.idle_time_before_scale_down
        idle_text = f", idle {int(idle)} s before scale-down" if idle else ""
        identities = ", ".join(
            last_segment(str(item.resource_id)) for item in _user_identities(cluster)
        )
        return (
            f"{cluster.name}: {cluster.size}, {state}, {cluster.min_instances or 0}-"
            f"{cluster.max_instances} nodes{now}{idle_text}"
            + (f", identity {identities}" if identities else "")
        )

    def quota(self) -> None:
        from core.azure.quota import vm_quota

        config, add = self.config, self.survey.add
        if not (config.resource_group and config.workspace):
            return
        size = (
            self.survey.compute.size if self.survey.compute is not None else config.compute_vm_size
        )
        try:
            with reading("the VM quota"):
                quota = vm_quota(self.clients.ml_client, size, config.location)
        except Denied as error:
            self.survey.denied(QUOTA, "the VM quota", str(error))
            return
        except PhiopsError as error:  # size not offered there, or no quota entry at all
            add(QUOTA, FindingState.WRONG, str(error), "`phiops config set compute_vm_size SIZE`")
            return
        needed = quota.vcpus_per_node * max(config.compute_max_nodes, 1)
        numbers = (
            f"{quota.family} in {config.location}: {quota.used} of {quota.limit} vCPUs used; "
            f"{max(config.compute_max_nodes, 1)} x {size} needs {needed}"
        )
        request = QUOTA_REQUEST.format(location=config.location, family=quota.family, vcpus=needed)
        if quota.limit == 0:
            add(QUOTA, FindingState.MISSING, f"no quota for {numbers}", request)
        elif quota.limit - quota.used < quota.vcpus_per_node:
            add(
                QUOTA, FindingState.WRONG, f"not enough free quota for one node: {numbers}", request
            )
        else:
            add(QUOTA, FindingState.OK, numbers)


def _user_identities(cluster: Any) -> list[Any]:
    identity = getattr(cluster, "identity", None)
    return list(getattr(identity, "user_assigned_identities", None) or [])


def survey_resources(config: Config, clients: Any) -> Survey:
    return Checker(config, clients).run()


def check_resources(config: Config, clients: Any) -> list[Finding]:
    """Every finding, in report order (the backend's `resources()` on Azure)."""
    return survey_resources(config, clients).ordered()


def needs_attention(findings: list[Finding]) -> bool:
    """True when something required is missing or wrong: `resources check` exits 1."""
    return any(item.required and item.state != FindingState.OK for item in findings)


def ensure_resources(
    config: Config, clients: Any, dry_run: bool = False, progress: Progress | None = None
) -> Any:
    """Create what is missing and can be created by code, then check again (see ensure.py)."""
    from core.azure.ensure import ensure_resources as ensure

    return ensure(config, clients, dry_run=dry_run, progress=progress)
