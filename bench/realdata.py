"""Benchmark: what the real-data path costs per task, in CAVE requests and wall time, against the seed's way.

A pilot's tasks need, per operation, a distractor (merges: one watershed cutout at op time − 1 ms through
cloud-volume graphene, its supervoxels mapped by ``roots_binary``) and the geometry of each task's fragments.
The product crops every fragment to a box around the interface (a bounded ``lvl2_graph``, the L2 cache's
``rep_coord_nm`` of the nodes in it, pcg_skel locally). The seed's way, the ratio baseline, is a whole
skeleton per root (unbounded ``lvl2_graph``, every L2 node's attributes), no crop; it keeps each root's
skeleton for the whole run (a cache the product does not get, so the ratio is conservative). Distractors
are measured once: the seed's sources (ConnectomeBench 1 and 2) read the same kind of cutout.

The embedded datastack runs as `proofpilot datastack serve` in its own process (on the same 2 cores);
requests are the server's own per-route counts (``GET /proofpilot/request_counts``) before and after each
step, so cloud-volume's and pcg_skel's requests count too. Before timing, every root's level-2 graph is
asked once (the embedded server derives L2 nodes on first use; a real chunkedgraph has them stored).
Figures are per task: an operation's cost is shared among the tasks built from it.

    .venv/bin/python bench/realdata.py                    # minnie65_synthetic, 20 neurons, 2 ops each
    .venv/bin/python bench/realdata.py --neurons 40 --k 3
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

log = logging.getLogger("bench.realdata")
PROOFPILOT = Path(sys.executable).with_name("proofpilot")
TOKEN = "e0e0"


def _serve(profile: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([PROOFPILOT, "datastack", "serve", "--profile", profile, "--port", "0"],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    line = proc.stdout.readline()
    if "serving at " not in line:
        proc.kill()
        raise SystemExit(f"bench: the embedded server did not start: {line.strip()}")
    return proc, line.rsplit(" ", 1)[1].strip()


def _counts(url: str) -> Counter[str]:
    with urllib.request.urlopen(f"{url}/proofpilot/request_counts", timeout=30) as response:
        return Counter(json.load(response))


class Meter:
    """Wall seconds and server requests (per route) of measured steps."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __call__(self, fn):
        before, started = _counts(self.url), time.perf_counter()
        result = fn()
        wall = time.perf_counter() - started
        return result, wall, _counts(self.url) - before


class TimedDistractors:
    """The product's distractor source, metered per operation."""

    def __init__(self, inner, meter: Meter) -> None:
        self.inner, self.meter = inner, meter
        self.cost: dict[int, tuple[float, Counter[str]]] = {}

    def distractor_root(self, operation, partner_root_id=None):
        root, wall, reqs = self.meter(lambda: self.inner.distractor_root(operation, partner_root_id))
        self.cost[operation.operation_id] = (wall, reqs)
        return root

    def prefetch(self, operations):
        """Not passed on: each operation's cutout is metered when it is asked for."""


class WholeSkeletons:
    """The seed's way: a whole skeleton per root (kept for the run), no crop."""

    def __init__(self, pcg) -> None:
        self.pcg = pcg
        self.failures = pcg.failures

    def get_many(self, root_ids):
        return self.pcg.get_many(root_ids)


def _build(url: str, profile: str, neurons: int, k: int, seed: int, meter: Meter):
    from proofpilot.datastack.client import CaveConnection
    from proofpilot.datastack.roles import CaveRoles
    from proofpilot.datastack.source import DataSource
    from proofpilot.pilot import inputs
    from proofpilot.tasks.build import TaskOptions, tasks_from_ingest
    from proofpilot.tasks.distractors import SegmentationDistractors

    source = DataSource(
        profile, server_address=url, auth_token=TOKEN, use_cache=False, write_server_cache=False
    )
    sample = inputs.ingest_sample(source, neurons, seed, progress=False)
    conn = CaveConnection(source.client_settings())
    distractors = TimedDistractors(SegmentationDistractors.from_client(conn.client), meter)
    roles = CaveRoles(conn.client.chunkedgraph)
    started = time.perf_counter()
    tasks = tasks_from_ingest(sample.ingest, distractors, TaskOptions(seed=seed, max_ops_per_neuron=k),
                              roles=roles)  # fmt: skip
    build_s = time.perf_counter() - started
    distractors.inner.close()
    return conn, tasks, distractors.cost, build_s


def _geometry(tasks, sources: dict[str, object], meter: Meter):
    """Per source, per operation: wall and requests of its tasks' features; and tasks featured per source.

    The sources take turns operation by operation, so that both see the same load on a shared machine."""
    from proofpilot.orchestrator.prep import PrepOptions, prepare_batch

    def featured(group, source, key) -> int:  # the pilot's own preparation, in this process
        results = prepare_batch(group, key, source, PrepOptions(), to_payload=lambda prepared: None)
        return sum(r.error_reason is None for r in results)

    by_op = defaultdict(list)
    for task in tasks:
        by_op[task.operation_id].append(task)
    cost: dict[str, dict] = {name: {} for name in sources}
    kept: Counter[str] = Counter()
    for op, group in by_op.items():
        for name, source in sources.items():
            n, wall, reqs = meter(lambda g=group, s=source, k=name: featured(g, s, k))
            kept[name] += n
            cost[name][op] = (wall, reqs) if n else (float("nan"), Counter())
    return cost, kept


def _per_task(tasks, cost: dict[int, tuple[float, Counter[str]]]) -> tuple[np.ndarray, np.ndarray]:
    """Per task (in task order): its operation's wall seconds and requests over the operation's tasks (an
    operation without a cost, e.g. a split's distractor, costs 0)."""
    n_of = Counter(t.operation_id for t in tasks)
    none = (0.0, Counter())
    walls = [cost.get(t.operation_id, none)[0] / n_of[t.operation_id] for t in tasks]
    reqs = [sum(cost.get(t.operation_id, none)[1].values()) / n_of[t.operation_id] for t in tasks]
    return np.asarray(walls, dtype=float), np.asarray(reqs, dtype=float)


def _line(name: str, walls: np.ndarray, reqs: np.ndarray) -> str:
    walls = walls[np.isfinite(walls)]
    return (f"  {name:<38} wall ms/task median {1e3 * np.median(walls):7.1f}  p90 "
            f"{1e3 * np.quantile(walls, 0.9):7.1f}   requests/task median {np.median(reqs):5.1f}  p90 "
            f"{np.quantile(reqs, 0.9):5.1f}")  # fmt: skip


def _routes(cost) -> str:
    total = sum((c[1] for c in cost.values()), Counter())
    return ", ".join(f"{r} {n}" for r, n in total.most_common())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", default="minnie65_synthetic")
    parser.add_argument("--neurons", type=int, default=20)
    parser.add_argument("--k", type=int, default=2, help="operations per neuron")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    from proofpilot.datastack.geometry import PcgSkeletons
    from proofpilot.pilot.serve import geometry_invalidation_nm
    from proofpilot.tasks.prepare import task_roots

    proc, url = _serve(args.profile)
    try:
        meter = Meter(url)
        conn, tasks, dist_cost, build_s = _build(url, args.profile, args.neurons, args.k, args.seed, meter)
        invalidation = geometry_invalidation_nm(args.profile)
        roots = sorted({r for t in tasks for r in task_roots(t)})
        for root in roots:  # warm the embedded server's L2 derivation (a real chunkedgraph has it stored)
            conn.client.chunkedgraph.level2_chunk_graph(root)
        crop = PcgSkeletons(conn.client, invalidation_d_nm=invalidation)
        whole = WholeSkeletons(PcgSkeletons(conn.client, invalidation_d_nm=invalidation))
        cost, kept = _geometry(tasks, {"product": crop, "seed": whole}, meter)
        ours, seeds = cost["product"], cost["seed"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    n_merge = sum(t.op_kind == "merge" for t in tasks)
    print(f"{args.profile}: {args.neurons} neurons, K={args.k}: {len(tasks)} tasks ({n_merge} merge, "
          f"{len(tasks) - n_merge} split) from {len(dist_cost)} merges' cutouts and "
          f"{len({t.operation_id for t in tasks})} operations; {len(roots)} distinct roots")  # fmt: skip
    d_wall, d_req = _per_task(tasks, dist_cost)
    o_wall, o_req = _per_task(tasks, ours)
    s_wall, s_req = _per_task(tasks, seeds)
    print("per task (an operation's cost shared among its tasks):")
    print(_line("distractors (cutout + roots)", d_wall, d_req))
    print(_line("geometry, product (crop)", o_wall, o_req))
    print(_line("geometry, seed's way (whole, cached)", s_wall, s_req))
    both_o, both_s = np.nan_to_num(o_wall) + d_wall, np.nan_to_num(s_wall) + d_wall
    print(_line("geometry + distractors, product", both_o, o_req + d_req))
    print(_line("geometry + distractors, seed's way", both_s, s_req + d_req))
    per_merge = np.array([c[0] for c in dist_cost.values()])
    merge_reqs = np.array([sum(c[1].values()) for c in dist_cost.values()], dtype=float)
    print(_line("distractor per merge operation", per_merge, merge_reqs).replace("/task", "/merge"))
    print(f"  distractor routes: {_routes(dist_cost)}")
    print(f"  product geometry routes: {_routes(ours)}")
    print(f"  seed geometry routes: {_routes(seeds)}")
    o_total, s_total = np.nansum(o_wall) + d_wall.sum(), np.nansum(s_wall) + d_wall.sum()
    print(f"tasks/s on this machine's {len(os.sched_getaffinity(0))} cores (client and server together, "
          f"geometry + distractors): product {len(tasks) / o_total:.2f}, seed's way "
          f"{len(tasks) / s_total:.2f}; task building incl. roles and cutouts {build_s:.1f} s")  # fmt: skip
    print(f"tasks with geometry: product {kept['product']}, seed's way {kept['seed']} of {len(tasks)}")
    print(f"ratio seed's way / product (geometry + distractors): wall median "
          f"{np.median(both_s) / np.median(both_o):.2f}x, total {s_total / o_total:.2f}x; requests median "
          f"{np.median(s_req + d_req) / np.median(o_req + d_req):.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
