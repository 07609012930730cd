"""What the orchestrator reports per decision, as an interface: telemetry implements it (Prometheus), the
orchestrator only calls it, so dispatch never imports a later stage."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any


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
