"""The project's MLflow store deleted while an endpoint serves a registered version: phiops
says what was lost, never issues that version number again, and `jobs metrics` on a run
that is gone is one sentence."""

from __future__ import annotations

import json
import shutil

import pytest

from core.local.endpointstore import SUCCEEDED, DeploymentRecord, EndpointRecord
from tests.helpers import run_phiops

pytestmark = pytest.mark.slow
ENDPOINT = "ep-lost"


def test_a_lost_registry_is_said_and_never_reissues_a_served_version(local_job_project) -> None:
    folder, backend, job = local_job_project
    served = backend.register_model(job.name)
    endpoints = backend._endpoints
    record = EndpointRecord(ENDPOINT, traffic={"blue": 100})
    record.deployments["blue"] = DeploymentRecord(
        "blue", served.ref, str(backend._registry.local_path(served)), state=SUCCEEDED
    )
    endpoints.store.write(record)  # as a deploy leaves it, its processes since stopped
    database = folder / ".phiops" / "mlflow.db"
    saved = database.with_name("mlflow.db.saved")
    database.rename(saved)
    try:
        listed = run_phiops("model", "list", "--json", cwd=folder)
        assert listed.returncode == 1
        assert json.loads(listed.stdout) == []
        lines = listed.stderr.strip().splitlines()
        assert lines[0].startswith("phiops: the local registry (")
        assert f"{served.ref} (served by {ENDPOINT}/blue)" in lines[0]
        # Other modules' jobs share the project: the sentence counts them all, names one.
        assert any("has no MLflow run of" in line and " job" in line for line in lines)

        metrics = run_phiops("jobs", "metrics", job.name, cwd=folder)
        assert metrics.returncode == 1
        (sentence,) = metrics.stderr.strip().splitlines()  # no MLflow INFO lines around it
        assert sentence.startswith(f"phiops: the MLflow run {job.run_id} is not in the local")

        # A new phiops process (this one's MLflow engine still holds the moved file open).
        registered = run_phiops("model", "register", "--job", job.name, "--json", cwd=folder)
        assert registered.returncode == 0, registered.stderr
        again = json.loads(registered.stdout)
        assert int(again["version"]) > int(served.version), "a served version was reissued"
        relisted = run_phiops("model", "list", "--name", served.name, "--json", cwd=folder)
        assert [v["ref"] for v in json.loads(relisted.stdout)] == [again["ref"]]
    finally:
        database.unlink(missing_ok=True)
        saved.rename(database)
        shutil.rmtree(endpoints.store.folder(ENDPOINT), ignore_errors=True)
