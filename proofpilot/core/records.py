"""Typed records from JSON: `from_json(Record, data, source)` builds a (nested) frozen dataclass from the dict
a writer emitted, checking every field against the dataclass's annotations.

Tolerant of what the writers emit: a field with a default may be missing (older files), an `X | None` field
may be null, and a `float` field may be null (JSON has no NaN or infinity: the writers store a
quantity that cannot be estimated as null; it reads back as NaN). Anything else that does not fit is a
one-line DataError naming the file and the field:

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class P:
...     x: int
...     ci: tuple[float, float] | None = None
>>> from_json(P, {"x": 2, "ci": [0, 1.5]}, "p.json")
P(x=2, ci=(0.0, 1.5))
>>> from_json(P, {"x": "2"}, "p.json")
Traceback (most recent call last):
...
proofpilot.core.errors.DataError: p.json: field x must be an integer, got str
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from proofpilot.core.errors import DataError, ProofpilotError

T = TypeVar("T")
_NONE = type(None)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _bad(source: str, path: str, expected: str, value: Any) -> DataError:
    return DataError(
        f"{source}: field {path or '(top level)'} must be {expected}, got {type(value).__name__}"
    )


def from_json(cls: type[T], data: Any, source: str, where: str = "") -> T:
    """`cls` (a dataclass) from the JSON object `data`; `source` (the file) and `where` (the field path) name
    the place in a DataError."""
    if not isinstance(data, dict):
        raise _bad(source, where, "an object", data)
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not f.init:
            continue
        path = f"{where}.{f.name}" if where else f.name
        if f.name not in data:
            has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            if has_default:
                continue
            raise DataError(f"{source}: missing field {path}")
        kwargs[f.name] = convert(hints[f.name], data[f.name], source, path)
    try:
        return cls(**kwargs)
    except ProofpilotError as exc:  # the record's own validation
        raise DataError(f"{source}: {where or cls.__name__}: {exc}") from None


def convert(tp: Any, value: Any, source: str, path: str) -> Any:
    """`value` (decoded JSON) as the annotated type `tp`; DataError naming `path` if it does not fit."""
    if tp is Any:
        return value
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and _NONE in args:
            return None
        arms = [a for a in args if a is not _NONE]
        for arm in arms[:-1]:
            try:
                return convert(arm, value, source, path)
            except DataError:
                continue
        return convert(arms[-1], value, source, path)
    if origin is Literal:
        if value not in args:
            raise DataError(
                f"{source}: field {path} must be one of {', '.join(map(repr, args))}, got {value!r}"
            )
        return value
    if dataclasses.is_dataclass(tp):
        return from_json(tp, value, source, path)  # type: ignore[arg-type]
    if origin in (tuple, list) or tp in (tuple, list):
        return _sequence(tp, origin or tp, args, value, source, path)
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise _bad(source, path, "an object", value)
        vt = args[1] if len(args) == 2 else Any
        return {str(k): convert(vt, v, source, f"{path}.{k}") for k, v in value.items()}
    return _scalar(tp, value, source, path)


def _sequence(tp: Any, kind: type, args: tuple, value: Any, source: str, path: str) -> Any:
    if not isinstance(value, (list, tuple)):
        raise _bad(source, path, "a list", value)
    if kind is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            raise DataError(f"{source}: field {path} must have {len(args)} items, got {len(value)}")
        return tuple(
            convert(a, v, source, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    item = args[0] if args else Any
    items = [convert(item, v, source, f"{path}[{i}]") for i, v in enumerate(value)]
    return tuple(items) if kind is tuple else items


def _scalar(tp: Any, value: Any, source: str, path: str) -> Any:
    if tp is float:
        if value is None:
            return float("nan")  # a non-finite quantity, stored as null
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _bad(source, path, "a number", value)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise _bad(source, path, "an integer", value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _bad(source, path, "true or false", value)
    if tp is str:
        if isinstance(value, str):
            return value
        raise _bad(source, path, "a string", value)
    return value


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """The JSON object in `path`; a one-line DataError if it is missing, not JSON or not an object."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DataError(f"no {what} at {path}") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {what} {path}: {exc}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path} is not a JSON object ({what})")
    return data
