"""The CLI frame: JSON output, env overrides, one-sentence errors, a light import graph."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from core.secrets import SecretStore, endpoint_key_name
from tests.helpers import run_phiops

KEY = "s3cretKEY0123456789abcdefghijklmnop"
HEAVY = ("torch", "transformers", "datasets", "mlflow", "azure.ai.ml", "promptflow", "textual")


def test_version_and_help(project: Path) -> None:
    assert run_phiops("--version").stdout.strip() == "phiops, version 0.1.0"
    result = run_phiops("--help")
    assert result.returncode == 0 and "config" in result.stdout and "tui" in result.stdout


def test_config_show_json_masks_the_key(project: Path) -> None:
    assert (
        run_phiops("config", "init", "--non-interactive", "--endpoint-name", "ep1").returncode == 0
    )
    SecretStore().set(endpoint_key_name("local", "ep1"), KEY)
    result = run_phiops("config", "show", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["settings"]["endpoint_name"] == "ep1"
    assert data["secrets"]["endpoint_key"] == "s3cr…mnop"
    assert KEY not in result.stdout
    shown = json.loads(run_phiops("config", "show", "--json", "--show-secrets").stdout)
    assert shown["secrets"]["endpoint_key"] == KEY


def test_environment_overrides_show(project: Path) -> None:
    result = run_phiops("config", "show", "--json", env={"PHIOPS_ENDPOINT_NAME": "x"})
    assert json.loads(result.stdout)["settings"]["endpoint_name"] == "x"


def test_broken_config_one_sentence_and_unchanged(project: Path) -> None:
    path = project / "phiops.toml"
    original = b'[deploy]\nendpoint_name = "a"\noops = = 1\n'
    path.write_bytes(original)
    for args in (("config", "show"), ("config", "set", "endpoint_name", "b")):
        result = run_phiops(*args)
        assert result.returncode != 0
        assert "Traceback" not in result.stderr
        assert re.fullmatch(
            rf"phiops: {re.escape(str(path))}: not valid TOML: .*line 3.*\n", result.stderr
        )
    assert path.read_bytes() == original


def test_config_set_rejects_a_key_as_value(project: Path) -> None:
    SecretStore().set(endpoint_key_name("local", "phi3-endpoint"), KEY)
    result = run_phiops("config", "set", "model_name", KEY)
    assert result.returncode == 1 and KEY not in result.stderr + result.stdout
    assert not (project / "phiops.toml").exists()


def test_unknown_setting_is_one_sentence(project: Path) -> None:
    result = run_phiops("config", "set", "nope", "1", "--json")
    assert result.returncode == 1
    assert result.stderr.startswith("phiops: unknown setting 'nope'")
    assert result.stderr.count("\n") == 1


def test_config_path(project: Path) -> None:
    data = json.loads(run_phiops("config", "path", "--json").stdout)
    assert data == {"path": str(project / "phiops.toml"), "exists": False}


def test_completion_script() -> None:
    result = run_phiops("completion", "bash")
    assert result.returncode == 0 and "_PHIOPS_COMPLETE" in result.stdout


def _imported_by(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return set(output.split())


def test_config_and_cli_frame_import_nothing_heavy() -> None:
    for statement in (
        "import core.config",
        "import core.cli.main",
        "import tui.launcher",
        "import core.cli.config_cmd",
        "import core.backends",
    ):
        loaded = _imported_by(statement)
        assert not [name for name in HEAVY if name in loaded], statement
