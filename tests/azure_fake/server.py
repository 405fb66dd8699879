"""What every request meets before its handler: sign-in, throttling, denials, the router, and
the long-running-operation protocol ARM uses (201/202 + `Azure-AsyncOperation`)."""

from __future__ import annotations

import re
import uuid
from typing import Any

from tests.azure_fake.transport import AzureError, Reply, Request, Router
from tests.azure_fake.world import AzureWorld

ARM = r"management\.azure\.com"
ROUTER = Router()
SUBSCRIPTION_PATH = re.compile(r"^/subscriptions/([^/]+)", re.I)


def serve(world: AzureWorld, request: Request) -> Reply:
    request.path = re.sub(r"/{2,}", "/", request.path)
    world.requests.append((request.method, request.host, request.path))
    found = ROUTER.find(request)
    if found is None:
        world.unrouted.append(f"{request.method} {request.host}{request.path}")
        return AzureError(
            400, "NoRoute", f"the fake Azure has no route for {request.method} {request.path}"
        ).reply
    route, params = found
    try:
        if route.bearer:
            check_token(world, request)
        if route.host.pattern == ARM:
            check_subscription(world, request)
        if world.throttled.get(route.name, 0) > 0:
            world.throttled[route.name] -= 1
            raise AzureError(
                429,
                "TooManyRequests",
                "The request was throttled; retry later.",
                **{"Retry-After": "1"},
            )
        if world.failures.get(route.name):
            raise world.failures[route.name].pop(0)
        if route.name in world.denied:
            raise AzureError(
                403,
                "AuthorizationFailed",
                f"The client 'tests@example.com' with object id '0000' does not have "
                f"authorization to perform action '{route.name}' over scope '{request.path}' "
                "or the scope is invalid.",
            )
        answer = route.handler(world, request, **params)
    except AzureError as error:
        return error.reply
    if isinstance(answer, Reply):
        return answer
    return Reply(200, answer)


def check_token(world: AzureWorld, request: Request) -> None:
    auth = request.header("Authorization")
    if not auth.startswith("Bearer "):
        raise AzureError(401, "AuthenticationFailed", "Authentication failed: no bearer token.")
    token = auth.removeprefix("Bearer ")
    expires = world.issued_tokens.get(token)
    if expires is None:
        raise AzureError(401, "InvalidAuthenticationToken", "The access token is invalid.")
    if world.clock() >= expires:
        raise AzureError(401, "ExpiredAuthenticationToken", "The access token expiry has passed.")


def check_subscription(world: AzureWorld, request: Request) -> None:
    match = SUBSCRIPTION_PATH.match(request.path)
    if match and match.group(1) not in world.subscriptions:
        raise AzureError(
            404, "SubscriptionNotFound", f"The subscription '{match.group(1)}' could not be found."
        )


# -- long-running operations -------------------------------------------------------------


def lro(
    world: AzureWorld,
    request: Request,
    resource: dict[str, Any] | None,
    *,
    status: int = 201,
    error: dict[str, str] | None = None,
) -> Reply:
    """Accept a PUT/DELETE as ARM does: the resource (if any) and an operation to poll."""
    operation = str(uuid.uuid4())
    sub = SUBSCRIPTION_PATH.match(request.path)
    where = sub.group(1) if sub else "00000000-0000-0000-0000-000000000000"
    url = (
        f"https://management.azure.com/subscriptions/{where}/providers/Microsoft.MachineLearningServices"
        f"/locations/eastus2/mfeOperationsStatus/{operation}?api-version="
        f"{request.query.get('api-version', '2024-10-01')}"
    )
    world.operations[operation] = {
        "id": url.split("?")[0].removeprefix("https://management.azure.com"),
        "name": operation,
        "status": "Failed" if error else "Succeeded",
        "startTime": "2025-01-01T00:00:00.000Z",
        "endTime": "2025-01-01T00:00:10.000Z",
        **({"error": error} if error else {}),
    }
    headers = {"Azure-AsyncOperation": url, "Retry-After": "0"}
    if request.method == "DELETE":
        headers["Location"] = url
        return Reply(202, None, headers)
    return Reply(status, resource, headers)


@ROUTER.add(
    "GET",
    ARM,
    r"/subscriptions/[^/]+/providers/[^/]+/locations/[^/]+/mfeOperationsStatus/(?P<op>[^/]+)",
)
def operation_status(world: AzureWorld, request: Request, op: str) -> dict:
    try:
        return world.operations[op]
    except KeyError:
        raise AzureError(404, "NotFound", f"operation {op} not found") from None
