"""Benchmark: tasks prepared per second with views, serial in the driver vs Ray tasks, and a pilot with an
instant LLM endpoint fed by the Ray preparation.

The embedded CAVE server runs in its own process (as a remote CAVE would); skeletons come from its
precomputed layer over HTTP (`--geometry pcg`: pcg_skel crops around each interface from the L2 graph and
L2 cache, the pilot's default). Every mode prepares the same tasks the pilot's way (orchestrator.prep and
tasks.prepare: one skeleton load per batch of a neuron's tasks, features, `--views` rendered views of
`--view-px` px, the agent's request with the images base64-encoded) from a cold skeleton cache:

1. serial: all of it in this process (the driver), one batch after the other;
2. Ray: `--workers` Ray tasks at a time (a local Ray with that many CPUs), the driver only collecting;
3. pilot: the same Ray preparation pipelined with dispatch (orchestrator.dispatch, bounded prefetch) to
   async LLM actors and an instant OpenAI-compatible endpoint (bench/openai_stub.py, its own process), every
   verdict appended to a real run store and recorded in Prometheus, as `proofpilot pilot` does.

Serial and Ray runs alternate (`--rounds` each; the median and each round's ratio are printed), so both see
the machine's changing load. Printed: tasks/s of each mode and the ratio to serial (target: Ray ≥ 1.7×
serial with 2 workers); CPU seconds per task of the driver, of the Ray processes (workers, raylet, GCS
together) and of the CAVE server; the pilot's rate against the Ray preparation's (bound by preparation if
they are close) and the driver's CPU per decision and busy share. The load average is printed before and
after: on a shared machine, wall-clock ratios are only as good as the CPU each process got, so the CPU
figures are printed beside them.

    .venv/bin/python bench/prep.py
    .venv/bin/python bench/prep.py --neurons 40 --views 3 --view-px 512 --workers 2
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
from openai_stub import StubServer

log = logging.getLogger("bench.prep")


def _serve(profile: str, conn, stop) -> None:
    from proofpilot.datastack.embedded.server import start_server

    server = start_server(profile=profile, host="127.0.0.1", port=0)
    conn.send(server.url)
    stop.wait()
    server.stop()


def _cpu_s(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def _ray_cpu_s() -> float:
    """CPU seconds of every process below this one (Ray's GCS, raylet, workers; the stub is its own)."""
    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            total += _cpu_s(child) + child.cpu_times().children_user + child.cpu_times().children_system
        except psutil.NoSuchProcess:
            continue
    return total


@dataclass
class Timing:
    n: int
    wall: float
    driver_cpu: float
    ray_cpu: float
    server_cpu: float

    @property
    def rate(self) -> float:
        return self.n / self.wall


class Meter:
    """Wall time and CPU seconds of the driver, the Ray processes and the CAVE server over a block."""

    def __init__(self, server_pid: int, ray_cpu: bool) -> None:
        self.server = psutil.Process(server_pid)
        self.ray_cpu = ray_cpu

    def __enter__(self) -> Meter:
        self.start = (time.perf_counter(), time.process_time(), self._ray(), _cpu_s(self.server))
        return self

    def _ray(self) -> float:
        return _ray_cpu_s() if self.ray_cpu else 0.0

    def done(self, n: int) -> Timing:
        wall, cpu, ray_cpu, server = self.start
        return Timing(n, time.perf_counter() - wall, time.process_time() - cpu, self._ray() - ray_cpu,
                      _cpu_s(self.server) - server)  # fmt: skip

    def __exit__(self, *exc: object) -> None:
        return None


def _geometry(kind: str, profile: str, url: str):
    """A layer URL, or a function making the pilot's PcgSkeletons (built in each process that prepares)."""
    import functools

    from proofpilot.datastack.skeletons import skeleton_layer_url
    from proofpilot.datastack.source import DataSource
    from proofpilot.pilot.inputs import geometry_source
    from proofpilot.pilot.serve import geometry_invalidation_nm, with_embedded_defaults

    if kind == "layer":
        return skeleton_layer_url(profile, server_url=url)
    source = with_embedded_defaults(DataSource(profile, server_address=url))
    return functools.partial(geometry_source, source, None, geometry_invalidation_nm(profile))


def build_tasks(url: str, profile: str, neurons: int, k: int, seed: int):
    from proofpilot.datastack.client import CaveConnection, ClientSettings
    from proofpilot.datastack.embedded.distractors import EmbeddedDistractors
    from proofpilot.datastack.ingest import IngestOptions, ingest
    from proofpilot.datastack.roles import CaveRoles
    from proofpilot.tasks.build import TaskOptions, tasks_from_ingest

    settings = ClientSettings(
        datastack=profile, server_address=url, auth_token="abc123", write_server_cache=False
    )
    result = ingest(settings, IngestOptions(limit=neurons, use_cache=False, progress=False))
    roles = CaveRoles(CaveConnection(settings).client.chunkedgraph)
    options = TaskOptions(seed=seed, max_ops_per_neuron=k)
    return tasks_from_ingest(result, EmbeddedDistractors(profile), options, roles=roles)


def serial(tasks, layer: str, options, meter: Meter) -> Timing:
    """The whole preparation in this process, batch after batch (what the driver did before)."""
    from proofpilot.orchestrator.prep import neuron_batches, prepare_batch
    from proofpilot.pilot.session import llm_payload
    key = f"serial-{time.monotonic()}"  # a cold skeleton cache
    with meter:
        batches = neuron_batches(tasks, options.batch_size)
        results = [r for b in batches for r in prepare_batch(b, key, layer, options, llm_payload)]
        timing = meter.done(len(tasks))
    failed = sum(r.error_reason is not None for r in results)
    if failed:
        log.warning("%d of %d tasks failed their preparation", failed, len(tasks))
    return timing


def ray_only(tasks, layer: str, options, meter: Meter) -> Timing:
    """The Ray preparation drained by the driver as fast as it completes (no dispatch)."""
    import ray

    from proofpilot.orchestrator.prep import PrepFeed
    from proofpilot.pilot.session import llm_payload

    with meter:
        feed = PrepFeed(tasks, layer, llm_payload, options, model="stub")
        n = 0
        while not feed.exhausted:
            feed.top_up(0)
            ray.wait(feed.refs, num_returns=1)
            items, failed, _ = feed.collect()
            n += len(items) + len(failed)
        return meter.done(n)


def pilot(tasks, layer: str, options, meter: Meter, base_url: str, run_dir: Path) -> Timing:
    """The pilot's path: preparation pipelined with dispatch to the instant endpoint, verdicts stored."""
    from proofpilot.orchestrator.dispatch import Dispatcher, start_llm_workers, stop_workers
    from proofpilot.orchestrator.prep import PrepFeed
    from proofpilot.orchestrator.store import RunStore
    from proofpilot.pilot.session import PilotSession, llm_payload
    from proofpilot.telemetry.metrics import PrometheusDecisionLogger

    slots = start_llm_workers([base_url], "stub", 64, n_actors=1)
    logger = PrometheusDecisionLogger()
    try:
        with RunStore.open(run_dir, {"bench": "prep"}, resume=False) as store, meter:
            session = PilotSession(store, logger, tasks, "llm")
            feed = PrepFeed(tasks, layer, llm_payload, options, model="stub")
            stats = Dispatcher(slots, session.on_verdicts, logger).run([], progress=False, feed=feed)
            timing = meter.done(stats.completed)
            assert stats.completed == len(tasks) == len(store), "not every task was decided"
    finally:
        stop_workers(slots)
    return timing


def _median(timings: list[Timing]) -> Timing:
    """The run of median rate (the lower one of an even count)."""
    return sorted(timings, key=lambda t: t.rate)[(len(timings) - 1) // 2]


def _row(name: str, t: Timing, base: Timing | None) -> str:
    ratio = f", {t.rate / base.rate:.2f}× serial" if base else ""
    ms = 1e3 / t.n
    return (f"{name:<34} {t.rate:6.1f} tasks/s ({t.n} in {t.wall:5.1f} s{ratio}); CPU ms/task: driver "
            f"{t.driver_cpu * ms:6.1f}, Ray {t.ray_cpu * ms:6.1f}, CAVE server "
            f"{t.server_cpu * ms:5.1f}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="minnie65_synthetic")
    parser.add_argument("--neurons", type=int, default=16)
    parser.add_argument("--k", type=int, default=6, help="max operations per neuron")
    parser.add_argument("--views", type=int, default=3)
    parser.add_argument("--view-px", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2, help="Ray CPUs (preparation tasks at a time)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2, help="serial and Ray runs each, alternating")
    parser.add_argument("--geometry", choices=("layer", "pcg"), default="layer",
                        help="the precomputed layer, or pcg_skel crops per interface (the pilot's default)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)  # cloud-files: nothing lost

    from proofpilot.orchestrator.prep import PrepOptions
    from proofpilot.orchestrator.ray_session import RayOptions, ray_session

    options = PrepOptions(views=args.views, view_px=args.view_px, batch_size=args.batch_size, prefetch=128)
    load_before = os.getloadavg()
    ctx = mp.get_context("spawn")
    parent_conn, child_conn = ctx.Pipe()
    stop = ctx.Event()
    server = ctx.Process(target=_serve, args=(args.profile, child_conn, stop), daemon=True)
    server.start()
    url = parent_conn.recv()
    try:
        layer = _geometry(args.geometry, args.profile, url)
        tasks = build_tasks(url, args.profile, args.neurons, args.k, args.seed)
        warm, timed = tasks[: 2 * args.batch_size], tasks
        serial(warm, layer, options, Meter(server.pid, False))  # imports and the first render
        with StubServer(delay_s=0.0) as stub, tempfile.TemporaryDirectory(prefix="ppp-", dir="/tmp") as tmp:
            ray_options = RayOptions(num_cpus=args.workers, temp_dir=os.path.join(tmp, "r"))
            with ray_session(ray_options):
                ray_only(warm, layer, options, Meter(server.pid, True))  # start the workers
                runs: dict[str, list[Timing]] = {"serial": [], "ray": []}
                for r in range(args.rounds):  # alternating, so both see the machine's changing load
                    for mode in ("serial", "ray") if r % 2 == 0 else ("ray", "serial"):
                        run = serial if mode == "serial" else ray_only
                        runs[mode].append(run(timed, layer, options, Meter(server.pid, mode == "ray")))
                meter = Meter(server.pid, True)
                piloted = pilot(timed, layer, options, meter, stub.base_url, Path(tmp) / "run")
    finally:
        stop.set()
        server.join(timeout=30)
    load_after = os.getloadavg()

    print(f"machine: {os.cpu_count()} cores, shared; load average {load_before[0]:.1f} before, "
          f"{load_after[0]:.1f} after (1 min)")  # fmt: skip
    print(f"{len(timed)} tasks of {args.neurons} neurons ({args.profile}, ≤ {args.k} ops each), batches of "
          f"{args.batch_size}; {args.views} views of {args.view_px} px per task; geometry: {args.geometry}; "
          f"cold skeleton caches; "
          f"{args.rounds} rounds per mode, alternating (median shown)")  # fmt: skip
    base, on_ray = _median(runs["serial"]), _median(runs["ray"])
    print(_row("serial, in the driver", base, None))
    print(_row(f"Ray tasks, {args.workers} workers", on_ray, base))
    print(_row("pilot: Ray prep + dispatch + store", piloted, base))
    paired = [r.rate / s.rate for s, r in zip(runs["serial"], runs["ray"], strict=True)]
    print("per round, Ray ÷ serial: " + ", ".join(f"{x:.2f}×" for x in paired))
    ratio = on_ray.rate / base.rate
    busy = piloted.driver_cpu / piloted.wall
    bound = piloted.rate / on_ray.rate
    serial_cpu = (base.driver_cpu + base.server_cpu) / base.n
    ray_cpu = (on_ray.driver_cpu + on_ray.ray_cpu + on_ray.server_cpu) / on_ray.n
    overhead = ray_cpu / serial_cpu
    print(f"CPU per task, all processes: serial {serial_cpu * 1e3:.1f} ms, Ray {ray_cpu * 1e3:.1f} ms "
          f"({overhead:.2f}×: Ray's own overhead); on {args.workers} otherwise idle cores the CPU-bound "
          f"ceiling of the ratio is {args.workers / overhead:.2f}×")  # fmt: skip
    print(f"pilot with an instant endpoint: {bound:.2f}× the Ray preparation's rate; driver CPU "
          f"{piloted.driver_cpu / piloted.n * 1e3:.2f} ms per decision, busy {busy:.0%} of one core "
          f"-> bound by {'preparation' if busy < 0.5 else 'the driver'}")  # fmt: skip
    ok = ratio >= 1.7
    print(f"target: Ray preparation ≥ 1.7× serial with {args.workers} workers: {'met' if ok else 'MISSED'} "
          f"({ratio:.2f}×)")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
