"""Every histogram bucket layout of proofpilot, in one place (seconds, base units).

vLLM's own request-latency buckets start at 0.3 s (docs/serving.md "Metrics"); a proofreading decision spans
~50 ms (a short JSON verdict on an idle server) to a minute (long prompts under load), so the pilot's
per-decision histogram gets its own roughly logarithmic layout over 0.05–60 s.
"""

from __future__ import annotations

import itertools

DECISION_SECONDS_BUCKETS: tuple[float, ...] = (
    0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75,
    1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
)  # fmt: skip
"""Buckets of `proofpilot_decision_seconds` (client end-to-end time of one decision). +Inf is implicit."""

STAGE_SECONDS_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
"""Buckets of `proofpilot_stage_seconds` (one task's time in one stage: a feature computation takes ~1 ms, a
skeleton load or a 512 px render tens of ms, an LLM decision up to a minute)."""


def check_buckets(buckets: tuple[float, ...]) -> tuple[float, ...]:
    """Return `buckets` if strictly increasing and positive, else raise ValueError."""
    if not buckets or buckets[0] <= 0 or any(b >= c for b, c in itertools.pairwise(buckets)):
        raise ValueError(f"histogram buckets must be positive and strictly increasing: {buckets}")
    return buckets


SERVER_PHASE_SECONDS_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75,
    1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0,
)  # fmt: skip
"""Buckets of the server-phase histograms (vLLM's per-request queue, prefill, decode, TTFT): a phase of a
short verdict can take a millisecond on an idle server, so they start lower than the decision's."""

CAVE_REQUEST_SECONDS_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
"""Buckets of `proofpilot_cave_request_seconds` (one CAVE HTTP request, retries separate)."""
