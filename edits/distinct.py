"""Distinct operations projected from a sample, weighting each logged operation by 1/m.

m_op = the number of proofread neurons (in the whole table) whose logs hold operation op, looked up through
the lineage of its split children (datastack/multiplicity.py). For neuron i let w_i = Σ_{op in log i} 1/m_op
(merges and splits separately). Then Σ_{i in table} w_i = Σ_op m_op · (1/m_op) = T, the number of distinct
operations, so under simple random sampling N × mean(w) is unbiased for T, whatever the sharing pattern (no
assumption of at most two logs per operation, no sampled sharing pairs needed). At a census it equals T.

The CI is the bootstrap-t interval of a mean with the finite-population correction (edits/intervals.py),
on the same vectorised bootstrap as the per-neuron sums: w_i and its merge part play edits and merges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from proofpilot.core.errors import DataError
from proofpilot.edits.bootstrap import GroupedSample, bootstrap, point_statistics
from proofpilot.edits.intervals import SampleIntervals
from proofpilot.edits.records import DistinctStats

METHOD = "N x mean of per-neuron sum of 1/m (m = proofread neurons whose logs hold the operation)"


@dataclass(frozen=True)
class DistinctResult:
    stats: DistinctStats
    intervals: SampleIntervals  # w and its merge part as edits and merges (for the cost CIs)


def neuron_weights(
    roots: np.ndarray, membership: pd.DataFrame, multiplicity: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """(w, merge part of w) per root of `roots` (0 for an empty log), and the weighted rows."""
    rows = membership[membership["root_id"].isin(roots)].drop_duplicates(["root_id", "operation_id"])
    m = multiplicity.drop_duplicates("operation_id").set_index("operation_id")["m"]
    rows = rows.assign(m=rows["operation_id"].map(m))
    if (rows["m"] < 1).any():
        raise DataError("operation multiplicities must be at least 1")
    weight = 1.0 / rows["m"].fillna(1).to_numpy(dtype=float)
    rows = rows.assign(w=weight, w_merge=np.where(rows["is_merge"].to_numpy(dtype=bool), weight, 0.0))
    sums = rows.groupby("root_id")[["w", "w_merge"]].sum().reindex(roots, fill_value=0.0)
    return sums["w"].to_numpy(dtype=float), sums["w_merge"].to_numpy(dtype=float), rows


def grouped_weights(w: np.ndarray, w_merge: np.ndarray) -> GroupedSample:
    """Per-neuron (w, merge part) collapsed to distinct pairs, as the bootstrap takes (edits, merges)."""
    pairs, sizes = np.unique(np.stack([w, w_merge], axis=1), axis=0, return_counts=True)
    return GroupedSample(pairs[:, 0].copy(), pairs[:, 1].copy(), sizes.astype(np.int64), len(w))


def distinct_statistics(
    roots: np.ndarray,
    membership: pd.DataFrame,
    multiplicity: pd.DataFrame,
    population: int,
    n_boot: int,
    rng: np.random.Generator,
    level: float = 0.95,
) -> DistinctResult:
    """Projected distinct operations (all, merges, splits) of the table from the sampled ok `roots`."""
    w, w_merge, rows = neuron_weights(np.asarray(roots, dtype=np.int64), membership, multiplicity)
    grouped = grouped_weights(w, w_merge)
    intervals = SampleIntervals(point_statistics(grouped), bootstrap(grouped, n_boot, rng), population, level)
    missing = int(rows["m"].isna().sum())
    m = rows["m"].fillna(1).to_numpy(dtype=np.int64)
    shared = int((m >= 2).sum())
    note = (
        f"{len(rows):,} logged operations weigh {float(w.sum()):,.1f} distinct ones; "
        f"{shared:,} lie in two or more proofread neurons' logs"
    )
    if missing:
        note += f"; {missing:,} without a looked-up m weigh 1 (an over-estimate)"
    stats = DistinctStats(
        ops=intervals.linear_total(1, 0),
        merges=intervals.linear_total(0, 1),
        splits=intervals.linear_total(1, -1),
        sample_rows=len(rows),
        sample_weight=float(w.sum()),
        shared_rows=shared,
        max_neurons_per_op=int(m.max()) if len(m) else 0,
        rows_without_m=missing,
        method=METHOD,
        note=note,
    )
    return DistinctResult(stats, intervals)
