"""Benchmark: ingest a whole proofread table from the embedded CAVE server through caveclient.

The server runs in its own process (so client and server each get a core). The client ingests every proofread
neuron's change log and every operation's details and builds the operation bank, with a fresh cache directory
so every call is real. In the same run, the seed's way (one root per call, a new CAVEclient per neuron) is
timed on an evenly spaced subset, and the ratio is printed. Counts are checked against the generator's ground
truth.

    .venv/bin/python bench/ingest.py                       # fly-like table, 139,255 neurons
    .venv/bin/python bench/ingest.py --profile minnie65_synthetic
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import shutil
import tempfile
import time

import numpy as np

GIB = 2**30


def _serve(profile: str, conn, stop) -> None:
    from proofpilot.datastack.embedded.server import start_server

    server = start_server(profile=profile, host="127.0.0.1", port=0)
    conn.send(server.url)
    stop.wait()
    server.stop()


def _seed_way(url: str, datastack: str, roots: list[int]) -> tuple[float, int]:
    """ConnectomeBench's loop: a new client per neuron, one root per get_tabular_change_log call."""
    from caveclient import CAVEclient

    t0 = time.perf_counter()
    rows = 0
    for root in roots:
        client = CAVEclient(datastack, server_address=url, write_server_cache=False)
        log = client.chunkedgraph.get_tabular_change_log(root, filtered=True)[root]
        rows += int((log["is_merge"] == True).sum() + (log["is_merge"] == False).sum())  # noqa: E712 (seed's code)
    return time.perf_counter() - t0, rows


def _max_rss_bytes(who: int) -> int:
    return resource.getrusage(who).ru_maxrss * 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="fafb_synthetic")
    parser.add_argument("--baseline-neurons", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="only the first N neurons (default: all)")
    args = parser.parse_args()

    ctx = mp.get_context("spawn")
    parent_conn, child_conn = ctx.Pipe()
    stop = ctx.Event()
    server = ctx.Process(target=_serve, args=(args.profile, child_conn, stop), daemon=True)
    server.start()
    url = parent_conn.recv()
    cache_dir = tempfile.mkdtemp(prefix="proofpilot-bench-cache-")
    try:
        from proofpilot.datastack.client import ClientSettings
        from proofpilot.datastack.embedded.generator import population
        from proofpilot.datastack.ingest import IngestOptions, ingest

        settings = ClientSettings(datastack=args.profile, server_address=url, write_server_cache=False)
        options = IngestOptions(
            batch_size=args.batch_size,
            workers=args.workers,
            cache_dir=cache_dir,
            limit=args.limit,
            progress=False,
        )
        load_before = os.getloadavg()[0]
        t0, cpu0 = time.perf_counter(), time.process_time()
        result = ingest(settings, options)
        elapsed, client_cpu = time.perf_counter() - t0, time.process_time() - cpu0
        load_after = os.getloadavg()[0]
        client_rss = _max_rss_bytes(resource.RUSAGE_SELF)

        truth = population(args.profile).frame()
        if args.limit is not None:
            truth = truth.iloc[: args.limit]
        per = result.per_neuron.set_index("root_id").loc[truth["root_id"]]
        counts_match = bool(
            (per["n_edits"].to_numpy() == truth["n_edits"].to_numpy()).all()
            and (per["n_merges"].to_numpy() == truth["n_merges"].to_numpy()).all()
        )
        n = len(result.per_neuron)
        rate = n / elapsed

        subset_idx = np.linspace(0, n - 1, min(args.baseline_neurons, n)).astype(int)
        subset = result.per_neuron["root_id"].to_numpy()[subset_idx].tolist()
        seed_s, seed_rows = _seed_way(url, args.profile, subset)
        seed_rate = len(subset) / seed_s
    finally:
        stop.set()
        server.join(timeout=30)
        shutil.rmtree(cache_dir, ignore_errors=True)
    server_rss = _max_rss_bytes(resource.RUSAGE_CHILDREN)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu = children.ru_utime + children.ru_stime  # whole server life, incl. the seed-way subset

    s = result.stats
    cpus = os.cpu_count()
    for label, value in [
        ("profile", f"{args.profile} (materialization {result.pin.materialization_version})"),
        ("neurons", f"{n:,} ({s.n_ok:,} ok, {s.n_error:,} errors)"),
        ("change-log rows", f"{len(result.membership):,}"),
        (
            "operations (deduplicated)",
            f"{s.n_operations:,} ({s.n_operations_without_details:,} without details)",
        ),
        ("calls", f"{s.changelog_requests:,} change-log, {s.details_requests:,} details"),
        ("counts equal ground truth", counts_match),
        ("wall time", f"{elapsed:.1f} s (table query + change logs + details + bank)"),
        ("throughput", f"{rate:,.0f} neurons/s   (target >= 500)"),
        ("CPU time", f"client {client_cpu:.1f} s (ingestion), server {server_cpu:.1f} s (whole run)"),
        ("load avg, 1 min", f"{load_before:.1f} before, {load_after:.1f} after ({cpus} CPUs)"),
        ("peak RSS client", f"{client_rss / GIB:.2f} GiB"),
        ("peak RSS server process", f"{server_rss / GIB:.2f} GiB"),
        ("peak RSS client + server", f"{(client_rss + server_rss) / GIB:.2f} GiB   (target < 4)"),
        (
            f"seed's way ({len(subset)} neurons)",
            f"{seed_rate:,.1f} neurons/s ({seed_s:.1f} s, {seed_rows:,} rows)",
        ),
        ("ratio", f"{rate / seed_rate:,.1f}x"),
    ]:
        print(f"{label:<28}{value}")


if __name__ == "__main__":
    main()
