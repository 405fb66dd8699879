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


HAND_WRITTEN = """\
# Brindlemoor fine-tune: ask Maren before changing the cluster
[project]
backend = "local"   # the laptop for now

# Azure, for later
[azure]
compute_max_nodes = 2
"""


def test_set_keeps_comments_layout_and_mode(project: Path) -> None:
    import os
    import stat

    path = project / "phiops.toml"
    path.write_text(HAND_WRITTEN)
    os.chmod(path, 0o644)
    set_value(path, "compute_max_nodes", "3")
    set_value(path, "experiment_name", "island")
    assert path.read_text() == HAND_WRITTEN.replace(
        "compute_max_nodes = 2", "compute_max_nodes = 3"
    ).replace("the laptop for now\n", 'the laptop for now\nexperiment_name = "island"\n')
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_set_writes_through_a_symlink_and_refuses_a_read_only_file(project: Path) -> None:
    import os

    real = project / "shared" / "phiops.toml"
    real.parent.mkdir()
    real.write_text(HAND_WRITTEN)
    link = project / "phiops.toml"
    link.symlink_to(real)
    set_value(link, "endpoint_name", "ep-island")
    assert link.is_symlink() and read_file_values(real)["endpoint_name"] == "ep-island"

    os.chmod(real, 0o444)
    before = real.read_bytes()
    with pytest.raises(ConfigError, match=r"is read-only \(mode 0444\); make it writable"):
        set_value(link, "endpoint_name", "other")
    assert real.read_bytes() == before and link.is_symlink()


def test_values_are_range_checked_at_set_and_at_load(project: Path) -> None:
    path = project / "phiops.toml"
    path.write_text(HAND_WRITTEN)
    with pytest.raises(ConfigError, match="'compute_max_nodes' must be at least 1, not -5"):
        set_value(path, "compute_max_nodes", "-5")
    with pytest.raises(ConfigError, match=r"'host' 'nowhere\.invalid' does not resolve"):
        set_value(path, "host", "nowhere.invalid")
    assert path.read_text() == HAND_WRITTEN
    path.write_text('[deploy]\ndeployment_instance_count = 0\n[local]\nhost = "127.0.0.1"\n')
    with pytest.raises(ConfigError, match="line 2: 'deployment_instance_count' must be at least 1"):
        load_config(path, env={})
    with pytest.raises(ConfigError, match="PHIOPS_HOST: 'host' must be an IP address or a host"):
        load_config(project / "none.toml", env={"PHIOPS_HOST": "not a host"})


def test_config_set_takes_a_negative_number_on_the_command_line(project: Path) -> None:
    from tests.helpers import run_phiops

    (project / "phiops.toml").write_text(HAND_WRITTEN)
    refused = run_phiops("config", "set", "compute_max_nodes", "-5", cwd=project)
    assert refused.returncode == 1
    assert refused.stderr.strip().endswith("'compute_max_nodes' must be at least 1, not -5")
    taken = run_phiops("config", "set", "experiment_name", "-island-", cwd=project)
    assert taken.returncode == 0, taken.stderr
    assert read_file_values(project / "phiops.toml")["experiment_name"] == "-island-"


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
