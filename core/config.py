"""phiops.toml: one file per project, what the seed's config.py held, minus the secrets.

Precedence is default < file < `PHIOPS_<FIELD>` environment variable. Only values that came
from the file are ever written back, so an environment override never leaks into the file,
and a file that fails to parse is never overwritten.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.atomic import write_text_atomic
from core.errors import ConfigError
from core.paths import STORE_DIRNAME, find_config_path

ENV_PREFIX = "PHIOPS_"
BACKENDS = ("local", "azure")
CREDENTIALS = ("default", "cli", "device-code", "managed-identity", "environment")


def _field(default: Any, section: str, help: str, choices: tuple[str, ...] = ()) -> Any:
    metadata = {"section": section, "help": help, "choices": choices}
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def default_of(spec: dataclasses.Field) -> Any:
    """A setting's default value (a fresh one for a table such as `keymap`)."""
    if spec.default_factory is not dataclasses.MISSING:
        return spec.default_factory()
    return spec.default


def parse_table(text: str) -> dict[str, str]:
    """A table setting given as text (`PHIOPS_KEYMAP`, `config set`): `a=x; b=y,z`."""
    table = {}
    for item in text.split(";"):
        if item.strip():
            key, equals, value = item.partition("=")
            if not equals or not key.strip() or not value.strip():
                raise ValueError(f"{item.strip()!r} is not NAME=VALUE")
            table[key.strip()] = value.strip()
    return table


@dataclass
class Config:
    """Every setting a project has. Attribute names are the keys of `phiops config set`."""

    backend: str = _field("local", "project", "where jobs and endpoints run", BACKENDS)
    experiment_name: str = _field("phi3-finetune", "project", "experiment that groups jobs")

    train_data_path: str = _field("data/train_data.jsonl", "data", "training JSONL")
    test_data_path: str = _field("data/test_data.jsonl", "data", "evaluation JSONL")
    dataset_id: str = _field("HuggingFaceH4/ultrachat_200k", "data", "hub dataset to prepare")
    dataset_config: str = _field("default", "data", "hub dataset configuration")
    dataset_split: str = _field("train_sft[:1%]", "data", "split expression to prepare")

    base_model: str = _field(
        "microsoft/Phi-3-mini-4k-instruct", "model", "hub id or local folder to fine-tune"
    )
    model_name: str = _field("phi3-finetuned", "model", "name in the model registry")

    subscription_id: str = _field("", "azure", "Azure subscription id")
    resource_group: str = _field("", "azure", "resource group of the workspace")
    workspace: str = _field("", "azure", "Azure ML workspace name")
    location: str = _field("eastus2", "azure", "Azure region")
    credential: str = _field("default", "azure", "how to sign in to Azure", CREDENTIALS)
    identity_name: str = _field("", "azure", "user-assigned managed identity name")
    identity_client_id: str = _field("", "azure", "managed identity client id")
    compute_name: str = _field("gpu-cluster", "azure", "training compute cluster")
    compute_vm_size: str = _field("Standard_NC24ads_A100_v4", "azure", "training VM size")
    compute_max_nodes: int = _field(1, "azure", "most nodes the cluster scales to")

    endpoint_name: str = _field("phi3-endpoint", "deploy", "online endpoint name")
    deployment_name: str = _field("", "deploy", "deployment name (empty: blue/green)")
    deployment_instance_type: str = _field("Standard_NC6s_v3", "deploy", "serving VM size")
    deployment_instance_count: int = _field(1, "deploy", "serving instances")

    host: str = _field("127.0.0.1", "local", "address local servers bind to")
    store_dir: str = _field(STORE_DIRNAME, "local", "local store (runs, models, endpoints)")

    theme: str = _field("", "tui", "terminal app theme, e.g. ansi-dark (empty: follow TERM)")
    keymap: dict[str, str] = _field(  # noqa: RUF009 (_field gives a table a default_factory)
        {}, "tui", "terminal app keys: binding id = keys, e.g. deployments.deploy = 'D'"
    )

    path: Path = field(default_factory=find_config_path, metadata={"internal": True})
    sources: dict[str, str] = field(default_factory=dict, metadata={"internal": True})

    @property
    def project_dir(self) -> Path:
        return self.path.parent

    @property
    def store_path(self) -> Path:
        return self.resolve(self.store_dir)

    @property
    def identity_resource_id(self) -> str:
        """The ARM id Azure wants, derived so nobody copies it from the portal."""
        if not (self.subscription_id and self.resource_group and self.identity_name):
            return ""
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{self.identity_name}"
        )

    def resolve(self, value: str | os.PathLike[str]) -> Path:
        """A path from the config, relative to the project folder."""
        candidate = Path(value).expanduser()
        return candidate if candidate.is_absolute() else self.project_dir / candidate

    def to_dict(self) -> dict[str, Any]:
        return {spec.name: getattr(self, spec.name) for spec in settings()}


def settings() -> list[dataclasses.Field]:
    """The user-facing fields, in file order."""
    return [spec for spec in dataclasses.fields(Config) if not spec.metadata.get("internal")]


def _spec(key: str) -> dataclasses.Field:
    for spec in settings():
        if spec.name == key:
            return spec
    known = ", ".join(spec.name for spec in settings())
    raise ConfigError(f"unknown setting '{key}'; known settings: {known}")


def coerce(key: str, value: Any, *, where: str) -> Any:
    """Check and convert one value; `where` says where it came from, for the message."""
    spec = _spec(key)
    kind = type(default_of(spec))
    if kind is dict:
        if isinstance(value, str):
            try:
                value = parse_table(value)
            except ValueError as error:
                raise ConfigError(
                    f"{where}: '{key}' must be a table of NAME = VALUE ({error})"
                ) from None
        if not isinstance(value, dict) or not all(
            isinstance(name, str) and isinstance(item, str) for name, item in value.items()
        ):
            raise ConfigError(f"{where}: '{key}' must be a table of NAME = \"VALUE\" strings")
        return dict(value)
    if kind is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: '{key}' must be a whole number, not {value!r}")
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise ConfigError(
                    f"{where}: '{key}' must be a whole number, not {value!r}"
                ) from None
        if not isinstance(value, int):
            raise ConfigError(f"{where}: '{key}' must be a whole number, not {value!r}")
    elif not isinstance(value, str):
        raise ConfigError(f"{where}: '{key}' must be a string, not {value!r}")
    choices = spec.metadata.get("choices") or ()
    if choices and value not in choices:
        raise ConfigError(f"{where}: '{key}' must be one of {', '.join(choices)}, not {value!r}")
    return value


def _line_of(text: str, key: str) -> int | None:
    match = re.search(rf"^\s*{re.escape(key)}\s*=", text, flags=re.MULTILINE)
    return text.count("\n", 0, match.start()) + 1 if match else None


def read_file_values(path: Path) -> dict[str, Any]:
    """The settings a phiops.toml holds, flattened and checked. A missing file holds none."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot be read ({error})") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        reason = str(error).replace(
            "(at end of document)", f"(at line {text.count(chr(10)) or 1}, the end of the file)"
        )
        raise ConfigError(f"{path}: not valid TOML: {reason}") from None

    sections = {spec.metadata["section"] for spec in settings()}
    values: dict[str, Any] = {}
    for section, table in document.items():
        if section not in sections or not isinstance(table, dict):
            raise ConfigError(
                f"{path}: unknown table [{section}]; expected one of {', '.join(sorted(sections))}"
            )
        for key, value in table.items():
            line = _line_of(text, key)
            where = f"{path}, line {line}" if line else str(path)
            spec = _spec_or_none(key)
            if spec is None or spec.metadata["section"] != section:
                raise ConfigError(f"{where}: unknown setting '{key}' in [{section}]")
            values[key] = coerce(key, value, where=where)
    return values


def _spec_or_none(key: str) -> dataclasses.Field | None:
    try:
        return _spec(key)
    except ConfigError:
        return None


def env_values(env: Mapping[str, str]) -> dict[str, Any]:
    values = {}
    for spec in settings():
        variable = ENV_PREFIX + spec.name.upper()
        if variable in env:
            values[spec.name] = coerce(spec.name, env[variable], where=f"${variable}")
    return values


def load_config(path: Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Defaults, then the file, then the environment; `sources` says where each came from."""
    path = (path or find_config_path()).resolve()
    env = os.environ if env is None else env
    config = Config(path=path)
    for source, values in (("file", read_file_values(path)), ("env", env_values(env))):
        for key, value in values.items():
            setattr(config, key, value)
            config.sources[key] = source if source == "file" else f"env {ENV_PREFIX}{key.upper()}"
    return config


def render_toml(values: Mapping[str, Any]) -> str:
    """A phiops.toml holding `values`, grouped in the sections of the dataclass."""
    import tomli_w

    document: dict[str, dict[str, Any]] = {}
    for spec in settings():
        if spec.name in values:
            document.setdefault(spec.metadata["section"], {})[spec.name] = values[spec.name]
    return tomli_w.dumps(document)


def write_config_values(path: Path, values: Mapping[str, Any]) -> None:
    """Write exactly these settings, atomically. Callers pass what the file already held."""
    checked = {key: coerce(key, value, where=str(path)) for key, value in values.items()}
    write_text_atomic(path, render_toml(checked))


def set_value(path: Path, key: str, raw: Any) -> Any:
    """`config set`: change one setting in the file, keeping the others as they are.

    The file is parsed first; if it cannot be, it is left byte-for-byte unchanged.
    """
    current = read_file_values(path)
    current[key] = coerce(key, raw, where=f"value for '{key}'")
    write_config_values(path, current)
    return current[key]
