"""The pilot's cost and server-timing series, registered beside `PrometheusDecisionLogger`'s own.

- `proofpilot_busy_node_seconds_total{endpoint}`: client-exact busy time (telemetry/busy.py), so PromQL gives
  node-s per decision over any window: `sum(rate(proofpilot_busy_node_seconds_total[5m])) /
  sum(rate(proofpilot_decisions_total{agent="llm"}[5m]))`.
- `proofpilot_server_{queue,prefill,decode,ttft}_seconds{op}`: vLLM's per-request timings of each decision
  (agent/timings.py; only from a server started with `--enable-per-request-metrics`). Latencies, not costs.
- `proofpilot_cave_request_seconds{endpoint,status}`: wall time of each CAVE request.
- `proofpilot_run_info{model,prompt_version,agent,device}` = 1: what the run serves and asks.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, Info

from proofpilot.orchestrator.stats import BusyStats, RunInfoStats, ServerTimingStats
from proofpilot.telemetry.buckets import (
    CAVE_REQUEST_SECONDS_BUCKETS,
    SERVER_PHASE_SECONDS_BUCKETS,
    check_buckets,
)

PHASES = ("queue", "prefill", "decode", "ttft")
PHASE_HELP = {
    "queue": "vLLM queue time of one decision (queued to scheduled; summed over its calls).",
    "prefill": "vLLM prefill time of one decision (scheduled to first token).",
    "decode": "vLLM decode time of one decision (first to last token).",
    "ttft": "vLLM time to first token of one decision from arrival (queue + prefill).",
}


class CapacityMetrics:
    """The series above in `registry`; label values go through the logger's bounded-label mappers."""

    def __init__(self, registry: CollectorRegistry, op: Callable[[object], str],
                 endpoint: Callable[[object], str], cave_endpoint: Callable[[object], str],
                 status: Callable[[object], str]) -> None:  # fmt: skip
        self._op, self._endpoint, self._cave, self._status = op, endpoint, cave_endpoint, status
        self.busy = Counter(
            "proofpilot_busy_node_seconds",
            "Client-exact busy node-seconds: time with at least one pilot LLM request in flight.",
            ["endpoint"], registry=registry,
        )  # fmt: skip
        self.phases = {
            phase: Histogram(f"proofpilot_server_{phase}_seconds", PHASE_HELP[phase], ["op"],
                             buckets=check_buckets(SERVER_PHASE_SECONDS_BUCKETS), registry=registry)
            for phase in PHASES
        }  # fmt: skip
        self.cave_seconds = Histogram(
            "proofpilot_cave_request_seconds", "Wall time of one CAVE request.", ["endpoint", "status"],
            buckets=check_buckets(CAVE_REQUEST_SECONDS_BUCKETS), registry=registry,
        )  # fmt: skip
        self.info = Info("proofpilot_run", "What the run serves and asks.", registry=registry)

    def record_server_timing(self, stats: ServerTimingStats) -> None:
        op = self._op(stats.op)
        values = {"queue": stats.queue_s, "prefill": stats.prefill_s, "decode": stats.decode_s,
                  "ttft": stats.ttft_s}  # fmt: skip
        for phase, value in values.items():
            if value is not None:
                self.phases[phase].labels(op).observe(value)

    def record_busy(self, stats: BusyStats) -> None:
        if stats.node_seconds > 0:
            self.busy.labels(self._endpoint(stats.endpoint)).inc(stats.node_seconds)

    def record_run_info(self, stats: RunInfoStats) -> None:
        self.info.info({"model": stats.model, "prompt_version": stats.prompt_version, "agent": stats.agent,
                        "device": stats.device})  # fmt: skip

    def record_cave_latency(self, endpoint: str, status: str, seconds: float) -> None:
        self.cave_seconds.labels(self._cave(endpoint), self._status(status)).observe(seconds)
