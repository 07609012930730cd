"""Task preparation on Ray: skeletons, features and views of the tasks, in batches, ahead of dispatch.

The driver holds the tasks without features. `PrepFeed` sends them, grouped by neuron (tasks of one neuron
share skeletons) in batches of `batch_size`, to Ray tasks (`_prepare_batch`, one CPU each) that load the
batch's skeletons (geometry), compute each task's features, render its views and build the payload the
workers send (the agent's request, images base64-encoded there, not in the driver). The dispatch loop
(`Dispatcher.run(feed=...)`) tops the feed up and takes its results as they complete, in any order:

- Bounded prefetch: tasks being prepared plus prepared tasks waiting for a worker never exceed `prefetch`
  (a batch is sent only if it fits), so memory stays bounded and a stop loses at most that much work.
- A task whose fragment has no geometry (a root the source cannot give, or the source failing for the
  batch) is not decided: it is left for `--resume`, its reason in `without_geometry` (the pilot writes it to
  run.json). A task whose features, views or payload fail is a decision: an error verdict
  (reason `<stage>_failed`, the one-line cause in `error_detail`), stored like any other.
  A Ray task that dies (worker crash) is sent again, up to `max_attempts`; then its tasks are error verdicts
  too (`prep_failed`). No task is ever dropped silently.
- Nothing is stored before its verdict: prepared-but-unsent tasks of an interrupted session are prepared
  again on resume (the store's done ids decide what is left), so none is lost or decided twice.

Geometry: a precomputed layer URL (whole skeletons; each worker process keeps one skeleton cache per feed,
keyed by the feed's id, so a neuron's skeletons are loaded once per worker), a `PcgSkeletons` (each task's
fragments cropped to a box around its interface point, tasks sharing a point sharing the crops), or any
picklable skeleton source; or a function that makes one (called once per worker and feed: a `PcgSkeletons`
holds a CAVE client, whose HTTP adapters do not survive pickling).
"""

from __future__ import annotations

import logging
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import ray

from proofpilot.agent.records import Verdict
from proofpilot.agent.schema import PROMPT_VERSION
from proofpilot.core.errors import ConfigError
from proofpilot.datastack.geometry import CROP_MARGIN_NM, CroppedPcg, PcgSkeletons
from proofpilot.datastack.session import add_timed_request_observer, remove_timed_request_observer
from proofpilot.orchestrator.stats import StageStats
from proofpilot.tasks.features import DEFAULT_RADIUS_NM
from proofpilot.tasks.prepare import (
    PREP_STAGES,
    PreparedTask,
    PrepSeconds,
    SkeletonCache,
    SkeletonSource,
    prepare_tasks,
)
from proofpilot.tasks.records import DecisionTask
from proofpilot.tasks.size import TaskSize

log = logging.getLogger(__name__)

PREP_REASONS = (*(f"{stage}_failed" for stage in PREP_STAGES), "payload_failed", "prep_failed")
PREP_ENDPOINT = "prep"  # the `endpoint` of an error verdict that no LLM was asked for


@dataclass(frozen=True)
class PrepOptions:
    """How tasks are prepared: `views` rendered views of `view_px` px per task (0: text only), `batch_size`
    tasks per Ray task, at most `prefetch` tasks prepared or preparing ahead of the workers."""

    views: int = 0
    view_px: int = 512
    batch_size: int = 8
    prefetch: int = 128
    radius_nm: float | None = None
    max_attempts: int = 3  # Ray tasks that die (not a task's own failure) are sent again up to this
    renderer: Callable[..., Sequence[bytes]] | None = None  # None: tasks.views.render_view_set

    def __post_init__(self) -> None:
        if self.views < 0:
            raise ConfigError(f"views must be >= 0, got {self.views}")
        if self.batch_size < 1 or self.prefetch < self.batch_size:
            raise ConfigError(
                f"the prefetch ({self.prefetch}) must hold at least one batch ({self.batch_size} tasks)"
            )


@dataclass(frozen=True)
class PrepResult:
    """What a Ray task returns per task: the payload to send, or the failed stage's reason."""

    task_id: str
    payload: Any
    seconds: PrepSeconds
    error_reason: str | None = None
    error_detail: str | None = None
    size: TaskSize | None = None  # the edit's size (tasks.size), stored with the task's verdict


def error_verdict(task: DecisionTask, reason: str, detail: str, model: str = "") -> Verdict:
    """The verdict of a task whose preparation failed: a decision with an error reason and its cause."""
    return Verdict(
        task_id=task.task_id, op_kind=task.op_kind, decision=None, confidence=None, valid=False,
        latency_s=0.0, prompt_tokens=0, completion_tokens=0, attempts=0, answers=0, error_reason=reason,
        finish_reason=None, endpoint=PREP_ENDPOINT, model=model, prompt_version=PROMPT_VERSION,
        error_detail=detail,
    )  # fmt: skip


# -- the Ray task --------------------------------------------------------------------------------
_CACHES: dict[str, Any] = {}  # per worker process: the geometry of the feed now running


def _kept(key: str, name: str, make: Callable[[], Any]) -> Any:
    if key not in _CACHES:
        _CACHES.clear()  # one feed at a time per worker: an earlier session's skeletons are dropped
        _CACHES[key] = {}
    kept = _CACHES[key]
    if name not in kept:
        kept[name] = make()
    return kept[name]


def _prepare(key: str, source, tasks: Sequence[DecisionTask], options: PrepOptions) -> list[PreparedTask]:
    stages = (options.views, options.view_px, options.radius_nm, options.renderer)
    if callable(source) and not hasattr(source, "get_many"):  # a factory: the source is built here, once
        source = _kept(key, "source", source)
    if not isinstance(source, PcgSkeletons):
        cache = _kept(key, "cache", lambda: SkeletonCache(source, max_items=4 * options.batch_size + 8))
        return prepare_tasks(tasks, cache, *stages)
    pcg = _kept(key, "pcg", lambda: source)  # its whole-root builds kept for the feed's life in this worker
    half = (DEFAULT_RADIUS_NM if options.radius_nm is None else options.radius_nm) + CROP_MARGIN_NM
    groups: dict[tuple[float, ...], list[DecisionTask]] = {}
    for task in tasks:
        groups.setdefault(tuple(task.interface_nm), []).append(task)
    done: dict[str, PreparedTask] = {}
    for center, group in groups.items():
        crops = SkeletonCache(CroppedPcg(pcg, center, half))
        done.update((p.task.task_id, p) for p in prepare_tasks(group, crops, *stages))
    return [done[t.task_id] for t in tasks]


def prepare_batch(
    tasks: Sequence[DecisionTask],
    key: str,
    source,
    options: PrepOptions,
    to_payload: Callable[[PreparedTask], Any],
) -> list[PrepResult]:
    """The batch's tasks prepared and turned into payloads; every task gets a result (see the module doc).
    `key` names the geometry kept in this process between batches (one feed's)."""
    out = []
    for prepared in _prepare(key, source, tasks, options):
        task_id = prepared.task.task_id
        if not prepared.ok:
            reason = f"{prepared.failed_stage}_failed"
            out.append(PrepResult(task_id, None, prepared.seconds, reason, prepared.reason, prepared.size))
            continue
        try:
            payload = to_payload(prepared)
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}".splitlines()[0]
            out.append(PrepResult(task_id, None, prepared.seconds, "payload_failed", detail, prepared.size))
            continue
        out.append(PrepResult(task_id, payload, prepared.seconds, size=prepared.size))
    return out


CaveCall = tuple[str, str, float]  # (API route name, HTTP status or "error", wall seconds)


@ray.remote(num_cpus=1, max_retries=0)
def _prepare_batch(key, source, tasks, options, to_payload) -> tuple[list[PrepResult], list[CaveCall]]:
    """The batch's results, and the CAVE requests it made in this worker process (the driver's metrics
    observe only its own process: it records these as they come back)."""
    calls: list[CaveCall] = []

    def observe(endpoint: str, status: str, seconds: float) -> None:
        calls.append((endpoint, status, seconds))

    add_timed_request_observer(observe)
    try:
        return prepare_batch(tasks, key, source, options, to_payload), calls
    finally:
        remove_timed_request_observer(observe)


# -- the driver side --------------------------------------------------------------------------------
def neuron_batches(tasks: Sequence[DecisionTask], size: int) -> list[list[DecisionTask]]:
    """The tasks grouped by neuron (first-seen order), cut into batches of at most `size`."""
    by_neuron: dict[int, list[DecisionTask]] = {}
    for task in tasks:
        by_neuron.setdefault(task.neuron_root_id, []).append(task)
    ordered = [t for group in by_neuron.values() for t in group]
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


@dataclass
class PrepStats:
    batches: int = 0  # Ray tasks that returned
    prepared: int = 0  # tasks with a payload
    failed: int = 0  # tasks whose preparation failed (error verdicts)
    resent: int = 0  # Ray tasks sent again after they died
    max_ahead: int = 0  # the most tasks ever prepared or preparing ahead of the workers
    without_geometry: int = 0  # tasks left undecided: a fragment without geometry
    cave_requests: int = 0  # CAVE requests the preparation tasks made (reported back to the driver)


class PrepFeed:
    """The driver's side of the preparation: see the module docstring. Used by `Dispatcher.run(feed=...)`."""

    def __init__(
        self,
        tasks: Sequence[DecisionTask],
        source: str | SkeletonSource | Callable[[], str | SkeletonSource],
        to_payload: Callable[[PreparedTask], Any],
        options: PrepOptions | None = None,
        model: str = "",
        on_prepared: Callable[[list[Any]], None] | None = None,
        on_cave_call: Callable[[str, str, float], None] | None = None,
    ) -> None:
        """`on_prepared`: called in the driver with each collect's payloads (e.g. to log the requests);
        `on_cave_call`: with each CAVE request a preparation task made (route, status, seconds)."""
        self.options = options or PrepOptions()
        self.to_payload, self.model, self.on_prepared = to_payload, model, on_prepared
        self.on_cave_call = on_cave_call
        self.stats = PrepStats()
        self._tasks = {t.task_id: t for t in tasks}
        self._batches = deque(neuron_batches(tasks, self.options.batch_size))
        self._running: dict[Any, tuple[list[DecisionTask], int]] = {}
        self._key = uuid.uuid4().hex
        self.without_geometry: dict[str, str] = {}  # task id -> why a fragment has no geometry
        self.sizes: dict[str, TaskSize] = {}  # prepared tasks' sizes, until their verdicts take them
        self._source = source if isinstance(source, str) else ray.put(source)
        self.preparing = 0

    @property
    def exhausted(self) -> bool:
        """Every task was handed out (as a payload or an error verdict)."""
        return not self._batches and not self._running

    @property
    def refs(self) -> list[Any]:
        return list(self._running)

    def top_up(self, queued: int) -> None:
        """Send batches while the tasks ahead of the workers (`queued` prepared + those preparing) stay
        within the prefetch bound."""
        while self._batches and queued + self.preparing + len(self._batches[0]) <= self.options.prefetch:
            self._send(self._batches.popleft(), 1)
        self.stats.max_ahead = max(self.stats.max_ahead, queued + self.preparing)

    def _send(self, batch: list[DecisionTask], attempt: int) -> None:
        ref = _prepare_batch.remote(self._key, self._source, batch, self.options, self.to_payload)
        self._running[ref] = (batch, attempt)
        self.preparing += len(batch)

    def collect(self, ready: Sequence[Any] | None = None):
        """(work items as (task id, payload), error verdicts as (task id, verdict), stage records) of the
        batches that finished (`ready`: refs known to be done; None: those done now)."""
        if ready is None:
            ready = ray.wait(self.refs, num_returns=len(self._running), timeout=0)[0] if self._running else []
        items: list[tuple[str, Any]] = []
        failed: list[tuple[str, Verdict]] = []
        stages: list[StageStats] = []
        for ref in ready:
            if ref not in self._running:
                continue
            batch, attempt = self._running.pop(ref)
            self.preparing -= len(batch)
            try:
                results, calls = ray.get(ref)
            except ray.exceptions.RayError as exc:
                self._lost_batch(batch, attempt, exc, failed)
                continue
            self.stats.batches += 1
            self.stats.cave_requests += len(calls)
            for call in calls if self.on_cave_call is not None else ():
                self.on_cave_call(*call)
            for result in results:
                task = self._tasks[result.task_id]
                s = result.seconds
                if result.size is not None:
                    self.sizes[result.task_id] = result.size
                stages.append(StageStats(task.op_kind, s.geometry, s.features, s.render))
                if result.error_reason is None:
                    items.append((result.task_id, result.payload))
                    continue
                if result.error_reason == "geometry_failed":  # undecided, for a resume
                    self.without_geometry[result.task_id] = result.error_detail or "no geometry"
                    self.stats.without_geometry += 1
                    continue
                log.warning("task %s: %s (%s)", result.task_id, result.error_reason, result.error_detail)
                detail = result.error_detail or ""
                failed.append((result.task_id, error_verdict(task, result.error_reason, detail, self.model)))
        self.stats.prepared += len(items)
        self.stats.failed += len(failed)
        if items and self.on_prepared is not None:
            self.on_prepared([payload for _, payload in items])
        return items, failed, stages

    def _lost_batch(self, batch, attempt: int, exc: BaseException, failed: list) -> None:
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        if attempt < self.options.max_attempts:
            self.stats.resent += 1
            log.warning("a preparation Ray task failed (%s): sent again", detail)
            self._send(batch, attempt + 1)
            return
        for task in batch:
            failed.append((task.task_id, error_verdict(task, "prep_failed", detail, self.model)))

    def prime(self) -> None:
        """Send the first batches and wait until one is prepared (the workers' start-up and imports), so that
        a dispatch started next has work at once."""
        self.top_up(0)
        if self._running:
            ray.wait(self.refs, num_returns=1)

    def cancel(self) -> None:
        """Forget the batches still preparing (a stop): their tasks stay undecided, for a resume. They are
        not cancelled (`ray.cancel` interrupts a worker mid-call); a local Ray ends with the session."""
        self._running.clear()
        self.preparing = 0
