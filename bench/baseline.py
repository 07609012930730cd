"""Benchmark: feature time per task, and the baseline agent's accuracy per op type with cluster-bootstrap CIs.

The embedded CAVE server runs in its own process (client and server each get a core). Neurons come in whole
pairs (2k, 2k+1) so that shared splits keep both owners. Training neurons (for fitting the rule) and test
neurons are disjoint, and their tasks are drawn with different seeds; the accuracy printed is on the test
neurons only, for the shipped DEFAULT_RULE and for the rule fitted in this run.

Features are computed the product's way (skeletons through cloud-volume over HTTP in batches of whole
neurons, a per-run cache); in the same run a subset is also done the naive way (one load per task, no cache)
and the ratio is printed.

    .venv/bin/python bench/baseline.py             # minnie65_synthetic, 40 training + 70 test neurons
    .venv/bin/python bench/baseline.py --profile fafb_synthetic --test-neurons 400 --k 4
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from collections import Counter

import numpy as np


def _serve(profile: str, conn, stop) -> None:
    from proofpilot.datastack.embedded.server import start_server

    server = start_server(profile=profile, host="127.0.0.1", port=0)
    conn.send(server.url)
    stop.wait()
    server.stop()


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _timed(fn, server_pid: int):
    """fn() and its (wall, client CPU, server CPU) seconds."""
    wall, cpu, srv = time.perf_counter(), time.process_time(), _cpu_s(server_pid)
    result = fn()
    return result, (time.perf_counter() - wall, time.process_time() - cpu, _cpu_s(server_pid) - srv)


def _pairs_of_neurons(n_neurons: int, count: int, exclude: set[int], rng: np.random.Generator) -> list[int]:
    pairs = np.array(sorted(set(range(n_neurons // 2)) - {i // 2 for i in exclude}))
    chosen = np.sort(rng.choice(pairs, size=min(count // 2, len(pairs)), replace=False))
    return [int(i) for p in chosen for i in (2 * p, 2 * p + 1)]


def _tasks(url: str, profile: str, neuron_indices: list[int], k: int, seed: int):
    """Tasks with merge distractors from segmentation cutouts (the product's path, tasks.distractors)."""
    from proofpilot.datastack.client import CaveConnection, ClientSettings
    from proofpilot.datastack.embedded.ids import RootKind, root_id
    from proofpilot.datastack.ingest import IngestOptions, ingest
    from proofpilot.datastack.roles import CaveRoles
    from proofpilot.tasks.build import TaskOptions, tasks_from_ingest
    from proofpilot.tasks.distractors import SegmentationDistractors

    roots = tuple(root_id(RootKind.NEURON, i) for i in neuron_indices)
    settings = ClientSettings(
        datastack=profile, server_address=url, auth_token="abc123", write_server_cache=False
    )
    result = ingest(settings, IngestOptions(root_ids=roots, use_cache=False, progress=False))
    client = CaveConnection(settings).client
    source = SegmentationDistractors.from_client(client)
    try:
        options = TaskOptions(seed=seed, max_ops_per_neuron=k)
        tasks = tasks_from_ingest(result, source, options, roles=CaveRoles(client.chunkedgraph))
    finally:
        source.close()
    print(f"merges without a distractor (seed {seed}): {dict(source.skipped)}")
    return tasks


def _role(profile: str, task) -> str:
    """The task's role; a distractor's with where it comes from: the generator's own neighbour of the merge
    (``own``) or another merge's fragment in the cutout (``other``)."""
    from proofpilot.datastack.embedded.geometry import op_fragments

    if task.role != "distractor":
        return task.role
    own = task.candidate_root_id == op_fragments(profile, task.operation_id)["distractor"]
    return f"distractor-{'own' if own else 'other'}"


def _report(name: str, profile: str, tasks, verdicts) -> None:
    from proofpilot.agent.baseline import cluster_bootstrap_accuracy

    for kind in ("merge", "split"):
        rows = [(t, v) for t, v in zip(tasks, verdicts, strict=True) if t.op_kind == kind]
        correct = [v.decision == t.label for t, v in rows]
        acc, low, high = cluster_bootstrap_accuracy(correct, [t.neuron_root_id for t, _ in rows])
        by_role = Counter()
        per_role = Counter(_role(profile, t) for t, _ in rows)
        for (t, _), ok in zip(rows, correct, strict=True):
            by_role[_role(profile, t)] += ok
        roles = ", ".join(f"{r} {by_role[r] / per_role[r]:.3f} (n={per_role[r]})" for r in sorted(per_role))
        print(
            f"  {name:<26} {kind:<6} accuracy {acc:.3f}  95% CI [{low:.3f}, {high:.3f}]  n={len(rows)} "
            f"tasks, {len({t.neuron_root_id for t, _ in rows})} neurons; {roles}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="minnie65_synthetic")
    parser.add_argument("--train-neurons", type=int, default=40)
    parser.add_argument("--test-neurons", type=int, default=70)
    parser.add_argument("--k", type=int, default=10, help="max operations per neuron")
    parser.add_argument("--naive-tasks", type=int, default=100, help="tasks timed the naive way")
    args = parser.parse_args()

    from proofpilot.agent.baseline import DEFAULT_RULE, BaselineAgent, fit_rule, fit_stump
    from proofpilot.datastack.embedded.profiles import get_profile
    from proofpilot.datastack.skeletons import skeleton_layer_url
    from proofpilot.tasks.prepare import SkeletonCache, add_features

    n_neurons = get_profile(args.profile).n_neurons
    train_idx = list(range(args.train_neurons))
    test_idx = _pairs_of_neurons(n_neurons, args.test_neurons, set(train_idx), np.random.default_rng(7))

    ctx = mp.get_context("spawn")
    parent_conn, child_conn = ctx.Pipe()
    stop = ctx.Event()
    server = ctx.Process(target=_serve, args=(args.profile, child_conn, stop), daemon=True)
    server.start()
    url = parent_conn.recv()
    try:
        layer = skeleton_layer_url(args.profile, server_url=url)
        train = _tasks(url, args.profile, train_idx, args.k, seed=1)
        test = _tasks(url, args.profile, test_idx, args.k, seed=2)
        train = add_features(train, SkeletonCache(layer))

        cache = SkeletonCache(layer)
        test, batched = _timed(lambda: add_features(test, cache), server.pid)
        subset = test[: args.naive_tasks]
        _, naive = _timed(
            lambda: [add_features([t], SkeletonCache(layer, max_items=2)) for t in subset], server.pid
        )
    finally:
        stop.set()
        server.join(timeout=30)

    print(
        f"profile {args.profile}: training {len(train)} tasks from neurons 0–{args.train_neurons - 1} "
        f"(seed 1); test {len(test)} tasks from {len(test_idx)} other neurons (seed 2), K = {args.k}"
    )
    print(f"test tasks by role: {dict(Counter(t.role for t in test))}")
    far = sum(1 for t in test if t.role == "clean" and not np.isfinite(t.features.get("cable_um", np.nan)))
    print(f"clean tasks without skeleton within R of the point: {far}")
    load = os.getloadavg()
    for name, n, (wall, cpu, srv) in (
        ("batched + cached", len(test), batched),
        ("naive, one load per task", len(subset), naive),
    ):
        print(
            f"features, {name:<24} {wall / n * 1e3:6.1f} ms/task wall, CPU {cpu / n * 1e3:5.1f} ms/task "
            f"client + {srv / n * 1e3:5.1f} ms/task server ({n} tasks)"
        )
    print(
        f"  {cache.loads} skeleton loads for {len(test)} tasks; 1,000 tasks take "
        f"{batched[0] / len(test) * 1e3:.0f} s wall; load average {load[0]:.1f} on {os.cpu_count()} cores "
        "(other work shares them)"
    )
    print(
        f"ratio naive / batched (wall per task): {(naive[0] / len(subset)) / (batched[0] / len(test)):.2f}x"
    )

    fitted = fit_rule(train)
    print(f"rule fitted on the training tasks: {fitted}")
    print(f"shipped DEFAULT_RULE:              {DEFAULT_RULE}")
    agent_default, agent_fitted = BaselineAgent(DEFAULT_RULE), BaselineAgent(fitted)
    print("accuracy on the test tasks (cluster bootstrap over neurons, 2,000 resamples):")
    _report("DEFAULT_RULE", args.profile, test, agent_default.decide_tasks(test))
    _report("fitted in this run", args.profile, test, agent_fitted.decide_tasks(test))
    no_gap = fit_stump(train, "merge", ("angle_deg", "radius_ratio", "end_b", "cable_b_um"))
    ablated = BaselineAgent(type(fitted)(merge=no_gap, split=fitted.split))
    merges = [t for t in test if t.op_kind == "merge"]
    print(f"ablation, merge rule without gap/distance features: {no_gap}")
    _report(
        "merge without gap/dist",
        args.profile,
        merges + [t for t in test if t.op_kind == "split"],
        ablated.decide_tasks(merges + [t for t in test if t.op_kind == "split"]),
    )


if __name__ == "__main__":
    main()
