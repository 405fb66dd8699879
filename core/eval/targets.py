"""What an evaluation asks: an endpoint (one deployment of it), a registered model, or the
base model — resolved to a scoring URI, a key and how many requests it takes at once.

- `ENDPOINT[:DEPLOYMENT]`: the endpoint's scoring URI with its key; a named deployment is
  reached with the `azureml-model-deployment` header (at 0% traffic too, as the gate needs).
  Without one, the deployment taking all the traffic is pinned the same way, so the result
  belongs to one model; with the traffic split, requests go by the split and each row
  records which deployment answered.
- `--model NAME:VERSION`: locally, a temporary scoring server on the version's files; on
  Azure, a deployment that serves the version.
- `--base`: the un-tuned base model (`base_model`, a local folder or a cached hub model),
  served by a temporary local scoring server that is stopped afterwards.

Concurrency is the deployment's `max_concurrent_requests_per_instance` times its instance
count (`--concurrency` may ask for fewer). A target that is not ready is refused in one
sentence before any request.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets as random_secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.backend import Backend, EndpointInfo, ModelVersion, RequestSettings
from core.config import Config
from core.errors import NotFoundError, PhiopsError
from core.eval.generate import Target

BASE = "base"
# A temporary server has no deployment settings of its own; it batches this many at once.
TEMPORARY_CONCURRENCY = 8


@dataclass(frozen=True)
class TargetSpec:
    """What the user asked to evaluate."""

    kind: str  # "endpoint", "model" or "base"
    endpoint: str = ""
    deployment: str = ""
    model: str = ""  # NAME[:VERSION] for "model"; a folder or hub id for "base" ("": config)

    @classmethod
    def endpoint_of(cls, value: str) -> TargetSpec:
        endpoint, _, deployment = value.partition(":")
        if not endpoint or ":" in deployment:
            raise PhiopsError(f"give the target as ENDPOINT or ENDPOINT:DEPLOYMENT, not {value!r}")
        return cls("endpoint", endpoint=endpoint, deployment=deployment)

    @classmethod
    def model_of(cls, value: str) -> TargetSpec:
        name, _, version = value.partition(":")
        if not name or ":" in version:
            raise PhiopsError(f"give the model as NAME or NAME:VERSION, not {value!r}")
        return cls("model", model=value)

    @classmethod
    def base_of(cls, folder_or_id: str = "") -> TargetSpec:
        return cls(BASE, model=folder_or_id)

    @classmethod
    def parse(cls, value: str) -> TargetSpec:
        """`base`, `base:PATH`, `model:NAME[:VERSION]`, or `ENDPOINT[:DEPLOYMENT]`."""
        if value == BASE or value.startswith(BASE + ":"):
            return cls.base_of(value.partition(":")[2])
        if value.startswith("model:"):
            return cls.model_of(value.removeprefix("model:"))
        return cls.endpoint_of(value)

    @property
    def label(self) -> str:
        if self.kind == "endpoint":
            return self.endpoint + (f":{self.deployment}" if self.deployment else "")
        if self.kind == "model":
            return f"model:{self.model}"
        return BASE

    def to_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "endpoint": self.endpoint,
            "deployment": self.deployment,
            "model": self.model,
        }


@dataclass
class Resolved:
    """A target ready for requests, and what the result is about."""

    spec: TargetSpec
    target: Target
    label: str  # e.g. "phi3-endpoint:green (phi3:2)"
    model: str  # the model version ref ("phi3:2"), "base:<folder>", or "" when mixed
    backend: str
    identity: str  # equal for two evaluations of the same model behind the same target
    model_dir: Path | None = None  # the model's files here, when they are on this machine
    serve: bool = False  # needs a temporary scoring server on model_dir (see `started`)
    temporary: Any = field(default=None, repr=False)  # that server, while it runs


def _state_problem(endpoint: EndpointInfo, deployment: str | None) -> str:
    if endpoint.state != "Succeeded":
        return f"endpoint {endpoint.name} is {endpoint.state or 'not ready'}"
    if deployment:
        found = next((d for d in endpoint.deployments if d.name == deployment), None)
        if found is None:
            names = ", ".join(d.name for d in endpoint.deployments) or "none"
            return f"endpoint {endpoint.name} has no deployment {deployment} (deployments: {names})"
        if found.state != "Succeeded":
            return f"deployment {deployment} of endpoint {endpoint.name} is {found.state}"
    return ""


def _fix(backend: Backend) -> str:
    if backend.name == "local":
        return "start it with `phiops endpoints start` or deploy again"
    return "see `phiops endpoints show` and its logs"


def _concurrency(endpoint: EndpointInfo, deployment: str, asked: int | None) -> int:
    found = next((d for d in endpoint.deployments if d.name == deployment), None)
    settings = found.request_settings if found else RequestSettings()
    limit = settings.max_concurrent_requests_per_instance * max(
        found.instance_count if found else 1, 1
    )
    return max(1, min(asked or limit, limit))


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


def resolve_endpoint(
    backend: Backend, spec: TargetSpec, concurrency: int | None = None
) -> Resolved:
    """An endpoint (and deployment) that is ready, with its key; one sentence otherwise."""
    try:
        endpoint = backend.endpoint(spec.endpoint)
    except NotFoundError:
        known = ", ".join(e.name for e in backend.endpoints()) or "none"
        raise NotFoundError(
            f"no endpoint named {spec.endpoint} on the {backend.name} backend (endpoints: "
            f"{known}); deploy one with `phiops deploy`"
        ) from None
    deployment = spec.deployment
    if not deployment:
        serving = [name for name, share in endpoint.traffic.items() if share > 0]
        if len(serving) == 1:
            deployment = serving[0]
        elif not serving:
            raise PhiopsError(
                f"endpoint {endpoint.name} sends no traffic to any deployment; name one "
                f"(--target {endpoint.name}:DEPLOYMENT)"
            )
    problem = _state_problem(endpoint, deployment)
    if problem:
        raise PhiopsError(f"cannot evaluate: {problem}; {_fix(backend)}")
    if not endpoint.scoring_uri:
        raise PhiopsError(f"cannot evaluate: endpoint {endpoint.name} has no scoring URI yet")
    key = backend.endpoint_keys(endpoint.name).primary
    if deployment:
        found = next(d for d in endpoint.deployments if d.name == deployment)
        model, pinned = found.model, deployment
        limit = _concurrency(endpoint, deployment, concurrency)
    else:  # split traffic: the requests go by the split, the biggest share sets the pace
        biggest = max(endpoint.traffic, key=lambda name: endpoint.traffic[name])
        model, pinned = "", ""
        limit = _concurrency(endpoint, biggest, concurrency)
    label = endpoint.name + (f":{pinned}" if pinned else "") + (f" ({model})" if model else "")
    return Resolved(
        spec=spec,
        target=Target(endpoint.scoring_uri, key, deployment=pinned, concurrency=limit),
        label=label,
        model=model,
        backend=backend.name,
        identity=_digest(backend.name, endpoint.name, pinned, model, endpoint.scoring_uri),
    )


def find_model(backend: Backend, ref: str) -> ModelVersion:
    name, _, version = ref.partition(":")
    versions = backend.models(name)
    if not versions:
        raise NotFoundError(f"no model named {name} is registered; see `phiops model list`")
    if not version:
        return versions[0]
    for found in versions:
        if found.version == version:
            return found
    known = ", ".join(v.version for v in versions)
    raise NotFoundError(f"model {name} has no version {version} (versions: {known})")


def model_dir(backend: Backend, model: ModelVersion) -> Path | None:
    """Where a registered version's files are on this machine (local backend only)."""
    path = getattr(backend, "model_path", None)
    return path(model) if path is not None else None


def base_model_dir(config: Config, value: str = "") -> Path:
    """The base model's folder: a local folder, or a hub model already in the cache."""
    value = value or config.base_model
    if not value:
        raise PhiopsError("no base model given; set base_model in phiops.toml")
    path = config.resolve(value)
    if path.is_dir():
        return path.resolve()
    if value.startswith((".", "/", "~")):
        raise NotFoundError(f"the base model folder {path} does not exist")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(value, local_files_only=True))
    except Exception:
        raise PhiopsError(
            f"the base model {value} is neither a local folder nor in the Hugging Face cache; "
            "set base_model to a local folder (or --base-model PATH) to evaluate it"
        ) from None


def _weights_stamp(folder: Path) -> str:
    """Names, sizes and change times of the weight files: a cheap "same model" check."""
    found = sorted(folder.rglob("*.safetensors")) or sorted(folder.rglob("*.bin"))
    return ";".join(
        f"{p.relative_to(folder)}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in found
    )


def serve_temporarily(folder: Path, what: str, progress: Any = None) -> tuple[Any, str]:
    """A scoring server on `folder` for this evaluation only (it also stops if this process
    dies), and its key."""
    from core.serving.process import start_scoring_server

    if progress:
        progress(f"starting a temporary scoring server for {what}")
    key = random_secrets.token_urlsafe(32)
    settings = RequestSettings(max_concurrent_requests_per_instance=TEMPORARY_CONCURRENCY)
    server = start_scoring_server(folder, keys=[key], settings=settings, deployment="eval")
    return server, key


def _temporary(
    spec: TargetSpec,
    folder: Path,
    label: str,
    model: str,
    backend: str,
    concurrency: int | None,
) -> Resolved:
    """A target served by a temporary server once `started` (nothing runs yet)."""
    limit = max(1, min(concurrency or TEMPORARY_CONCURRENCY, TEMPORARY_CONCURRENCY))
    return Resolved(
        spec=spec,
        target=Target("", "", concurrency=limit),
        label=label,
        model=model,
        backend=backend,
        identity=_digest("served", model, str(folder), _weights_stamp(folder)),
        model_dir=folder,
        serve=True,
    )


def describe(
    config: Config, backend: Backend, spec: TargetSpec, concurrency: int | None = None
) -> Resolved:
    """The target resolved without starting anything (a temporary server waits for
    `started`), so a fresh earlier result can be found first."""
    if spec.kind == "endpoint":
        return resolve_endpoint(backend, spec, concurrency)
    if spec.kind == BASE:
        folder = base_model_dir(config, spec.model)
        label = f"base model ({folder.name})"
        return _temporary(spec, folder, label, f"base:{folder}", backend.name, concurrency)
    version = find_model(backend, spec.model)
    folder = model_dir(backend, version)
    if folder is None:
        return _deployed(backend, spec, version, concurrency)
    label = f"model {version.ref}"
    return _temporary(spec, folder, label, version.ref, backend.name, concurrency)


@contextlib.contextmanager
def started(found: Resolved, progress: Any = None) -> Iterator[Resolved]:
    """The target with its temporary server running, if it needs one; stopped afterwards."""
    if not found.serve:
        yield found
        return
    assert found.model_dir is not None
    server, key = serve_temporarily(found.model_dir, found.label, progress)
    found.target = Target(server.scoring_uri, key, concurrency=found.target.concurrency)
    found.temporary = server
    try:
        yield found
    finally:
        server.stop()
        found.temporary = None


@contextlib.contextmanager
def resolved(
    config: Config,
    backend: Backend,
    spec: TargetSpec,
    *,
    concurrency: int | None = None,
    progress: Any = None,
) -> Iterator[Resolved]:
    """The target, ready; a temporary server is stopped when the block ends."""
    with started(describe(config, backend, spec, concurrency), progress) as found:
        yield found


def _deployed(
    backend: Backend, spec: TargetSpec, version: ModelVersion, concurrency: int | None
) -> Resolved:
    """On Azure a model is evaluated where it is deployed (the first ready deployment)."""
    for endpoint in backend.endpoints():
        for deployment in endpoint.deployments:
            if deployment.model == version.ref and not _state_problem(endpoint, deployment.name):
                at = TargetSpec("endpoint", endpoint=endpoint.name, deployment=deployment.name)
                found = resolve_endpoint(backend, at, concurrency)
                found.spec = spec
                return found
    raise PhiopsError(
        f"model {version.ref} is not deployed on any ready endpoint of the {backend.name} "
        f"backend; deploy it (at 0% traffic if you like: `phiops deploy --model {version.ref} "
        "--traffic 0`) and evaluate the deployment"
    )
