"""Loading the JSON records phiops keeps on disk, whatever a crash or a hand edit left there.

A record (`job.json`, `endpoint.json`) is a dataclass written by phiops, but the file can be
truncated, replaced or edited. `load_record` builds the dataclass only from values of the
types its fields declare (nested dataclasses, enums, lists, dicts and optional values
included) and says in one sentence what is wrong otherwise, so one bad file is reported
as such instead of failing whatever code reads it next.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from core.errors import NotFoundError, UnreadableRecord

T = TypeVar("T")
ROOT = "it"


class RecordError(ValueError):
    """The data does not have the shape of the record; the message says where."""


def read_record(cls: type[T], path: Path, name: str, *, what: str, missing: str) -> T:
    """The record in `path` of `what` (e.g. "job 'x'"), which must be named `name`:
    NotFoundError(`missing`) when there is no file, UnreadableRecord naming the file and
    the problem when it does not parse, has another shape or names another record."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFoundError(missing) from None
    except (OSError, ValueError) as error:
        raise UnreadableRecord(f"the record of {what} ({path}) cannot be read ({error})") from None
    try:
        record = load_record(cls, data)
    except RecordError as error:
        raise UnreadableRecord(f"the record of {what} ({path}) is damaged: {error}") from None
    if getattr(record, "name", name) != name:
        found = getattr(record, "name", "")
        raise UnreadableRecord(f"the record of {what} ({path}) is damaged: it names {found!r}")
    return record


def load_record(cls: type[T], data: Any) -> T:
    """`cls` built from `data` (unknown keys ignored); RecordError naming the first problem
    ("it has no status", "runner.pid is a string, not a whole number")."""
    return _convert(data, cls, ROOT)


def _dataclass(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise RecordError(f"{where} is {_kind(data)}, not a JSON object")
    hints = typing.get_type_hints(cls)
    values = {}
    for spec in dataclasses.fields(cls):
        if spec.name not in data:
            required = spec.default is dataclasses.MISSING
            if required and spec.default_factory is dataclasses.MISSING:
                raise RecordError(f"{where} has no {spec.name}")
            continue
        inner = spec.name if where == ROOT else f"{where}.{spec.name}"
        values[spec.name] = _convert(data[spec.name], hints[spec.name], inner)
    return cls(**values)


def _convert(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        members = typing.get_args(hint)
        if value is None and type(None) in members:
            return None
        problems = []
        for member in members:
            if member is type(None):
                continue
            try:
                return _convert(value, member, where)
            except RecordError as problem:
                problems.append(problem)
        raise problems[0]
    if dataclasses.is_dataclass(hint):
        return _dataclass(hint, value, where)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            known = ", ".join(str(item.value) for item in hint)
            raise RecordError(f"{where} is {value!r}, not one of {known}") from None
    if origin is list:
        if not isinstance(value, list):
            raise RecordError(f"{where} is {_kind(value)}, not a list")
        (item,) = typing.get_args(hint) or (Any,)
        return [_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise RecordError(f"{where} is {_kind(value)}, not a JSON object")
        _, item = typing.get_args(hint) or (str, Any)
        return {str(k): _convert(v, item, f"{where}.{k}") for k, v in value.items()}
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(hint, type) and isinstance(value, hint):
        return value
    name = getattr(hint, "__name__", str(hint))
    raise RecordError(f"{where} is {_kind(value)}, not {_article(name)}")


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false"}
    if value is None:
        return "null"
    return names.get(
        type(value), f"the number {value!r}" if isinstance(value, int | float) else repr(value)
    )


def _article(name: str) -> str:
    words = {"str": "a string", "int": "a whole number", "float": "a number", "bool": "true/false"}
    return words.get(name, f"a {name}")
