"""The operation bank (one row per operation_id, deduplicated across neurons) and the membership table.

Built with numpy from the columnar change-log rows and operation details: no per-row Python dicts. A split
shared by two proofread neurons is one bank row with ``n_neurons == 2``; the membership table keeps one (root,
operation) row per change-log row, so per-neuron counts still list it for both neurons. Split children come
from ``operation_details["roots"]``; where details are missing the change log's ``after_root_ids`` (kept root
only) stand in and the interface point is NaN.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from proofpilot.datastack.changelog import LogRows, gather_lists, split_lists
from proofpilot.datastack.opdetails import DetailsChunk
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
    starts = head.after_offsets[:-1].copy()
    lengths = np.diff(head.after_offsets)
    values = head.after_values
    if len(details.operation_id):
        sorter = np.argsort(details.operation_id)
        pos = np.minimum(np.searchsorted(details.operation_id, op_ids, sorter=sorter), len(sorter) - 1)
        found = details.operation_id[sorter[pos]] == op_ids
        src = sorter[pos[found]]
        interface[found] = details.interface_nm[src]
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
        }
    )
    return bank.astype({k: v for k, v in OPERATION_COLUMNS.items() if v not in ("object", "string")})
