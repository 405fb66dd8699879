"""`phiops config …`: create, show and change phiops.toml."""

from __future__ import annotations

from typing import Any

import click

from core.cli.main import AppContext, pass_app
from core.cli.output import console, emit, json_option
from core.config import load_config, read_file_values, set_value, settings, write_config_values
from core.errors import ConfigError
from core.paths import find_config_path
from core.secrets import endpoint_key, known_secrets, mask

# What `config init` asks for, in order, when run interactively.
INIT_PROMPTS = (
    "backend",
    "train_data_path",
    "test_data_path",
    "base_model",
    "model_name",
    "endpoint_name",
)
AZURE_PROMPTS = (
    "subscription_id",
    "resource_group",
    "workspace",
    "location",
    "identity_name",
    "identity_client_id",
    "compute_name",
    "compute_vm_size",
)


@click.group()
def config() -> None:
    """Create, show and change the project's phiops.toml."""


def _setting_options(command):
    """One `--<key>` option per setting, for `config init --non-interactive`."""
    for spec in reversed(settings()):
        command = click.option(
            f"--{spec.name.replace('_', '-')}",
            spec.name,
            default=None,
            type=int if isinstance(spec.default, int) else str,
            help=spec.metadata["help"],
        )(command)
    return command


@config.command("init")
@click.option("--non-interactive", is_flag=True, help="Take every value from flags or defaults.")
@click.option("--force", is_flag=True, help="Replace an existing phiops.toml.")
@click.option("--from-azure", is_flag=True, help="Fill the Azure ids from what your login sees.")
@_setting_options
@json_option
@pass_app
def init(
    app: AppContext,
    non_interactive: bool,
    force: bool,
    from_azure: bool,
    as_json: bool,
    **given: Any,
) -> None:
    """Write a phiops.toml in the current project."""
    path = find_config_path()
    if path.exists() and not force:
        read_file_values(path)  # a broken file is reported, never silently replaced
        raise ConfigError(f"{path} already exists; use `phiops config set` or --force")
    values = {key: value for key, value in given.items() if value is not None}
    if from_azure:
        from core.azure.discover import discover_config

        values = {**discover_config(values, progress=click.echo), **values}
    if not non_interactive and not as_json:
        defaults = {spec.name: spec.default for spec in settings()}
        for key in INIT_PROMPTS:
            if key not in values:
                values[key] = click.prompt(key, default=defaults[key])
        if values.get("backend") == "azure":
            for key in AZURE_PROMPTS:
                if key not in values:
                    values[key] = click.prompt(key, default=defaults[key])
    write_config_values(path, values)
    from core.pfconfig import ensure_project_pf_config

    pf_config = ensure_project_pf_config(path.parent)
    data = {"path": str(path), "values": values, "pf_config": str(pf_config or "")}

    def human() -> None:
        click.echo(f"wrote {path}")
        if pf_config:
            click.echo(f"wrote {pf_config} (Prompt flow: no telemetry, no trace service)")

    emit(data, as_json, human)


@config.command("show")
@click.option("--show-secrets", is_flag=True, help="Print the endpoint key in full.")
@json_option
@pass_app
def show(app: AppContext, show_secrets: bool, as_json: bool) -> None:
    """Print every setting, where it came from, and the endpoint key masked."""
    cfg = app.config
    key = endpoint_key(cfg.backend, cfg.endpoint_name)
    shown_key = key if show_secrets else mask(key)
    data = {
        "path": str(cfg.path),
        "exists": cfg.path.exists(),
        "settings": cfg.to_dict(),
        "sources": {spec.name: cfg.sources.get(spec.name, "default") for spec in settings()},
        "derived": {"identity_resource_id": cfg.identity_resource_id},
        "secrets": {"endpoint_key": shown_key or None},
    }

    def human() -> None:
        from rich.table import Table

        table = Table(title=str(cfg.path), title_justify="left", show_edge=False)
        table.add_column("setting")
        table.add_column("value")
        table.add_column("from", style="dim")
        for spec in settings():
            table.add_row(spec.name, str(getattr(cfg, spec.name)), data["sources"][spec.name])
        table.add_row("endpoint key", shown_key or "(none)", "secrets")
        console().print(table)

    emit(data, as_json, human)


@config.command("set", context_settings={"ignore_unknown_options": True})
@click.argument("key")
@click.argument("value")
@json_option
@pass_app
def set_(app: AppContext, key: str, value: str, as_json: bool) -> None:
    """Change one setting in phiops.toml (the other settings are kept as they are)."""
    path = find_config_path()
    if value in known_secrets():
        raise ConfigError("keys never go into phiops.toml; phiops fetches them from the backend")
    stored = set_value(path, key, value)
    load_config(path)  # the environment may override it; still, the result must load
    emit(
        {"path": str(path), "key": key, "value": stored},
        as_json,
        lambda: click.echo(f"{key} = {stored!r} in {path}"),
    )


@config.command("path")
@json_option
def path_(as_json: bool) -> None:
    """Print where phiops.toml is (or would be created)."""
    path = find_config_path()
    emit({"path": str(path), "exists": path.exists()}, as_json, lambda: click.echo(str(path)))
