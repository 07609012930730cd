"""Prompt construction: a system prompt per op kind, features as compact text, optional views.

Features arrive as a plain mapping of named numbers (names carry their unit, e.g. `gap_um`); the
feature builder decides which. Views are PNG (or other) bytes sent as OpenAI `image_url` data URIs,
for a vision model only. The text is kept short: tokens, not op types, drive the cost.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from numbers import Real
from typing import Any

from proofpilot.agent.records import AgentRequest
from proofpilot.agent.schema import DECISIONS, PROMPT_VERSION, check_op_kind
from proofpilot.core.errors import DataError

__all__ = [
    "PROMPT_VERSION",
    "SYSTEM_PROMPTS",
    "build_request",
    "describe_views",
    "format_features",
    "request_images",
]

_COMMON = (
    "You proofread a connectome: neurons reconstructed from electron microscopy, where automatic "
    "segmentation makes merge errors (two neurons joined) and split errors (one neuron cut apart). "
    "You get morphometric features of the skeletons around one interface point{views}. "
    'Answer with JSON only: {{"decision": {choices}, "confidence": a number from 0 to 1}}.'
)
SYSTEM_PROMPTS: dict[str, str] = {
    "merge": (
        "Task: decide whether fragment B is part of the same neuron as fragment A and should be merged "
        "(merge) or is a different neuron (no_merge). Continuous direction, a small gap and similar "
        "radii favour merge. "
    ),
    "split": (
        "Task: decide whether the segment contains a false merge that must be split (split) or is one "
        "clean neuron (clean). Abrupt direction changes, radius jumps and odd branches favour split. "
    ),
}


_FRAGMENTS = {
    "merge": "fragment A in blue, fragment B in orange",
    "split": "the segment in blue",
}


def describe_views(op_kind: str, view_names: Sequence[str]) -> str:
    """What the views show, for the system prompt (names as `tasks.views.view_names` gives them)."""
    zoomed = any("×" in name for name in view_names)
    return (
        f", and {len(view_names)} rendered views ({', '.join(view_names)}): 2-D projections of the skeletons "
        f"inside a cube around the point{' (×3: a cube 3 times larger, for context)' if zoomed else ''}, "
        f"{_FRAGMENTS[op_kind]}, the interface point as a black cross, a scale bar in µm at the lower left"
    )


def _system_prompt(op_kind: str, n_images: int, view_names: Sequence[str] | None = None) -> str:
    choices = " or ".join(f'"{d}"' for d in DECISIONS[op_kind])
    if view_names is not None and len(view_names) == n_images and n_images:
        views = describe_views(op_kind, view_names)
    else:
        views = f" and {n_images} rendered 2-D views of it" if n_images else ""
    return SYSTEM_PROMPTS[op_kind] + _COMMON.format(views=views, choices=choices)


def _format_value(value: object, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise DataError(f"feature {name!r} is not a number: {value!r}")
    if isinstance(value, int):
        return str(value)
    value = float(value)
    return f"{value:.4g}" if math.isfinite(value) else "n/a"


def format_features(features: Mapping[str, object]) -> str:
    """`name=value` lines, 4 significant digits, non-finite values as `n/a`, in the mapping's order."""
    if not features:
        raise DataError("no features to describe")
    return "\n".join(f"{name}={_format_value(value, name)}" for name, value in features.items())


def _data_uri(image: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(image).decode('ascii')}"


def image_parts(images: Sequence[bytes], mime: str = "image/png") -> list[dict[str, Any]]:
    """One `image_url` content part per image (a data URI), in order."""
    return [{"type": "image_url", "image_url": {"url": _data_uri(image, mime)}} for image in images]


def build_request(
    task_id: str,
    op_kind: str,
    features: Mapping[str, object],
    images: Sequence[bytes] = (),
    image_mime: str = "image/png",
    *,
    view_names: Sequence[str] | None = None,
    image_tokens: int = 0,
) -> AgentRequest:
    """Build the chat messages for one decision task.

    Without images the user message is plain text (works with any chat template); with images it is
    a list of parts, text first, then one `image_url` part per view. `view_names` (one per image) lets
    the system prompt say what each view shows; `image_tokens` is the processor's count of prompt tokens
    the images add (agent.image_tokens), carried on the request for the token split.
    """
    try:
        kind = check_op_kind(op_kind)
    except ValueError as exc:
        raise DataError(f"task {task_id}: {exc}") from None
    try:
        text = f"op: {kind}\nfeatures:\n{format_features(features)}"
    except DataError as exc:
        raise DataError(f"task {task_id}: {exc}") from None
    user: Any = text
    if images:
        user = [{"type": "text", "text": text}, *image_parts(images, image_mime)]
    messages = (
        {"role": "system", "content": _system_prompt(kind, len(images), view_names)},
        {"role": "user", "content": user},
    )
    return AgentRequest(
        task_id=str(task_id),
        op_kind=kind,
        messages=messages,
        prompt_version=PROMPT_VERSION,
        n_images=len(images),
        image_tokens=int(image_tokens) if images else 0,
    )


def request_images(request: AgentRequest) -> tuple[bytes, ...]:
    """The images a request carries (decoded from its `image_url` data URIs), in the order sent.

    >>> request = build_request("t1", "merge", {"gap_um": 1.0}, [b"png-bytes"])
    >>> request_images(request)
    (b'png-bytes',)
    """
    out = []
    for message in request.messages:
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for part in content:
            if part.get("type") == "image_url":
                out.append(base64.b64decode(part["image_url"]["url"].split(",", 1)[1]))
    return tuple(out)
