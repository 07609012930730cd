"""The tail-aware interval of the mean (edits/tail.py): semi-parametric Pareto-tail mean, semi-parametric
bootstrap-t. Coverage is checked on the embedded populations over 60 sampler seeds against the one-sided
binomial bound an exact 95 % interval passes with probability >= 0.99 (Bonferroni over the two cells);
bench/edits_coverage.py measures it over 400 seeds."""

from __future__ import annotations

import numpy as np
import pytest

from proofpilot.datastack.embedded.truth import per_neuron_frame
from proofpilot.edits.calibration import pass_threshold
from proofpilot.edits.sampling import draw_samples, population_root_ids
from proofpilot.edits.tail import GAMMA_CAP, pareto_fit, tail_mean, tail_size

SEEDS = range(60)


def test_hill_index_recovers_a_pareto_tail_and_stays_small_on_a_light_one():
    rng = np.random.default_rng(0)
    heavy = np.floor(3.0 * rng.random(20_000) ** -0.3) - 1  # y = edits + 1 is Pareto with γ = 0.3 above 3
    _, gamma, k, _ = pareto_fit(heavy)
    assert k == tail_size(20_000) and abs(gamma - 0.3) < 0.06
    light = rng.uniform(100, 200, 400).round()
    _, gamma, _, mean = pareto_fit(light)
    assert gamma < 0.05 and mean == pytest.approx(light.mean(), rel=0.02)
    _, gamma, _, _ = pareto_fit(np.floor(rng.random(400) ** -2.0))  # no finite mean: capped
    assert gamma == GAMMA_CAP


def test_heavy_tail_lengthens_the_upper_arm_census_has_no_width():
    rng = np.random.default_rng(1)
    sample = np.floor(rng.lognormal(2.0, 1.2, 100))
    est = tail_mean(sample, 100_000, 0.95, np.random.default_rng(2))
    lo, hi = est.ci
    assert 0 <= lo < est.value < hi and hi - est.value > est.value - lo
    census = tail_mean(sample, len(sample), 0.95, np.random.default_rng(2))
    assert census.ci == (census.value, census.value) == (sample.mean(), sample.mean())
    assert tail_mean(np.full(50, 7.0), 1000, 0.95, np.random.default_rng(2)).ci is None


@pytest.mark.parametrize("profile", ["minnie65_synthetic", "fafb_synthetic"])
def test_tail_interval_covers_the_population_mean(profile):
    frame = per_neuron_frame(profile)
    edits = frame["n_edits"].to_numpy(float)
    population = population_root_ids(frame["root_id"].to_numpy())
    covered = 0
    for seed in SEEDS:
        (sample,) = draw_samples(population, (100,), seed)
        values = edits[np.searchsorted(population, sample.root_ids)]
        lo, hi = tail_mean(values, len(population), 0.95, sample.bootstrap_rng()).ci
        covered += lo <= edits.mean() <= hi
    assert covered >= pass_threshold(len(SEEDS), 0.95, 1 - 0.01 / 2)
