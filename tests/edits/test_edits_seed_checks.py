"""The seed's next steps and numbers: reconciliation rows, R independent resamples, the hierarchical model."""

from __future__ import annotations

import numpy as np
import pytest

from proofpilot.datastack.embedded.truth import per_neuron_frame
from proofpilot.edits.reconcile import seed_rows
from proofpilot.edits.reference import SEED_SAMPLES
from proofpilot.edits.resamples import resample_sets, resample_validation
from proofpilot.edits.sampling import population_root_ids


def _rows():
    return {r.statement: r for r in seed_rows()}


def test_reconciliation_recomputes_the_seed_from_its_inputs():
    rows = _rows()
    mouse = next(s for s in SEED_SAMPLES if s.species == "mouse" and s.n == 100)
    hours = (mouse.projected_merges * 2.0 + mouse.projected_splits * 2.5) / 3600
    assert rows["mouse: 614 GPU-hours"].recomputed == pytest.approx(hours)
    assert rows["mouse: 614 GPU-hours"].units == "node-h"  # the seed's "GPU-hours" are node-hours
    assert round(rows["mouse: 614 GPU-hours"].recomputed) == 614
    # the seed's dollar range does not follow from its own 1-5 s x $2/h arithmetic
    top = rows["fly: sensitivity at 5 s/op ~ $5,000"]
    assert abs(top.recomputed - top.seed_value) / top.seed_value > 0.2
    assert rows["mouse merge:split 0.89:1"].recomputed == pytest.approx(47.1 / 52.9)
    # < 7 % holds for the fly mean, fails for the mouse tail share
    assert rows["n=100 vs 500: < 7 % change in mean (fly)"].recomputed < 7
    assert rows["n=100 vs 500: < 7 % change in tail share (mouse)"].recomputed > 7
    assert all(r.here is None for r in seed_rows())  # `here` is filled from a run only


def test_r_independent_resamples_spread_and_differences():
    frame = per_neuron_frame("fafb_synthetic").assign(status="ok")
    population = population_root_ids(frame["root_id"].to_numpy())
    sets = resample_sets(population, (100, 500), seed=0, r=10)
    assert len(sets) == 10
    firsts = [tuple(group[0].root_ids[:5]) for group in sets]
    assert len(set(firsts)) == 10  # independent draws, not one sample repeated
    out = resample_validation(frame, sets, len(population), 0.95)
    mean100 = out["spread"]["100"]["mean_edits"]
    assert len(mean100["values"]) == 10 and mean100["min"] <= mean100["mean"] <= mean100["max"]
    assert mean100["sd"] > out["spread"]["500"]["mean_edits"]["sd"]  # larger samples vary less
    diff = next(d for d in out["differences"] if d["statistic"] == "mean_edits")
    lo, hi = diff["difference_ci"]
    assert lo <= diff["difference"] <= hi and diff["resamples"] == 10


def test_hierarchical_model_predictive_interval_is_coherent():
    from proofpilot.edits.hierarchical import DatasetCounts, model_intervals

    frame = per_neuron_frame("minnie65_synthetic")
    rng = np.random.default_rng(3)
    idx = rng.choice(len(frame), 100, replace=False)
    data = DatasetCounts("m", frame["n_edits"].to_numpy()[idx], frame["n_merges"].to_numpy()[idx], len(frame))
    (fit,) = model_intervals([data], seed=0)
    lo, hi = fit.projected_total.ci
    assert data.edits.sum() < lo < fit.projected_total.value < hi
    assert fit.mean_edits.ci[0] * len(frame) == pytest.approx(lo)
    assert 0 < fit.merge_share.ci[0] < data.merges.sum() / data.edits.sum() < fit.merge_share.ci[1] < 1


def test_hierarchical_fit_of_the_same_shape_reuses_the_compiled_sampler():
    from proofpilot.edits import hierarchical

    rng = np.random.default_rng(5)
    fits = []
    for seed in (1, 2):
        edits = rng.integers(0, 40, 60)
        data = hierarchical.DatasetCounts("d", edits, rng.binomial(edits, 0.3), 5000)
        fits.append(hierarchical.fit([data], seed=seed))
    (sampler,) = [s for shape, s in hierarchical._SAMPLERS.items() if shape[0] == 1 and shape[1] == 128]
    assert sampler._cache_size() == 1  # compiled once, run twice
    assert fits[0]["loc"].shape == fits[1]["loc"].shape == (hierarchical.DRAWS, 1)
    assert not np.allclose(fits[0]["loc"], fits[1]["loc"])
