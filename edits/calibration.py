"""Measured coverage of the Table 1 intervals: the record bench/edits_coverage.py writes (its one writer) and
the typed reader the summaries use (they carry the coverage that bench computed, never typed-in numbers).

File: edits/coverage.json (committed with the bench run that made it): date, sampler seeds, bootstrap
resamples, the command, and one cell per (profile, n, statistic, method) with the count of seeds whose 95 %
interval held the population value.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from scipy.stats import binom

from proofpilot.core.atomic import write_text_atomic
from proofpilot.core.errors import DataError
from proofpilot.core.records import from_json, read_json_object

COVERAGE_PATH = Path(__file__).with_name("coverage.json")
TABLE1_STATISTICS = ("mean", "merge_share", "projected_total")
TARGET = 0.93  # issue 16's acceptance line


@dataclass(frozen=True)
class CoverageCell:
    profile: str
    n: int
    statistic: str
    method: str  # "bootstrap" (the CLI's), "percentile" (baseline), "tail" (edits.tail), "model"
    covered: int
    seeds: int

    @property
    def coverage(self) -> float:
        return self.covered / self.seeds


@dataclass(frozen=True)
class CoverageRecord:
    date: str  # UTC, when the bench finished
    command: str
    first_seed: int
    level: float
    n_bootstrap: int
    cells: tuple[CoverageCell, ...]

    def cell(self, profile: str, n: int, statistic: str, method: str) -> CoverageCell | None:
        key = (profile, n, statistic, method)
        return next((c for c in self.cells if (c.profile, c.n, c.statistic, c.method) == key), None)


def write_coverage(record: CoverageRecord, path: Path = COVERAGE_PATH) -> Path:
    return write_text_atomic(path, json.dumps(asdict(record), indent=1) + "\n")


def read_coverage(path: Path = COVERAGE_PATH) -> CoverageRecord | None:
    """The saved bench record, or None where the bench has not been run (no file)."""
    if not Path(path).exists():
        return None
    return from_json(CoverageRecord, read_json_object(Path(path), "coverage record"), str(path))


def pass_threshold(seeds: int, level: float = 0.95, probability: float = 0.99) -> int:
    """The largest k with P(X >= k) >= `probability` for X ~ Binomial(seeds, level): the fewest covering
    seeds an exact `level` interval reaches with that probability (a one-sided binomial lower bound)."""
    if seeds < 1:
        raise DataError("coverage needs at least one seed")
    k = int(binom.ppf(1 - probability, seeds, level))  # P(X <= k) >= 1 - probability
    return k if binom.sf(k - 1, seeds, level) >= probability else k - 1


def coverage_rows(record: CoverageRecord, profile: str) -> list[dict]:
    """summary.json's `calibration.cells` for one datastack: Table 1 statistics, each method."""
    return [
        {**asdict(c), "coverage": c.coverage, "meets_target": c.coverage >= TARGET}
        for c in record.cells
        if c.profile == profile and c.statistic in TABLE1_STATISTICS
    ]


def calibration_dict(profile: str, path: Path = COVERAGE_PATH) -> dict:
    """What summary.json carries: the bench's cells for this datastack with its date and seed count."""
    record = read_coverage(path)
    if record is None:
        return {"source": str(path.name), "note": "bench/edits_coverage.py has not been run", "cells": []}
    return {
        "source": f"bench/edits_coverage.py, saved in {path.name}",
        "date": record.date,
        "command": record.command,
        "level": record.level,
        "target": TARGET,
        "cells": coverage_rows(record, profile),
    }


def merge_records(records: list[CoverageRecord]) -> CoverageRecord:
    """One record of several bench runs (e.g. the bootstrap over 400 seeds and the model over fewer): for each
    (profile, n, statistic, method) the cell with the most seeds, the latest date, the commands joined; the
    runs must share the first seed, level and resamples."""
    first = records[0]
    if any((r.first_seed, r.level, r.n_bootstrap) != (first.first_seed, first.level, first.n_bootstrap)
           for r in records):  # fmt: skip
        raise DataError("coverage records to merge differ in first seed, level or resamples")
    best: dict[tuple, CoverageCell] = {}
    for c in (c for r in records for c in r.cells):
        key = (c.profile, c.n, c.statistic, c.method)
        if key not in best or c.seeds > best[key].seeds:
            best[key] = c
    return CoverageRecord(
        date=max(r.date for r in records),
        command=" ; ".join(r.command for r in records),
        first_seed=first.first_seed,
        level=first.level,
        n_bootstrap=first.n_bootstrap,
        cells=tuple(best.values()),
    )
