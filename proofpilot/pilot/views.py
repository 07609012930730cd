"""Views in a pilot: the options' checks, the default for a vision model, and the probe that settles them.

A vision model gets DEFAULT_VIEWS views of DEFAULT_VIEW_PX px per task (ConnectomeBench shows 3 views of 512
px per option); a text model gets the features only. `--views N` with a model that rejects images is a
one-line error before any task is sent; `--views 0` is text-only with any model.
"""

from __future__ import annotations

import logging

from proofpilot.agent.image_tokens import QWEN25_VL_32B
from proofpilot.agent.vision import check_vision
from proofpilot.core.errors import ConfigError, DataError
from proofpilot.tasks.views import MAX_VIEWS

log = logging.getLogger(__name__)

DEFAULT_VIEWS = 3
DEFAULT_VIEW_PX = 512
MIN_VIEW_PX, MAX_VIEW_PX = 112, 1024  # 16 to 1,369 image tokens per view (Qwen2.5-VL, 28 px per token)


def check_views(views: int | None, view_px: int, agent: str) -> None:
    """ConfigError (one line) for views or a view size out of range, or views for the baseline agent."""
    if views is not None and not 0 <= views <= MAX_VIEWS:
        raise ConfigError(f"--views must be 0–{MAX_VIEWS}, got {views}")
    if not MIN_VIEW_PX <= view_px <= MAX_VIEW_PX:
        raise ConfigError(f"--view-px must be {MIN_VIEW_PX}–{MAX_VIEW_PX}, got {view_px}")
    if views and agent != "llm":
        raise ConfigError(f"--views {views} needs the llm agent (the {agent} agent reads features only)")


def resolve_views(urls: tuple[str, ...], model: str, views: int | None, view_px: int) -> tuple[int, int]:
    """(views per task, prompt tokens per view) for this run, after probing the endpoints.

    `views=None` (the CLI's default) is DEFAULT_VIEWS for a model that takes images and 0 for one that does
    not (or whose probe fails); an explicit `views > 0` with a model that rejects images raises the probe's
    one-line DataError."""
    if views == 0:
        return 0, 0
    if views is None:  # auto: any doubt means a text model
        try:
            check = check_vision(urls, model, DEFAULT_VIEWS, view_px, QWEN25_VL_32B)
        except DataError as exc:
            log.info("text-only prompts (features only): %s", exc)
            return 0, 0
        if check.server_tokens_per_view <= 0:
            log.info("model %s counts no tokens for images: text-only prompts (features only)", model)
            return 0, 0
    else:
        check = check_vision(urls, model, views, view_px, QWEN25_VL_32B)
    n = views or DEFAULT_VIEWS
    log.info(
        "%d views of %d px per task, %d prompt tokens each (server %.0f, image processor %d)",
        n, view_px, check.tokens_per_view, check.server_tokens_per_view, check.processor_tokens_per_view,
    )  # fmt: skip
    return n, check.tokens_per_view
