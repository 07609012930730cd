"""Measured coverage of the edit-statistics CIs on the embedded populations (ground truth known).

For each profile and sample size, draws `--seeds` independent simple random samples (sampler seeds 1000..),
computes the intervals exactly as `proofpilot edits` does, and counts how often they contain the population's
own value (mean, merge share, median, p95, tail share, Gini, top-5 % share). Baseline in the same run: the
plain percentile bootstrap (no studentizing, no bias correction) on the same draws.

    .venv/bin/python bench/edits_coverage.py [--seeds 200] [--sizes 100 500]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from proofpilot.eval.edits_bootstrap import GroupedSample, bootstrap, point_statistics
from proofpilot.eval.edits_intervals import SampleIntervals, percentile_interval, quantile_interval
from proofpilot.eval.edits_sampling import draw_samples, population_root_ids
from proofpilot.eval.edits_truth import per_neuron_frame

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()
    print(
        f"{'profile':20s} {'n':>5s}  statistic     ours   percentile baseline   "
        f"({args.seeds} samples, 95 % CIs)"
    )
    for profile in PROFILES:
        frame = per_neuron_frame(profile)
        edits, merges = frame["n_edits"].to_numpy(int), frame["n_merges"].to_numpy(int)
        population = population_root_ids(frame["root_id"].to_numpy())
        truth = population_values(edits, merges)
        for n in args.sizes:
            ours = dict.fromkeys(truth, 0)
            base = dict.fromkeys(truth, 0)
            started = time.perf_counter()
            for seed in range(1000, 1000 + args.seeds):
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
                for key, est in estimates.items():
                    ours[key] += est.ci[0] <= truth[key] <= est.ci[1]
                    plain = percentile_interval(est.value, draws[key], 0.95, iv.fpc)
                    base[key] += plain.ci[0] <= truth[key] <= plain.ci[1]
            for key in truth:
                print(
                    f"{profile:20s} {n:5d}  {key:12s} "
                    f"{ours[key] / args.seeds:6.3f}   {base[key] / args.seeds:6.3f}"
                )
            print(f"{'':27s}({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
