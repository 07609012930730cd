"""Measured coverage of the edit-statistics CIs on the embedded populations (ground truth known), saved.

Writes edits/coverage.json (edits/calibration.py: date, seeds, command, one cell per profile, n, statistic
and method), which summary.json/md and the report carry. Methods: "bootstrap" (the CLI's intervals),
"percentile" (the plain percentile bootstrap, the baseline), "tail" (mean and projected total only: the
semi-parametric Pareto-tail mean with its semi-parametric bootstrap-t, edits/tail.py) and "model" (the
hierarchical model's posterior predictive intervals, edits/hierarchical.py, both profiles' samples of one
seed fitted jointly) on the first `--model-seeds` seeds (a NUTS fit takes 6-20 s on 2 shared cores after the
first, which compiles; the bootstrap milliseconds).

For each profile and sample size, draws `--seeds` independent simple random samples (sampler seeds from
`--first-seed`, default 1000), computes the intervals exactly as `proofpilot edits` does, and counts how often
they contain the population's own value (mean, merge share, median, p95, tail share, Gini, top-5 % share).
Baseline in the same run: the plain percentile bootstrap (no studentizing, no bias correction) on the same
draws.

Also how often the seed write-up's published values lie inside the interval: its committed sample of the same
dataset and n, and its Table 1 row for the dataset (mouse: the n=100 row, also checked at n=500; fly: by n)
(mean edits, merge share; the projected total is N times the mean) and what the
measured coverage p implies for issue 4's acceptance line "inside for at least 19 of 20 sampler seeds":
P(at least 19 of 20) = p^20 + 20 p^19 (1 - p), which is 0.74 for an exact 95 % interval.

    nice .venv/bin/python bench/edits_coverage.py --seeds 400 --model-seeds 100 [--sizes 100 500] [--out PATH]
"""

from __future__ import annotations

import argparse
import datetime
import logging
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from proofpilot.datastack.embedded.truth import per_neuron_frame
from proofpilot.edits.bootstrap import GroupedSample, bootstrap, point_statistics
from proofpilot.edits.calibration import (
    COVERAGE_PATH,
    CoverageCell,
    CoverageRecord,
    merge_records,
    read_coverage,
    write_coverage,
)
from proofpilot.edits.hierarchical import DatasetCounts, model_intervals
from proofpilot.edits.intervals import SampleIntervals, percentile_interval, quantile_interval
from proofpilot.edits.reference import SEED_SAMPLES, SeedSample, seed_sample, species_of
from proofpilot.edits.sampling import draw_samples, population_root_ids
from proofpilot.edits.tail import tail_mean

PROFILES = ("minnie65_synthetic", "fafb_synthetic")


def population_values(edits: np.ndarray, merges: np.ndarray) -> dict[str, float]:
    ranked = np.sort(edits)
    n = len(ranked)
    p95 = np.percentile(edits, 95)
    i = np.arange(1, n + 1)
    return {
        "mean": edits.mean(),
        "merge_share": merges.sum() / edits.sum(),
        "median": float(np.median(edits)),
        "p95": p95,
        "tail_share": edits[edits > p95].sum() / edits.sum(),
        "gini": ((2 * i - n - 1) * ranked).sum() / (n * ranked.sum()),
        "top5": ranked[-int(np.ceil(0.05 * n)) :].sum() / ranked.sum(),
    }


def published_rows(profile: str, n: int) -> list[tuple[str, SeedSample]]:
    """The seed's committed sample of this dataset and n, and its Table 1 row for the dataset."""
    species = species_of(profile)
    rows = []
    same_n = seed_sample(profile, n)
    if same_n is not None:
        rows.append(("Table 1" if same_n.in_table1 else f"seed n={n}", same_n))
    table1 = [s for s in SEED_SAMPLES if s.species == species and s.in_table1]
    if len(table1) == 1 and table1[0].n != n:  # mouse: one Table 1 row, checked at every size
        rows.append((f"Table 1 n={table1[0].n}", table1[0]))
    return rows


def pass_19_of_20(p: float) -> float:
    """P(at least 19 of 20 independent intervals cover) when each covers with probability p."""
    return p**20 + 20 * p**19 * (1 - p)


def sample_estimates(edits, merges, idx, population, sample, n_boot):
    """The CLI's intervals and the percentile baseline for one sample: {statistic: (ours, baseline)}."""
    grouped = GroupedSample.from_counts(edits[idx], merges[idx])
    boot = bootstrap(grouped, n_boot, sample.bootstrap_rng())
    iv = SampleIntervals(point_statistics(grouped), boot, len(population), 0.95)
    estimates = {
        "mean": iv.linear_mean(1, 0),
        "merge_share": iv.merge_share(),
        "projected_total": iv.linear_total(1, 0),
        "median": quantile_interval(edits[idx], 0.5, len(population), 0.95),
        "p95": quantile_interval(edits[idx], 0.95, len(population), 0.95),
        "tail_share": iv.tail_share(),
        "gini": iv.gini(),
        "top5": iv.top_share(0.05),
    }
    draws = {
        "mean": boot.linear_mean(1, 0),
        "merge_share": boot.merge_share(),
        "projected_total": boot.linear_mean(1, 0) * len(population),
        "median": boot.median,
        "p95": boot.p95,
        "tail_share": boot.tail_share,
        "gini": boot.gini,
        "top5": boot.top_shares[0.05],
    }
    return {k: (est, percentile_interval(est.value, draws[k], 0.95, iv.fpc)) for k, est in estimates.items()}


def _inside(value: float, est) -> bool:
    return est.ci is not None and est.ci[0] <= value <= est.ci[1]


def _portable(argv: list[str]) -> list[str]:
    """The arguments as recorded: an --out path by its file name only (not where this machine kept it)."""
    return [Path(a).name if i and argv[i - 1] == "--out" else a for i, a in enumerate(argv)]


def main() -> None:
    logging.getLogger("jax").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=400)
    parser.add_argument(
        "--model-seeds", type=int, default=100, help="seeds the model is fitted on (first ones)"
    )
    parser.add_argument("--first-seed", type=int, default=1000, help="sampler seeds first..first+seeds-1")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--profiles", nargs="+", default=list(PROFILES), choices=PROFILES)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--out", default=str(COVERAGE_PATH))
    parser.add_argument("--merge", nargs="+", help="only merge these saved records into --out (no sampling)")
    args = parser.parse_args()
    if args.merge:
        merged = merge_records([read_coverage(Path(p)) for p in args.merge])
        print(f"merged {len(merged.cells)} cells into {write_coverage(merged, Path(args.out))}")
        return
    frames = {p: per_neuron_frame(p) for p in args.profiles}
    data = {}
    for profile, frame in frames.items():
        edits, merges = frame["n_edits"].to_numpy(int), frame["n_merges"].to_numpy(int)
        population = population_root_ids(frame["root_id"].to_numpy())
        truth = population_values(edits, merges)
        truth["projected_total"] = float(edits.sum())
        data[profile] = (edits, merges, population, truth)
    counts: dict[tuple, list[int]] = {}  # (profile, n, statistic, method) -> [covered, seeds]
    seed_rows = []
    for n in args.sizes:
        started = time.perf_counter()
        seed_hits: dict[tuple, int] = {}
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            batch = []
            for profile, (edits, merges, population, truth) in data.items():
                (sample,) = draw_samples(population, (n,), seed)
                idx = np.searchsorted(population, sample.root_ids)
                estimates = sample_estimates(edits, merges, idx, population, sample, args.bootstrap)
                tail_rng = np.random.default_rng(sample.bootstrap_seed.spawn(1)[0])  # own stream
                tail = tail_mean(edits[idx], len(population), 0.95, tail_rng)
                estimates["mean"] += (tail,)
                estimates["projected_total"] += (tail.scaled(len(population)),)
                for key, found in estimates.items():
                    for method, est in zip(("bootstrap", "percentile", "tail"), found, strict=False):
                        cell = counts.setdefault((profile, n, key, method), [0, 0])
                        cell[0] += _inside(truth[key], est)
                        cell[1] += 1
                for source, row in published_rows(profile, n):
                    for key, value in (("mean", row.mean_edits), ("merge_share", row.merge_pct / 100)):
                        hit = seed_hits.setdefault((profile, source, key, value), 0)
                        seed_hits[profile, source, key, value] = hit + _inside(value, estimates[key][0])
                batch.append(DatasetCounts(profile, edits[idx], merges[idx], len(population)))
            if seed - args.first_seed < args.model_seeds:
                for fitted in model_intervals(batch, seed=seed):
                    truth = data[fitted.name][3]
                    for key in ("mean", "merge_share", "projected_total"):
                        est = {"mean": fitted.mean_edits, "merge_share": fitted.merge_share,
                               "projected_total": fitted.projected_total}[key]  # fmt: skip
                        cell = counts.setdefault((fitted.name, n, key, "model"), [0, 0])
                        cell[0] += _inside(truth[key], est)
                        cell[1] += 1
        print(f"n = {n}: {time.perf_counter() - started:.0f} s", flush=True)
        for (profile, source, key, value), hits in seed_hits.items():
            covered = counts[profile, n, key, "bootstrap"][0] / args.seeds
            seed_rows.append((profile, n, source, key, value, covered,
                              hits / args.seeds))  # fmt: skip
    cells = tuple(CoverageCell(p, n, k, m, int(c), int(s)) for (p, n, k, m), (c, s) in counts.items())
    record = CoverageRecord(
        date=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        command=shlex.join(["bench/edits_coverage.py", *_portable(sys.argv[1:])]),
        first_seed=args.first_seed,
        level=0.95,
        n_bootstrap=args.bootstrap,
        cells=cells,
    )
    write_coverage(record, Path(args.out))
    print(
        f"{'profile':20s} {'n':>5s}  {'statistic':15s} {'bootstrap':>10s} {'percentile':>10s} {'tail':>10s} "
        f"{'model':>12s}"
    )
    for profile in args.profiles:
        for n in args.sizes:
            for key in data[profile][3]:
                row = [record.cell(profile, n, key, m) for m in ("bootstrap", "percentile", "tail", "model")]
                shown = [_shown(c, args.seeds) for c in row]
                print(
                    f"{profile:20s} {n:5d}  {key:15s} {shown[0]:>10s} {shown[1]:>10s} {shown[2]:>10s} "
                    f"{shown[3]:>12s}"
                )
    print(f"(coverage over {args.seeds} sampler seeds; model over the seed count in brackets; "
          f"written to {args.out})")  # fmt: skip
    print_seed_rows(seed_rows)


def _shown(cell: CoverageCell | None, seeds: int) -> str:
    if cell is None:
        return "-"
    return f"{cell.coverage:.3f}" + (f" ({cell.seeds})" if cell.seeds != seeds else "")


def print_seed_rows(seed_rows: list) -> None:
    print(
        "\nThe seed's published values, same draws (bootstrap):\n"
        f"{'profile':20s} {'n':>5s}  {'published':15s} {'statistic':12s} {'value':>10s} "
        f"{'cover pop':>9s} {'cover seed':>10s}  P(>=19/20 | pop)  P(>=19/20 | seed)"
    )
    for profile, n, source, key, value, p_pop, p_seed in seed_rows:
        print(
            f"{profile:20s} {n:5d}  {source:15s} {key:12s} {value:10.4g} {p_pop:9.3f} {p_seed:10.3f}  "
            f"{pass_19_of_20(p_pop):16.2f}  {pass_19_of_20(p_seed):17.2f}"
        )
    print(f"(an exact 95 % interval: P(>=19/20) = {pass_19_of_20(0.95):.2f})")


if __name__ == "__main__":
    main()
