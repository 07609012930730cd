"""The verdict JSON schema per op kind, its OpenAI `response_format`, and answer validation.

A merge task asks whether a candidate fragment belongs to the neuron (`merge` / `no_merge`); a split
task asks whether a segment contains a false merge (`split` / `clean`). Numbers are bounded and no
free text is allowed: a weak or random model otherwise pads or writes digits until `max_tokens`
(docs/serving.md "Structured outputs"; "Workarounds", item 3).
"""

from __future__ import annotations

import copy
import json
from typing import Any, Literal

import jsonschema

OpKind = Literal["merge", "split"]

PROMPT_VERSION = "pp-verdict-1"
"""Version of the prompt text and verdict schema together; bump it whenever either changes."""

DECISIONS: dict[str, tuple[str, str]] = {
    "merge": ("merge", "no_merge"),
    "split": ("split", "clean"),
}
"""Allowed decisions per op kind: (the edit is needed, the edit is not needed)."""


def _schema(decisions: tuple[str, str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "decision": {"type": "string", "enum": list(decisions)},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        },
        "required": ["decision", "confidence"],
        "additionalProperties": False,
    }


_SCHEMAS = {kind: _schema(decisions) for kind, decisions in DECISIONS.items()}
_VALIDATORS = {kind: jsonschema.Draft202012Validator(schema) for kind, schema in _SCHEMAS.items()}


class InvalidAnswer(Exception):
    """An answer that does not satisfy the verdict schema; `reason` is a short metric label."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def check_op_kind(op_kind: str) -> OpKind:
    """Return `op_kind` if it is a known kind, else raise ValueError."""
    if op_kind not in DECISIONS:
        raise ValueError(f"unknown op kind {op_kind!r}; expected one of {sorted(DECISIONS)}")
    return op_kind  # type: ignore[return-value]


def verdict_schema(op_kind: str) -> dict[str, Any]:
    """The JSON schema of a verdict for `op_kind` (a fresh copy)."""
    return copy.deepcopy(_SCHEMAS[check_op_kind(op_kind)])


def response_format(op_kind: str) -> dict[str, Any]:
    """OpenAI `response_format` asking for a strict verdict for `op_kind`."""
    return {
        "type": "json_schema",
        "json_schema": {"name": f"{op_kind}_verdict", "strict": True, "schema": verdict_schema(op_kind)},
    }


def parse_answer(content: str | None, finish_reason: str | None, op_kind: str) -> tuple[str, float]:
    """Validate one model answer; return (decision, confidence) or raise InvalidAnswer.

    Reasons: `length` (cut off at max_tokens, whatever the text), `empty_answer`, `invalid_json`,
    `schema_mismatch`.
    """
    if finish_reason == "length":
        raise InvalidAnswer("length", "answer cut off at max_tokens")
    if not content or not content.strip():
        raise InvalidAnswer("empty_answer")
    try:
        answer = json.loads(content)
    except json.JSONDecodeError as exc:
        raise InvalidAnswer("invalid_json", str(exc)) from None
    error = jsonschema.exceptions.best_match(_VALIDATORS[check_op_kind(op_kind)].iter_errors(answer))
    if error is not None:
        raise InvalidAnswer("schema_mismatch", error.message)
    return answer["decision"], float(answer["confidence"])
