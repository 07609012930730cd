"""Decision tasks from ground-truth operations, and their features from skeletons around the interface point.

Works from the operation bank as it would for real CAVE data (datastack/records.py OPERATION_COLUMNS):

- a merge gives two tasks on the same base, the root of its source supervoxel just before it: the true
  partner, the root of its sink supervoxel (role ``partner``, label ``merge``), and a distractor near the
  interface that is not part of the neuron (``distractor``, ``no_merge``);
- a split gives the segment before the split (``before_split``, ``split``), and the neuron's final proofread
  root, assumed correct at the same place (``clean``, ``clean``).

The roles come from the operation through a `RoleSource` (datastack/roles.py for CAVE): ``before_root_ids``
are in ascending id order, not base-then-partner. It is asked once, for the sampled operations only (one
get_roots call per merge). An operation without roles gives no tasks (counted in the "tasks skipped" line).
Operations the ingestion dropped (failed, undo/redo, undone: `excluded`) are in the membership table but not
in the bank; they give no tasks.

Distractors come through the `DistractorSource` hook; the pilot uses
`tasks.distractors.SegmentationDistractors` (the segment touching the partner in a segmentation cutout at op
time - 1 ms), for every datastack.

An operation in several chosen neurons' logs (a split shared by two proofread neurons) belongs to the lowest
of their root ids and gives one pair of tasks; its clean root is that neuron's final root.
`max_ops_per_neuron` (K) samples each neuron's operations stratified by type, from a generator seeded by
(seed, neuron root id), so a neuron's sample depends only on the operations it owns.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from proofpilot.core.errors import ConfigError, DataError
from proofpilot.core.vocab import OP_KINDS, ROLE_LABEL
from proofpilot.datastack.records import Operation, OperationRoles
from proofpilot.tasks.distractors import DistractorSource
from proofpilot.tasks.records import DecisionTask
from proofpilot.tasks.roles import RoleSource

if TYPE_CHECKING:
    from proofpilot.datastack.ingest import IngestResult

log = logging.getLogger(__name__)

_REQUIRED = (
    "operation_id",
    "is_merge",
    "before_root_ids",
    "interface_x_nm",
    "interface_y_nm",
    "interface_z_nm",
    "neuron_root_ids",
)


@dataclass(frozen=True)
class TaskOptions:
    """Which tasks to build. `neuron_root_ids` None: every neuron ingested without error, in table order."""

    seed: int = 0
    max_ops_per_neuron: int | None = None
    neuron_root_ids: tuple[int, ...] | None = None
    operation_ids: tuple[int, ...] | None = None  # only these operations (each must be in the bank)
    op_kinds: tuple[str, ...] = OP_KINDS

    def __post_init__(self) -> None:
        if self.max_ops_per_neuron is not None and self.max_ops_per_neuron < 1:
            raise ConfigError(f"max ops per neuron must be >= 1, got {self.max_ops_per_neuron}")
        unknown = sorted(set(self.op_kinds) - set(OP_KINDS))
        if unknown or not self.op_kinds:
            raise ConfigError(
                f"op kinds must be a non-empty subset of {', '.join(OP_KINDS)}, got {self.op_kinds}"
            )


def allocate(counts: dict[str, int], k: int) -> dict[str, int]:
    """Split a budget of k operations over types in proportion to `counts` (largest remainder), giving every
    present type at least one while k allows; never more than a type has."""
    total = sum(counts.values())
    if total <= k:
        return dict(counts)
    quota = {t: k * c / total for t, c in counts.items()}
    share = {t: int(q) for t, q in quota.items()}
    for t in sorted(counts, key=lambda t: (share[t] - quota[t], t))[: k - sum(share.values())]:
        share[t] += 1
    for t in sorted(counts):  # a present type gets one, taken from the largest share
        if counts[t] and not share[t] and k >= sum(1 for c in counts.values() if c):
            donor = max(share, key=lambda u: (share[u], u))
            share[donor] -= 1
            share[t] += 1
    return share


def _rng(seed: int, root_id: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(root_id) >> 32, int(root_id) & 0xFFFFFFFF])


def sample_operations(
    op_ids: np.ndarray, is_merge: np.ndarray, k: int | None, rng: np.random.Generator
) -> np.ndarray:
    """Up to k of a neuron's operations, stratified by type (see `allocate`); sorted ids."""
    if k is None or len(op_ids) <= k:
        return np.sort(op_ids)
    kinds = {"merge": op_ids[is_merge], "split": op_ids[~is_merge]}
    share = allocate({t: len(ids) for t, ids in kinds.items()}, k)
    picked = [rng.choice(np.sort(kinds[t]), size=share[t], replace=False) for t in OP_KINDS if share[t]]
    return np.sort(np.concatenate(picked)) if picked else np.array([], dtype=np.int64)


def _check_columns(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{what} lacks column(s) {', '.join(missing)}")


def _chosen_neurons(per_neuron: pd.DataFrame, wanted: tuple[int, ...] | None) -> list[int]:
    _check_columns(per_neuron, ("root_id", "status", "n_edits"), "the per-neuron table")
    status = dict(zip(per_neuron["root_id"].astype("int64"), per_neuron["status"].astype(str), strict=True))
    if wanted is None:
        return [r for r, s in status.items() if s == "ok"]
    chosen = list(dict.fromkeys(int(r) for r in wanted))
    unknown = [r for r in chosen if r not in status]
    if unknown:
        raise DataError(f"neuron {unknown[0]} is not in the ingested neurons ({len(unknown)} unknown)")
    failed = [r for r in chosen if status[r] != "ok"]
    if failed:
        raise DataError(f"neuron {failed[0]} has no change log (ingestion error); re-run the ingestion")
    return chosen


def _operation(row) -> Operation:
    return Operation(
        operation_id=int(row.operation_id),
        is_merge=bool(row.is_merge),
        timestamp_ms=int(pd.Timestamp(row.timestamp).value // 1_000_000) if hasattr(row, "timestamp") else 0,
        before_root_ids=tuple(int(r) for r in row.before_root_ids),
        after_root_ids=tuple(int(r) for r in getattr(row, "after_root_ids", ()) or ()),
        interface_nm=(float(row.interface_x_nm), float(row.interface_y_nm), float(row.interface_z_nm)),
        neuron_root_ids=tuple(int(r) for r in row.neuron_root_ids),
        source_sv=int(getattr(row, "source_sv", 0)),
        sink_sv=int(getattr(row, "sink_sv", 0)),
    )


def _owners(rows: pd.DataFrame, neurons: list[int], opt: TaskOptions) -> dict[int, int]:
    """{operation id: the chosen neuron that owns it}: each operation once, with the lowest chosen root
    whose log has it, then up to K per neuron sampled by type (`sample_operations`)."""
    owner_of = rows.groupby("operation_id")["root_id"].transform("min")
    rows = rows[rows["root_id"] == owner_of]
    owner: dict[int, int] = {}
    by_neuron = {int(r): g for r, g in rows.groupby("root_id", sort=False)}
    for root in neurons:
        group = by_neuron.get(root)
        if group is None:
            continue
        op_ids = group["operation_id"].to_numpy(dtype=np.int64)
        picked = sample_operations(
            op_ids, group["is_merge"].to_numpy(dtype=bool), opt.max_ops_per_neuron, _rng(opt.seed, root)
        )
        owner.update(dict.fromkeys(picked.tolist(), root))
    return owner


def build_tasks(
    operations: pd.DataFrame,
    membership: pd.DataFrame,
    per_neuron: pd.DataFrame,
    distractors: DistractorSource,
    options: TaskOptions | None = None,
    *,
    roles: RoleSource,
    excluded: Iterable[int] = (),
) -> list[DecisionTask]:
    """Decision tasks (no features yet) from the operation bank; deterministic for `options.seed`."""
    opt = options or TaskOptions()
    if len(operations) == 0:
        raise DataError("the operation bank is empty: no operations to build tasks from")
    _check_columns(operations, _REQUIRED, "the operation bank")
    _check_columns(membership, ("root_id", "operation_id", "is_merge"), "the membership table")
    bank = operations.set_index("operation_id", drop=False)
    if not bank.index.is_unique:
        raise DataError("the operation bank has repeated operation ids")
    neurons = _chosen_neurons(per_neuron, opt.neuron_root_ids)
    n_edits = dict(zip(per_neuron["root_id"].astype("int64"), per_neuron["n_edits"], strict=True))
    rows = membership[membership["root_id"].isin(neurons)]
    rows = rows[~rows["operation_id"].isin(list(excluded))]
    orphans = ~rows["operation_id"].isin(bank.index)
    if orphans.any():
        raise DataError(
            f"operation {int(rows['operation_id'][orphans].iloc[0])} of the membership table is not "
            "in the operation bank; the two tables come from different ingestions"
        )
    if opt.operation_ids is not None:
        wanted = np.unique(np.asarray(opt.operation_ids, dtype=np.int64))
        unknown = wanted[~np.isin(wanted, bank.index.to_numpy())]
        if len(unknown):
            raise DataError(f"operation {unknown[0]} is not in the operation bank ({len(unknown)} unknown)")
        rows = rows[rows["operation_id"].isin(wanted)]
    kinds = np.where(rows["is_merge"].to_numpy(dtype=bool), "merge", "split")
    has_point = bank.loc[rows["operation_id"], ["interface_x_nm", "interface_y_nm", "interface_z_nm"]].notna()
    usable = np.isin(kinds, opt.op_kinds) & has_point.all(axis=1).to_numpy()
    n_no_point = int((np.isin(kinds, opt.op_kinds) & ~usable).sum())
    rows = rows[usable]

    owner = _owners(rows, neurons, opt)
    order = {root: i for i, root in enumerate(neurons)}

    tasks: list[DecisionTask] = []
    skipped: Counter[str] = Counter()
    picked_ops = sorted(owner.items(), key=lambda item: (order[item[1]], item[0]))
    operations_of = {op: _operation(bank.loc[op]) for op, _ in picked_ops}
    known_roles = roles.roles(list(operations_of.values())) if operations_of else {}
    distractors.prefetch(operations_of[op] for op, _ in picked_ops if op in known_roles)
    for op, root in picked_ops:
        operation = operations_of[op]
        for role, base, candidate in _pairs(operation, known_roles.get(op), root, distractors, skipped):
            tasks.append(
                DecisionTask(
                    task_id=f"{op}:{role}",
                    operation_id=op,
                    neuron_root_id=root,
                    neuron_n_edits=int(n_edits[root]),
                    op_kind=operation.kind,
                    role=role,  # type: ignore[arg-type]
                    label=ROLE_LABEL[role],  # type: ignore[arg-type]
                    base_root_id=base,
                    candidate_root_id=candidate,
                    interface_nm=operation.interface_nm,
                )
            )
    if n_no_point:
        skipped["no interface point"] += n_no_point
    if skipped:
        log.warning("tasks skipped: %s", ", ".join(f"{why}: {n}" for why, n in sorted(skipped.items())))
    log.info("%d tasks from %d operations of %d neurons", len(tasks), len(owner), len(neurons))
    return tasks


def _pairs(
    op: Operation,
    roles: OperationRoles | None,
    neuron: int,
    distractors: DistractorSource,
    skipped: Counter[str],
):
    """(role, base root, candidate root) of the operation's two tasks, those that can be built."""
    if roles is None:
        skipped[f"{op.kind} without roles"] += 1
        return
    base = roles.base_root_id
    if op.is_merge:
        yield "partner", base, roles.partner_root_id
        distractor = distractors.distractor_root(op, roles.partner_root_id)
        if distractor is None or distractor in op.before_root_ids:
            skipped["no distractor"] += 1
            return
        yield "distractor", base, int(distractor)
        return
    yield "before_split", base, None
    if neuron == base:
        skipped["clean root equals the before root"] += 1
        return
    yield "clean", neuron, None


def tasks_from_ingest(
    result: IngestResult,
    distractors: DistractorSource,
    options: TaskOptions | None = None,
    *,
    roles: RoleSource,
) -> list[DecisionTask]:
    """`build_tasks` on an ingestion result (its dropped operations excluded)."""
    return build_tasks(
        result.operations,
        result.membership,
        result.per_neuron,
        distractors,
        options,
        roles=roles,
        excluded=result.dropped_operations,
    )
