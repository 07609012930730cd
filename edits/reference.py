"""The seed write-up's published numbers, for comparison (docs/seed.md "Committed samples" and
"Seed statements").

Only the statistics the seed's committed JSONs hold are listed. `in_table1` marks the three rows of the seed's
Table 1. Which dataset a datastack imitates is decided by its name (real and embedded names).
"""

from __future__ import annotations

from dataclasses import dataclass

from proofpilot.edits.records import SampleStats


@dataclass(frozen=True)
class SeedSample:
    species: str
    n: int
    population: int
    mean_edits: float
    merge_pct: float
    projected_total: int
    projected_merges: int
    projected_splits: int
    tail_pct: float  # share of the sample's edits in neurons above its p95
    in_table1: bool


SEED_SAMPLES = (
    SeedSample("mouse", 100, 2314, 421.75, 47.1, 975_929, 459_676, 516_253, 10.6, True),
    SeedSample("mouse", 500, 2314, 411.14, 46.3, 951_387, 440_502, 510_884, 14.1, False),
    SeedSample("mouse", 1000, 2314, 404.11, 46.2, 935_098, 431_861, 503_237, 15.4, False),
    SeedSample("fly", 100, 139_255, 17.84, 71.9, 2_484_309, 1_785_249, 699_060, 37.6, True),
    SeedSample("fly", 500, 139_255, 19.02, 73.9, 2_649_187, 1_957_368, 691_818, 36.4, True),
    SeedSample("fly", 1000, 139_255, 17.54, 74.0, 2_442_671, 1_807_669, 635_002, 33.3, False),
)

_SPECIES_BY_DATASTACK = {
    "minnie65_public": "mouse",
    "minnie65_synthetic": "mouse",
    "flywire_fafb_public": "fly",
    "fafb_synthetic": "fly",
}


def species_of(datastack: str) -> str | None:
    return _SPECIES_BY_DATASTACK.get(datastack)


def seed_sample(datastack: str, n: int) -> SeedSample | None:
    species = species_of(datastack)
    return next((s for s in SEED_SAMPLES if s.species == species and s.n == n), None)


def _inside(value: float, ci: tuple[float, float] | None) -> bool | None:
    return None if ci is None else bool(ci[0] <= value <= ci[1])


def compare_with_seed(datastack: str, stats: SampleStats) -> dict | None:
    """Whether the seed's published values for the same dataset and n lie inside this sample's CIs."""
    seed = seed_sample(datastack, stats.n)
    if seed is None:
        return None
    return {
        "species": seed.species,
        "n": seed.n,
        "in_seed_table1": seed.in_table1,
        "seed_mean_edits": seed.mean_edits,
        "seed_merge_pct": seed.merge_pct,
        "seed_projected_total": seed.projected_total,
        "seed_tail_pct": seed.tail_pct,
        "mean_edits_inside_ci": _inside(seed.mean_edits, stats.mean_edits.ci),
        "merge_pct_inside_ci": _inside(seed.merge_pct / 100, stats.merge_share.ci),
        "projected_total_inside_ci": _inside(seed.projected_total, stats.projected_total.ci),
    }
