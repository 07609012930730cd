"""Per-sample statistics, the grouped bootstrap engine and the CI methods, on small hand-made frames."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from proofpilot.core.errors import DataError
from proofpilot.datastack.records import PER_NEURON_COLUMNS
from proofpilot.edits.bootstrap import GroupedSample, bootstrap, point_statistics, statistics
from proofpilot.edits.intervals import CENSUS, SampleIntervals, quantile_interval
from proofpilot.edits.stats import sample_statistics


def frame(edits, merges, errors=0) -> pd.DataFrame:
    n = len(edits)
    rows = pd.DataFrame(
        {
            "root_id": np.arange(1, n + 1 + errors, dtype=np.int64),
            "status": ["ok"] * n + ["error"] * errors,
            "reason": [""] * n + ["HTTP 500: boom"] * errors,
            "n_edits": pd.array(list(edits) + [pd.NA] * errors, dtype="Int64"),
            "n_merges": pd.array(list(merges) + [pd.NA] * errors, dtype="Int64"),
            "n_splits": pd.array(
                [e - m for e, m in zip(edits, merges, strict=True)] + [pd.NA] * errors, dtype="Int64"
            ),
        }
    )
    return rows.astype(PER_NEURON_COLUMNS)


def membership_for(per_neuron: pd.DataFrame) -> pd.DataFrame:
    """Every neuron's own operations (no sharing): ids are unique per (neuron, slot)."""
    ok = per_neuron[per_neuron["status"] == "ok"]
    rows = [
        (r, 1000 * r + j, j < m)
        for r, e, m in zip(ok["root_id"], ok["n_edits"], ok["n_merges"], strict=True)
        for j in range(int(e))
    ]
    return pd.DataFrame(rows, columns=["root_id", "operation_id", "is_merge"]).astype(
        {"root_id": "int64", "operation_id": "int64", "is_merge": "bool"}
    )


def stats_of(per_neuron, population=10_000, seed=0, n_boot=1000):
    return sample_statistics(
        "s", per_neuron, membership_for(per_neuron), population, n_boot, np.random.default_rng(seed)
    )


def test_hand_computed_point_statistics():
    # edits 1,2,3,4,10 (sum 20), merges 1,1,2,2,5 (sum 11)
    per = frame([1, 2, 3, 4, 10], [1, 1, 2, 2, 5])
    s = stats_of(per, population=1000).stats
    assert s.mean_edits.value == pytest.approx(4.0)
    assert s.median_edits.value == pytest.approx(3.0)
    assert s.sd_edits == pytest.approx(np.std([1, 2, 3, 4, 10], ddof=1))
    assert s.merge_share.value == pytest.approx(11 / 20)
    assert s.split_share.value == pytest.approx(9 / 20)
    # p95 by linear interpolation: 4 + 0.8 * (10 - 4) = 8.8; only the 10 lies above it
    assert s.p95.value == pytest.approx(8.8)
    assert s.tail_count == 1
    assert s.tail_share.value == pytest.approx(10 / 20)
    # Gini = sum((2i - n - 1) x_(i)) / (n sum x) = (-4 - 4 + 0 + 8 + 40) / 100
    assert s.gini.value == pytest.approx(0.4)
    assert s.top_shares["top_10pct"].value == pytest.approx(0.5)  # ceil(0.5) = 1 neuron
    assert s.projected_total.value == pytest.approx(4.0 * 1000)
    assert s.projected_merges.value == pytest.approx(11 / 5 * 1000)
    assert s.projected_splits.value == pytest.approx(9 / 5 * 1000)
    assert s.percentiles["p25"] == 2.0 and s.percentiles["p75"] == 4.0


def test_grouped_statistics_equal_index_resampling_exactly():
    """A weight row built from explicit index draws gives the statistics of values[idx] (numpy rules)."""
    rng = np.random.default_rng(5)
    for _ in range(30):
        n = int(rng.integers(3, 80))
        edits = rng.integers(0, 40, size=n)
        merges = (edits * rng.random(n)).astype(int)
        grouped = GroupedSample.from_counts(edits, merges)
        keys = {(e, m): k for k, (e, m) in enumerate(zip(grouped.edits, grouped.merges, strict=True))}
        group_of = np.array([keys[(float(e), float(m))] for e, m in zip(edits, merges, strict=True)])
        idx = rng.integers(0, n, size=(4, n))
        weights = np.stack([np.bincount(group_of[row], minlength=len(grouped.sizes)) for row in idx])
        draws = statistics(grouped, weights)
        for r in range(4):
            x, mm = edits[idx[r]], merges[idx[r]]
            xs = np.sort(x)
            assert draws.median[r] == pytest.approx(np.median(x))
            assert draws.p95[r] == pytest.approx(np.percentile(x, 95))
            assert draws.linear_mean(1, 0)[r] == pytest.approx(x.mean())
            assert draws.linear_sd(2.0, 0.5)[r] == pytest.approx(np.std(2.0 * x + 0.5 * mm, ddof=1))
            if x.sum() == 0:
                continue
            assert draws.merge_share()[r] == pytest.approx(mm.sum() / x.sum())
            assert draws.tail_share[r] == pytest.approx(x[x > np.percentile(x, 95)].sum() / x.sum())
            i = np.arange(1, n + 1)
            assert draws.gini[r] == pytest.approx(((2 * i - n - 1) * xs).sum() / (n * xs.sum()))
            for frac in (0.01, 0.05, 0.10):
                top = math.ceil(frac * n)
                assert draws.top_shares[frac][r] == pytest.approx(xs[-top:].sum() / xs.sum())


def test_error_rows_are_excluded_and_counted_never_zero():
    with_errors = stats_of(frame([5, 7, 9, 11], [1, 2, 3, 4], errors=3)).stats
    without = stats_of(frame([5, 7, 9, 11], [1, 2, 3, 4])).stats
    assert with_errors.n == 7 and with_errors.n_ok == 4 and with_errors.n_errors == 3
    assert with_errors.error_reasons == {"HTTP 500: boom": 3}
    assert with_errors.mean_edits.value == pytest.approx(8.0) == without.mean_edits.value  # not (32 + 0) / 7
    assert with_errors.min_edits == 5
    assert with_errors.n_zero_edits == 0


def test_all_errors_is_a_data_error():
    with pytest.raises(DataError, match="only 1 of 4"):
        stats_of(frame([3], [1], errors=3))


def test_census_has_no_sampling_error():
    per = frame([3, 8, 1, 40, 12, 0, 5], [1, 4, 0, 30, 6, 0, 2])
    s = stats_of(per, population=len(per)).stats
    for est in (s.mean_edits, s.merge_share, s.median_edits, s.p95, s.tail_share, s.gini, s.projected_total):
        assert est.ci == (est.value, est.value)
        assert est.method == CENSUS
    assert s.projected_total.value == pytest.approx(sum([3, 8, 1, 40, 12, 0, 5]))


def test_finite_population_correction_scales_the_interval():
    rng = np.random.default_rng(1)
    edits = rng.negative_binomial(2, 0.1, size=200)
    per = frame(edits, (edits * 0.6).astype(int))
    huge = stats_of(per, population=10**9, seed=3).stats
    half = stats_of(per, population=400, seed=3).stats  # n/N = 0.5: same draws, width x sqrt(0.5)
    for name in ("mean_edits", "merge_share", "tail_share"):
        assert getattr(half, name).width == pytest.approx(
            getattr(huge, name).width * math.sqrt(0.5), rel=1e-6
        )


def test_intervals_cover_a_known_population_mean():
    """Coverage of the bootstrap-t interval over 120 fixed samples of a skewed population (lognormal)."""
    rng = np.random.default_rng(42)
    population = np.maximum(np.round(rng.lognormal(np.log(300), 0.6, size=5000)), 1).astype(int)
    merges = rng.binomial(population, 0.45)
    hits = 0
    for seed in range(120):
        rng = np.random.default_rng(seed)
        idx = rng.choice(len(population), 150, replace=False)
        grouped = GroupedSample.from_counts(population[idx], merges[idx])
        intervals = SampleIntervals(
            point_statistics(grouped), bootstrap(grouped, 1000, rng), len(population), 0.95
        )
        lo, hi = intervals.linear_mean(1, 0).ci
        hits += lo <= population.mean() <= hi
    assert 0.89 <= hits / 120 <= 0.995


def test_quantile_interval_is_distribution_free_and_contains_the_estimate():
    values = np.array([7] * 40 + [8] * 30 + [9] * 20 + list(range(10, 20)))
    est = quantile_interval(values, 0.5, population=100_000, level=0.95)
    assert est.value == pytest.approx(np.median(values))
    assert est.ci[0] <= est.value <= est.ci[1]
    assert est.ci[0] >= 7 and est.ci[1] <= 9
    census = quantile_interval(values, 0.5, population=len(values), level=0.95)
    assert census.ci == (census.value, census.value)


def test_point_statistics_of_a_single_group():
    grouped = GroupedSample.from_counts(np.array([4, 4, 4]), np.array([1, 1, 1]))
    p = point_statistics(grouped)
    assert p.median[0] == 4 and p.gini[0] == pytest.approx(0.0) and p.merge_share()[0] == pytest.approx(0.25)
    with pytest.raises(ValueError):
        GroupedSample.from_counts(np.array([1, 2]), np.array([2, 0]))


@pytest.mark.parametrize("seed", range(8))
def test_small_heavy_tailed_samples_keep_count_intervals_in_their_support(seed):
    """n = 4 from a heavy-tailed count law: bootstrap-t's lower end goes below 0 on such samples; every count
    interval must stay >= 0, hold its estimate, and the sample is flagged small."""
    rng = np.random.default_rng(seed)
    edits = np.concatenate([rng.integers(1, 4, size=3), rng.integers(60, 400, size=1)])
    merges = np.array([rng.integers(0, e + 1) for e in edits])
    s = stats_of(frame(edits, merges), population=200_000, seed=seed).stats
    assert s.small_sample
    counts = [s.mean_edits, s.mean_merges, s.mean_splits, s.projected_total, s.projected_merges,
              s.projected_splits]  # fmt: skip
    for est in counts:
        assert est.ci is not None and 0 <= est.ci[0] <= est.value <= est.ci[1], (est, s.mean_edits.method)


def test_a_sample_of_thirty_is_not_flagged_small():
    edits = np.arange(1, 31)
    assert not stats_of(frame(edits, edits // 2)).stats.small_sample
    assert stats_of(frame(edits[:29], edits[:29] // 2)).stats.small_sample
