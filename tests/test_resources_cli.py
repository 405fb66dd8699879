"""`phiops resources check|ensure` and `config init --from-azure`, run through the real CLI
entry point in-process with the stand-in Azure; "not logged in" as a real subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.config import load_config, write_config_values
from tests.azure_standins import GPU_FAMILY, GPU_SIZE, SUBSCRIPTION, AzureWorld, provision
from tests.helpers import run_phiops

SETTINGS = {
    "backend": "azure",
    "subscription_id": SUBSCRIPTION,
    "resource_group": "phi3-rg",
    "workspace": "phi3-ws",
    "location": "eastus2",
    "identity_name": "phi3-identity",
    "compute_name": "gpu-cluster",
    "compute_vm_size": GPU_SIZE,
}


@pytest.fixture
def world(project: Path, monkeypatch: pytest.MonkeyPatch) -> AzureWorld:
    """An empty stand-in Azure that every `AzureClients` phiops builds talks to."""
    monkeypatch.setenv("COLUMNS", "250")  # rich tables unwrapped, for the assertions
    world = AzureWorld()
    world.patch(monkeypatch)
    write_config_values(project / "phiops.toml", SETTINGS)
    return world


def phiops(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`phiops ARGS` through the console script's own entry point, in this process."""
    from core.cli.main import main

    try:
        code = main(list(args))
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return int(code or 0), captured.out, captured.err


def test_check_table_and_exit_code(world: AzureWorld, project: Path, capsys) -> None:
    config = load_config(project / "phiops.toml")
    provision(world, config)
    write_config_values(
        project / "phiops.toml", {**SETTINGS, "identity_client_id": config.identity_client_id}
    )
    code, out, err = phiops(capsys, "resources", "check")
    assert code == 0, err
    assert "✓" in out and "✗" not in out
    assert "Everything required is in place." in out

    world.quota[GPU_FAMILY] = (0, 0)
    code, out, err = phiops(capsys, "resources", "check")
    assert code == 1
    assert "✗" in out and "VM quota" in out and "Azure ML studio open Quota" in out


def test_check_json_lists_every_finding(world: AzureWorld, capsys) -> None:
    code, out, _ = phiops(capsys, "resources", "check", "--json")
    assert code == 1
    data = json.loads(out)
    assert data["backend"] == "azure" and data["ok"] is False
    findings = {item["name"]: item for item in data["findings"]}
    assert findings["subscription"]["state"] == "ok"
    assert findings["resource group"] == {
        "name": "resource group",
        "state": "missing",
        "detail": "resource group phi3-rg does not exist",
        "fix": "`phiops resources ensure`, or: az group create --name phi3-rg --location eastus2",
        "required": True,
    }


def test_check_wrong_subscription(world: AzureWorld, project: Path, capsys) -> None:
    write_config_values(
        project / "phiops.toml",
        {**SETTINGS, "subscription_id": "99999999-8888-7777-6666-555555555555"},
    )
    code, out, _ = phiops(capsys, "resources", "check", "--json")
    assert code == 1
    subscription = json.loads(out)["findings"][0]
    assert subscription["state"] == "wrong"
    assert "is not visible to the signed-in account; it sees Research" in subscription["detail"]


def test_check_not_signed_in_in_process(world: AzureWorld, capsys) -> None:
    world.signed_in = False
    code, out, err = phiops(capsys, "resources", "check")
    assert code == 1 and out == ""
    assert err.startswith(
        "phiops: cannot sign in to Azure: no Azure login was found; run `az login`"
    )
    assert err.count("\n") == 1 and "Traceback" not in err


def test_ensure_dry_run_then_yes_then_again(world: AzureWorld, project: Path, capsys) -> None:
    code, out, err = phiops(capsys, "resources", "ensure", "--dry-run")
    assert code == 0, err
    assert "phiops will create:" in out
    assert "+ create resource group phi3-rg in eastus2" in out
    assert "Dry run: nothing created (8 steps planned)." in out
    assert world.created == []

    code, out, err = phiops(capsys, "resources", "ensure", "--yes")
    assert code == 0, err
    assert "Done:\n  ✓ create resource group phi3-rg in eastus2\n" in out
    assert len(world.created) == 8
    client_id = world.identity()["properties"]["clientId"]
    assert load_config(project / "phiops.toml").identity_client_id == client_id

    code, out, err = phiops(capsys, "resources", "ensure", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["steps"] == [] and data["created"] == [] and data["ok"] is True
    assert len(world.created) == 8


def test_ensure_asks_first_and_stops_on_no(
    world: AzureWorld, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    code, _, err = phiops(capsys, "resources", "ensure")
    assert code == 130
    assert "Create 8 resources in Azure? [y/N]" in err
    assert world.created == []


def test_ensure_json_with_quota_zero_explains_it(world: AzureWorld, capsys) -> None:
    world.quota[GPU_FAMILY] = (0, 0)
    code, out, _ = phiops(capsys, "resources", "ensure", "--json")
    assert code == 1  # created what it could; quota still needs a person
    data = json.loads(out)
    assert len(data["created"]) == 8
    manual = {item["name"]: item for item in data["manual"]}
    assert manual["VM quota"]["fix"].startswith("quota is granted by Azure support, not by code")


def test_check_local_backend(project: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    code, out, _ = phiops(capsys, "resources", "check", "--json")
    data = json.loads(out)
    assert code == 0 and data["backend"] == "local"
    names = [item["name"] for item in data["findings"]]
    assert names[:5] == ["local store", "MLflow database", "disk", "python", "torch"]


def test_config_init_from_azure_fills_the_ids(
    project: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = AzureWorld()
    world.patch(monkeypatch)
    world.subscriptions["99999999-8888-7777-6666-555555555555"] = "Empty"
    world.add_group("phi3-rg")
    world.add_workspace("phi3-rg", "phi3-ws", location="westus3")
    identity = world.add_identity("phi3-rg", "phi3-identity")
    code, out, err = phiops(capsys, "config", "init", "--from-azure", "--non-interactive")
    assert code == 0, err
    assert "found workspace phi3-ws in phi3-rg (westus3)" in out
    config = load_config(project / "phiops.toml")
    assert (config.subscription_id, config.resource_group, config.workspace, config.location) == (
        SUBSCRIPTION,
        "phi3-rg",
        "phi3-ws",
        "westus3",
    )
    assert (config.identity_name, config.identity_client_id) == (
        "phi3-identity",
        identity["properties"]["clientId"],
    )


def test_config_init_from_azure_leaves_ambiguity_to_the_user(
    project: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = AzureWorld()
    world.patch(monkeypatch)
    world.add_group("rg-a")
    world.add_group("rg-b")
    world.add_workspace("rg-a", "ws-a")
    world.add_workspace("rg-b", "ws-b")
    code, out, err = phiops(
        capsys, "config", "init", "--from-azure", "--non-interactive", "--workspace", "ws-b"
    )
    assert code == 0, err
    config = load_config(project / "phiops.toml")
    assert (config.resource_group, config.workspace) == ("rg-b", "ws-b")
    assert "no managed identity in rg-b" in out

    (project / "phiops.toml").unlink()
    code, out, err = phiops(capsys, "config", "init", "--from-azure", "--non-interactive")
    assert code == 0, err
    assert "2 workspaces fit: ws-a (rg-a), ws-b (rg-b); pass --workspace" in out
    config = load_config(project / "phiops.toml")
    assert config.subscription_id == SUBSCRIPTION and config.workspace == ""


def test_not_logged_in_through_the_real_console_script(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DefaultAzureCredential for real: offline and signed out, it must fail at once."""
    for name in (
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
        "AZURE_TENANT_ID",
        "AZURE_USERNAME",
        "AZURE_FEDERATED_TOKEN_FILE",
        "AZURE_TOKEN_CREDENTIALS",
        "IDENTITY_ENDPOINT",
        "MSI_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)
    write_config_values(project / "phiops.toml", SETTINGS)
    result = run_phiops(
        "resources", "check", env={"AZURE_CONFIG_DIR": str(tmp_path / "no-az-login")}
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("phiops: cannot sign in to Azure: ")
    assert "`az login`" in result.stderr and "--device-code" in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr  # one sentence, no SDK page
    assert "Traceback" not in result.stderr


def test_resources_modules_import_no_sdk() -> None:
    """The SDKs load only when Azure is talked to: `phiops resources --help` stays instant."""
    import subprocess
    import sys

    modules = (
        "core.cli.resources core.azure.resources core.azure.ensure core.azure.discover "
        "core.azure.credentials core.azure.client core.azure.blueprint core.local.resources"
    )
    code = (
        f"import importlib, sys\nfor name in {modules.split()!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.startswith(('azure', 'torch', 'mlflow'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
