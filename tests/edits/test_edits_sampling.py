"""Simple random samples without replacement: independent streams per size, nested on request, bad sizes."""

from __future__ import annotations

import numpy as np
import pytest

from proofpilot.core.errors import ConfigError, DataError
from proofpilot.datastack.source import DataSource
from proofpilot.edits.records import EditsConfig
from proofpilot.edits.sampling import draw_samples, population_root_ids, union_root_ids

POP = np.arange(10_000, 12_314, dtype=np.int64)


def test_samples_are_without_replacement_and_reproducible():
    a = draw_samples(POP, (100, 500), seed=3)
    b = draw_samples(POP, (500, 100), seed=3)  # order of the sizes does not matter
    for s, t in zip(a, b, strict=True):
        assert s.label == t.label and np.array_equal(s.root_ids, t.root_ids)
        assert len(np.unique(s.root_ids)) == s.n and np.isin(s.root_ids, POP).all()
    assert not np.array_equal(draw_samples(POP, (100,), seed=4)[0].root_ids, a[0].root_ids)


def test_sizes_are_independent_draws_unless_nested():
    overlaps = []
    for seed in range(20):
        small, big = draw_samples(POP, (100, 500), seed=seed)
        overlaps.append(np.isin(small.root_ids, big.root_ids).sum())
    # independent draws: E[overlap] = 100 * 500 / 2314 = 21.6; a nested design would give 100 every time
    assert 15 < np.mean(overlaps) < 28
    small, big = draw_samples(POP, (100, 500), seed=0, nested=True)
    assert np.isin(small.root_ids, big.root_ids).all()


def test_full_and_union():
    samples = draw_samples(POP, (50,), seed=0, full=True)
    assert samples[-1].label == "full" and np.array_equal(samples[-1].root_ids, POP)
    assert len(union_root_ids(samples)) == len(POP)
    assert samples[0].bootstrap_rng().integers(1 << 30) != samples[1].bootstrap_rng().integers(1 << 30)


def test_sample_larger_than_table_is_a_one_line_config_error():
    with pytest.raises(
        ConfigError, match=r"sample size 5000 is larger than the proofread table \(2,314 neurons\)"
    ):
        draw_samples(POP, (100, 5000), seed=0)


def test_population_drops_repeats_and_rejects_garbage():
    assert population_root_ids([5, 3, 5, 9]).tolist() == [5, 3, 9]
    with pytest.raises(DataError):
        population_root_ids([])
    with pytest.raises(DataError):
        population_root_ids([1.5, 2.0])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sample_sizes": (1,)}, "at least 2"),
        ({"sample_sizes": (100, 100)}, "distinct"),
        ({"sample_sizes": ()}, "--full"),
        ({"n_bootstrap": 200}, "at least 1000"),
        ({"seed": -1}, "non-negative"),
    ],
)
def test_config_validation(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        EditsConfig(source=DataSource("x"), out_dir=tmp_path, **kwargs)
