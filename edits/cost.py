"""The seed's cost framework, with units made explicit and CIs carried from the operation counts.

    node-seconds = merges × t_merge + splits × t_split

t_merge / t_split are seconds of a whole node (the seed: "per-operation inference times on dual H100"), so
node-hours = node-seconds / 3600 and GPU-hours = node-hours × GPUs per node. The seed reported node-hours as
"GPU-hours" (614 for mouse is 614 node-hours = 1,228 GPU-hours on a dual-H100 node).
Dollars = GPU-hours × $/GPU-h.

CIs: on per-neuron sums the node-seconds of a neuron are t_split·edits + (t_merge − t_split)·merges, a linear
statistic, so its projected total gets its own bootstrap-t interval (merges and splits move together; adding
their separate endpoints would over-state the width). Scaling to hours, GPU-hours and dollars is exact. On the
deduplicated counts the merge and split intervals are combined endpoint by endpoint (conservative).
"""

from __future__ import annotations

from proofpilot.edits.intervals import SampleIntervals
from proofpilot.edits.records import (
    CostBasis,
    CostEstimate,
    DedupStats,
    Estimate,
    SensitivityPoint,
)

SECONDS_PER_HOUR = 3600.0
SENSITIVITY_SECONDS = (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0)
CONSERVATIVE = "merge and split interval endpoints added (conservative)"
PER_NEURON_SUMS = "per-neuron sums"
SEEDS_WAY = "per-neuron sums (the seed's way: a shared split counted once per neuron)"
DISTINCT = "distinct operations (1/m-weighted)"


def node_hours(merges: float, splits: float, basis: CostBasis) -> float:
    """The seed's arithmetic: (merges × t_merge + splits × t_split) / 3600."""
    return (merges * basis.t_merge_s + splits * basis.t_split_s) / SECONDS_PER_HOUR


def _units(
    label: str, counts_basis: str, merges: Estimate, splits: Estimate, hours: Estimate, basis: CostBasis
) -> CostEstimate:
    gpu = hours.scaled(basis.gpus_per_node)
    return CostEstimate(label, counts_basis, merges, splits, hours, gpu, gpu.scaled(basis.usd_per_gpu_hour))


def sample_cost(
    label: str, intervals: SampleIntervals, basis: CostBasis, counts_basis: str = PER_NEURON_SUMS
) -> CostEstimate:
    """Cost of the whole table projected from one sample: on per-neuron sums (the seed's Table 1 basis) from
    the sample's intervals, or on distinct operations from edits.distinct's (w, merge part of w) intervals."""
    a, b = basis.t_split_s, basis.t_merge_s - basis.t_split_s
    hours = intervals.linear_total(a, b).scaled(1 / SECONDS_PER_HOUR)
    return _units(
        label, counts_basis, intervals.linear_total(0, 1), intervals.linear_total(1, -1), hours, basis
    )


def dedup_cost(label: str, dedup: DedupStats, basis: CostBasis) -> CostEstimate:
    """Cost on the deduplicated (unique-operation) counts; a bound where those are not identifiable."""
    um, us = dedup.unique_merges, dedup.unique_splits
    value = None if um.value is None or us.value is None else node_hours(um.value, us.value, basis)
    ci = None
    if um.ci is not None and us.ci is not None:
        ci = (node_hours(um.ci[0], us.ci[0], basis), node_hours(um.ci[1], us.ci[1], basis))
    method = CONSERVATIVE if value is not None else f"bound: {dedup.unique_ops.method}"
    return _units(label, "deduplicated", um, us, Estimate(value, ci, method), basis)


def sensitivity(
    intervals: SampleIntervals, basis: CostBasis, seconds: tuple[float, ...] = SENSITIVITY_SECONDS
) -> tuple[SensitivityPoint, ...]:
    """Uniform seconds per operation (merge or split) over the projected per-neuron-sum total."""
    total = intervals.linear_total(1, 0)
    points = []
    for t in seconds:
        hours = total.scaled(t / SECONDS_PER_HOUR)
        gpu = hours.scaled(basis.gpus_per_node)
        points.append(SensitivityPoint(t, hours, gpu, gpu.scaled(basis.usd_per_gpu_hour)))
    return tuple(points)
