"""Ray workers of the dispatch: async actors per LLM endpoint (or per agent function) and their slots.

Actors and remote functions are defined once, at module level (a class defined in a loop is re-exported per
call; docs/serving.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ray

from proofpilot.agent.records import Verdict
from proofpilot.core.errors import ConfigError, DataError

log = logging.getLogger(__name__)

ACTOR_START_TIMEOUT_S = 120.0
DEFAULT_ACTOR_CAPACITY = 32  # requests in flight per actor before another actor is added per endpoint


# -- actors -------------------------------------------------------------------------------------------------
@ray.remote(num_cpus=0)
class LlmWorker:
    """An async actor holding one AgentClient for one endpoint; `decide` never raises per task."""

    def __init__(self, base_url: str, model: str, capacity: int, client_options: Mapping[str, Any]):
        self._args = (base_url, model, capacity, dict(client_options))
        self._client = None

    def _get_client(self):
        if self._client is None:
            # lazy: the OpenAI client stack loads only where requests are sent
            from proofpilot.agent.client import AgentClient

            base_url, model, capacity, options = self._args
            self._client = AgentClient(base_url, model, max_in_flight=capacity, **options)
        return self._client

    async def ready(self) -> str:
        self._get_client()
        return self._args[0]

    async def decide(self, requests: list) -> list[Verdict]:
        """Verdicts for a micro-batch of requests, asked concurrently (the client bounds in-flight)."""
        client = self._get_client()
        return list(await asyncio.gather(*(client.decide(r) for r in requests)))


@ray.remote(num_cpus=0)
class FunctionWorker:
    """An actor applying a plain function (e.g. the rule-based baseline agent) to each payload."""

    def __init__(self, fn: Callable[[Any], Verdict]):
        self._fn = fn

    async def ready(self) -> str:
        return "function"

    async def decide(self, payloads: list) -> list[Verdict]:
        return [self._fn(p) for p in payloads]


@dataclass
class WorkerSlot:
    """One actor as the driver sees it: where it sends requests, how many at once, how many now."""

    handle: Any
    endpoint: str
    capacity: int
    in_flight: int = 0
    alive: bool = True

    @property
    def load(self) -> float:
        return self.in_flight / self.capacity


def actors_per_endpoint(concurrency: int, actor_capacity: int = DEFAULT_ACTOR_CAPACITY) -> int:
    return max(1, math.ceil(concurrency / actor_capacity))


def split_capacity(total: int, parts: int) -> list[int]:
    """`total` in `parts` near-equal positive integers."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def start_llm_workers(
    endpoints: Sequence[str],
    model: str,
    concurrency: int,
    client_options: Mapping[str, Any] | None = None,
    n_actors: int | None = None,
) -> list[WorkerSlot]:
    """Start the actors of every endpoint (`concurrency` in flight per endpoint); wait until they are up."""
    if concurrency < 1:
        raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
    per_endpoint = n_actors or actors_per_endpoint(concurrency)
    per_endpoint = min(per_endpoint, concurrency)
    slots = []
    for url in endpoints:
        for capacity in split_capacity(concurrency, per_endpoint):
            handle = LlmWorker.options(max_concurrency=capacity).remote(
                url, model, capacity, client_options or {}
            )
            slots.append(WorkerSlot(handle, url, capacity))
    _wait_ready(slots)
    return slots


def start_function_workers(
    fn: Callable[[Any], Verdict], n_actors: int = 1, capacity: int = 64
) -> list[WorkerSlot]:
    """Actors that apply `fn` to each payload (the baseline agent path: no LLM)."""
    slots = [
        WorkerSlot(FunctionWorker.options(max_concurrency=capacity).remote(fn), "local", capacity)
        for _ in range(n_actors)
    ]
    _wait_ready(slots)
    return slots


def _wait_ready(slots: Sequence[WorkerSlot]) -> None:
    refs = [slot.handle.ready.remote() for slot in slots]
    try:
        ray.get(refs, timeout=ACTOR_START_TIMEOUT_S)
    except ray.exceptions.GetTimeoutError:
        raise DataError(f"Ray workers did not start within {ACTOR_START_TIMEOUT_S:.0f} s") from None
    except ray.exceptions.RayError as exc:
        raise DataError(f"a Ray worker failed to start: {_first_line(exc)}") from None


def stop_workers(slots: Sequence[WorkerSlot]) -> None:
    for slot in slots:
        with contextlib.suppress(Exception):
            ray.kill(slot.handle, no_restart=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__
