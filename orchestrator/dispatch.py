"""Ray dispatch: async actors per LLM endpoint, bounded in-flight requests, results consumed as they finish.

- Ray itself is started or joined by `orchestrator.ray_session`.
- Each endpoint gets one or more async actors (`max_concurrency` = its share of the endpoint's concurrency,
  and the agent client's own semaphore at the same bound). The driver submits `.remote()` calls itself,
  never through `ray.util.ActorPool` (which keeps one call per actor in flight), always to the worker with
  the lowest in-flight / capacity ratio, and takes results with `ray.wait` as they complete. A call carries
  a micro-batch of as many requests as the worker has free slots (at most `max_batch`): a burst of
  completions is refilled with few Ray calls (a Ray call costs ~0.9 ms of CPU, driver + actor), a trickle one
  request at a time; each request of a batch is still its own concurrent HTTP request.
- Results go to `on_verdicts` in the driver in batches (everything `ray.wait` found ready), so the caller
  stores and records them in one place: prometheus_client is per process
  (docs/serving.md "prometheus_client is per process").
- A verdict that is a transport failure (agent.records.TRANSPORT_REASONS, after the client's own retries) is
  not a decision: it goes to `on_failures`, its task back to the queue, and its endpoint is held until it
  answers again (orchestrator.outage: probes with capped exponential backoff; the other endpoints keep
  working). When no endpoint has answered for `outage_wait_s`, the loop stops (`unavailable=True`) and the
  undecided tasks stay undecided. A task that fails on its own while others are decided is set aside after
  `max_task_failures` (orchestrator.outage.TaskStrikes; `DispatchStats.set_aside`).
- Ctrl-C (SIGINT) or SIGTERM stop the loop between batches: nothing is submitted any more, pending calls are
  cancelled, and every verdict already handed over stays handed over. A second Ctrl-C aborts at once.
- With a `feed` (orchestrator.prep.PrepFeed) the items are prepared by Ray tasks while the loop runs: the
  loop tops the feed up (bounded prefetch), queues its payloads as they complete, in any order, and hands its
  error verdicts (a task whose preparation failed) to `on_verdicts` like any decision.
- Actors and remote functions are defined once, at module level (a class defined in a loop is re-exported
  per call, docs/serving.md "Actors defined once").
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import ray
from tqdm.auto import tqdm

from proofpilot.agent.records import TRANSPORT_REASONS, Verdict
from proofpilot.core.errors import ConfigError, DataError, ProofpilotError
from proofpilot.orchestrator.outage import DEFAULT_MAX_TASK_FAILURES, EndpointHealth, TaskStrikes
from proofpilot.orchestrator.stats import DecisionStatLogger, NoOpDecisionLogger
from proofpilot.orchestrator.workers import (  # noqa: F401 - the dispatch's public names
    ACTOR_START_TIMEOUT_S,
    DEFAULT_ACTOR_CAPACITY,
    FunctionWorker,
    LlmWorker,
    WorkerSlot,
    _first_line,
    actors_per_endpoint,
    split_capacity,
    start_function_workers,
    start_llm_workers,
    stop_workers,
)

log = logging.getLogger(__name__)

WAIT_SLICE_S = 0.25  # how often the loop wakes up to notice a stop request


def _is_transport(verdict: Verdict) -> bool:
    """A transport failure says nothing about the task: it is asked again, not decided."""
    return verdict.error_reason in TRANSPORT_REASONS


# -- the dispatch loop --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkItem:
    task_id: str
    payload: Any


@dataclass
class DispatchStats:
    submitted: int = 0
    calls: int = 0  # Ray calls (micro-batches)
    completed: int = 0  # decisions handed to on_verdicts
    transport_failures: int = 0  # handed to on_failures; their tasks were queued again
    batches: int = 0  # hand-overs to on_verdicts (one store write + fsync each)
    retried: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    unavailable: bool = False  # stopped because no endpoint answered for the outage wait
    set_aside: list[str] = field(default_factory=list)  # tasks that kept failing while others were decided
    dead_workers: int = 0
    prep_failed: int = 0  # of `completed`: error verdicts of tasks whose preparation failed
    per_endpoint: dict[str, int] = field(default_factory=dict)

    @property
    def decisions_per_s(self) -> float:
        return self.completed / self.seconds if self.seconds > 0 else 0.0


class StopRequest:
    """Turns SIGINT/SIGTERM into a flag for the duration of a block (main thread only); a second SIGINT
    raises KeyboardInterrupt at once."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.event.set()
        log.warning("stop requested: finishing the verdicts in hand (Ctrl-C again to abort)")

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    @property
    def requested(self) -> bool:
        return self.event.is_set()


class Dispatcher:
    """Runs work items through worker slots; see the module docstring."""

    def __init__(
        self,
        slots: Sequence[WorkerSlot],
        on_verdicts: Callable[[list[tuple[WorkItem, Verdict]]], None],
        logger: DecisionStatLogger | None = None,
        max_attempts: int = 3,
        max_batch: int = 8,
        on_failures: Callable[[list[tuple[WorkItem, Verdict]]], None] | None = None,
        health: EndpointHealth | None = None,
        max_task_failures: int = DEFAULT_MAX_TASK_FAILURES,
    ) -> None:
        """`on_failures` gets the transport failures (default: ignored); `health` tracks the endpoints'
        outages (default: no probe, an endpoint is tried again after the backoff). `run` closes it."""
        if not slots:
            raise ConfigError("no workers to dispatch to")
        self.slots = list(slots)
        self.on_verdicts = on_verdicts
        self.on_failures = on_failures or (lambda failed: None)
        self.health = health or EndpointHealth({slot.endpoint for slot in self.slots}, probe=None)
        self.logger = logger or NoOpDecisionLogger()
        self.max_attempts = max_attempts
        self.max_batch = max(1, max_batch)
        self.max_task_failures = max_task_failures
        self.stop = StopRequest()

    def _pick(self) -> WorkerSlot | None:
        best = None
        for slot in self.slots:
            if not (slot.alive and slot.in_flight < slot.capacity and self.health.available(slot.endpoint)):
                continue
            if best is None or slot.load < best.load:
                best = slot
        return best

    def _report_inflight(self) -> None:
        per_endpoint: dict[str, int] = {}
        for slot in self.slots:
            per_endpoint[slot.endpoint] = per_endpoint.get(slot.endpoint, 0) + slot.in_flight
        for endpoint, n in per_endpoint.items():
            self.logger.set_inflight(endpoint, n)

    def run(
        self,
        items: Sequence[WorkItem],
        total: int | None = None,
        initial: int = 0,
        progress: bool = True,
        feed: Any = None,
    ) -> DispatchStats:
        """Dispatch every item (and every task of `feed`, a PrepFeed, as it is prepared); returns when all
        are decided, or early: on a stop request (interrupted=True) or when no endpoint answered for the
        outage wait (unavailable=True)."""
        stats = DispatchStats()
        strikes = TaskStrikes(self.max_task_failures)
        queue: deque[tuple[WorkItem, int]] = deque((item, 1) for item in items)
        pending: dict[Any, tuple[list[tuple[WorkItem, int]], WorkerSlot]] = {}
        bar = tqdm(
            total=total if total is not None else len(items) + initial,
            initial=initial,
            unit="dec",
            desc="decisions",
            disable=not progress,
            smoothing=0.1,
            dynamic_ncols=True,
        )
        started = time.perf_counter()
        with self.stop:
            try:
                while queue or pending or (feed is not None and not feed.exhausted):
                    if self.stop.requested:
                        stats.interrupted = True
                        break
                    if self.health.gave_up():
                        stats.unavailable = True
                        log.warning("no LLM endpoint answered for %.0f s: stopping the session",
                                    self.health.outage_wait_s)  # fmt: skip
                        break
                    if feed is not None:
                        bar.update(self._take_prepared(feed, queue, stats))
                    self._submit(queue, pending, stats)
                    if not pending and queue:  # no live worker, or each live one's endpoint is down
                        live = {slot.endpoint for slot in self.slots if slot.alive}
                        if not live:
                            raise DataError("every Ray worker has died; the verdicts so far are stored")
                        self.health.wait(WAIT_SLICE_S, live)  # until one answers again (or a stop check)
                        continue
                    done, failed = self._collect(pending, queue, stats, feed.refs if feed else ())
                    if failed:
                        self.on_failures([(item, verdict) for (item, _), verdict in failed])
                        stats.transport_failures += len(failed)
                        again = [
                            queued
                            for queued, v in failed
                            if not self._set_aside(queued[0], v, strikes, stats)
                        ]
                        queue.extendleft(reversed(again))  # asked again first
                    if done:
                        self.on_verdicts(done)
                        stats.completed += len(done)
                        stats.batches += 1
                        bar.update(len(done))
                    self._report_inflight()
            finally:
                if feed is not None:
                    feed.cancel()
                self.health.close()
                stats.seconds = time.perf_counter() - started
                if pending:
                    for ref in pending:
                        with contextlib.suppress(Exception):
                            ray.cancel(ref)
                    for _, slot in pending.values():
                        slot.in_flight = 0
                    self._report_inflight()
                bar.close()
        return stats

    def _take_prepared(self, feed, queue, stats: DispatchStats) -> int:
        """Queue the feed's finished payloads, hand over its error verdicts, top it up; the decisions made."""
        prepared, failed, stages = feed.collect()
        queue.extend((WorkItem(task_id, payload), 1) for task_id, payload in prepared)
        for record in stages:
            self.logger.record(record)
        if failed:
            self.on_verdicts([(WorkItem(task_id, None), verdict) for task_id, verdict in failed])
            stats.completed += len(failed)
            stats.prep_failed += len(failed)
            stats.batches += 1
        feed.top_up(len(queue))
        return len(failed)

    def _submit(self, queue, pending, stats: DispatchStats) -> None:
        """Fill free slots: the least-loaded worker gets a micro-batch of up to `max_batch` items (as many as
        it has free slots), so a burst of completions is refilled with few Ray calls while a trickle is
        refilled one by one (no head-of-line wait behind a slow answer)."""
        while queue:
            slot = self._pick()
            if slot is None:
                return
            size = min(len(queue), slot.capacity - slot.in_flight, self.max_batch)
            batch = [queue.popleft() for _ in range(size)]
            ref = slot.handle.decide.remote([item.payload for item, _ in batch])
            slot.in_flight += size
            pending[ref] = (batch, slot)
            stats.submitted += size
            stats.calls += 1

    def _collect(self, pending, queue, stats: DispatchStats, also: Sequence[Any] = ()):
        """(decisions, transport failures) of the calls that finished: [(item, verdict)], [((item, attempt),
        verdict)]; an endpoint that failed is reported to `health` after its decisions of the same batch.
        The wait also wakes for the refs in `also` (preparation), which are left for their owner."""
        refs = list(pending)
        if not refs and not also:
            return [], []
        ready, rest = ray.wait([*refs, *also], num_returns=1, timeout=WAIT_SLICE_S)
        if also:
            ready = [ref for ref in ready if ref in pending]
            rest = [ref for ref in refs if ref not in ready]
        if not ready:
            return [], []
        if rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        done: list[tuple[WorkItem, Verdict]] = []
        failed: list[tuple[tuple[WorkItem, int], Verdict]] = []
        for ref in ready:
            batch, slot = pending.pop(ref)
            slot.in_flight -= len(batch)
            try:
                verdicts = ray.get(ref)
            except ray.exceptions.RayActorError as exc:
                if slot.alive:
                    slot.alive = False
                    stats.dead_workers += 1
                    log.warning("Ray worker for %s died (%s); its tasks go to the others", slot.endpoint,
                                _first_line(exc))  # fmt: skip
                self._retry(queue, batch, exc, stats)
                continue
            except ray.exceptions.RayError as exc:
                self._retry(queue, batch, exc, stats)
                continue
            lost = [(queued, v) for queued, v in zip(batch, verdicts, strict=True) if _is_transport(v)]
            decided = [
                (item, v) for (item, _), v in zip(batch, verdicts, strict=True) if not _is_transport(v)
            ]
            if decided:
                self.health.answered(slot.endpoint)
            if lost:
                self.health.failed(slot.endpoint, lost[0][1].error_reason or "transport")
            stats.per_endpoint[slot.endpoint] = stats.per_endpoint.get(slot.endpoint, 0) + len(decided)
            done.extend(decided)
            failed.extend(lost)
        return done, failed

    def _set_aside(
        self, item: WorkItem, verdict: Verdict, strikes: TaskStrikes, stats: DispatchStats
    ) -> bool:
        if not strikes.failed(item.task_id, stats.completed):
            return False
        stats.set_aside.append(item.task_id)
        log.warning("task %s failed %d times in transport (%s) while other tasks were decided: set aside for "
                    "this session", item.task_id, self.max_task_failures, verdict.error_reason)  # fmt: skip
        return True

    def _retry(self, queue, batch, exc: BaseException, stats: DispatchStats) -> None:
        for item, attempt in batch:
            if attempt >= self.max_attempts:
                raise ProofpilotError(
                    f"task {item.task_id} failed {attempt} times in Ray: {_first_line(exc)}"
                )
            stats.retried += 1
            queue.append((item, attempt + 1))
