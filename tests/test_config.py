"""phiops.toml: precedence, validation that names file and line, and never overwriting."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import load_config, read_file_values, set_value, write_config_values
from core.errors import ConfigError


def test_defaults_then_file_then_environment(project: Path) -> None:
    path = project / "phiops.toml"
    write_config_values(path, {"endpoint_name": "from-file", "compute_max_nodes": 2})
    config = load_config(path, env={"PHIOPS_ENDPOINT_NAME": "from-env"})
    assert config.endpoint_name == "from-env"
    assert config.sources["endpoint_name"] == "env PHIOPS_ENDPOINT_NAME"
    assert config.compute_max_nodes == 2 and config.sources["compute_max_nodes"] == "file"
    assert config.backend == "local" and "backend" not in config.sources


def test_file_is_grouped_in_sections(project: Path) -> None:
    path = project / "phiops.toml"
    write_config_values(path, {"workspace": "ws", "endpoint_name": "ep"})
    text = path.read_text()
    assert "[azure]" in text and "[deploy]" in text
    assert read_file_values(path) == {"workspace": "ws", "endpoint_name": "ep"}


def test_syntax_error_names_file_and_line(project: Path) -> None:
    path = project / "phiops.toml"
    path.write_text('[deploy]\nendpoint_name = "ok"\nbroken = = 1\n')
    with pytest.raises(ConfigError, match=r"phiops\.toml: not valid TOML: .*line 3"):
        load_config(path, env={})


def test_wrong_type_names_key_and_line(project: Path) -> None:
    path = project / "phiops.toml"
    path.write_text('[azure]\nworkspace = "w"\ncompute_max_nodes = "many"\n')
    with pytest.raises(ConfigError, match=r"line 3: 'compute_max_nodes' must be a whole number"):
        load_config(path, env={})


def test_unknown_key_and_choice(project: Path) -> None:
    path = project / "phiops.toml"
    path.write_text('[deploy]\nendpoint = "typo"\n')
    with pytest.raises(ConfigError, match="unknown setting 'endpoint' in \\[deploy\\]"):
        load_config(path, env={})
    with pytest.raises(ConfigError, match="PHIOPS_BACKEND: 'backend' must be one of local, azure"):
        load_config(project / "none.toml", env={"PHIOPS_BACKEND": "aws"})


def test_set_never_overwrites_a_broken_file(project: Path) -> None:
    path = project / "phiops.toml"
    broken = b'[deploy]\nendpoint_name = "a"\n[[[\n'
    path.write_bytes(broken)
    with pytest.raises(ConfigError):
        set_value(path, "endpoint_name", "b")
    assert path.read_bytes() == broken


def test_set_keeps_other_values_and_env_stays_out(project: Path, monkeypatch) -> None:
    path = project / "phiops.toml"
    write_config_values(path, {"workspace": "ws"})
    monkeypatch.setenv("PHIOPS_MODEL_NAME", "env-only")
    set_value(path, "compute_max_nodes", "4")
    assert read_file_values(path) == {"workspace": "ws", "compute_max_nodes": 4}


def test_identity_resource_id_is_derived(project: Path) -> None:
    path = project / "phiops.toml"
    write_config_values(
        path, {"subscription_id": "sub", "resource_group": "rg", "identity_name": "id1"}
    )
    config = load_config(path, env={})
    assert config.identity_resource_id == (
        "/subscriptions/sub/resourceGroups/rg/providers/"
        "Microsoft.ManagedIdentity/userAssignedIdentities/id1"
    )


def test_relative_paths_resolve_against_the_project(project: Path, tmp_path: Path) -> None:
    path = project / "phiops.toml"
    write_config_values(path, {"train_data_path": "d/train.jsonl"})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = load_config(path, env={})
    assert config.resolve(config.train_data_path) == project / "d" / "train.jsonl"


def test_the_tui_table_holds_a_theme_and_a_keymap(project: Path) -> None:
    """`[tui]`: `theme` and `keymap` (binding id -> keys), also as `PHIOPS_KEYMAP="a=x; b=y"`
    and `config set keymap`; a keymap that is not a table of strings is refused."""
    path = project / "phiops.toml"
    path.write_text(
        '[tui]\ntheme = "ansi-dark"\nkeymap = { "deployments.deploy" = "D" }\n', encoding="utf-8"
    )
    config = load_config(path, env={})
    assert (config.theme, config.keymap) == ("ansi-dark", {"deployments.deploy": "D"})
    env = {"PHIOPS_KEYMAP": "app.quit=ctrl+q; jobs.submit=S,ctrl+s"}
    assert load_config(path, env=env).keymap == {"app.quit": "ctrl+q", "jobs.submit": "S,ctrl+s"}
    set_value(path, "keymap", "jobs.cancel=C")
    assert load_config(path, env={}).keymap == {"jobs.cancel": "C"}
    assert load_config(path, env={}).theme == "ansi-dark"  # the rest of [tui] kept
    path.write_text("[tui]\nkeymap = { jobs = 1 }\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="line 2: 'keymap' must be a table"):
        load_config(path, env={})
    assert load_config(project / "elsewhere.toml", env={}).keymap == {}
