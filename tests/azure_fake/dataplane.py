"""The workspace's data-plane hosts: discovery, run history (what `jobs.stream()` polls), the
workspace's MLflow REST API, blob storage (code and data uploads) and the online endpoints'
scoring URIs."""

from __future__ import annotations

import email.utils
import hashlib
import json
import re
from typing import Any

from tests.azure_fake.server import ROUTER
from tests.azure_fake.transport import AzureError, Reply, Request
from tests.azure_fake.world import AzureWorld, normal

API = r"(?P<region>[^.]+)\.api\.azureml\.ms"
BLOB = r"(?P<account>[^.]+)\.blob\.core\.windows\.net"
SCORING = r"(?P<endpoint>[^.]+)\.(?P<region>[^.]+)\.inference\.ml\.azure\.com"
WS_PATH = (
    r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<group>[^/]+)/providers/"
    r"Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+)"
)


@ROUTER.add("GET", API, r"/discovery", "workspaces.discovery", bearer=False)
def discovery(world: AzureWorld, request: Request, region: str) -> dict:
    api = f"https://{region}.api.azureml.ms"
    return {
        "api": api,
        "catalog": f"https://catalog.{region}.azureml.ms",
        "experimentation": api,
        "gallery": f"https://gallery.{region}.azureml.ms",
        "history": api,
        "hyperdrive": api,
        "labeling": api,
        "modelmanagement": api,
        "pipelines": api,
        "studio": "https://ml.azure.com",
    }


@ROUTER.add(
    "GET",
    API,
    r"/history/v1\.0" + WS_PATH + r"/runs/(?P<run>[^/]+)/details",
    "jobs.get_run_details",
)
def run_details(
    world: AzureWorld, request: Request, region: str, sub: str, group: str, ws: str, run: str
) -> dict:
    """Run history's RunDetails: status, times, the log files by SAS URL, the error."""
    script = world.run_scripts.get(run)
    if script:  # a test's sequence of answers, one per poll; the last one stays
        item = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(item, AzureError):
            raise item
        world.runs[run] = item() if callable(item) else item
    details = world.runs.get(run)
    if details is None:
        raise AzureError(404, "UserError", f"Run {run} was not found")
    answer: dict[str, Any] = {
        "runId": run,
        "target": "gpu-cluster",
        "status": details["status"],
        "startTimeUtc": details.get("start", "2025-01-01T10:00:00.000Z"),
        "logFiles": details.get("log_files") or {},
        "properties": {},
        "tags": {},
    }
    if details["status"] in ("Completed", "Failed", "Canceled"):
        answer["endTimeUtc"] = details.get("end", "2025-01-01T10:30:00.000Z")
    if details.get("error"):
        answer["error"] = {"error": {"code": "UserError", "message": details["error"]}}
    return answer


@ROUTER.add("GET", API, r"/history/v1\.0" + WS_PATH + r"/runs/(?P<run>[^/]+)", "jobs.get_run")
def get_run(
    world: AzureWorld, request: Request, region: str, sub: str, group: str, ws: str, run: str
) -> dict:
    details = run_details(world, request, region, sub, group, ws, run)
    return {key: value for key, value in details.items() if key != "logFiles"}


@ROUTER.add("GET", API, r"/mlflow/v1\.0" + WS_PATH + r"/api/2\.0/mlflow/(?P<call>.+)", "mlflow.get")
@ROUTER.add(
    "POST", API, r"/mlflow/v1\.0" + WS_PATH + r"/api/2\.0/mlflow/(?P<call>.+)", "mlflow.post"
)
def mlflow_rest(
    world: AzureWorld, request: Request, region: str, sub: str, group: str, ws: str, call: str
) -> Reply:
    if world.mlflow is None:
        raise AzureError(404, "NotFound", f"no MLflow in this test for {call}")
    return world.mlflow(request, call)


# -- blob storage ----------------------------------------------------------------------------


def blob_headers(content: bytes, metadata: dict[str, str] | None = None) -> dict[str, str]:
    headers = {
        "ETag": '"0x' + hashlib.md5(content).hexdigest()[:16].upper() + '"',
        "Last-Modified": email.utils.formatdate(usegmt=True),
        "Date": email.utils.formatdate(usegmt=True),
        "x-ms-version": "2025-01-05",
        "x-ms-request-server-encrypted": "true",
        "x-ms-blob-type": "BlockBlob",
    }
    for key, value in (metadata or {}).items():
        headers[f"x-ms-meta-{key}"] = value
    return headers


@ROUTER.add("PUT", BLOB, r"/(?P<container>[^/]+)/(?P<path>.+)", "blob.put", bearer=False)
def put_blob(world: AzureWorld, request: Request, account: str, container: str, path: str) -> Reply:
    key = (account, container, path)
    comp = request.query.get("comp")
    if comp == "metadata":
        if key not in world.blobs:
            raise AzureError(404, "BlobNotFound", "The specified blob does not exist.")
        world.blob_metadata[key] = meta(request)
        return Reply(200, None, blob_headers(world.blobs[key]))
    if comp == "block":
        world.blocks.setdefault(key, {})[request.query["blockid"]] = request.body
        return Reply(201, None, blob_headers(b""))
    if comp == "blocklist":
        ids = re.findall(r"<(?:Latest|Uncommitted|Committed)>([^<]+)</", request.body.decode())
        parts = world.blocks.pop(key, {})
        world.blobs[key] = b"".join(parts[block] for block in ids)
    else:
        world.blobs[key] = request.body
    world.blob_metadata[key] = meta(request)
    return Reply(201, None, blob_headers(world.blobs[key]))


def meta(request: Request) -> dict[str, str]:
    return {
        k.lower()[len("x-ms-meta-") :]: v
        for k, v in request.headers.items()
        if k.lower().startswith("x-ms-meta-")
    }


@ROUTER.add("HEAD", BLOB, r"/(?P<container>[^/]+)/(?P<path>.+)", "blob.properties", bearer=False)
def blob_properties(
    world: AzureWorld, request: Request, account: str, container: str, path: str
) -> Reply:
    key = (account, container, path)
    if key not in world.blobs:
        return Reply(404, None, {"x-ms-error-code": "BlobNotFound", "x-ms-version": "2025-01-05"})
    content = world.blobs[key]
    return Reply(
        200,
        None,
        {
            **blob_headers(content, world.blob_metadata.get(key)),
            "Content-Length": str(len(content)),
        },
    )


@ROUTER.add("GET", BLOB, r"/(?P<container>[^/]+)/(?P<path>.+)", "blob.get", bearer=False)
def get_blob(world: AzureWorld, request: Request, account: str, container: str, path: str) -> Reply:
    key = (account, container, path)
    if key not in world.blobs:
        raise AzureError(404, "BlobNotFound", "The specified blob does not exist.")
    content = world.blobs[key]
    wanted = request.header("x-ms-range") or request.header("Range")
    headers = blob_headers(content, world.blob_metadata.get(key))
    if wanted:
        start, _, end = wanted.removeprefix("bytes=").partition("-")
        if int(start) >= len(content):
            raise AzureError(416, "InvalidRange", "The range specified is invalid.")
        stop = int(end) + 1 if end else len(content)
        part = content[int(start) : stop]
        headers["Content-Range"] = f"bytes {start}-{int(start) + len(part) - 1}/{len(content)}"
        return Reply(206, part, headers)
    return Reply(200, content, headers)


@ROUTER.add("GET", BLOB, r"/(?P<container>[^/]+)", "blob.list", bearer=False)
def list_blobs(world: AzureWorld, request: Request, account: str, container: str) -> Reply:
    prefix = request.query.get("prefix", "")
    items = "".join(
        f"<Blob><Name>{path}</Name><Properties><Content-Length>{len(data)}</Content-Length>"
        f"<BlobType>BlockBlob</BlobType></Properties><Metadata>"
        + "".join(f"<{k}>{v}</{k}>" for k, v in world.blob_metadata.get((a, c, path), {}).items())
        + "</Metadata></Blob>"
        for (a, c, path), data in sorted(world.blobs.items())
        if a == account and c == container and path.startswith(prefix)
    )
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<EnumerationResults ServiceEndpoint="https://{account}.blob.core.windows.net/" '
        f'ContainerName="{container}"><Prefix>{prefix}</Prefix><Blobs>{items}</Blobs>'
        "<NextMarker /></EnumerationResults>"
    )
    return Reply(200, body, {"Content-Type": "application/xml", "x-ms-version": "2025-01-05"})


# -- scoring -----------------------------------------------------------------------------------


@ROUTER.add("POST", SCORING, r"/score", "online_endpoints.invoke", bearer=False)
def score(world: AzureWorld, request: Request, endpoint: str, region: str) -> Reply:
    """An endpoint's front door: the key, then the deployment named by the
    `azureml-model-deployment` header or picked by the traffic split; the deployment's
    scorer answers (`world.scorers`), else a ready-made list of strings."""
    found = [(key, value) for key, value in world.endpoint_keys.items() if key[3] == endpoint]
    if not found:
        return Reply(404, {"message": f"endpoint {endpoint} not found"})
    key, keys = found[0]
    auth = request.header("Authorization").removeprefix("Bearer ")
    if auth not in keys:
        return Reply(401, {"message": "Unauthorized"})
    from tests.azure_fake.world import workspace_id

    resource = world.get(f"{workspace_id(key[0], key[1], key[2])}/onlineEndpoints/{endpoint}") or {}
    traffic = {
        n: int(s)
        for n, s in (resource.get("properties", {}).get("traffic") or {}).items()
        if int(s)
    }
    target = request.header("azureml-model-deployment") or None
    if target is None and traffic:
        target = max(traffic, key=lambda name: traffic[name])
    body = request.json()
    world.invocations.append(
        {
            "endpoint": endpoint,
            "deployment": target,
            "headers": dict(request.headers),
            "body": body,
            "traffic": traffic,
        }
    )
    if target is None:
        return Reply(404, {"message": "No valid deployments to route to."})
    deployment = world.get(f"{resource['id']}/deployments/{target}")
    if deployment is None:
        return Reply(404, {"message": f"deployment {target} not found"})
    if deployment["properties"]["provisioningState"] != "Succeeded":
        return Reply(424, {"message": f"Deployment {target} is not ready."})
    if target in world.broken_deployments:
        return Reply(200, world.broken_deployments[target], {"Content-Type": "application/json"})
    if target in world.scorers:
        return world.scorers[target](request)
    inputs = body.get("input_data")
    if not isinstance(inputs, list) or not inputs:
        return Reply(400, {"message": "input_data must be a non-empty list"})
    return Reply(
        200,
        json.dumps([f"{target} is ready." for _ in inputs]),
        {"Content-Type": "application/json"},
    )


__all__ = ["normal"]
