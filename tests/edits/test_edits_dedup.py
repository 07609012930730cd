"""Per-neuron sums vs distinct operations: a shared split counts once; the pair estimator; census; bounds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from proofpilot.datastack.records import MEMBERSHIP_COLUMNS, PER_NEURON_COLUMNS
from proofpilot.edits.bootstrap import GroupedSample, bootstrap, point_statistics
from proofpilot.edits.dedup import MIN_PAIRS, dedup_statistics
from proofpilot.edits.intervals import SampleIntervals
from proofpilot.edits.stats import sample_statistics


def paired_population(n_pairs: int, own: int, shared: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """2·n_pairs neurons with `own` operations (half merges) each, sharing `shared` splits within a pair."""
    rows = []
    for pair in range(n_pairs):
        for side in (0, 1):
            root = 2 * pair + side + 1
            rows += [(root, 10**6 * root + j, j < own // 2) for j in range(own)]
            rows += [(root, 10**9 + 1000 * pair + j, False) for j in range(shared)]
    membership = pd.DataFrame(rows, columns=list(MEMBERSHIP_COLUMNS)).astype(MEMBERSHIP_COLUMNS)
    counts = membership.groupby("root_id").agg(n_edits=("is_merge", "size"), n_merges=("is_merge", "sum"))
    per = counts.reset_index().assign(status="ok", reason="")
    per["n_splits"] = per["n_edits"] - per["n_merges"]
    return per[list(PER_NEURON_COLUMNS)].astype(PER_NEURON_COLUMNS), membership


def _intervals(per: pd.DataFrame, population: int, seed: int = 0) -> SampleIntervals:
    grouped = GroupedSample.from_counts(per["n_edits"].to_numpy(int), per["n_merges"].to_numpy(int))
    rng = np.random.default_rng(seed)
    return SampleIntervals(point_statistics(grouped), bootstrap(grouped, 1000, rng), population, 0.95)


def test_split_shared_by_two_sampled_neurons_counts_once():
    per, membership = paired_population(n_pairs=3, own=4, shared=2)
    sample = per[per["root_id"].isin([1, 2, 3])]  # pair 0 complete, neuron 3 alone
    result = sample_statistics(
        "n3", sample, membership[membership["root_id"].isin([1, 2, 3])], 6, 1000, np.random.default_rng(0)
    )
    d = result.stats.dedup
    assert d.sample_edit_rows == 3 * 6  # per-neuron sums: the shared splits of pair 0 twice
    assert d.sample_unique_ops == 3 * 6 - 2
    assert d.sample_shared_ops == 2
    assert d.sharing_pairs_observed == 1
    assert d.sample_dedup_factor == pytest.approx(16 / 18)
    assert d.max_neurons_per_op == 2


def test_census_counts_are_exact():
    per, membership = paired_population(n_pairs=5, own=6, shared=3)
    stats = sample_statistics("full", per, membership, len(per), 1000, np.random.default_rng(1)).stats
    d = stats.dedup
    assert stats.projected_total.value == pytest.approx(10 * 9)
    assert d.unique_ops.value == 10 * 6 + 5 * 3 and d.unique_ops.ci == (d.unique_ops.value,) * 2
    assert d.overcount.value == 15
    assert d.unique_splits.value == 10 * 3 + 15 and d.unique_merges.value == 10 * 3
    assert d.dedup_factor.value == pytest.approx(75 / 90)


def test_pair_estimator_is_unbiased_and_its_interval_covers():
    """Population of 300 pairs sharing 1..8 splits each; SRS of 250 of 600 neurons, 60 fixed seeds."""
    rng = np.random.default_rng(7)
    n_pairs, n = 300, 250
    per, membership = paired_population(n_pairs, own=10, shared=0)
    shared = rng.integers(1, 9, size=n_pairs)
    extra = [
        (2 * p + side + 1, 10**9 + 1000 * p + j, False)
        for p in range(n_pairs)
        for side in (0, 1)
        for j in range(shared[p])
    ]
    membership = pd.concat([membership, pd.DataFrame(extra, columns=list(MEMBERSHIP_COLUMNS))]).astype(
        MEMBERSHIP_COLUMNS
    )
    counts = membership.groupby("root_id").size()
    per["n_edits"] = per["root_id"].map(counts).astype("Int64")
    per["n_splits"] = per["n_edits"] - per["n_merges"]
    truth = membership["operation_id"].nunique()
    estimates, hits = [], 0
    for seed in range(60):
        roots = np.random.default_rng(seed).choice(per["root_id"].to_numpy(), n, replace=False)
        sample = per[per["root_id"].isin(roots)]
        d = dedup_statistics(
            membership[membership["root_id"].isin(roots)], _intervals(sample, len(per), seed), 0.95
        )
        assert d.identifiable and d.sharing_pairs_observed >= MIN_PAIRS
        estimates.append(d.unique_ops.value)
        hits += d.unique_ops.ci[0] <= truth <= d.unique_ops.ci[1]
    assert np.mean(estimates) == pytest.approx(truth, rel=0.01)
    assert hits >= 54  # nominal 95 % of 60, the interval is conservative by construction


def test_too_few_sharing_pairs_gives_a_bound_not_a_number():
    per, membership = paired_population(n_pairs=50, own=8, shared=2)
    roots = per["root_id"].to_numpy()[::2][:20]  # one neuron of each of 20 pairs: no pair sampled
    sample = per[per["root_id"].isin(roots)]
    d = dedup_statistics(membership[membership["root_id"].isin(roots)], _intervals(sample, 100_000), 0.95)
    assert not d.identifiable
    assert d.unique_ops.value is None and d.overcount.value is None
    total = _intervals(sample, 100_000).linear_total(1, 0)
    assert d.unique_ops.ci[0] == pytest.approx(total.ci[0] / 2) and d.unique_ops.ci[1] == pytest.approx(
        total.ci[1]
    )
    assert "cannot be estimated" in d.note
