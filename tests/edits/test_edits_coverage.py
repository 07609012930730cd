"""Coverage of the Table 1 intervals as a measured property (issue 16), on the embedded populations.

For each profile and n in (100, 500), SEEDS independent sampler seeds draw samples through the same sampling
and statistics code as `proofpilot edits`; the test counts how often the 95 % intervals of the mean, merge
share and projected total hold the population's own value (ground truth known).

Tolerance: with an exact 95 % interval the count X of covering seeds is Binomial(SEEDS, 0.95). The test
asks X >= k for every one of the 8 (profile, n, mean / merge share) cells, with k the one-sided binomial lower
bound `pass_threshold(SEEDS, 0.95, 1 - 0.01/8)`: by Bonferroni's inequality an exact interval passes all eight
with probability >= 0.99 (the projected total is N x the mean, so it covers on the same seeds and adds no
cell). For SEEDS = 60 that is k = 51 (85 %). It fails intervals that are far too narrow (true coverage
0.70: a cell passes with probability 0.006); it cannot tell 0.92 from 0.95 at this many seeds (0.85 still
passes a cell with probability 0.59): bench/edits_coverage.py measures that over 400 seeds.
Sampler seeds 0..59, disjoint from the bench's 1000 onwards.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom

from proofpilot.datastack.embedded.truth import membership_frame, per_neuron_frame
from proofpilot.edits.calibration import pass_threshold
from proofpilot.edits.sampling import draw_samples, population_root_ids
from proofpilot.edits.stats import sample_statistics

SEEDS = range(60)
CELLS = 8
THRESHOLD = pass_threshold(len(SEEDS), 0.95, 1 - 0.01 / CELLS)


def test_threshold_passes_an_exact_interval_with_probability_099():
    assert binom.sf(THRESHOLD - 1, len(SEEDS), 0.95) ** CELLS >= 0.99
    assert binom.sf(THRESHOLD, len(SEEDS), 0.95) < 1 - 0.01 / CELLS  # k is the largest such count
    assert binom.sf(THRESHOLD - 1, len(SEEDS), 0.70) < 0.01  # a 70 % interval fails


@pytest.mark.parametrize("profile", ["minnie65_synthetic", "fafb_synthetic"])
@pytest.mark.parametrize("n", [100, 500])
def test_table1_intervals_cover_the_population_value(profile, n):
    per_neuron = per_neuron_frame(profile)
    population = population_root_ids(per_neuron["root_id"].to_numpy())
    edits, merges = per_neuron["n_edits"].to_numpy(), per_neuron["n_merges"].to_numpy()
    truth = {"mean": edits.mean(), "merge_share": merges.sum() / edits.sum(), "total": float(edits.sum())}
    indexed = per_neuron.set_index("root_id")
    inside = dict.fromkeys(truth, 0)
    for seed in SEEDS:
        (sample,) = draw_samples(population, (n,), seed)
        rows = indexed.loc[sample.root_ids].reset_index()
        membership = membership_frame(profile, np.searchsorted(population, sample.root_ids))
        stats = sample_statistics(
            sample.label, rows, membership, len(population), 1000, sample.bootstrap_rng()
        ).stats
        for key, est in (("mean", stats.mean_edits), ("merge_share", stats.merge_share),
                         ("total", stats.projected_total)):  # fmt: skip
            inside[key] += est.ci[0] <= truth[key] <= est.ci[1]
    assert min(inside.values()) >= THRESHOLD, (inside, THRESHOLD)
