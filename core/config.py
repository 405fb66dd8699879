"""phiops.toml: one file per project, what the seed's config.py held, minus the secrets.

Precedence is default < file < `PHIOPS_<FIELD>` environment variable. Only values that came
from the file are ever written back, so an environment override never leaks into the file,
and a file that fails to parse is never overwritten. `config set` edits the file in place
(tomlkit): comments, order and layout stay, and so do its mode and a symlink to it; a
read-only file is refused. Values are range-checked wherever they come from.
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
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
DEFAULT_BASE_MODEL = "microsoft/Phi-3-mini-4k-instruct"
# The hub commit of DEFAULT_BASE_MODEL whose chat template the trainer and the serving code
# are built for (trainer/fine_tune.py pins the same one).
DEFAULT_BASE_MODEL_REVISION = "f39ac1d28e925b323eae81227eaba4464caced4e"


def _field(
    default: Any,
    section: str,
    help: str,
    choices: tuple[str, ...] = (),
    *,
    minimum: int | None = None,
    host: bool = False,
) -> Any:
    metadata = {
        "section": section,
        "help": help,
        "choices": choices,
        "minimum": minimum,
        "host": host,
    }
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

    base_model: str = _field(DEFAULT_BASE_MODEL, "model", "hub id or local folder to fine-tune")
    base_model_revision: str = _field(
        DEFAULT_BASE_MODEL_REVISION,
        "model",
        "hub commit, tag or branch of base_model (empty: the hub's main)",
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
    compute_max_nodes: int = _field(1, "azure", "most nodes the cluster scales to", minimum=1)

    endpoint_name: str = _field("phi3-endpoint", "deploy", "online endpoint name")
    deployment_name: str = _field("", "deploy", "deployment name (empty: blue/green)")
    deployment_instance_type: str = _field("Standard_E4s_v3", "deploy", "serving VM size")
    deployment_instance_count: int = _field(1, "deploy", "serving instances", minimum=1)

    host: str = _field("127.0.0.1", "local", "address local servers bind to", host=True)
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

    def revision_for(self, base_model: str) -> str:
        """The hub revision to train `base_model` at ("" for the hub's main, or a folder).

        The default pin belongs to the default model; a revision set in the file or the
        environment applies to whichever hub model is trained."""
        if self.resolve(base_model).exists():
            return ""
        if base_model == DEFAULT_BASE_MODEL or "base_model_revision" in self.sources:
            return self.base_model_revision
        return ""

    def revision_args(self, base_model: str) -> list[str]:
        """The trainer's `--base-model-revision` option for `base_model`, if it has one."""
        revision = self.revision_for(base_model)
        return ["--base-model-revision", revision] if revision else []

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
    minimum = spec.metadata.get("minimum")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{where}: '{key}' must be at least {minimum}, not {value}")
    if spec.metadata.get("host") and not _host_shaped(value):
        raise ConfigError(f"{where}: '{key}' must be an IP address or a host name, not {value!r}")
    return value


_HOST_NAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+$")


def _host_shaped(value: str) -> bool:
    """An IP address or a syntactically valid host name (resolving it is `config set`'s job:
    a lookup at every load could stall the app on a slow resolver)."""
    import ipaddress

    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return bool(_HOST_NAME.match(value))


def check_resolves(key: str, value: Any) -> None:
    """For `config set`: a host setting must resolve on this machine."""
    import socket

    if not _spec(key).metadata.get("host"):
        return
    try:
        socket.getaddrinfo(value, None)
    except (OSError, UnicodeError):
        raise ConfigError(f"'{key}' {value!r} does not resolve to an address here") from None


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
    """Write exactly these settings, atomically (a new file, or `config init --force`).
    The file keeps its mode (a new one gets the usual mode; it holds no secret)."""
    checked = {key: coerce(key, value, where=str(path)) for key, value in values.items()}
    target = _writable_target(path)
    write_text_atomic(target, render_toml(checked), perms=_mode_for(target))


def set_value(path: Path, key: str, raw: Any) -> Any:
    """`config set`: change one setting in the file, keeping everything else as it is —
    the other settings, comments, order and layout, the file's mode, and a symlink.

    The file is parsed first; if it cannot be, it is left byte-for-byte unchanged.
    """
    import tomlkit

    read_file_values(path)  # a broken file is reported, never rewritten
    value = coerce(key, raw, where=f"value for '{key}'")
    check_resolves(key, value)
    target = _writable_target(path)
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    document = tomlkit.parse(text)
    section = _spec(key).metadata["section"]
    table = document.get(section)
    if table is None:
        table = tomlkit.table()
        document.add(section, table)
    _put(table, key, value)
    write_text_atomic(target, tomlkit.dumps(document), perms=_mode_for(target))
    return value


def _put(table: Any, key: str, value: Any) -> None:
    """Set `key` in a tomlkit table: in place if present, else right after the table's last
    setting (appending would put it after the comments that introduce the next table)."""
    keys = list(table.keys())
    if key in keys or not keys:
        table[key] = value
        return
    try:
        table.value._insert_after(keys[-1], key, value)
    except Exception:  # tomlkit's layout helper changed: appending is still valid TOML
        table[key] = value


def _writable_target(path: Path) -> Path:
    """The file to write (a symlink's target, so the link stays); a read-only one refused."""
    target = Path(os.path.realpath(path))
    mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else None
    # No write bit (even for root, who may write anyway) or no access: the user said no.
    if mode is not None and (not mode & 0o222 or not os.access(target, os.W_OK)):
        raise ConfigError(
            f"{path} is read-only (mode {mode:04o}); make it writable (chmod u+w) to change it"
        )
    if not target.exists() and not os.access(target.parent, os.W_OK):
        raise ConfigError(f"cannot create {target}: its folder is not writable")
    return target


def _mode_for(path: Path) -> int:
    """The mode `path` has, or the one a new file gets under this process's umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
