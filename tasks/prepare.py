"""Task preparation: skeletons of each task's fragments (loaded in batches), their features and views."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from proofpilot.core.errors import DataError
from proofpilot.datastack.skeletons import load_skeletons
from proofpilot.tasks.features import DEFAULT_RADIUS_NM, merge_features, split_features
from proofpilot.tasks.records import DecisionTask
from proofpilot.tasks.views import render_views

if TYPE_CHECKING:
    import navis

DEFAULT_BATCH_ROOTS = 128  # root ids per skeleton request batch (cloud-volume's per-call cost is ~0.1 s)


class SkeletonCache:
    """Skeletons of one run, loaded through cloud-volume in batches and kept (least recently used dropped)."""

    def __init__(self, layer_url: str, max_items: int = 2 * DEFAULT_BATCH_ROOTS) -> None:
        self.layer_url = layer_url
        self.max_items = max_items
        self._items: OrderedDict[int, navis.TreeNeuron] = OrderedDict()
        self.loads = 0  # skeletons fetched

    def get_many(self, root_ids: Iterable[int]) -> dict[int, navis.TreeNeuron]:

        wanted = list(dict.fromkeys(int(r) for r in root_ids))
        missing = [r for r in wanted if r not in self._items]
        if missing:
            self._items.update(load_skeletons(self.layer_url, missing))
            self.loads += len(missing)
        for r in wanted:
            self._items.move_to_end(r)
        out = {r: self._items[r] for r in wanted}
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
) -> list[DecisionTask]:
    """The tasks with features computed from their skeletons, in the same order.

    Skeletons load in batches of whole neurons (at least `batch_roots` root ids per request, so that the
    fixed cost of a cloud-volume call is shared) and stay in the run's cache for later tasks."""

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
    return out  # type: ignore[return-value]


def task_views(
    task: DecisionTask, skeletons: SkeletonCache, radius_nm: float | None = None, size_px: int = 256
) -> tuple[bytes, bytes, bytes]:
    """Three PNG projections (xy, xz, yz) of the task's fragments around its interface point."""

    loaded = skeletons.get_many(task_roots(task))
    return render_views(
        [loaded[r] for r in task_roots(task)],
        task.interface_nm,
        DEFAULT_RADIUS_NM if radius_nm is None else radius_nm,
        size_px,
    )
