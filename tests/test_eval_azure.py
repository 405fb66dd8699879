"""Evaluation and the gate on the Azure backend: the deployments are made through the SDK
against the fake at its HTTP transport (tests/azure_fake/, answering as the REST spec
says), and the scoring requests go to the
endpoint's Azure scoring URI over HTTP, where a transport answers them as Azure's front
end would: the endpoint's key checked, routed by `azureml-model-deployment` (else by the
split), each deployment served by a real local scoring server — the trained tiny model
or the untrained base, so one deployment is clearly worse."""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest

from core.eval.gate import Gate, gated_deploy
from core.eval.generate import Params
from core.eval.runner import EvalOptions, Evaluation
from core.eval.targets import TargetSpec
from tests import fixtures_deploy_azure, fixtures_scoring_azure
from tests.fixtures_deploy import KEY, served
from tests.fixtures_deploy_azure import AzureDeploy

azure_deploy = fixtures_deploy_azure.azure_deploy
azure_scoring_server = fixtures_scoring_azure.azure_scoring_server
pytestmark = pytest.mark.slow

ENDPOINT = "phi3-endpoint"


@pytest.fixture(scope="module")
def base_server(tiny_base_model):
    yield from served(tiny_base_model)


class AzureScoring(httpx.AsyncBaseTransport):
    """`https://<endpoint>.<region>.inference.ml.azure.com/score`, answered by local servers."""

    def __init__(self, az: AzureDeploy, servers: dict[str, Any]) -> None:
        self.az = az
        self.servers = servers
        self.seen: list[dict[str, Any]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        endpoint = self.az.backend.endpoint(ENDPOINT)
        assert str(request.url) == endpoint.scoring_uri
        named = request.headers.get("azureml-model-deployment", "")
        self.seen.append({"deployment": named, "auth": request.headers.get("authorization")})
        key = self.az.backend.endpoint_keys(ENDPOINT).primary
        if request.headers.get("authorization") != f"Bearer {key}":
            return httpx.Response(401, json={"message": "Invalid key"})
        if not named:
            weights = {n: s for n, s in endpoint.traffic.items() if s}
            named = random.choices(list(weights), list(weights.values()))[0]
        server = self.servers.get(named)
        if server is None:
            return httpx.Response(404, json={"message": f"No deployment {named}"})
        forwarded = httpx.Request(
            "POST",
            server.scoring_uri,
            content=await request.aread(),
            headers={**request.headers, "authorization": f"Bearer {KEY}"},
        )
        # A transport per request: each evaluation runs its own event loop.
        async with httpx.AsyncHTTPTransport() as inner:
            response = await inner.handle_async_request(forwarded)
            body = await response.aread()
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        headers["azureml-model-deployment"] = named
        return httpx.Response(response.status_code, content=body, headers=headers)


def options(chat_dataset) -> EvalOptions:
    return EvalOptions(data=str(chat_dataset["eval"]), limit=8, params=Params(max_new_tokens=16))


def test_eval_of_an_azure_deployment_by_its_header(
    azure_deploy: AzureDeploy, azure_scoring_server, chat_dataset
):
    """Blue is what phiops deploys on Azure: its scoring code under azmlinfsrv."""
    az = azure_deploy
    version = az.backend.register_model()
    az.backend.deploy(version, ENDPOINT, traffic=100)
    transport = AzureScoring(az, {"blue": azure_scoring_server})
    evaluation = Evaluation(az.config, az.backend, transport=transport)
    record = evaluation.run(TargetSpec.endpoint_of(ENDPOINT), options(chat_dataset))
    assert record.state == "finished" and record.meta.backend == "azure"
    assert record.meta.model == version.ref
    assert record.meta.concurrency == 3  # the deployment's OnlineRequestSettings
    assert record.aggregates["rougeL"]["value"] > 0.5
    assert "ref_loss" not in record.aggregates  # the model's files are in Azure, not here
    # The deployment says how each answer ended, so stops are counted, not guessed.
    assert record.aggregates["stopped_rate"]["value"] is not None
    assert all(row["finished"] is not None for row in record.rows), record.rows[:2]
    assert all(row["tokens"] and not row.get("tokens_counted") for row in record.rows)
    key = az.backend.endpoint_keys(ENDPOINT).primary
    assert {tuple(s.values()) for s in transport.seen} == {("blue", f"Bearer {key}")}


def test_the_gate_on_azure_keeps_the_traffic_for_a_worse_deployment(
    azure_deploy: AzureDeploy, scoring_server, base_server, chat_dataset
):
    az = azure_deploy
    version = az.backend.register_model()
    az.backend.deploy(version, ENDPOINT, traffic=100)
    transport = AzureScoring(az, {"blue": scoring_server, "green": base_server})
    result = gated_deploy(
        az.config,
        az.backend,
        version,
        ENDPOINT,
        Gate.parse("rougeL:0.05"),
        options=options(chat_dataset),
        transport=transport,
    )
    assert not result.passed and result.deployment == "green"
    assert result.endpoint.traffic == {"blue": 100, "green": 0}
    assert az.backend.endpoint(ENDPOINT).traffic == {"blue": 100, "green": 0}
    assert {s["deployment"] for s in transport.seen} == {"blue", "green"}
    assert result.comparison.metric("rougeL").verdict == "worse"

    # Green served by the good model this time: equal scores, the traffic moves.
    az.backend.delete_deployment(ENDPOINT, "green")
    transport.servers["green"] = scoring_server
    again = gated_deploy(
        az.config,
        az.backend,
        version,
        ENDPOINT,
        Gate.parse("rougeL:0.05"),
        traffic=30,
        options=options(chat_dataset),
        transport=transport,
    )
    assert again.passed and again.current_reused
    assert az.backend.endpoint(ENDPOINT).traffic == {"blue": 70, "green": 30}
