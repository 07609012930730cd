"""Skeleton sources, a renderer and a gate for the task-preparation tests (orchestrator.prep). Ray workers
unpickle them by value (`ray.cloudpickle.register_pickle_by_value` on this module), as tests/ is not on
their import path.

`LineSkeletons` gives every root a straight 30-node skeleton through the origin (its direction from the root
id); roots in `missing` are absent from the answer, with a reason in `failures`, as a precomputed layer
lacking them would be; a batch that asks for a root in `held` waits until the `gate` is opened."""

from __future__ import annotations

import asyncio

import numpy as np
import ray

from proofpilot.core.errors import DataError
from proofpilot.tasks.records import DecisionTask
from proofpilot.tasks.views import render_views


class _Skeleton:
    def __init__(self, vertices: np.ndarray, edges: np.ndarray) -> None:
        self.vertices, self.edges, self.radius = vertices, edges, None


class LineSkeletons:
    def __init__(self, missing=(), held=(), gate=None) -> None:
        self.missing, self.held, self.gate = set(missing), set(held), gate
        self.failures: dict[int, str] = {}

    def get_many(self, root_ids):
        from proofpilot.datastack.skeletons import to_tree_neuron

        wanted = [int(r) for r in root_ids]
        if self.gate is not None and self.held & set(wanted):
            ray.get(self.gate.wait.remote())
        out = {}
        for root in wanted:
            if root in self.missing:
                self.failures[root] = f"no skeleton in the test layer for root {root}"
                continue
            angle = (root % 17) / 17 * np.pi
            t = np.linspace(-3_000.0, 3_000.0, 30)[:, None]
            vertices = t * np.array([np.cos(angle), np.sin(angle), 0.1]) + [0.0, 0.0, 40.0 * (root % 3)]
            edges = np.column_stack([np.arange(1, 30), np.arange(29)])
            out[root] = to_tree_neuron(_Skeleton(vertices, edges), root)
        return out


def render_unless_west(fragments, point_nm, radius_nm, size_px):
    """The real renderer, except that it fails for a point with x < 0 (a render failure on demand)."""
    if point_nm[0] < 0:
        raise DataError("the test renderer refuses points west of the origin")
    return render_views(fragments, point_nm, radius_nm, size_px)


@ray.remote(num_cpus=0)
class Gate:
    """Held closed until `open`; `wait` returns once it is open."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    async def wait(self) -> bool:
        await self.event.wait()
        return True

    async def open(self) -> None:
        self.event.set()


@ray.remote(num_cpus=0)
class Counter:
    """A count that callers can wait on (`at_least`)."""

    def __init__(self) -> None:
        self.n = 0
        self.changed = asyncio.Condition()

    async def add(self, k: int = 1) -> int:
        async with self.changed:
            self.n += k
            self.changed.notify_all()
        return self.n

    async def value(self) -> int:
        return self.n

    async def at_least(self, k: int) -> int:
        async with self.changed:
            await self.changed.wait_for(lambda: self.n >= k)
        return self.n


def gated(gate, fn, payload):
    """`fn(payload)` once the gate is open (a decision held back on demand)."""
    ray.get(gate.wait.remote())
    return fn(payload)


def counted(counter, prepared):
    """A payload function that counts every task it is called for (in the Ray task), then returns the task."""
    ray.get(counter.add.remote())
    return prepared.task


def make_tasks(per_neuron: dict[int, int], west=()) -> list[DecisionTask]:
    """Tasks of the given neurons (neuron root id -> count), merges and splits alternating (a merge's
    candidate is root neuron + 1000 + i); the task ids in `west` get an interface point at x < 0."""
    tasks = []
    i = 0
    for neuron, n in per_neuron.items():
        for _ in range(n):
            merge = i % 2 == 0
            task_id = f"{i}:{'partner' if merge else 'before_split'}"
            candidate = neuron + 1000 + i if merge else None
            tasks.append(DecisionTask(
                task_id=task_id, operation_id=i, neuron_root_id=neuron, neuron_n_edits=n,
                op_kind="merge" if merge else "split", role="partner" if merge else "before_split",
                label="merge" if merge else "split", base_root_id=neuron, candidate_root_id=candidate,
                interface_nm=(-100.0 if task_id in west else 100.0, 0.0, 0.0),
            ))  # fmt: skip
            i += 1
    return tasks
