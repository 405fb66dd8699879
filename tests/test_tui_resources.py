"""The Resources tab: the backend's own check, each line ✓/✗ with its fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.azure_standins import GPU_SIZE, SUBSCRIPTION, AzureWorld, provision
from tests.fixtures_tui import make_app, ready, screen_text, wait_for

AZURE = """[project]
backend = "azure"
[azure]
subscription_id = "{subscription}"
resource_group = "phi3-rg"
workspace = "phi3-ws"
location = "eastus2"
identity_name = "phi3-identity"
compute_name = "gpu-cluster"
compute_vm_size = "{size}"
"""


async def test_local_findings_with_detail_fix_and_copy(tui_project: Path) -> None:
    from textual.widgets import OptionList

    app = make_app(tui_project)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        tab = app.tabs["resources"]
        await wait_for(pilot, lambda: len(tab.findings) >= 8)
        text = screen_text(app)
        assert "Backend local:" in text
        assert "✓ training data" in text  # the sample was prepared
        assert "✗ MLflow database" in text  # no job has run yet
        options = app.query_one(OptionList)
        names = [finding.name for finding in tab.findings]
        options.highlighted = names.index("MLflow database")
        await pilot.pause(0.2)
        detail = str(app.query_one("#resources-detail").render())
        assert "created by the first job" in detail and "Fix:" in detail
        await pilot.press("y")
        assert app.clipboard == "phiops train submit"
        # nothing is cut off at 80×24: every finding's line and the footer's keys are there
        for name in names:
            assert name in text
        await wait_for(pilot, lambda: "r Recheck y Copy fix f1 Help q Quit" in screen_text(app))


@pytest.fixture
def azure_project(tui_project: Path, monkeypatch: pytest.MonkeyPatch) -> AzureWorld:
    from core.config import load_config

    (tui_project / "phiops.toml").write_text(
        AZURE.format(size=GPU_SIZE, subscription=SUBSCRIPTION), encoding="utf-8"
    )
    world = AzureWorld()
    world.patch(monkeypatch)
    config = load_config(tui_project / "phiops.toml")
    provision(world, config)
    with open(tui_project / "phiops.toml", "a", encoding="utf-8") as handle:
        handle.write(f'identity_client_id = "{config.identity_client_id}"\n')
    return world


async def test_azure_findings_show_roles_and_how_to_fix_a_missing_one(
    tui_project: Path, azure_project: AzureWorld
) -> None:
    app = make_app(tui_project)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, app)
        tab = app.tabs["resources"]
        await wait_for(pilot, lambda: tab.findings)
        text = screen_text(app)
        assert "│ azure │ workspace phi3-ws (phi3-rg)" in text.splitlines()[0]
        for name in (
            "workspace",
            "storage account",
            "key vault",
            "container registry",
            "managed identity",
            "VM quota",
            "compute cluster",
        ):
            assert any(finding.name.startswith(name) for finding in tab.findings), name
        roles = [finding for finding in tab.findings if "role" in finding.name.lower()]
        assert len(roles) == 3 and all(str(finding.state) == "ok" for finding in roles)
        # take AcrPull away: its line turns ✗ and says how to grant it
        azure_project.revoke("7f951dda-4ed3-4680-a7ca-43fe172d538d")
        await pilot.press("r")
        await wait_for(
            pilot,
            lambda: any("AcrPull" in f.name and str(f.state) != "ok" for f in tab.findings),
        )
        acr = next(finding for finding in tab.findings if "AcrPull" in finding.name)
        assert "az role assignment create" in acr.fix
        assert "to fix" in screen_text(app)


async def test_a_sign_in_failure_is_one_sentence(
    tui_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tui_project / "phiops.toml").write_text(
        AZURE.format(size=GPU_SIZE, subscription=SUBSCRIPTION), encoding="utf-8"
    )
    world = AzureWorld(signed_in=False)
    world.patch(monkeypatch)
    app = make_app(tui_project)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        tab = app.tabs["resources"]
        await wait_for(pilot, lambda: "sign in" in screen_text(app).lower())
        text = screen_text(app)
        assert not tab.findings
        assert "Traceback" not in text
