"""Geometry and skeleton-layer figures of the embedded datastack.

1. `geometry.op_points_nm` on the fly-like table's real per-neuron op lists (µs per call), against a per-op
   loop over the same computation (the obvious unvectorised way) measured in the same run.
2. Server side: skeleton geometry + precomputed encoding per root id, by role.
3. Client side: fragments of the operations of N sampled mouse-like neurons, served by the embedded server and
   loaded through cloud-volume into navis TreeNeurons (ms per skeleton), batched as `load_skeletons` does,
   against one skeleton per call; for every merge, the distance of the interface point to both fragments.

    .venv/bin/python bench/skeletons.py                       # 100 neurons, 4 ops each, every role
    .venv/bin/python bench/skeletons.py --ops-per-neuron 0 --roles base,partner,before_split,foreign
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

for _var, _sub in (("CLOUD_VOLUME_DIR", ".cloudvolume"), ("MPLCONFIGDIR", ".mpl")):  # keep $HOME clean
    os.environ.setdefault(_var, os.path.join(tempfile.mkdtemp(prefix="bench-skeletons-"), _sub))

import numpy as np  # noqa: E402

from proofpilot.datastack import skeletons  # noqa: E402
from proofpilot.datastack.embedded import geometry, skeleton_layer  # noqa: E402
from proofpilot.datastack.embedded.generator import get_generator  # noqa: E402
from proofpilot.datastack.embedded.server import start_server  # noqa: E402

MOUSE, FLY = "minnie65_synthetic", "fafb_synthetic"


def bench_op_points(n_neurons: int) -> None:
    gen = get_generator(FLY)
    picks = np.random.default_rng(0).choice(gen.n_neurons, size=n_neurons, replace=False)
    logs = [gen.neuron_log(int(i)) for i in picks]
    geometry.op_points_nm(FLY, 0, logs[0].operation_id, logs[0].is_merge)  # templates + layout, once
    n_ops = sum(len(log) for log in logs)
    best = np.inf
    for _ in range(3):
        t0 = time.perf_counter()
        for log in logs:
            geometry.op_points_nm(FLY, log.neuron_index, log.operation_id, log.is_merge)
        best = min(best, time.perf_counter() - t0)
    t0 = time.perf_counter()
    for log in logs[: max(len(logs) // 10, 1)]:
        for op, merge in zip(log.operation_id.tolist(), log.is_merge.tolist(), strict=True):
            geometry.op_points_nm(FLY, log.neuron_index, np.array([op]), np.array([merge]))
    loop_s = (time.perf_counter() - t0) / max(len(logs) // 10, 1)
    per_call = best / len(logs)
    print(
        f"op_points_nm: {per_call * 1e6:.1f} µs per call ({n_ops / len(logs):.1f} ops per call, "
        f"{len(logs)} fly neurons); per-op loop {loop_s * 1e6:.1f} µs per neuron; "
        f"ratio {loop_s / per_call:.1f}×"
    )
    total = int(gen.population.n_edits.sum())
    print(f"  whole fly table ({gen.n_neurons} neurons, {total} op rows): ≈ {per_call * gen.n_neurons:.1f} s")


def _fragments(
    n_neurons: int, ops_per_neuron: int, roles: set[str]
) -> tuple[dict[int, str], list[tuple[int, np.ndarray, int]]]:
    """{root: role} of the wanted roles, and every merge's (partner root, interface point, base root)."""
    gen = get_generator(MOUSE)
    rng = np.random.default_rng(1)
    roots: dict[int, str] = {}
    merges = []
    for neuron in rng.choice(gen.n_neurons, size=n_neurons, replace=False).tolist():
        log = gen.neuron_log(neuron)
        rows = np.arange(len(log)) if ops_per_neuron <= 0 else rng.permutation(len(log))[:ops_per_neuron]
        points = geometry.op_points_nm(MOUSE, neuron, log.operation_id[rows], log.is_merge[rows])
        for row, p in zip(rows.tolist(), points, strict=True):
            of_op = geometry.op_fragments(MOUSE, int(log.operation_id[row]))
            for role, root in of_op.items():
                if role in roles:
                    roots.setdefault(root, role)
            if log.is_merge[row]:
                merges.append((of_op["partner"], p, of_op["base"]))
    return roots, merges


def bench_server_side(roots: dict[int, str]) -> None:
    by_role: dict[str, list[float]] = {}
    encode: list[float] = []
    for root, role in list(roots.items())[:600]:
        geometry.segment_skeleton.cache_clear()
        t0 = time.perf_counter()
        sk = geometry.segment_skeleton(MOUSE, root)
        t1 = time.perf_counter()
        skeleton_layer.skeleton_bytes(MOUSE, root)  # geometry now cached: this is the encoding alone
        t2 = time.perf_counter()
        assert sk is not None
        by_role.setdefault(role, []).append(t1 - t0)
        encode.append(t2 - t1)
    for role, times in sorted(by_role.items()):
        print(
            f"  geometry {role:12s} median {np.median(times) * 1e3:6.2f} ms  "
            f"p90 {np.percentile(times, 90) * 1e3:6.2f} ms  (n={len(times)})"
        )
    print(f"  precomputed encoding    median {np.median(encode) * 1e3:6.3f} ms")


def bench_client_side(roots: dict[int, str], merges: list, batch: int) -> None:
    with start_server(MOUSE) as server:
        layer = skeletons.skeleton_layer_url(MOUSE, server_url=server.url)
        ids_all = list(roots)
        points: dict[int, list[np.ndarray]] = {}
        for partner, p, base in merges:
            points.setdefault(partner, []).append(p)
            points.setdefault(base, []).append(p)
        skeletons.load_skeletons(layer, ids_all[:1])  # imports (cloud-volume, navis) outside the timing
        t0 = time.perf_counter()
        worst, n_loaded, n_nodes = 0.0, 0, 0
        for k in range(0, len(ids_all), batch):
            loaded = skeletons.load_skeletons(layer, ids_all[k : k + batch])
            n_loaded += len(loaded)
            for root, neuron in loaded.items():
                n_nodes += neuron.n_nodes
                xyz = neuron.nodes[["x", "y", "z"]].to_numpy()
                for p in points.get(root, ()):
                    worst = max(worst, float(np.linalg.norm(xyz - p, axis=1).min()))
        total_s = time.perf_counter() - t0
        batched = total_s / len(ids_all)
        few = ids_all[: min(100, len(ids_all))]
        t0 = time.perf_counter()
        for root in few:
            skeletons.load_skeletons(layer, [root])
        single = (time.perf_counter() - t0) / len(few)
    print(
        f"cloud-volume → navis: {batched * 1e3:.1f} ms per skeleton batched ({batch} ids per call, "
        f"{len(ids_all)} skeletons); one id per call {single * 1e3:.1f} ms; ratio {single / batched:.1f}×"
    )
    print(
        f"  {n_loaded} of {len(ids_all)} TreeNeurons loaded in {total_s:.1f} s "
        f"({n_nodes / max(n_loaded, 1):.0f} nodes on average)"
    )
    print(f"  merges checked: {len(merges)}; interface point to the farther fragment: max {worst:.2f} nm")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--neurons", type=int, default=100, help="sampled mouse-like neurons")
    parser.add_argument("--ops-per-neuron", type=int, default=4, help="0 = every operation")
    parser.add_argument(
        "--fly-neurons", type=int, default=5000, help="fly-like neurons timed for op_points_nm"
    )
    parser.add_argument("--batch", type=int, default=200, help="root ids per load_skeletons call")
    parser.add_argument(
        "--roles",
        default="base,partner,distractor,before_split,clean,foreign",
        help="fragment roles to load (keys of geometry.op_fragments)",
    )
    args = parser.parse_args()
    bench_op_points(args.fly_neurons)
    t0 = time.perf_counter()
    roots, merges = _fragments(args.neurons, args.ops_per_neuron, set(args.roles.split(",")))
    print(
        f"fragments: {len(roots)} root ids for {args.neurons} mouse neurons "
        f"({time.perf_counter() - t0:.1f} s "
        "to list)"
    )
    print("server side:")
    bench_server_side(roots)
    bench_client_side(roots, merges, args.batch)


if __name__ == "__main__":
    main()
