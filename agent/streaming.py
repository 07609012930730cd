"""Timings from streaming, for servers that do not return vLLM's per-request metrics.

A streamed chat completion (`stream=True`, usage in the last chunk) gives the client two clocks the server
does not: the time its first content chunk arrived and the time the stream ended. From them a call's time to
first token (queue + prefill together, seen from the client: the network's round trip included) and its
decode time (first to last chunk). The queue/prefill split needs the server's own timestamps
(agent/timings.py); streaming leaves both None.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx2

from proofpilot.agent.timings import CallTiming
from proofpilot.agent.transport import ResponseTooLarge

STREAM_OPTIONS = {"stream": True, "stream_options": {"include_usage": True}}


@dataclass(frozen=True)
class StreamedAnswer:
    """One streamed call's answer and client clocks (time.monotonic)."""

    content: str | None
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    first_chunk_t: float | None  # first chunk that carried content
    end_t: float

    def timing(self, sent_t: float) -> CallTiming | None:
        if self.first_chunk_t is None:
            return None
        return CallTiming(ttft_s=max(0.0, self.first_chunk_t - sent_t),
                          decode_s=max(0.0, self.end_t - self.first_chunk_t))  # fmt: skip


async def read_stream(raw: Any) -> StreamedAnswer:
    """Consume a raw streamed chat completion (`with_raw_response.create(..., stream=True)`)."""
    parts: list[str] = []
    finish_reason = None
    prompt_tokens = completion_tokens = 0
    first = None
    async for chunk in raw.parse():
        for choice in chunk.choices or ():
            text = getattr(choice.delta, "content", None)
            if text:
                parts.append(text)
                first = first if first is not None else time.monotonic()
            finish_reason = choice.finish_reason or finish_reason
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            prompt_tokens = int(usage.prompt_tokens or 0)
            completion_tokens = int(usage.completion_tokens or 0)
    content = "".join(parts) if parts else None
    return StreamedAnswer(content, finish_reason, prompt_tokens, completion_tokens, first, time.monotonic())


def stream_error_reason(exc: httpx2.HTTPError) -> str:
    """The transport label of an error raised while a stream is read (the SDK does not wrap these)."""
    if isinstance(exc, ResponseTooLarge):
        return "response_too_large"
    if isinstance(exc, httpx2.TimeoutException):
        return "timeout"
    return "connection"
