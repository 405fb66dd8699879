"""Registry and endpoints of the local backend, on a model trained by a real local job.

One project for the module (`local_job_project`): versions are registered from its job,
deployed blue/green to real gateway and server processes, moved, rolled back, killed and
recovered, stopped and deleted. Nothing may be left running at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
from collections import Counter
from pathlib import Path

import httpx
import pytest

from core.backend import JobInfo, JobStatus, ModelVersion, RequestSettings
from core.config import load_config
from core.errors import NotFoundError, PhiopsError
from core.local.backend import LocalBackend
from core.secrets import SecretStore, endpoint_key_name
from tests.fixtures_deploy import all_pids, gone

pytestmark = pytest.mark.slow

ENDPOINT = "ep-local"
SEED_REQUEST = {
    "input_data": ["What is the capital of France?"],
    "params": {"temperature": 0.7, "max_new_tokens": 40, "do_sample": False},
}


def post(info, key: str, body: dict = SEED_REQUEST, **headers: str) -> httpx.Response:
    return httpx.post(
        info.scoring_uri,
        json=body,
        headers={"Authorization": f"Bearer {key}", **headers},
        timeout=60,
    )


def deployment_stats(backend: LocalBackend, deployment: str) -> dict:
    record = backend._endpoints.store.read(ENDPOINT)
    url = f"http://127.0.0.1:{record.deployments[deployment].port}/stats"
    key = backend.endpoint_keys(ENDPOINT).primary
    return httpx.get(url, headers={"Authorization": f"Bearer {key}"}).json()


@pytest.fixture(scope="module")
def project(local_job_project):
    folder, backend, job = local_job_project
    yield folder, backend, job
    with_endpoint = ENDPOINT in backend._endpoints.store.names()
    if with_endpoint:
        pids = all_pids(backend._endpoints)
        backend.delete_endpoint(ENDPOINT)
        assert all(gone(pid) for pid in pids)


@pytest.fixture(scope="module")
def versions(project) -> list[ModelVersion]:
    _, backend, job = project
    first = backend.register_model(job.name, "phi3-tiny")
    second = backend.register_model(None, "phi3-tiny")  # the latest completed job
    return [first, second]


def test_register_makes_a_new_version_each_time(project, versions) -> None:
    _, backend, job = project
    # Other modules share the project and may have registered versions before this one.
    first, second = (int(v.version) for v in versions)
    assert second == first + 1
    assert all(v.job_name == job.name and v.name == "phi3-tiny" for v in versions)
    listed = backend.models("phi3-tiny")
    assert [v.ref for v in listed[:2]] == [versions[1].ref, versions[0].ref]
    assert [int(v.version) for v in listed] == list(range(second, 0, -1))
    # Every name's versions; other modules (the chat pair's) register names of their own.
    assert [v for v in backend.models() if v.name == "phi3-tiny"] == listed
    # The version points at the MLflow model the job logged to its run, in the store.
    folder = backend._registry.local_path(versions[0])
    assert (folder / "MLmodel").is_file() and "mlartifacts" in str(folder)
    failed = JobInfo(name="broken_job", status=JobStatus.FAILED)
    with pytest.raises(PhiopsError, match="only a completed job"):
        backend._registry.register_from_job(failed, "phi3-tiny")
    with pytest.raises(NotFoundError, match=f"versions: {second}, {first}"):
        backend._registry.get("phi3-tiny", "77")


def test_deploy_serves_the_seed_request_to_a_plain_client(project, versions) -> None:
    _, backend, _ = project
    steps: list[str] = []
    info = backend.deploy(versions[0], ENDPOINT, progress=steps.append)
    assert info.state == "Succeeded" and info.traffic == {"blue": 100}
    assert info.scoring_uri.startswith("http://127.0.0.1:") and info.scoring_uri.endswith("/score")
    [blue] = info.deployments
    assert (blue.name, blue.model, blue.state) == ("blue", versions[0].ref, "Succeeded")
    assert blue.request_settings == RequestSettings()  # the seed's defaults
    assert any("smoke-testing deployment blue" in step for step in steps)
    keys = backend.endpoint_keys(ENDPOINT)
    assert len(keys.primary) >= 32 and keys.secondary and keys.primary != keys.secondary
    assert SecretStore().get(endpoint_key_name("local", ENDPOINT)) == keys.primary
    assert oct(SecretStore().path.stat().st_mode & 0o777) == "0o600"

    response = post(info, keys.primary)
    assert response.status_code == 200, response.text
    answers = response.json()
    assert isinstance(answers, list) and len(answers) == 1 and isinstance(answers[0], str)
    assert answers[0] and "<|" not in answers[0]
    assert response.headers["azureml-model-deployment"] == "blue"
    assert post(info, keys.secondary).status_code == 200

    chat = {"input_data": [[{"role": "user", "content": "Which city is the capital of Peru?"}]]}
    assert isinstance(post(info, keys.primary, chat).json()[0], str)


def test_wrong_or_missing_key_is_refused_before_any_model_work(project, versions) -> None:
    _, backend, _ = project
    info = backend.endpoint(ENDPOINT)
    before = deployment_stats(backend, "blue")
    assert post(info, "not-the-key").status_code == 401
    assert httpx.post(info.scoring_uri, json=SEED_REQUEST).status_code == 401
    after = deployment_stats(backend, "blue")
    # Refused at the gateway: the deployment saw neither request.
    assert after["requests"] == before["requests"]
    assert after["unauthorized"] == before["unauthorized"]


def test_streaming_passes_through_the_endpoint(project, versions) -> None:
    _, backend, _ = project
    info = backend.endpoint(ENDPOINT)
    key = backend.endpoint_keys(ENDPOINT).primary
    body = {"input_data": ["Name the capital city of Japan."], "params": {"max_new_tokens": 30}}
    whole = post(info, key, body).json()[0]
    headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
    with httpx.stream("POST", info.scoring_uri, json=body, headers=headers, timeout=60) as reply:
        assert reply.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in reply.iter_lines() if line.startswith("data:")]
    assert lines[-1] == "data: [DONE]"
    assert "".join(json.loads(line[5:])["delta"] for line in lines[:-1]) == whole


def test_second_deploy_is_blue_green(project, versions) -> None:
    _, backend, _ = project
    key = backend.endpoint_keys(ENDPOINT).primary
    uri = backend.endpoint(ENDPOINT).scoring_uri
    seen_during: dict[str, object] = {}

    def progress(step: str) -> None:
        # While green is smoke-tested, the endpoint still sends everything to blue.
        if step == "smoke-testing deployment green":
            seen_during["traffic"] = backend.endpoint(ENDPOINT).traffic
            reply = post(backend.endpoint(ENDPOINT), key)
            seen_during["served_by"] = reply.headers.get("azureml-model-deployment")
            direct = post(backend.endpoint(ENDPOINT), key, **{"azureml-model-deployment": "green"})
            seen_during["direct"] = direct.headers.get("azureml-model-deployment")

    info = backend.deploy(versions[1], ENDPOINT, progress=progress)
    assert seen_during == {
        "traffic": {"blue": 100, "green": 0},
        "served_by": "blue",
        "direct": "green",
    }
    assert info.traffic == {"blue": 0, "green": 100}
    assert info.scoring_uri == uri  # same endpoint, same URI
    states = {d.name: (d.model, d.state) for d in info.deployments}
    assert states == {
        "blue": (versions[0].ref, "Succeeded"),
        "green": (versions[1].ref, "Succeeded"),
    }
    assert post(info, key).headers["azureml-model-deployment"] == "green"
    # The old deployment stays, reachable by name, until it is deleted on purpose.
    assert post(info, key, **{"azureml-model-deployment": "blue"}).status_code == 200
    unknown = post(info, key, **{"azureml-model-deployment": "nope"})
    assert unknown.status_code == 404 and "no deployment named nope" in unknown.json()["error"]


def test_rollback_and_split(project, versions) -> None:
    _, backend, _ = project
    key = backend.endpoint_keys(ENDPOINT).primary
    assert backend.rollback(ENDPOINT).traffic == {"blue": 100, "green": 0}
    assert post(backend.endpoint(ENDPOINT), key).headers["azureml-model-deployment"] == "blue"
    assert backend.rollback(ENDPOINT).traffic == {"blue": 0, "green": 100}  # and forward again
    info = backend.set_traffic(ENDPOINT, {"blue": 50, "green": 50})
    served = Counter(
        post(info, key, {"input_data": ["Hi"], "params": {"max_new_tokens": 1}}).headers[
            "azureml-model-deployment"
        ]
        for _ in range(30)
    )
    assert set(served) == {"blue", "green"}
    with pytest.raises(PhiopsError, match="add up to 100"):
        backend.set_traffic(ENDPOINT, {"blue": 70})
    with pytest.raises(PhiopsError, match="still takes 50%"):
        backend.delete_deployment(ENDPOINT, "blue")
    assert backend.set_traffic(ENDPOINT, {"green": 100}).traffic == {"blue": 0, "green": 100}


def test_a_failed_deployment_leaves_the_traffic_where_it_was(project, versions, tmp_path) -> None:
    _, backend, job = project
    broken = tmp_path / "broken_model"
    shutil.copytree(backend._registry.local_path(versions[1]), broken)
    (broken / "model" / "model.safetensors").write_bytes(b"not weights")
    client = backend._registry.client
    client.create_model_version("phi3-tiny", broken.as_uri(), tags={"job_name": job.name})
    bad = backend._registry.get("phi3-tiny")
    assert int(bad.version) == int(versions[1].version) + 1
    before = backend.endpoint(ENDPOINT).traffic
    with pytest.raises(PhiopsError, match=r"blue-2 on endpoint ep-local failed \(") as raised:
        backend.deploy(bad, ENDPOINT)
    message = str(raised.value)
    assert "the model could not be loaded" in message and "header too large" in message
    assert "the traffic is unchanged" in message and "\n" not in message
    info = backend.endpoint(ENDPOINT)
    assert info.traffic == {**before, "blue-2": 0}
    assert {d.name: d.state for d in info.deployments}["blue-2"] == "Failed"
    record = backend._endpoints.store.read(ENDPOINT)
    assert record.deployments["blue-2"].process is None
    with pytest.raises(PhiopsError, match="blue-2 is Failed"):
        backend.set_traffic(ENDPOINT, {"blue-2": 100})
    assert "could not be loaded" in backend.deployment_logs(ENDPOINT, "blue-2", 50)
    backend.delete_deployment(ENDPOINT, "blue-2")
    assert [d.name for d in backend.endpoint(ENDPOINT).deployments] == ["blue", "green"]


def test_state_is_recovered_after_processes_die(project, versions) -> None:
    folder, backend, _ = project
    record = backend._endpoints.store.read(ENDPOINT)
    uri = backend.endpoint(ENDPOINT).scoring_uri
    # As after a reboot: the gateway and green die without a word.
    for ref in (record.gateway, record.deployments["green"].process):
        os.kill(ref.pid, signal.SIGKILL)
        assert gone(ref.pid)
    fresh = LocalBackend(load_config(Path(folder) / "phiops.toml"))  # a new phiops
    info = fresh.endpoint(ENDPOINT)
    assert info.state == "Stopped"
    assert {d.name: d.state for d in info.deployments} == {"blue": "Succeeded", "green": "Stopped"}
    with pytest.raises(httpx.ConnectError):
        httpx.get(uri.removesuffix("/score") + "/liveness")
    steps: list[str] = []
    info = fresh._endpoints.start(ENDPOINT, progress=steps.append)
    assert info.state == "Succeeded" and info.scoring_uri == uri
    assert {d.name: d.state for d in info.deployments} == {
        "blue": "Succeeded",
        "green": "Succeeded",
    }
    said = [step for step in steps if " is loading its model (" not in step]  # time-paced
    assert said == ["starting endpoint ep-local", f"starting deployment green ({versions[1].ref})"]
    key = fresh.endpoint_keys(ENDPOINT).primary
    assert post(info, key).headers["azureml-model-deployment"] == "green"


def test_stop_all_leaves_no_process_and_deploy_brings_the_endpoint_back(project, versions) -> None:
    _, backend, _ = project
    pids = all_pids(backend._endpoints)
    assert len(pids) == 3
    assert backend._endpoints.stop_all() == [ENDPOINT]
    assert all(gone(pid) for pid in pids)
    info = backend.endpoint(ENDPOINT)
    assert info.state == "Stopped" and {d.state for d in info.deployments} == {"Stopped"}
    assert backend._endpoints.stop_all() == []  # nothing left to stop
    # A deploy starts the endpoint and its deployments again before adding the new one.
    info = backend.deploy(versions[0], ENDPOINT, "canary", traffic=20)
    assert info.state == "Succeeded"
    assert info.traffic == {"blue": 0, "canary": 20, "green": 80}
    assert {d.state for d in info.deployments} == {"Succeeded"}


def test_concurrent_requests_through_the_endpoint_are_batched(project) -> None:
    _, backend, _ = project
    info = backend.set_traffic(ENDPOINT, {"green": 100})
    key = backend.endpoint_keys(ENDPOINT).primary
    body = {"input_data": ["Hi"], "params": {"max_new_tokens": 40, "min_new_tokens": 40}}
    before = deployment_stats(backend, "green")
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(post(info, key, body).status_code))
        for _ in range(3)  # the seed's 3 concurrent requests per instance
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = deployment_stats(backend, "green")
    assert results == [200, 200, 200]
    assert after["batches"] - before["batches"] < 3


def test_delete_deployment_and_endpoint(project) -> None:
    _, backend, _ = project
    record = backend._endpoints.store.read(ENDPOINT)
    blue = record.deployments["blue"].process.pid
    backend.delete_deployment(ENDPOINT, "blue")
    assert gone(blue)
    assert "blue" not in backend.endpoint(ENDPOINT).traffic
    with pytest.raises(PhiopsError, match="Nothing to roll back to"):
        backend.rollback(ENDPOINT)
    pids = all_pids(backend._endpoints)
    keys = backend.endpoint_keys(ENDPOINT)
    backend.delete_endpoint(ENDPOINT)
    assert all(gone(pid) for pid in pids)
    assert ENDPOINT not in [e.name for e in backend.endpoints()]
    assert keys.primary not in SecretStore().values()
    with pytest.raises(NotFoundError, match="no local endpoint named ep-local"):
        backend.endpoint(ENDPOINT)
