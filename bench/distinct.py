"""Distinct operations projected from samples of the embedded populations, against the true distinct count.

For each profile and sample size: per-neuron sums (the seed's way), the pair-based dedup estimate (often
"bound only") and the 1/m estimator (edits/distinct.py) with its CI, beside the true number of distinct
operations. m comes from the identifier layout (`ids.op_owner`: a shared split is in its pair's two logs)
in-process, or with `--server` from the embedded server through `proofpilot.edits.analyze` (the CAVE lookup of
datastack/multiplicity.py). With `--seeds K` it also reports how many of K samples' CIs cover the truth.

    .venv/bin/python bench/distinct.py [--sizes 100 500] [--profiles fafb_synthetic] [--seeds 1] [--server]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from proofpilot.datastack.embedded import ids
from proofpilot.datastack.embedded.truth import membership_frame, per_neuron_frame, unique_operations
from proofpilot.edits.records import Estimate
from proofpilot.edits.sampling import draw_samples, population_root_ids
from proofpilot.edits.stats import sample_statistics

PROFILES = ("minnie65_synthetic", "fafb_synthetic")


def op_multiplicity(operation_ids: np.ndarray, n_neurons: int) -> pd.DataFrame:
    """m per operation from the identifier layout (the table is every neuron of the profile)."""
    ops = np.unique(operation_ids)
    pair, slot = np.divmod(ops - 1, ids.OPS_PER_PAIR)
    shared = (slot >= 2 * ids.OWN_OPS_CAP) & (2 * pair + 1 < n_neurons)
    return pd.DataFrame({"operation_id": ops, "m": np.where(shared, 2, 1)})


def _fmt(est: Estimate) -> str:
    if est.value is None:
        return "bound " + ("-" if est.ci is None else f"[{est.ci[0]:,.0f}, {est.ci[1]:,.0f}]")
    return f"{est.value:,.0f} [{est.ci[0]:,.0f}, {est.ci[1]:,.0f}]"


def in_process(profile: str, n: int, seed: int, n_boot: int):
    per_neuron = per_neuron_frame(profile)
    population = population_root_ids(per_neuron["root_id"].to_numpy())
    (sample,) = draw_samples(population, (n,), seed, False, False)
    index = sample.root_ids - ids.ROOT_BASE  # NEURON roots: the payload is the neuron index
    rows = per_neuron.set_index("root_id").loc[sample.root_ids].reset_index()
    membership = membership_frame(profile, index)
    mult = op_multiplicity(membership["operation_id"].to_numpy(), len(population))
    return sample_statistics(
        sample.label, rows, membership, len(population), n_boot, sample.bootstrap_rng(), multiplicity=mult
    ).stats


def via_server(profile: str, n: int, seed: int, n_boot: int):
    import caveclient

    from proofpilot.datastack.embedded.server import start_server
    from proofpilot.edits import analyze

    with start_server(profile) as server:
        client = caveclient.CAVEclient(
            profile, server_address=server.url, auth_token="t", write_server_cache=False
        )
        return analyze(client, sample_sizes=(n,), seed=seed, n_bootstrap=n_boot).summary.samples[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profiles", nargs="+", default=list(PROFILES))
    ap.add_argument("--sizes", nargs="+", type=int, default=[100, 500])
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--n-bootstrap", type=int, default=1000)
    ap.add_argument("--server", action="store_true", help="look m up on the embedded server (slower)")
    args = ap.parse_args()
    run = via_server if args.server else in_process
    for profile in args.profiles:
        truth = unique_operations(profile)
        for n in args.sizes:
            covered, t0 = 0, time.perf_counter()
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                s = run(profile, n, seed, args.n_bootstrap)
                d = s.distinct
                covered += d.ops.ci[0] <= truth <= d.ops.ci[1]
                if args.seeds == 1:
                    print(
                        f"{profile} n={n} seed={seed}: true distinct {truth:,}; 1/m {_fmt(d.ops)} "
                        f"(merges {_fmt(d.merges)}, splits {_fmt(d.splits)}); per-neuron sums "
                        f"{_fmt(s.projected_total)}; pair dedup {_fmt(s.dedup.unique_ops)}"
                    )
            print(
                f"{profile} n={n}: CI covers the true distinct count in {covered}/{args.seeds} samples "
                f"({time.perf_counter() - t0:.1f} s)"
            )


if __name__ == "__main__":
    main()
