"""Benchmark: building a pilot's merge tasks with the distractor cutouts one at a time vs prefetched.

Every merge task pair needs a segmentation cutout at the time of the edit (tasks/distractors.py): one or more
HTTP round trips to the datastack's watershed and roots routes. On a real datastack each round trip is network
latency, so the builder prefetches: `CutoutOptions.parallel` downloads at once, at most `prefetch_ahead` ahead
of the one in use. The embedded CAVE server runs in its own process (as a remote CAVE would), with
`--latency-s` added to each request of the cutout routes (FaultConfig.latency_s: a far datastack); the
baseline is the same build with `parallel=1, prefetch_ahead=0` (one cutout at a time), in the same run.
The two alternate for `--rounds` rounds; printed: seconds per build, cutouts per second, and the ratio to the
baseline, and whether both builds gave the same tasks.

    .venv/bin/python bench/cutouts.py
    .venv/bin/python bench/cutouts.py --neurons 30 --latency-s 0.1 --rounds 2
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import statistics
import sys
import time

CUTOUT_ROUTES = ("watershed", "roots_binary")


def _serve(profile: str, latency_s: float, conn, stop) -> None:
    from proofpilot.datastack.embedded.faults import FaultConfig
    from proofpilot.datastack.embedded.server import start_server

    faults = FaultConfig(latency_s=latency_s, error_rate=0.0, routes=CUTOUT_ROUTES) if latency_s else None
    server = start_server(profile=profile, host="127.0.0.1", port=0, faults=faults)
    conn.send(server.url)
    stop.wait()
    server.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="fafb_synthetic")
    ap.add_argument("--neurons", type=int, default=20)
    ap.add_argument("--k", type=int, default=3, help="max operations per neuron")
    ap.add_argument("--latency-s", type=float, default=0.05, help="added to each cutout request (s)")
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--ahead", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)

    from proofpilot.datastack.client import CaveConnection, ClientSettings
    from proofpilot.datastack.ingest import IngestOptions, ingest
    from proofpilot.datastack.roles import CaveRoles
    from proofpilot.tasks.build import TaskOptions, tasks_from_ingest
    from proofpilot.tasks.distractors import CutoutOptions, SegmentationDistractors

    ctx = mp.get_context("spawn")
    parent_conn, child_conn = ctx.Pipe()
    stop = ctx.Event()
    server = ctx.Process(target=_serve, args=(a.profile, a.latency_s, child_conn, stop), daemon=True)
    server.start()
    url = parent_conn.recv()
    try:
        settings = ClientSettings(datastack=a.profile, server_address=url, auth_token="abc123",
                                  write_server_cache=False)  # fmt: skip
        ingested = ingest(settings, IngestOptions(limit=a.neurons, use_cache=False, progress=False))
        roles = CaveRoles(CaveConnection(settings).client.chunkedgraph)
        options = TaskOptions(seed=0, max_ops_per_neuron=a.k, op_kinds=("merge",))
        modes = {"one at a time": CutoutOptions(parallel=1, prefetch_ahead=0),
                 "prefetched": CutoutOptions(parallel=a.parallel, prefetch_ahead=a.ahead)}  # fmt: skip
        seconds: dict[str, list[float]] = {m: [] for m in modes}
        built: dict[str, list] = {}
        for r in range(a.rounds):
            for mode in modes if r % 2 == 0 else reversed(modes):
                source = SegmentationDistractors.from_client(CaveConnection(settings).client, modes[mode])
                started = time.perf_counter()
                try:
                    built[mode] = tasks_from_ingest(ingested, source, options, roles=roles)
                finally:
                    source.close()
                seconds[mode].append(time.perf_counter() - started)
    finally:
        stop.set()
        server.join(10)
    merges = sum(t.role == "partner" for t in built["prefetched"])
    base = statistics.median(seconds["one at a time"])
    print(f"{a.profile}: {a.neurons} neurons, {merges} merges (one cutout each), {a.latency_s * 1000:.0f} ms "
          f"added to each cutout request; prefetched: {a.parallel} at once, {a.ahead} ahead")  # fmt: skip
    for mode, runs in seconds.items():
        s = statistics.median(runs)
        print(f"{mode:<14} {s:7.2f} s per build (rounds {', '.join(f'{x:.2f}' for x in runs)}), "
              f"{merges / s:6.1f} cutouts/s, {base / s:5.2f}× one at a time")  # fmt: skip
    same = built["one at a time"] == built["prefetched"]
    print(f"same tasks from both: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
