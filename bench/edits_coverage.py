"""Measured coverage of the edit-statistics CIs on the embedded populations (ground truth known).

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

    .venv/bin/python bench/edits_coverage.py [--seeds 200] [--sizes 100 500] [--profiles fafb_synthetic]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from proofpilot.datastack.embedded.truth import per_neuron_frame
from proofpilot.edits.bootstrap import GroupedSample, bootstrap, point_statistics
from proofpilot.edits.intervals import SampleIntervals, percentile_interval, quantile_interval
from proofpilot.edits.reference import SEED_SAMPLES, SeedSample, seed_sample, species_of
from proofpilot.edits.sampling import draw_samples, population_root_ids

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--first-seed", type=int, default=1000, help="sampler seeds first..first+seeds-1")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--profiles", nargs="+", default=list(PROFILES), choices=PROFILES)
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()
    print(
        f"{'profile':20s} {'n':>5s}  statistic     ours   percentile baseline   "
        f"({args.seeds} samples, 95 % CIs)"
    )
    seed_rows = []
    for profile in args.profiles:
        frame = per_neuron_frame(profile)
        edits, merges = frame["n_edits"].to_numpy(int), frame["n_merges"].to_numpy(int)
        population = population_root_ids(frame["root_id"].to_numpy())
        truth = population_values(edits, merges)
        for n in args.sizes:
            seed_values = {
                (source, key): value
                for source, row in published_rows(profile, n)
                for key, value in (("mean", row.mean_edits), ("merge_share", row.merge_pct / 100))
            }
            seed_hits = dict.fromkeys(seed_values, 0)
            ours = dict.fromkeys(truth, 0)
            base = dict.fromkeys(truth, 0)
            started = time.perf_counter()
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                (sample,) = draw_samples(population, (n,), seed)
                idx = np.searchsorted(population, sample.root_ids)
                grouped = GroupedSample.from_counts(edits[idx], merges[idx])
                boot = bootstrap(grouped, args.bootstrap, sample.bootstrap_rng())
                iv = SampleIntervals(point_statistics(grouped), boot, len(population), 0.95)
                estimates = {
                    "mean": iv.linear_mean(1, 0),
                    "merge_share": iv.merge_share(),
                    "median": quantile_interval(edits[idx], 0.5, len(population), 0.95),
                    "p95": quantile_interval(edits[idx], 0.95, len(population), 0.95),
                    "tail_share": iv.tail_share(),
                    "gini": iv.gini(),
                    "top5": iv.top_share(0.05),
                }
                draws = {
                    "mean": boot.linear_mean(1, 0),
                    "merge_share": boot.merge_share(),
                    "median": boot.median,
                    "p95": boot.p95,
                    "tail_share": boot.tail_share,
                    "gini": boot.gini,
                    "top5": boot.top_shares[0.05],
                }
                for (source, key), value in seed_values.items():
                    seed_hits[source, key] += estimates[key].ci[0] <= value <= estimates[key].ci[1]
                for key, est in estimates.items():
                    ours[key] += est.ci[0] <= truth[key] <= est.ci[1]
                    plain = percentile_interval(est.value, draws[key], 0.95, iv.fpc)
                    base[key] += plain.ci[0] <= truth[key] <= plain.ci[1]
            for key in truth:
                print(
                    f"{profile:20s} {n:5d}  {key:12s} "
                    f"{ours[key] / args.seeds:6.3f}   {base[key] / args.seeds:6.3f}"
                )
            print(f"{'':27s}({time.perf_counter() - started:.1f} s)", flush=True)
            for (source, key), value in seed_values.items():
                seed_rows.append(
                    (
                        profile,
                        n,
                        source,
                        key,
                        value,
                        ours[key] / args.seeds,
                        seed_hits[source, key] / args.seeds,
                    )
                )
    if seed_rows:
        print(
            "\nThe seed's published values, same draws:\n"
            f"{'profile':20s} {'n':>5s}  {'published':15s} {'statistic':12s} {'value':>10s} "
            f"{'cover pop':>9s} "
            f"{'cover seed':>10s}  P(>=19/20 | pop)  P(>=19/20 | seed)"
        )
        for profile, n, source, key, value, p_pop, p_seed in seed_rows:
            print(
                f"{profile:20s} {n:5d}  {source:15s} {key:12s} {value:10.4g} {p_pop:9.3f} {p_seed:10.3f}  "
                f"{pass_19_of_20(p_pop):16.2f}  {pass_19_of_20(p_seed):17.2f}"
            )
        print(f"(an exact 95 % interval: P(>=19/20) = {pass_19_of_20(0.95):.2f})")


if __name__ == "__main__":
    main()
