"""Task preparation: skeletons of each task's fragments (loaded in batches), their features and views.

Skeletons come from a source with ``get_many(root_ids) -> {root id: TreeNeuron}``: a precomputed layer (a
URL), or any object such as `proofpilot.datastack.geometry.PcgSkeletons`. A root the source cannot give is
absent from its answer (its reason in the source's ``failures`` if it has one); the tasks that need it are
dropped, counted by reason, and the others go on."""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

from proofpilot.core.errors import DataError
from proofpilot.datastack.skeletons import load_skeletons
from proofpilot.tasks.features import DEFAULT_RADIUS_NM, merge_features, split_features
from proofpilot.tasks.records import DecisionTask
from proofpilot.tasks.size import TaskSize, task_size
from proofpilot.tasks.views import render_view_set

if TYPE_CHECKING:
    import navis

log = logging.getLogger(__name__)

DEFAULT_BATCH_ROOTS = 128  # root ids per skeleton request batch (cloud-volume's per-call cost is ~0.1 s)
NO_SKELETON = "no skeleton for this root"
_ID = re.compile(r"\d{6,}")  # root and L2 ids, so that one reason counts every root it hits


class SkeletonSource(Protocol):
    def get_many(self, root_ids: Iterable[int]) -> dict[int, navis.TreeNeuron]: ...


class _Layer:
    """A precomputed skeleton layer as a source: roots it lacks are absent from the answer."""

    def __init__(self, layer_url: str) -> None:
        self.layer_url = layer_url
        self.failures: dict[int, str] = {}

    def get_many(self, root_ids: Iterable[int]) -> dict[int, navis.TreeNeuron]:
        wanted = list(root_ids)
        found = load_skeletons(self.layer_url, wanted, missing_ok=True)
        self.failures.update({r: f"no skeleton in {self.layer_url}" for r in wanted if r not in found})
        return found


class SkeletonCache:
    """Skeletons of one run, loaded from a source in batches and kept (least recently used dropped).

    `source` is a precomputed layer URL or any `SkeletonSource`; roots it could not give are in `failures`
    (root id -> reason) and are not asked for again."""

    def __init__(self, source: str | SkeletonSource, max_items: int = 2 * DEFAULT_BATCH_ROOTS) -> None:
        self.source: SkeletonSource = _Layer(source) if isinstance(source, str) else source
        self.layer_url = source if isinstance(source, str) else None
        self.max_items = max_items
        self._items: OrderedDict[int, navis.TreeNeuron] = OrderedDict()
        self.failures: dict[int, str] = {}
        self.loads = 0  # skeletons fetched

    def get_many(self, root_ids: Iterable[int]) -> dict[int, navis.TreeNeuron]:
        """{root id: skeleton} for the wanted roots the source could give."""
        wanted = list(dict.fromkeys(int(r) for r in root_ids))
        missing = [r for r in wanted if r not in self._items and r not in self.failures]
        if missing:
            found = self.source.get_many(missing)
            reasons = getattr(self.source, "failures", {})
            self.failures.update({r: reasons.get(r, NO_SKELETON) for r in missing if r not in found})
            self._items.update((r, found[r]) for r in missing if r in found)
            self.loads += sum(r in found for r in missing)
        for r in wanted:
            if r in self._items:
                self._items.move_to_end(r)
        out = {r: self._items[r] for r in wanted if r in self._items}
        while len(self._items) > max(self.max_items, len(wanted)):
            self._items.popitem(last=False)
        return out


def task_roots(task: DecisionTask) -> tuple[int, ...]:
    """The skeletons a task looks at: (base, candidate) for a merge, (segment,) for a split."""
    return (
        (task.base_root_id,)
        if task.candidate_root_id is None
        else (task.base_root_id, task.candidate_root_id)
    )


def add_features(
    tasks: Sequence[DecisionTask],
    skeletons: SkeletonCache,
    radius_nm: float | None = None,
    batch_roots: int = DEFAULT_BATCH_ROOTS,
    dropped: Counter[str] | None = None,
) -> list[DecisionTask]:
    """The tasks with features computed from their skeletons, in the same order, less those with a root
    whose skeleton could not be had: each of those is logged and counted in `dropped` by reason.

    Skeletons load in batches of whole neurons (at least `batch_roots` root ids per request, so that the
    fixed cost of a cloud-volume call is shared) and stay in the run's cache for later tasks. DataError if
    no task is left."""

    radius = DEFAULT_RADIUS_NM if radius_nm is None else radius_nm
    if not tasks:
        raise DataError("empty task list: there is nothing to compute features for")
    by_neuron: dict[int, list[int]] = {}
    for i, task in enumerate(tasks):
        by_neuron.setdefault(task.neuron_root_id, []).append(i)
    out: list[DecisionTask | None] = [None] * len(tasks)

    def compute(indices: list[int]) -> None:
        loaded = skeletons.get_many(r for i in indices for r in task_roots(tasks[i]))
        for i in indices:
            task = tasks[i]
            lacking = [r for r in task_roots(task) if r not in loaded]
            if lacking:
                why = skeletons.failures.get(lacking[0], NO_SKELETON)
                log.warning("task %s dropped: no geometry for root %d (%s)", task.task_id, lacking[0], why)
                if dropped is not None:
                    dropped[f"no geometry: {_ID.sub('<id>', why)}"] += 1
                continue
            if task.candidate_root_id is None:
                feats = split_features(loaded[task.base_root_id], task.interface_nm, radius)
            else:
                feats = merge_features(
                    loaded[task.base_root_id], loaded[task.candidate_root_id], task.interface_nm, radius
                )
            out[i] = dataclasses.replace(task, features=feats)

    batch: list[int] = []
    roots: set[int] = set()
    for indices in by_neuron.values():
        batch += indices
        roots.update(r for i in indices for r in task_roots(tasks[i]))
        if len(roots) >= batch_roots:
            compute(batch)
            batch, roots = [], set()
    if batch:
        compute(batch)
    kept = [t for t in out if t is not None]
    if not kept:
        raise DataError(f"none of the {len(tasks)} tasks has the geometry of its fragments")
    return kept


def task_views(
    task: DecisionTask,
    skeletons: SkeletonCache,
    radius_nm: float | None = None,
    size_px: int = 256,
    n_views: int = 3,
) -> tuple[bytes, ...]:
    """The first `n_views` PNG views (`views.VIEW_ORDER`: xy, xz, yz, then ×3) of the task's fragments
    around its interface point."""

    loaded = skeletons.get_many(task_roots(task))
    lacking = [r for r in task_roots(task) if r not in loaded]
    if lacking:
        raise DataError(f"task {task.task_id}: no geometry for root {lacking[0]}")
    return render_view_set(
        [loaded[r] for r in task_roots(task)],
        task.interface_nm,
        DEFAULT_RADIUS_NM if radius_nm is None else radius_nm,
        n_views,
        size_px,
    )


def probe_source(source: str | SkeletonSource, task: DecisionTask) -> None:
    """Load one task's skeletons in this process: an unreachable layer is a one-line DataError here, before
    any task is sent, not an error verdict on every task."""
    SkeletonCache(source).get_many(task_roots(task))


# -- one batch of tasks, stage by stage (in the pilot's Ray tasks; bench/prep.py also runs it serially) --
PREP_STAGES = ("geometry", "features", "render")


@dataclasses.dataclass(frozen=True)
class PrepSeconds:
    """Seconds one task spent in each preparation stage (None: the stage was not reached, or no views were
    asked for); `geometry` is its share of its batch's skeleton load (load time over the batch's tasks)."""

    geometry: float | None = None
    features: float | None = None
    render: float | None = None


@dataclasses.dataclass(frozen=True)
class PreparedTask:
    """A task with its features and views, or the stage that failed and why (`failed_stage` set)."""

    task: DecisionTask
    views: tuple[bytes, ...] = ()
    seconds: PrepSeconds = PrepSeconds()
    failed_stage: str | None = None  # one of PREP_STAGES
    reason: str | None = None  # one line
    size: TaskSize | None = None  # the edit's size (tasks.size), once its features are computed

    @property
    def ok(self) -> bool:
        return self.failed_stage is None


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[-1]}" if lines else type(exc).__name__


def prepare_tasks(
    tasks: Sequence[DecisionTask],
    skeletons: SkeletonCache,
    views: int = 0,
    view_px: int = 256,
    radius_nm: float | None = None,
    renderer: Callable[..., Sequence[bytes]] | None = None,
) -> list[PreparedTask]:
    """Every task of the batch prepared (features, then `views` rendered views of `view_px` px), in order:
    one skeleton load for the whole batch, then per task; a stage that raises, or a root without a skeleton,
    makes that task a failed one with its reason (never an exception, never a task left out).

    `renderer(fragments, point_nm, radius_nm, size_px)` draws the views (default: the first `views` of
    `views.render_view_set`)."""
    radius = DEFAULT_RADIUS_NM if radius_nm is None else radius_nm
    if not tasks:
        return []
    started = time.perf_counter()
    try:
        loaded = skeletons.get_many(r for t in tasks for r in task_roots(t))
    except Exception as exc:  # the source failed for the whole batch
        share = (time.perf_counter() - started) / len(tasks)
        why = _one_line(exc)
        return [PreparedTask(t, (), PrepSeconds(share), "geometry", why) for t in tasks]
    share = (time.perf_counter() - started) / len(tasks)
    draw = renderer or functools.partial(_first_views, views)
    return [_prepare_one(t, loaded, skeletons.failures, share, (views, view_px, draw), radius) for t in tasks]


def _first_views(n_views: int, fragments, point_nm, radius_nm: float, size_px: int) -> tuple[bytes, ...]:
    return render_view_set(fragments, point_nm, radius_nm, n_views, size_px)


def _prepare_one(task, loaded, failures, geometry_s, render, radius) -> PreparedTask:
    lacking = [r for r in task_roots(task) if r not in loaded]
    if lacking:
        why = failures.get(lacking[0], NO_SKELETON)
        return PreparedTask(task, seconds=PrepSeconds(geometry_s), failed_stage="geometry", reason=why)
    fragments = [loaded[r] for r in task_roots(task)]
    started = time.perf_counter()
    try:
        if task.candidate_root_id is None:
            feats = split_features(fragments[0], task.interface_nm, radius)
        else:
            feats = merge_features(fragments[0], fragments[1], task.interface_nm, radius)
    except Exception as exc:
        seconds = PrepSeconds(geometry_s, time.perf_counter() - started)
        return PreparedTask(task, seconds=seconds, failed_stage="features", reason=_one_line(exc))
    task = dataclasses.replace(task, features=feats)
    size = _size(task, fragments, radius)
    features_s = time.perf_counter() - started
    views, view_px, draw = render
    if views <= 0:
        return PreparedTask(task, seconds=PrepSeconds(geometry_s, features_s), size=size)
    started = time.perf_counter()
    try:
        images = tuple(draw(fragments, task.interface_nm, radius, view_px)[:views])
    except Exception as exc:
        seconds = PrepSeconds(geometry_s, features_s, time.perf_counter() - started)
        return PreparedTask(task, seconds=seconds, failed_stage="render", reason=_one_line(exc), size=size)
    seconds = PrepSeconds(geometry_s, features_s, time.perf_counter() - started)
    return PreparedTask(task, images, seconds, size=size)


def _size(task: DecisionTask, fragments, radius: float) -> TaskSize:
    """The task's size from its skeletons; from its features alone if the skeletons cannot be measured."""
    try:
        return task_size(task, fragments, radius)
    except Exception as exc:  # a skeleton table without the usual columns: the size is auxiliary
        log.warning("task %s: size from its features only (%s)", task.task_id, _one_line(exc))
        return task_size(task, (), radius)
