"""Per-request server timings: queue, prefill (time to first token once scheduled) and decode, per LLM call.

vLLM 0.32 started with `--enable-per-request-metrics` adds `metrics` to each chat completion
(`vllm/entrypoints/generate/base/serving.py` `build_per_request_timing_metrics`, from the engine's own
timestamps): `queue_time_ms` (queued → scheduled), `time_to_first_token_ms` (scheduled → first token: the
prefill), `generation_time_ms` (first → last token: the decode), `mean_itl_ms`. A server without the flag
(or not vLLM) sends none: a client with `timings="stream"` (or "auto") then streams (agent/streaming.py)
and records the time to first chunk and the decode time from its own clocks, leaving queue and prefill
None. A decision's timings add up over its LLM calls; the server's time to first token from arrival is
queue + prefill. These are per-request wall times shared with the rest of the batch: a latency breakdown,
never a cost (docs/cost.md "Latency is not cost").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

TIMING_MODES = ("metrics", "stream", "auto")  # the client's `timings`: where the figures come from


@dataclass(frozen=True)
class CallTiming:
    """One LLM call's server-side timings in seconds (None: the server did not say)."""

    queue_s: float | None = None
    prefill_s: float | None = None
    decode_s: float | None = None
    ttft_s: float | None = None  # only from streaming (agent/streaming.py): queue + prefill, not split


def _seconds(metrics: Mapping[str, Any], key: str) -> float | None:
    value = metrics.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return None
    return float(value) / 1000.0


def call_timing(completion: Any) -> CallTiming | None:
    """The `metrics` object of a parsed chat completion (the OpenAI SDK keeps unknown fields in
    `model_extra`), or None when the response carries none."""
    extra = getattr(completion, "model_extra", None) or {}
    metrics = extra.get("metrics") if isinstance(extra, Mapping) else None
    if not isinstance(metrics, Mapping):
        return None
    timing = CallTiming(
        _seconds(metrics, "queue_time_ms"),
        _seconds(metrics, "time_to_first_token_ms"),
        _seconds(metrics, "generation_time_ms"),
    )
    return timing if any(v is not None for v in (timing.queue_s, timing.prefill_s, timing.decode_s)) else None


def _sum(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def decision_timing(calls: Iterable[CallTiming | None]) -> dict[str, float | None]:
    """The Verdict fields of a decision: each timing summed over its calls, and the server's TTFT
    (queue + prefill, or a streamed call's own time to first chunk); all None when no call carried timings."""
    got = [c for c in calls if c is not None]
    queue = _sum(c.queue_s for c in got)
    prefill = _sum(c.prefill_s for c in got)
    ttft = _sum(
        c.ttft_s if c.ttft_s is not None else _sum((c.queue_s, c.prefill_s)) for c in got
    )
    return {
        "server_queue_s": queue,
        "server_prefill_s": prefill,
        "server_decode_s": _sum(c.decode_s for c in got),
        "server_ttft_s": ttft,
    }
