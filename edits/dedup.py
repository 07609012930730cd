"""Deduplicated operation counts: per-neuron sums count a split shared by two proofread neurons twice.

Let E = Σ_i e_i be the population's per-neuron sum (what N × mean edits estimates, and what the seed's Table 1
reports) and T the number of distinct operations. If every operation lies in at most two proofread neurons'
logs, E − T = P, the number of shared operations, and P = Σ_π s_π over neuron pairs π = {i, j} sharing s_π
operations.

Estimator (Horvitz–Thompson over neuron pairs). Under simple random sampling of n of N neurons a given pair is
fully sampled with probability p = n(n−1) / (N(N−1)), so P̂ = Σ_{observed pairs} s_π / p is unbiased, with
variance estimate (1 − p)/p² · Σ s_π² (joint inclusions of overlapping pairs ignored). T̂ = Ê − P̂. The CI of
T̂ combines the bootstrap-t arms of Ê with the normal arm of P̂ in quadrature (their positive covariance is
ignored, which widens the interval). If an operation lies in k ≥ 3 logs the pair count is C(k, 2) > k − 1, so
T̂ is then a conservative (low) estimate; `max_neurons_per_op` reports what the sample shows.

At small sampling fractions p is tiny (fly-like n = 500: p ≈ 1.3e-5) and almost no sharing pair is sampled: P
is then **not identifiable** from the sample. Rather than report the per-neuron sum as if nothing were shared,
the estimate is left empty and only the bound T ∈ [max(sample unique ops, E_lo / 2), E_hi] is given. The
threshold is MIN_PAIRS observed sharing pairs. For a census the counts are exact.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from itertools import combinations
from statistics import NormalDist

import numpy as np
import pandas as pd

from proofpilot.edits.intervals import CENSUS, SampleIntervals
from proofpilot.edits.records import DedupStats, Estimate

log = logging.getLogger(__name__)

MIN_PAIRS = 10
HT_METHOD = "Horvitz-Thompson over sampled neuron pairs (normal CI)"
COMBINED_METHOD = "per-neuron-sum bootstrap-t arm and pair HT arm combined in quadrature"
BOUND_METHOD = "bound only: too few sharing neuron pairs in the sample to estimate the overlap"


def _pair_table(sample: pd.DataFrame) -> pd.DataFrame:
    """One row per (neuron pair, shared operation): columns a, b, is_merge (a < b)."""
    ops = sample["operation_id"].to_numpy()
    roots = sample["root_id"].to_numpy()
    merge = sample["is_merge"].to_numpy(dtype=bool)
    order = np.lexsort((roots, ops))
    ops, roots, merge = ops[order], roots[order], merge[order]
    _, first, counts = np.unique(ops, return_index=True, return_counts=True)
    two = first[counts == 2]  # the common case: vectorised
    a, b, m = [roots[two]], [roots[two + 1]], [merge[two]]
    for start, k in zip(first[counts > 2].tolist(), counts[counts > 2].tolist(), strict=True):
        combos = np.array(list(combinations(range(start, start + k), 2)))
        a.append(roots[combos[:, 0]])
        b.append(roots[combos[:, 1]])
        m.append(np.full(len(combos), merge[start]))
    return pd.DataFrame({"a": np.concatenate(a), "b": np.concatenate(b), "is_merge": np.concatenate(m)})


def _ht(pair_sums: np.ndarray, p: float) -> tuple[float, float]:
    """HT estimate of Σ s over all population pairs and its SE."""
    estimate = float(pair_sums.sum()) / p
    se = math.sqrt((1 - p) / p**2 * float((pair_sums.astype(float) ** 2).sum()))
    return estimate, se


def _combine(total: Estimate, overcount: float, overcount_se: float, z: float, floor: float) -> Estimate:
    value = total.value - overcount
    arm = z * overcount_se
    lo = value - math.hypot(total.value - total.ci[0], arm)
    hi = value + math.hypot(total.ci[1] - total.value, arm)
    return Estimate(value, (max(lo, floor), hi), COMBINED_METHOD)


def _bound(total: Estimate, floor: float) -> Estimate:
    return Estimate(None, (max(floor, total.ci[0] / 2), total.ci[1]), BOUND_METHOD)


@dataclass(frozen=True)
class _SampleCounts:
    """What the sample itself shows: the first eight fields of DedupStats."""

    rows: int
    unique: int
    shared: int
    sample_factor: float | None
    n_pairs: int
    max_k: int
    p: float

    def stats(self, identifiable: bool, **estimates) -> DedupStats:
        return DedupStats(
            self.rows, self.unique, self.shared, self.sample_factor, self.n_pairs, self.max_k, self.p,
            identifiable, **estimates,
        )  # fmt: skip


def dedup_statistics(membership: pd.DataFrame, intervals: SampleIntervals, level: float) -> DedupStats:
    """Sample and projected unique-operation counts for the sampled ok neurons in `membership`."""
    sample = membership.drop_duplicates(["root_id", "operation_id"])
    n, population = intervals.point.n, intervals.population
    rows = len(sample)
    expected_rows = int(intervals.point.s_e[0])
    if rows != expected_rows:
        log.warning(
            "membership has %d rows for the sample but per-neuron edits sum to %d", rows, expected_rows
        )
    op_ids, first, k = np.unique(sample["operation_id"].to_numpy(), return_index=True, return_counts=True)
    unique = len(op_ids)
    unique_merges = int(sample["is_merge"].to_numpy(dtype=bool)[first].sum())
    pairs = _pair_table(sample)
    pair_sums = pairs.groupby(["a", "b"]).size().to_numpy() if len(pairs) else np.zeros(0)
    counts = _SampleCounts(
        rows=rows,
        unique=unique,
        shared=int((k >= 2).sum()),
        sample_factor=unique / rows if rows else None,
        n_pairs=len(pair_sums),
        max_k=int(k.max()) if unique else 0,
        p=1.0 if population <= 1 else n * (n - 1) / (population * (population - 1)),
    )
    floors = {"all": unique, "merges": unique_merges, "splits": unique - unique_merges}
    if intervals.fpc == 0.0:  # census: every count is exact
        merge_over = float(sample["is_merge"].sum()) - unique_merges
        return _census(counts, floors, merge_over)
    totals = {
        "all": intervals.linear_total(1, 0),
        "merges": intervals.linear_total(0, 1),
        "splits": intervals.linear_total(1, -1),
    }
    if counts.n_pairs < MIN_PAIRS:
        return _bound_only(counts, totals, floors)
    return _estimated(counts, pairs, pair_sums, totals, floors, intervals, level)


def _census(counts: _SampleCounts, floors: dict[str, int], merge_over: float) -> DedupStats:
    over = float(counts.rows - counts.unique)
    exact = {k: Estimate(float(v), (float(v), float(v)), CENSUS) for k, v in floors.items()}
    factor = counts.sample_factor
    return counts.stats(
        True,
        overcount=Estimate(over, (over, over), CENSUS),
        unique_ops=exact["all"],
        unique_merges=exact["merges"],
        unique_splits=exact["splits"],
        dedup_factor=Estimate(factor, None if factor is None else (factor, factor), CENSUS),
        note=f"census: {counts.unique:,} distinct operations, {over:,.0f} counted twice by per-neuron sums"
        + (f" ({merge_over:,.0f} of them merges)" if merge_over else ""),
    )


def _bound_only(counts: _SampleCounts, totals: dict[str, Estimate], floors: dict[str, int]) -> DedupStats:
    note = (
        f"{counts.n_pairs} sharing neuron pair(s) seen (need {MIN_PAIRS}); a given pair is fully "
        f"sampled with probability {counts.p:.2e}, so the population's shared operations cannot be estimated "
        "from this sample. "
        "Bound assumes each operation lies in at most two proofread neurons' logs."
    )
    bounds = {k: _bound(totals[k], floors[k]) for k in totals}
    return counts.stats(
        False,
        overcount=Estimate(None, (float(counts.rows - counts.unique), totals["all"].ci[1] / 2), BOUND_METHOD),
        unique_ops=bounds["all"],
        unique_merges=bounds["merges"],
        unique_splits=bounds["splits"],
        dedup_factor=Estimate(None, (0.5, 1.0), BOUND_METHOD),
        note=note,
    )


def _estimated(
    counts: _SampleCounts,
    pairs: pd.DataFrame,
    pair_sums: np.ndarray,
    totals: dict[str, Estimate],
    floors: dict[str, int],
    intervals: SampleIntervals,
    level: float,
) -> DedupStats:
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p, n, population = counts.p, intervals.point.n, intervals.population
    over, over_se = _ht(pair_sums, p)
    by_type = {}
    for key, mask in (("merges", pairs["is_merge"]), ("splits", ~pairs["is_merge"])):
        sums = pairs[mask].groupby(["a", "b"]).size().to_numpy() if mask.any() else np.zeros(0)
        by_type[key] = _ht(sums, p)
    low = max(float(counts.rows - counts.unique), over - z * over_se)
    overcount = Estimate(over, (low, over + z * over_se), HT_METHOD)
    # dedup factor T/E by the delta method; Ê's SE from the FPC-corrected analytic SE of the per-neuron sum
    e_hat = totals["all"].value
    e_se = population * float(intervals.point.linear_sd(1, 0)[0]) / math.sqrt(n) * intervals.fpc
    ratio = over / e_hat
    ratio_se = ratio * math.hypot(over_se / over if over else 0.0, e_se / e_hat)
    factor = Estimate(
        1 - ratio,
        (max(0.5, 1 - ratio - z * ratio_se), min(1.0, 1 - ratio + z * ratio_se)),
        "delta method on overcount / per-neuron sum",
    )
    conservative = (
        f"; an operation in {counts.max_k} sampled logs makes this a conservative estimate"
        if counts.max_k > 2
        else ""
    )
    return counts.stats(
        True,
        overcount=overcount,
        unique_ops=_combine(totals["all"], over, over_se, z, floors["all"]),
        unique_merges=_combine(totals["merges"], *by_type["merges"], z, floors["merges"]),
        unique_splits=_combine(totals["splits"], *by_type["splits"], z, floors["splits"]),
        dedup_factor=factor,
        note=(
            f"{counts.n_pairs} sharing neuron pairs seen (pair inclusion probability {p:.2e}); "
            f"estimated {over:,.0f} operations counted twice by per-neuron sums{conservative}"
        ),
    )
