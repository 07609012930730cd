"""Before a pilot sends views: does the endpoint take images, and does it count them as the processor does?

`check_vision` sends two tiny requests (max_tokens 1): the same text alone and with `n_views` blank views of
`view_px` px. A server that rejects the images (a text-only model answers HTTP 400) is a one-line DataError
before any task is sent. Otherwise the difference of the two `usage.prompt_tokens` is the server's count of
the views' tokens, compared with the image processor's (`agent.image_tokens`); the pilot stores the
processor's count per verdict when they agree and the server's (with a warning) when they do not.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
from dataclasses import dataclass

import openai

from proofpilot.agent.client import AgentClient, describe_api_error
from proofpilot.agent.image_tokens import ImageProcessor
from proofpilot.core.errors import DataError

log = logging.getLogger(__name__)

PROBE_TEXT = "Reply with one word."


class ImagesRejected(DataError):
    """The endpoint's model does not take images (a text-only model)."""


def blank_png(size_px: int) -> bytes:
    """A white square PNG (the token count of an image depends only on its size)."""
    # lazy: PIL is only needed to probe a vision endpoint
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (size_px, size_px), "white").save(buffer, format="PNG")
    return buffer.getvalue()


def probe_messages(images: tuple[bytes, ...]) -> list[dict]:
    if not images:
        return [{"role": "user", "content": PROBE_TEXT}]
    parts: list[dict] = [{"type": "text", "text": PROBE_TEXT}]
    for image in images:
        url = "data:image/png;base64," + base64.b64encode(image).decode("ascii")
        parts.append({"type": "image_url", "image_url": {"url": url}})
    return [{"role": "user", "content": parts}]


@dataclass(frozen=True)
class VisionCheck:
    """What the probe found: prompt tokens of one view by the server and by the image processor."""

    url: str
    view_px: int
    n_views: int
    server_tokens_per_view: float
    processor_tokens_per_view: int

    @property
    def agrees(self) -> bool:
        return self.server_tokens_per_view == self.processor_tokens_per_view

    @property
    def tokens_per_view(self) -> int:
        """The count the pilot stores: the processor's, or the server's where they differ."""
        return self.processor_tokens_per_view if self.agrees else round(self.server_tokens_per_view)


async def _prompt_tokens(client: AgentClient, images: tuple[bytes, ...], timeout_s: float) -> int:
    completion = await client._openai.with_options(max_retries=0, timeout=timeout_s).chat.completions.create(
        model=client.model,
        messages=probe_messages(images),
        max_tokens=1,
        temperature=0.0,  # type: ignore[arg-type]
    )
    if completion.usage is None:
        raise DataError(f"LLM endpoint {client.base_url} reports no usage: cannot count image tokens")
    return int(completion.usage.prompt_tokens)


async def _check(url: str, model: str, n_views: int, view_px: int, timeout_s: float) -> tuple[int, int]:
    async with AgentClient(url, model, timeout_s=timeout_s, max_retries=0) as client:
        text = await _prompt_tokens(client, (), timeout_s)
        try:
            with_views = await _prompt_tokens(client, (blank_png(view_px),) * n_views, timeout_s)
        except openai.BadRequestError as exc:
            raise ImagesRejected(
                f"--views {n_views}: model {model!r} at {url} rejects images "
                f"({describe_api_error(exc)[:160]}); serve a vision model or use --views 0"
            ) from None
        return text, with_views


def check_vision(
    urls: tuple[str, ...],
    model: str,
    n_views: int,
    view_px: int,
    processor: ImageProcessor,
    timeout_s: float = 60.0,
) -> VisionCheck:
    """Probe every endpoint (see the module docstring); the first endpoint's check. DataError (one line)
    if one rejects images or does not answer."""
    expected = processor.view_tokens(view_px)
    checks = []
    for url in urls:
        try:
            text, with_views = asyncio.run(_check(url, model, n_views, view_px, timeout_s))
        except openai.APIError as exc:
            why = describe_api_error(exc)[:160]
            raise DataError(f"LLM endpoint {url}: vision probe failed ({why})") from None
        check = VisionCheck(url, view_px, n_views, (with_views - text) / n_views, expected)
        if not check.agrees:
            log.warning(
                "%s counts %.1f prompt tokens per %d px view, the image processor %d: storing the server's",
                url, check.server_tokens_per_view, view_px, expected,
            )  # fmt: skip
        checks.append(check)
    return checks[0]
