"""Per-decision stat loggers in the style of vLLM's v1 metrics loggers: one interface, pluggable backends.

`PrometheusDecisionLogger` records into its own `CollectorRegistry` (so two pilots, or a test and a pilot,
never share series) and can serve it on 127.0.0.1; `NoOpDecisionLogger` records nothing (telemetry off).
Record in the driver from the results the actors return: prometheus_client is per-process
(docs/serving.md "prometheus_client is per process").

Label values are bounded: fixed sets for `op`, `agent`, `outcome`, `kind`; a capped number of distinct
values for `endpoint`, `reason`, `status` (URLs reduced to host:port). Anything else is recorded as "other",
so a root id or a request URL can never become a label.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from proofpilot.core.vocab import AGENTS
from proofpilot.core.vocab import OP_KINDS as OPS
from proofpilot.orchestrator.stats import (
    STAGES,
    BusyStats,
    DecisionStatLogger,
    NoOpDecisionLogger,
    RunInfoStats,
    ServerTimingStats,
    StageStats,
)
from proofpilot.telemetry.buckets import DECISION_SECONDS_BUCKETS, STAGE_SECONDS_BUCKETS, check_buckets
from proofpilot.telemetry.capacity_metrics import CapacityMetrics
from proofpilot.telemetry.exporter import ExporterHandle, serve_registry

log = logging.getLogger(__name__)


OUTCOMES = ("correct", "incorrect", "invalid", "error")
TOKEN_KINDS = ("prompt", "completion")
OTHER = "other"
MAX_FREE_LABEL_VALUES = 32

DEFAULT_METRICS_PORT = 9464


class _BoundedLabel:
    """Maps raw values to a bounded set: a fixed vocabulary, or the first `max_distinct` values seen."""

    def __init__(
        self, name: str, allowed: Iterable[str] | None = None, max_distinct: int = MAX_FREE_LABEL_VALUES
    ):
        self.name = name
        self._allowed = frozenset(allowed) if allowed is not None else None
        self._seen: set[str] = set()
        self._max = max_distinct
        self._warned = False
        self._lock = threading.Lock()

    def __call__(self, value: object) -> str:
        text = str(value)
        if self._allowed is not None:
            if text in self._allowed:
                return text
            return self._overflow(text)
        if text in self._seen:
            return text
        with self._lock:
            if len(self._seen) < self._max:
                self._seen.add(text)
                return text
        return self._overflow(text)

    def _overflow(self, text: str) -> str:
        if not self._warned:
            self._warned = True
            log.warning(
                "metric label %s=%r is outside its bounded set; recorded as %r", self.name, text, OTHER
            )
        return OTHER


def endpoint_label(url_or_name: str) -> str:
    """host:port of a URL (no scheme, path, query or credentials); a bare name is returned unchanged."""
    parts = urlsplit(url_or_name)
    if parts.scheme and parts.hostname:
        return f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname
    return url_or_name


class PrometheusDecisionLogger(DecisionStatLogger):
    """prometheus_client metrics in a private registry (names: docs/serving.md "Pilot metric names")."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        buckets: tuple[float, ...] = DECISION_SECONDS_BUCKETS,
    ):
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        reg = self.registry
        self._op = _BoundedLabel("op", OPS)
        self._agent = _BoundedLabel("agent", AGENTS)
        self._outcome = _BoundedLabel("outcome", OUTCOMES)
        self._reason = _BoundedLabel("reason")
        self._endpoint = _BoundedLabel("endpoint")
        self._cave_endpoint = _BoundedLabel("cave endpoint")
        self._status = _BoundedLabel("status")
        self.decision_seconds = Histogram(
            "proofpilot_decision_seconds",
            "Client end-to-end time of one decision (latency, not cost).",
            ["op", "agent", "outcome"],
            buckets=check_buckets(buckets),
            registry=reg,
        )
        self.decisions = Counter(
            "proofpilot_decisions", "Decisions finished.", ["op", "agent", "outcome"], registry=reg
        )
        self.tokens = Counter(
            "proofpilot_tokens", "LLM tokens from each response's usage.", ["op", "kind"], registry=reg
        )
        self.llm_calls = Counter(
            "proofpilot_llm_calls", "LLM calls made for decisions (incl. retries).", ["op"], registry=reg
        )
        self.views = Counter("proofpilot_views", "Rendered views sent to the LLM.", ["op"], registry=reg)
        self.image_tokens = Counter(
            "proofpilot_image_tokens",
            "Prompt tokens of the views (part of proofpilot_tokens_total{kind=\"prompt\"}).",
            ["op"],
            registry=reg,
        )
        self.llm_errors = Counter("proofpilot_llm_errors", "Failed LLM calls.", ["reason"], registry=reg)
        self.inflight_gauge = Gauge(
            "proofpilot_inflight", "LLM requests in flight.", ["endpoint"], registry=reg
        )
        self.cave_requests = Counter(
            "proofpilot_cave_requests", "CAVE requests.", ["endpoint", "status"], registry=reg
        )
        self.node_seconds_per_decision = Gauge(
            "proofpilot_node_seconds_per_decision",
            "Busy serving-node seconds per decision so far (throughput-based cost, from the vLLM scrape).",
            registry=reg,
        )
        # busy node-seconds, server timings, CAVE latency, run info (telemetry/capacity_metrics.py)
        self.capacity = CapacityMetrics(reg, self._op, self._endpoint, self._cave_endpoint, self._status)
        self.stage_seconds = Histogram(
            "proofpilot_stage_seconds",
            "Seconds one task spent in one stage: geometry (its share of its batch's skeleton load), "
            "features and render (task preparation, Ray tasks), llm (client end-to-end time of a decision).",
            ["stage"],
            buckets=check_buckets(STAGE_SECONDS_BUCKETS),
            registry=reg,
        )
        self._stage_children = {stage: self.stage_seconds.labels(stage) for stage in STAGES}

    def record_decision(
        self, *, op, agent, outcome, seconds, prompt_tokens=0, completion_tokens=0, llm_calls=0
    ):
        op_l = self._op(op)
        labels = (op_l, self._agent(agent), self._outcome(outcome))
        self.decision_seconds.labels(*labels).observe(seconds)
        self.decisions.labels(*labels).inc()
        if prompt_tokens:
            self.tokens.labels(op_l, "prompt").inc(prompt_tokens)
        if completion_tokens:
            self.tokens.labels(op_l, "completion").inc(completion_tokens)
        if llm_calls:
            self.llm_calls.labels(op_l).inc(llm_calls)

    def record(self, stats: StageStats) -> None:
        for stage, seconds in stats.observed():
            self._stage_children[stage].observe(seconds)
    def record_views(self, *, op: str, views: int, image_tokens: int) -> None:
        op_l = self._op(op)
        self.views.labels(op_l).inc(views)
        self.image_tokens.labels(op_l).inc(image_tokens)

    def record_llm_error(self, reason: str) -> None:
        self.llm_errors.labels(self._reason(reason)).inc()

    def declare_llm_error_reasons(self, reasons: tuple[str, ...]) -> None:
        for reason in reasons:
            self.llm_errors.labels(self._reason(reason))

    def record_cave_request(self, endpoint: str, status: str) -> None:
        self.cave_requests.labels(self._cave_endpoint(endpoint_label(endpoint)), self._status(status)).inc()

    def set_inflight(self, endpoint: str, n: int) -> None:
        self.inflight_gauge.labels(self._endpoint(endpoint_label(endpoint))).set(n)

    def _add_inflight(self, endpoint: str, delta: int) -> None:
        self.inflight_gauge.labels(self._endpoint(endpoint_label(endpoint))).inc(delta)

    def set_node_seconds_per_decision(self, seconds: float) -> None:
        self.node_seconds_per_decision.set(seconds)

    def record_server_timing(self, stats: ServerTimingStats) -> None:
        self.capacity.record_server_timing(stats)

    def record_busy(self, stats: BusyStats) -> None:
        self.capacity.record_busy(BusyStats(endpoint_label(stats.endpoint), stats.node_seconds))

    def record_run_info(self, stats: RunInfoStats) -> None:
        self.capacity.record_run_info(stats)

    def record_cave_latency(self, endpoint: str, status: str, seconds: float) -> None:
        self.capacity.record_cave_latency(endpoint_label(endpoint), status, seconds)

    def exposition(self) -> bytes:
        """The registry in Prometheus text format (deterministic; for tests and debugging)."""
        return generate_latest(self.registry)

    def start_exporter(self, port: int = 0, host: str = "127.0.0.1") -> ExporterHandle:
        return serve_registry(self.registry, port, host)


def make_decision_logger(enabled: bool = True) -> DecisionStatLogger:
    """The Prometheus logger when telemetry is on, else the no-op logger."""
    return PrometheusDecisionLogger() if enabled else NoOpDecisionLogger()
