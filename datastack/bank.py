"""The operation bank (one row per operation_id, deduplicated across neurons) and the membership table.

Built with numpy from the columnar change-log rows and operation details: no per-row Python dicts. A split
shared by two proofread neurons is one bank row with ``n_neurons == 2``; the membership table keeps one (root,
operation) row per change-log row, so per-neuron counts still list it for both neurons. Split children come
from ``operation_details["roots"]``; where details are missing the change log's ``after_root_ids`` (kept root
only) stand in and the interface point is NaN.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import pandas as pd

from proofpilot.datastack.changelog import LogRows, gather_lists, split_lists
from proofpilot.datastack.opdetails import (
    META_REDO_OF,
    META_SINK_SV,
    META_SOURCE_SV,
    META_STATUS,
    META_UNDO_OF,
    DetailsChunk,
)
from proofpilot.datastack.records import MEMBERSHIP_COLUMNS, OPERATION_COLUMNS

log = logging.getLogger(__name__)


def unique_pairs(rows: LogRows) -> LogRows:
    """Drop repeated (root_id, operation_id) rows (a log that lists an operation twice)."""
    if len(rows) == 0:
        return rows
    order = np.lexsort((rows.operation_id, rows.root_id))
    r, o = rows.root_id[order], rows.operation_id[order]
    keep = np.ones(len(order), dtype=bool)
    keep[1:] = (r[1:] != r[:-1]) | (o[1:] != o[:-1])
    if keep.all():
        return rows
    log.warning("%d repeated (neuron, operation) rows dropped", int((~keep).sum()))
    return rows.take(np.sort(order[keep]))


DROP_REASONS = ("failed", "undo", "redo", "undone")


def dropped_operations(details: DetailsChunk) -> dict[int, str]:
    """Operations not fit for tasks, with their reason (one of DROP_REASONS).

    PyChunkedGraph's rule (`common.all_user_operations`): in operation-id order, a successful undo marks its
    target undone and a redo unmarks it; undo/redo rows themselves and targets still undone are dropped. An
    operation whose status is absent (-1) counts as successful."""
    meta = details.meta
    ops = details.operation_id
    status = meta[:, META_STATUS]
    out = {int(op): "failed" for op in ops[(status != 0) & (status != -1)]}
    undone: set[int] = set()
    marks = np.flatnonzero((meta[:, META_UNDO_OF] != 0) | (meta[:, META_REDO_OF] != 0))
    for i in marks[np.argsort(ops[marks], kind="stable")].tolist():
        op = int(ops[i])
        if op in out:
            continue
        undo, redo = int(meta[i, META_UNDO_OF]), int(meta[i, META_REDO_OF])
        if undo:
            undone.add(undo)
        else:
            undone.discard(redo)
        out[op] = "undo" if undo else "redo"
    known = set(ops.tolist())
    out.update((op, "undone") for op in sorted(undone & known) if op not in out)
    if out:
        n = {why: sum(1 for r in out.values() if r == why) for why in DROP_REASONS}
        log.info(
            "%d of %d operations left out of the bank: %s",
            len(out),
            len(ops),
            ", ".join(f"{why} {k}" for why, k in n.items() if k),
        )
    return out


def without_operations(rows: LogRows, operation_ids: Iterable[int]) -> LogRows:
    """The change-log rows of every other operation."""
    drop = np.fromiter(operation_ids, dtype=np.int64)
    if len(drop) == 0:
        return rows
    return rows.take(np.flatnonzero(~np.isin(rows.operation_id, drop)))


def build_membership(rows: LogRows) -> pd.DataFrame:
    return pd.DataFrame(
        {"root_id": rows.root_id, "operation_id": rows.operation_id, "is_merge": rows.is_merge}
    ).astype(MEMBERSHIP_COLUMNS)


def build_bank(rows: LogRows, details: DetailsChunk) -> pd.DataFrame:
    """Operation bank from deduplicated change-log rows (see `unique_pairs`) and the operations' details."""
    op_ids, first, inverse, counts = np.unique(
        rows.operation_id, return_index=True, return_inverse=True, return_counts=True
    )
    head = rows.take(first)
    conflicts = np.flatnonzero(rows.is_merge != head.is_merge[inverse])
    if len(conflicts):
        log.warning("%d change-log rows disagree with another neuron's log on is_merge", len(conflicts))

    # proofread neurons per operation, grouped in operation order
    order = np.argsort(inverse, kind="stable")
    neuron_offsets = np.zeros(len(op_ids) + 1, dtype=np.int64)
    np.cumsum(counts, out=neuron_offsets[1:])
    neuron_lists = split_lists(rows.root_id[order], neuron_offsets)

    # join details by operation id; split children from details["roots"], else the log's kept root
    interface = np.full((len(op_ids), 3), np.nan)
    edge = np.zeros((len(op_ids), 2), dtype=np.int64)
    starts = head.after_offsets[:-1].copy()
    lengths = np.diff(head.after_offsets)
    values = head.after_values
    if len(details.operation_id):
        sorter = np.argsort(details.operation_id)
        pos = np.minimum(np.searchsorted(details.operation_id, op_ids, sorter=sorter), len(sorter) - 1)
        found = details.operation_id[sorter[pos]] == op_ids
        src = sorter[pos[found]]
        interface[found] = details.interface_nm[src]
        edge[found] = details.meta[src][:, [META_SOURCE_SV, META_SINK_SV]]
        detail_lengths = np.diff(details.after_offsets)[src]
        use = np.flatnonzero(found)[detail_lengths > 0]
        starts[use] = details.after_offsets[src[detail_lengths > 0]] + len(values)
        lengths[use] = detail_lengths[detail_lengths > 0]
        values = np.concatenate([values, details.after_values])
    after_values, after_offsets = gather_lists(values, starts, lengths)
    missing = int(np.isnan(interface[:, 0]).sum())
    if missing:
        log.warning(
            "%d of %d operations have no interface point (details missing or without coordinates)",
            missing,
            len(op_ids),
        )

    bank = pd.DataFrame(
        {
            "operation_id": op_ids,
            "is_merge": head.is_merge,
            "timestamp": pd.to_datetime(head.timestamp_ms, unit="ms", utc=True),
            "user_id": pd.arrays.ArrowStringArray(head.user_id),
            "before_root_ids": split_lists(head.before_values, head.before_offsets),
            "after_root_ids": split_lists(after_values, after_offsets),
            "interface_x_nm": interface[:, 0],
            "interface_y_nm": interface[:, 1],
            "interface_z_nm": interface[:, 2],
            "neuron_root_ids": neuron_lists,
            "n_neurons": counts.astype(np.int64),
            "source_sv": edge[:, 0],
            "sink_sv": edge[:, 1],
        }
    )
    return bank.astype({k: v for k, v in OPERATION_COLUMNS.items() if v not in ("object", "string")})
