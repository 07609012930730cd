"""What the orchestrator reports per decision, as an interface: telemetry implements it (Prometheus), the
orchestrator only calls it, so dispatch never imports a later stage."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

STAGES = ("geometry", "features", "render", "llm")


@dataclass(frozen=True)
class StageStats:
    """Seconds one task spent in the stages it went through (None: not run for it). geometry, features and
    render are its preparation (a Ray task; geometry is its share of its batch's skeleton load); llm is the
    client's end-to-end time of its decision."""

    op: str
    geometry: float | None = None
    features: float | None = None
    render: float | None = None
    llm: float | None = None

    def observed(self) -> Iterator[tuple[str, float]]:
        """(stage, seconds) of every stage the task went through."""
        for stage in STAGES:
            seconds = getattr(self, stage)
            if seconds is not None:
                yield stage, seconds


@dataclass(frozen=True)
class ServerTimingStats:
    """vLLM's per-request timings of one decision (agent/timings.py), seconds summed over its calls."""

    op: str
    agent: str
    queue_s: float | None = None
    prefill_s: float | None = None
    decode_s: float | None = None
    ttft_s: float | None = None  # queue + prefill


@dataclass(frozen=True)
class BusyStats:
    """New client-exact busy time of one endpoint (telemetry/busy.py `BusyTracker`): node-seconds in which
    at least one of the pilot's requests was in flight that no earlier record counted."""

    endpoint: str
    node_seconds: float


@dataclass(frozen=True)
class RunInfoStats:
    """What a run serves and asks: exported once as an info metric (labels, value 1)."""

    model: str
    prompt_version: str
    agent: str
    device: str  # cpu | gpu (telemetry/served.py)


class DecisionStatLogger(ABC):
    """What the orchestrator reports per decision. Implementations must be cheap and thread-safe."""

    @abstractmethod
    def record_decision(
        self,
        *,
        op: str,
        agent: str,
        outcome: str,
        seconds: float,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        llm_calls: int = 0,
    ) -> None:
        """One finished decision: client end-to-end seconds, `usage` tokens summed over its LLM calls."""

    def record(self, stats: StageStats) -> None:  # noqa: B027 - optional hook, no-op by default
        """A typed stats record of one task (the time it spent per stage)."""
    def record_views(self, *, op: str, views: int, image_tokens: int) -> None:  # noqa: B027 - optional hook
        """Views sent for one decision (summed over its LLM calls) and their prompt tokens."""

    @abstractmethod
    def record_llm_error(self, reason: str) -> None:
        """One failed LLM call (timeout, http_5xx, connection, invalid_json, ...)."""

    def declare_llm_error_reasons(self, reasons: tuple[str, ...]) -> None:  # noqa: B027 - optional hook
        """Known error reasons, exported at 0 before any error happens (so dashboards show 0, not no data)."""

    @abstractmethod
    def record_cave_request(self, endpoint: str, status: str) -> None:
        """One CAVE request; `endpoint` is the API route name, never a URL with ids in it."""

    @abstractmethod
    def set_inflight(self, endpoint: str, n: int) -> None:
        """Requests currently in flight to one LLM endpoint."""

    @abstractmethod
    def set_node_seconds_per_decision(self, seconds: float) -> None:
        """The running cost estimate (busy node-seconds / decisions) from the vLLM scrape."""

    @contextlib.contextmanager
    def inflight(self, endpoint: str) -> Iterator[None]:
        """Count one request in flight to `endpoint` for the duration of the block."""
        self._add_inflight(endpoint, 1)
        try:
            yield
        finally:
            self._add_inflight(endpoint, -1)

    def _add_inflight(self, endpoint: str, delta: int) -> None:  # noqa: B027 - optional hook, no-op by default
        """Hook for `inflight`; loggers that record nothing need not implement it."""

    def start_exporter(self, port: int = 0, host: str = "127.0.0.1") -> Any:
        """Serve metrics on http://host:port/metrics (port 0 = any free port); None if nothing to serve."""
        return None

    def shutdown(self) -> None:  # noqa: B027 - optional hook
        """Release resources (the exporter is stopped through its handle)."""

    def record_server_timing(self, stats: ServerTimingStats) -> None:  # noqa: B027 - optional hook
        """vLLM's per-request timings of one decision (queue, prefill, decode)."""

    def record_busy(self, stats: BusyStats) -> None:  # noqa: B027 - optional hook
        """Client-exact busy node-seconds added on one endpoint."""

    def record_run_info(self, stats: RunInfoStats) -> None:  # noqa: B027 - optional hook
        """The run's model, prompt version, agent and device."""

    def record_cave_latency(self, endpoint: str, status: str, seconds: float) -> None:  # noqa: B027
        """Wall time of one CAVE request (optional hook)."""


class NoOpDecisionLogger(DecisionStatLogger):
    """Telemetry off: every call returns at once."""

    def record_decision(
        self, *, op, agent, outcome, seconds, prompt_tokens=0, completion_tokens=0, llm_calls=0
    ):
        return None

    def record_llm_error(self, reason: str) -> None:
        return None

    def record_cave_request(self, endpoint: str, status: str) -> None:
        return None

    def set_inflight(self, endpoint: str, n: int) -> None:
        return None

    def set_node_seconds_per_decision(self, seconds: float) -> None:
        return None
