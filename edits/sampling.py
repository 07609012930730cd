"""Simple random samples of proofread neurons, without replacement, with independent random streams.

Every sample size gets its own stream derived from (seed, n) with numpy's SeedSequence spawn keys, so the
n=100 and n=500 samples are independent draws (their overlap is only what chance gives, ≈ n₁·n₂/N), reordering
or adding sizes leaves the other samples unchanged, and the bootstrap of each sample has a stream of its own.
`nested=True` instead takes prefixes of one random permutation (n=100 ⊂ n=500), as the seed's code effectively
did.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from proofpilot.core.errors import ConfigError, DataError

log = logging.getLogger(__name__)

FULL_LABEL = "full"
_SAMPLER, _BOOTSTRAP, _NESTED = 0, 1, 2


@dataclass(frozen=True)
class Sample:
    label: str  # "n100", "n500", "full"
    root_ids: np.ndarray  # int64, distinct
    bootstrap_seed: np.random.SeedSequence
    nested: bool = False

    @property
    def n(self) -> int:
        return len(self.root_ids)

    def bootstrap_rng(self) -> np.random.Generator:
        return np.random.default_rng(self.bootstrap_seed)


def population_root_ids(table_root_ids) -> np.ndarray:
    """The distinct root ids of the proofread table, in table order; a table row is one neuron."""
    ids = np.asarray(table_root_ids)
    if ids.size == 0:
        raise DataError("the proofread-neuron table is empty")
    if ids.dtype.kind not in "iu":
        raise DataError(f"proofread root ids must be integers, got dtype {ids.dtype}")
    ids = ids.astype(np.int64)
    if (ids <= 0).any():
        raise DataError("the proofread-neuron table holds non-positive root ids")
    _, first = np.unique(ids, return_index=True)
    if len(first) != len(ids):
        log.warning(
            "proofread table lists %d root ids more than once; using %d distinct neurons",
            len(ids) - len(first),
            len(first),
        )
    return ids[np.sort(first)]


def sample_label(n: int) -> str:
    return f"n{n}"


def _stream(seed: int, *key: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(entropy=seed, spawn_key=key)


def draw_samples(
    population: np.ndarray, sizes: tuple[int, ...], seed: int, nested: bool = False, full: bool = False
) -> list[Sample]:
    """One sample per size (ascending), plus the whole table if `full`."""
    big = population.size
    too_big = [n for n in sizes if n > big]
    if too_big:
        raise ConfigError(f"sample size {max(too_big)} is larger than the proofread table ({big:,} neurons)")
    samples = []
    if nested and sizes:
        order = np.random.default_rng(_stream(seed, _NESTED)).permutation(big)
    for n in sorted(sizes):
        if nested:
            chosen = order[:n]
        else:
            chosen = np.random.default_rng(_stream(seed, _SAMPLER, n)).choice(big, size=n, replace=False)
        samples.append(
            Sample(sample_label(n), population[np.sort(chosen)], _stream(seed, _BOOTSTRAP, n), nested)
        )
    if full:
        samples.append(Sample(FULL_LABEL, population.copy(), _stream(seed, _BOOTSTRAP, 0)))
    return samples


def union_root_ids(samples: list[Sample]) -> np.ndarray:
    """Every root id some sample needs: only these neurons' logs are fetched."""
    if not samples:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.concatenate([s.root_ids for s in samples]))
