"""The JSON types of a stored verdict's fields (a line of verdicts.jsonl), so that a damaged line is named by
its line number when the store is read, not met later as a TypeError in resume or eval."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_INT, _NUM, _STR, _BOOL = "an integer", "a number", "a string", "true/false"

# field -> (expected type, null allowed); fields not listed (or absent) are not checked here
VERDICT_FIELDS: dict[str, tuple[str, bool]] = {
    "task_id": (_STR, False),
    "operation_id": (_INT, False),
    "neuron_root_id": (_INT, False),
    "neuron_n_edits": (_INT, False),
    "role": (_STR, False),
    "label": (_STR, False),
    "agent": (_STR, False),
    "outcome": (_STR, False),
    "session": (_INT, False),
    "op_kind": (_STR, False),
    "decision": (_STR, True),
    "confidence": (_NUM, True),
    "valid": (_BOOL, False),
    "latency_s": (_NUM, True),
    "prompt_tokens": (_INT, True),
    "completion_tokens": (_INT, True),
    "attempts": (_INT, True),
    "answers": (_INT, True),
    "error_reason": (_STR, True),
    "finish_reason": (_STR, True),
    "endpoint": (_STR, True),
    "model": (_STR, True),
    "prompt_version": (_STR, True),
    "n_images": (_INT, False),
    "image_tokens": (_INT, False),
    "error_detail": (_STR, True),
}


def _is(value: Any, kind: str) -> bool:
    if kind == _BOOL:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False  # JSON true is not a count
    if kind == _INT:
        return isinstance(value, int)
    if kind == _NUM:
        return isinstance(value, int | float)
    return isinstance(value, str)


def wrong_field(record: Mapping[str, Any]) -> str | None:
    """'FIELD is VALUE, not TYPE' for the first field of the wrong JSON type; None if all fit."""
    for name, (kind, nullable) in VERDICT_FIELDS.items():
        if name not in record:
            continue
        value = record[name]
        if value is None and nullable:
            continue
        if not _is(value, kind):
            return f"{name} is {value!r:.40}, not {kind}"
    return None
