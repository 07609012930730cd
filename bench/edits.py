"""Benchmark: `proofpilot edits --full` on the fly-like table (139,255 neurons), everything after ingestion.

Input: the per-neuron and membership frames built from the embedded generator's ground truth
(`proofpilot.datastack.embedded.truth`, the same rows an ingestion of fafb_synthetic returns, without the HTTP
part, which bench/ingest.py measures). Timed: statistics with 1,000 bootstrap resamples, deduplication, cost,
Parquet, figures, summary.json/md (`proofpilot.edits.analysis.analyse`). Target: < 60 s on 2 cores.

Baseline, measured in the same run: the naive bootstrap (one `DataFrame.sample(frac=1, replace=True)` per
resample and pandas statistics on it) over a few resamples, scaled to 1,000.

.venv/bin/python bench/edits.py [--profile fafb_synthetic] [--bootstrap 1000] [--baseline-resamples 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from proofpilot.datastack.embedded.profiles import get_profile
from proofpilot.datastack.embedded.truth import membership_frame, per_neuron_frame
from proofpilot.datastack.source import DataSource
from proofpilot.edits.analysis import analyse
from proofpilot.edits.bootstrap import GroupedSample, bootstrap
from proofpilot.edits.hierarchical import DatasetCounts, model_intervals
from proofpilot.edits.records import EditsConfig
from proofpilot.edits.resamples import resample_sets
from proofpilot.edits.sampling import draw_samples, population_root_ids


def naive_resample(per_neuron: pd.DataFrame, rng: np.random.Generator) -> dict[str, float]:
    """The statistics of one resample the straightforward way (what a per-resample pandas loop costs)."""
    r = per_neuron.sample(frac=1.0, replace=True, random_state=rng)
    e = r["n_edits"].astype(float)
    p95 = e.quantile(0.95)
    ranked = np.sort(e.to_numpy())
    i = np.arange(1, len(ranked) + 1)
    return {
        "mean": e.mean(),
        "median": e.median(),
        "merge_share": r["n_merges"].sum() / e.sum(),
        "p95": p95,
        "tail_share": e[e > p95].sum() / e.sum(),
        "gini": ((2 * i - len(ranked) - 1) * ranked).sum() / (len(ranked) * ranked.sum()),
        "top5": ranked[-int(np.ceil(0.05 * len(ranked))) :].sum() / ranked.sum(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="fafb_synthetic")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--baseline-resamples", type=int, default=10)
    parser.add_argument("--sample-sizes", type=int, nargs="*", default=[])
    parser.add_argument(
        "--resamples", type=int, default=None,
        help="R independent resamples per sample size (Figure 1's spread; default: edits' own default)",
    )  # fmt: skip
    parser.add_argument(
        "--model-n", type=int, default=500, help="sample size of the timed model fit (0: none)"
    )
    args = parser.parse_args()

    t0 = time.perf_counter()
    per_neuron = per_neuron_frame(args.profile)
    membership = membership_frame(args.profile)
    population = population_root_ids(per_neuron["root_id"].to_numpy())
    t_build = time.perf_counter() - t0
    profile = get_profile(args.profile)
    pin = {
        "datastack": args.profile,
        "server_address": "generator ground truth (no HTTP)",
        "table": profile.proofread_table,
        "materialization_version": profile.materialization_version,
        "timestamp": profile.materialization_timestamp,
        "caveclient_version": "-",
        "server_versions": {},
    }

    with tempfile.TemporaryDirectory(prefix="bench-edits-") as out:
        config = EditsConfig(
            source=DataSource(args.profile),
            out_dir=Path(out),
            sample_sizes=tuple(args.sample_sizes),
            full=True,
            n_bootstrap=args.bootstrap,
        )
        if args.resamples is not None:
            config = replace(config, resamples=args.resamples)
        samples = draw_samples(population, config.sample_sizes, config.seed, full=True)
        sets = resample_sets(population, config.sample_sizes, config.seed, config.resamples)
        t0 = time.perf_counter()
        summary = analyse(per_neuron, membership, None, pin, population, samples, config, resamples=sets)
        t_analyse = time.perf_counter() - t0

    ok = per_neuron[per_neuron["status"] == "ok"]
    grouped = GroupedSample.from_counts(ok["n_edits"].to_numpy(int), ok["n_merges"].to_numpy(int))
    t0 = time.perf_counter()
    bootstrap(grouped, args.bootstrap, np.random.default_rng(0))
    t_boot = time.perf_counter() - t0

    rng = np.random.default_rng(1)
    t0 = time.perf_counter()
    for _ in range(args.baseline_resamples):
        naive_resample(ok, rng)
    t_naive_each = (time.perf_counter() - t0) / args.baseline_resamples
    t_naive = t_naive_each * args.bootstrap

    t_model = t_compile = None
    if args.model_n:  # the census needs no model (no sampling error); a sample of --model-n is fitted
        (sample,) = draw_samples(population, (args.model_n,), 0)
        rows = ok.set_index("root_id").loc[sample.root_ids]
        data = DatasetCounts(
            "fit", rows["n_edits"].to_numpy(int), rows["n_merges"].to_numpy(int), len(population)
        )
        t0 = time.perf_counter()
        model_intervals([data], seed=0)  # the first fit traces and compiles the sampler
        t_compile = time.perf_counter() - t0
        t0 = time.perf_counter()
        model_intervals([data], seed=1)
        t_model = time.perf_counter() - t0

    full = summary.samples[-1]
    print(
        f"profile {args.profile}: {len(per_neuron):,} neurons, {len(membership):,} log rows "
        f"({len(grouped.sizes):,} distinct (edits, merges) pairs); frames built in {t_build:.1f} s"
    )
    print(
        f"census: mean {full.mean_edits.value:.3f} edits/neuron (CI width {full.mean_edits.width:g}), "
        f"per-neuron sum {full.projected_total.value:,.0f}, "
        f"distinct operations {full.dedup.unique_ops.value:,.0f}"
    )
    print(
        f"analyse (--full, sizes {list(config.sample_sizes)}, R = {config.resamples} resamples per size, "
        f"{args.bootstrap} bootstrap resamples, dedup, cost, parquet, figures, summary): "
        f"{t_analyse:.2f} s "
        f"(target < 60 s)"
    )
    print(f"bootstrap alone, {args.bootstrap} resamples of n={len(ok):,}: {t_boot:.2f} s")
    if t_model is not None:
        print(
            f"hierarchical model (edits --model), one sample of n={args.model_n}: "
            f"first fit {t_compile:.1f} s "
            f"(with compiling), next fit {t_model:.1f} s = {t_model / t_boot:.1f}x the bootstrap above; "
            f"analyse + first fit {t_analyse + t_compile:.1f} s"
        )
    print(
        f"baseline, naive pandas resample loop: {t_naive_each * 1000:.0f} ms per resample "
        f"(measured over {args.baseline_resamples}) -> {t_naive:.1f} s for {args.bootstrap}"
    )
    print(
        f"ratio: naive bootstrap / grouped bootstrap = {t_naive / t_boot:.0f}x; "
        f"naive bootstrap alone / whole analyse = {t_naive / t_analyse:.1f}x"
    )


if __name__ == "__main__":
    main()
