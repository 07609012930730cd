"""Shape checks of what a CAVE server answered: JSON of the wrong type ("hello" where a list belongs) is one
line that names the server and the route, never a TypeError deep in the caller."""

from __future__ import annotations

from typing import Any

from proofpilot.core.errors import DataError


class WrongShape(DataError, ValueError):
    """A server answered well-formed JSON of the wrong type (also a ValueError: a malformed response)."""


def kind_of(value: Any) -> str:
    """'a string ('hello')', 'a list', 'an object', 'null', ... for a message."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"a string ({value[:30]!r})"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return f"a number ({value!r})"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def expect(value: Any, types: type | tuple[type, ...], expected: str, where: str) -> Any:
    """`value` if it is of `types`, else WrongShape: '{where} answered {kind} where {expected} belongs'."""
    if not isinstance(value, types):
        raise WrongShape(f"{where} answered {kind_of(value)} where {expected} belongs")
    return value


def expect_names(value: Any, where: str) -> list[str]:
    """A list of strings (e.g. table names)."""
    expect(value, list, "a list of names", where)
    if not all(isinstance(v, str) for v in value):
        raise WrongShape(f"{where} answered a list with entries that are not strings where names belong")
    return value


def integer_ids(column: Any, name: str, where: str) -> list[int]:
    """A pandas column of ids as Python ints."""
    try:
        return column.astype("int64").tolist()
    except (ValueError, TypeError, OverflowError):
        raise WrongShape(f"{where} answered {name} values that are not integer ids") from None
