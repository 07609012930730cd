"""The size of an edit, measured on the geometry its decision looks at: one `TaskSize` per prepared task.

Computed where the features are (tasks.prepare, in the preparation's Ray task) from the same skeletons, and
stored with the task's verdict (orchestrator.task_sizes), so that the report can set the compute a decision
cost beside how big the edit was (the seed's next step "correlate edit complexity with computational time").

- `cable_near_um`: cable (µm) of the task's fragments within the feature radius R of the interface point, on
  the connected piece that meets the point (the features' `cable_a_um + cable_b_um` for a merge, `cable_um`
  for a split); None where a fragment has no skeleton within R.
- `nodes_near`: skeleton nodes of the fragments within R of the point (for pcg_skel geometry one node is one
  level-2 chunk, so this counts the L2 nodes around the edit).
- `fragment_nodes`, `fragment_cable_um`: nodes and cable of the fragments as loaded: whole skeletons from a
  precomputed layer, the crops around the point from pcg_skel geometry (then bounded by the crop).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from proofpilot.core.records import from_json
from proofpilot.tasks.features import DEFAULT_RADIUS_NM
from proofpilot.tasks.records import DecisionTask

if TYPE_CHECKING:
    import navis

SIZE_MEASURES = {
    "cable_near_um": "µm of cable within R of the interface",
    "nodes_near": "skeleton (L2) nodes within R",
    "fragment_nodes": "skeleton nodes of the fragments",
    "fragment_cable_um": "µm of cable of the fragments",
}


@dataclass(frozen=True)
class TaskSize:
    """One task's edit size (see the module docstring); a line of RUN_DIR/task_sizes.jsonl."""

    task_id: str
    operation_id: int
    neuron_root_id: int
    op_kind: str
    radius_nm: float
    cable_near_um: float | None
    nodes_near: int | None = None
    fragment_nodes: int | None = None
    fragment_cable_um: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, source: str = "task size") -> TaskSize:
        return from_json(cls, data, source)


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def cable_near_um(task: DecisionTask) -> float | None:
    """Cable near the interface from the task's features (None if a fragment has none within R)."""
    keys = ("cable_um",) if task.candidate_root_id is None else ("cable_a_um", "cable_b_um")
    values = [_finite(task.features.get(k)) for k in keys]
    return None if any(v is None for v in values) else float(sum(values))  # type: ignore[arg-type]


def _xyz(neuron: navis.TreeNeuron) -> tuple[np.ndarray, float]:
    """Node positions (n, 3) nm and cable (nm) of a skeleton."""
    nodes = neuron.nodes
    xyz = nodes[["x", "y", "z"]].to_numpy(dtype=np.float64)
    index = {int(n): i for i, n in enumerate(nodes["node_id"].to_numpy())}
    parent = np.array([index.get(int(p), -1) for p in nodes["parent_id"].to_numpy()], dtype=np.int64)
    has = parent >= 0
    cable = float(np.linalg.norm(xyz[has] - xyz[parent[has]], axis=1).sum())
    return xyz, cable


def task_size(
    task: DecisionTask, fragments: Sequence[navis.TreeNeuron] = (), radius_nm: float = DEFAULT_RADIUS_NM
) -> TaskSize:
    """The size of a task with features; `fragments` (its skeletons, as loaded) add the node counts."""
    near = total_nodes = None
    cable = None
    if fragments:
        point = np.asarray(task.interface_nm, dtype=np.float64)
        near, total_nodes, cable_nm = 0, 0, 0.0
        for fragment in fragments:
            xyz, c = _xyz(fragment)
            near += int((np.linalg.norm(xyz - point, axis=1) <= radius_nm).sum())
            total_nodes += len(xyz)
            cable_nm += c
        cable = cable_nm / 1e3
    return TaskSize(
        task_id=task.task_id, operation_id=task.operation_id, neuron_root_id=task.neuron_root_id,
        op_kind=task.op_kind, radius_nm=float(radius_nm), cable_near_um=cable_near_um(task),
        nodes_near=near, fragment_nodes=total_nodes, fragment_cable_um=cable,
    )  # fmt: skip
