"""`proofpilot pilot` end to end on the embedded datastack: the real vLLM CPU server, Ctrl-C and SIGKILL with
resume, a full disk, and bad input (one line, non-zero exit, stored verdicts untouched).

The interrupt tests run the CLI in a subprocess against a slow local OpenAI-compatible stub (its own process,
bench/openai_stub.py) so that the signal lands mid-run; they poll the store until verdicts exist.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest
from support.prometheus_fixtures import evaluate_dashboard_queries, free_port, last_up, poll, query

from proofpilot.agent.records import Verdict
from proofpilot.orchestrator.store import MANIFEST_NAME, VERDICTS_NAME, RunStore, read_verdicts
from proofpilot.orchestrator.task_sizes import read_task_sizes
from proofpilot.pilot.run import PilotConfig, run_pilot
from proofpilot.pilot.session import outcome_of, verdict_record
from proofpilot.tasks.records import DecisionTask
from proofpilot.telemetry import promql
from proofpilot.telemetry.metrics import PrometheusDecisionLogger
from proofpilot.telemetry.replay import read_request_log

REPO = Path(__file__).resolve().parents[2]
SLOW_RUN = ["--datastack", "fafb_synthetic", "--neurons", "20", "--max-ops-per-neuron", "2",
            "--concurrency", "2", "--model", "stub", "--metrics-port", "0", "--no-progress",
            "--scrape-interval", "0.5"]  # fmt: skip


def _stub_server():
    spec = importlib.util.spec_from_file_location("openai_stub", REPO / "bench" / "openai_stub.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.StubServer


StubServer = _stub_server()


@pytest.fixture(scope="module")
def ray_tmp():
    path = tempfile.mkdtemp(prefix="ppr-", dir="/tmp")  # short: unix socket paths are limited
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def slow_stub():
    with StubServer(delay_s=0.2) as stub:
        yield stub


def pilot_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "proofpilot.cli", "pilot", *args]


def run_cli(args: list[str], ray_tmp: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PROOFPILOT_RAY_TMPDIR": ray_tmp}
    return subprocess.run(pilot_cmd(*args), capture_output=True, text=True, timeout=timeout, env=env)


def start_cli(args: list[str], ray_tmp: str) -> subprocess.Popen:
    env = {**os.environ, "PROOFPILOT_RAY_TMPDIR": ray_tmp}
    return subprocess.Popen(
        pilot_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def complete_lines(path: Path) -> list[bytes]:
    if not path.exists():
        return []
    data = path.read_bytes()
    return data[: data.rfind(b"\n") + 1].splitlines(keepends=True)


def wait_for_verdicts(path: Path, n: int, proc: subprocess.Popen, deadline_s: float = 300) -> None:
    """Poll the store until it holds `n` verdicts (fails if the pilot exits first)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if len(complete_lines(path)) >= n:
            return
        if proc.poll() is not None:
            pytest.fail(f"pilot exited ({proc.returncode}) before {n} verdicts: {proc.stderr.read()[-1500:]}")
        time.sleep(0.05)  # polling interval, not a timing assumption
    proc.kill()
    pytest.fail(f"no {n} verdicts within {deadline_s} s")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def alive_processes(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait up to `timeout` s for `procs` to exit (zombies count as gone); kill and return any left."""
    end = time.monotonic() + max(timeout, 0)
    left = procs
    while True:
        left = [p for p in left if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if not left or time.monotonic() > end:
            break
        psutil.wait_procs(left, timeout=0.5)
    for p in left:  # our own children: clean up by pid
        p.kill()
    return left


def assert_every_task_once(run_dir: Path) -> int:
    tasks = [json.loads(line)["task_id"] for line in (run_dir / "tasks.jsonl").read_text().splitlines()]
    stored = Counter(r["task_id"] for r in read_verdicts(run_dir))
    assert set(stored) == set(tasks), f"{len(set(tasks) - set(stored))} tasks without a verdict"
    assert set(stored.values()) == {1}, "a task was stored twice"
    assert_every_decision_has_its_size(run_dir)
    return len(tasks)


def assert_every_decision_has_its_size(run_dir: Path) -> None:
    """Every decided task (not a failed preparation's) has its edit's size in task_sizes.jsonl."""
    sizes = read_task_sizes(run_dir)
    decided = {r["task_id"]: r for r in read_verdicts(run_dir) if r["endpoint"] != "prep"}
    assert set(decided) <= set(sizes), f"{len(set(decided) - set(sizes))} decided tasks without a size"
    for task_id in decided:
        size = sizes[task_id]
        assert size.operation_id == decided[task_id]["operation_id"] and size.fragment_nodes > 0
        assert size.nodes_near is not None and size.radius_nm > 0


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    err = proc.stderr.strip()
    assert proc.returncode != 0, proc.stdout
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def _verdict(valid: bool, decision: str | None, reason: str | None) -> Verdict:
    return Verdict("1:partner", "merge", decision, 0.9 if valid else None, valid, 0.1, 10, 5, 1, 1, reason,
                   "stop", "http://x/v1", "m", "v")  # fmt: skip


def test_outcome_of_a_verdict():
    task = DecisionTask("1:partner", 1, 2, 3, "merge", "partner", "merge", 4, 5, (0.0, 0.0, 0.0))
    assert outcome_of(task, _verdict(True, "merge", None)) == "correct"
    assert outcome_of(task, _verdict(True, "no_merge", None)) == "incorrect"
    assert outcome_of(task, _verdict(False, None, "invalid_json")) == "invalid"  # the model's answer
    assert outcome_of(task, _verdict(False, None, "timeout")) == "error"  # the transport
    record = verdict_record(task, _verdict(True, "merge", None), "llm", 2)
    assert record["label"] == "merge" and record["outcome"] == "correct" and record["session"] == 2
    assert record["neuron_root_id"] == 2 and record["prompt_tokens"] == 10


# -- the real vLLM CPU server --------------------------------------------------------------------------------
@pytest.mark.vllm
@pytest.mark.prometheus
def test_pilot_end_to_end_on_real_vllm(vllm_server, tmp_path, ray_tmp, prometheus_factory):
    """100 neurons on the real vLLM CPU server while a real Prometheus scrapes the pilot and vLLM; afterwards
    every PromQL expression of the generated Grafana dashboard returns data."""
    run_dir = tmp_path / "run"
    metrics_port = free_port()
    prom = prometheus_factory({"proofpilot": [f"127.0.0.1:{metrics_port}"],
                               "vllm": [urlsplit(vllm_server.metrics_url).netloc]})  # fmt: skip
    config = PilotConfig(
        source="fafb_synthetic", run_dir=run_dir, neurons=100, max_ops_per_neuron=1,
        llm_urls=(vllm_server.base_url,), model=vllm_server.model, gpus_per_endpoint=1, concurrency=32,
        metrics_port=metrics_port, progress=False, scrape_interval_s=0.25, ray_temp_dir=ray_tmp,
    )  # fmt: skip
    logger = PrometheusDecisionLogger()
    result = run_pilot(config, logger)

    n_tasks = assert_every_task_once(run_dir)
    assert result.complete and result.n_tasks == n_tasks == result.n_new and not result.interrupted
    verdicts = read_verdicts(run_dir)
    assert all(v["valid"] or v["error_reason"] for v in verdicts)
    assert sum(v["valid"] for v in verdicts) > 0.5 * n_tasks  # structured output keeps the tiny model valid
    answers = sum(v["answers"] for v in verdicts)
    assert set(read_request_log(run_dir)) == {v["task_id"] for v in verdicts}  # what export-prompts replays

    window = json.loads((run_dir / "vllm_window.json").read_text())["endpoints"][0]
    assert len(window["snapshots"]) >= 2
    served = sum(v for k, v in window["counter_deltas"].items() if k.startswith("vllm:request_success_total"))
    assert served == answers  # the scraped window holds exactly this pilot's requests

    cost = json.loads((run_dir / "cost.json").read_text())
    assert cost["throughput"]["decisions"] == sum(v["answers"] > 0 for v in verdicts)
    assert cost["throughput"]["node_s_per_decision"] > 0
    assert cost["throughput"]["node_s_per_decision"] < cost["throughput"]["window_seconds"]
    assert cost["naive_latency"]["label"].startswith("not a cost")
    assert set(cost["per_op"]) == {"merge", "split"}

    text = logger.exposition().decode()
    decided = sum(float(line.split()[-1]) for line in text.splitlines()
                  if line.startswith("proofpilot_decisions_total{"))  # fmt: skip
    assert decided == n_tasks
    assert 'proofpilot_tokens_total{kind="prompt"' in text
    manifest = json.loads((run_dir / MANIFEST_NAME).read_text())
    assert manifest["sessions"][-1]["ended"] == "done" and manifest["n_tasks"] == n_tasks

    def scraped_decisions() -> float | None:
        rows = query(prom.url, "sum(proofpilot_decisions_total)")
        return float(rows[0]["value"][1]) if rows and float(rows[0]["value"][1]) >= n_tasks else None

    assert poll(scraped_decisions, 30, "the pilot's decisions in Prometheus") == n_tasks
    at = last_up(prom.url, "proofpilot")  # the exporter has stopped with the run: query its last scrape
    assert at is not None
    n_series = evaluate_dashboard_queries(prom.url, promql.queries(), at=at)
    assert n_series and all(n > 0 for n in n_series.values()), {e: n for e, n in n_series.items() if n == 0}


def test_baseline_pilot_needs_no_llm(tmp_path, ray_tmp):
    run_dir = tmp_path / "run"
    config = PilotConfig(source="fafb_synthetic", run_dir=run_dir, neurons=10, max_ops_per_neuron=2,
                         agent="baseline", metrics_port=0, progress=False, ray_temp_dir=ray_tmp)  # fmt: skip
    logger = PrometheusDecisionLogger()
    result = run_pilot(config, logger)
    n_tasks = assert_every_task_once(run_dir)
    # the fragments' geometry is read in the Ray preparation tasks (pcg_skel: the L2 graph): their CAVE
    # requests reach the driver's metrics too
    cave = {line.split('endpoint="')[1].split('"')[0]: float(line.split()[-1])
            for line in logger.exposition().decode().splitlines()
            if line.startswith("proofpilot_cave_requests_total{") and 'status="200"' in line}  # fmt: skip
    assert cave.get("lvl2_graph", 0) >= 1, cave
    assert result.complete and result.n_new == n_tasks and result.cost_path is None
    verdicts = read_verdicts(run_dir)
    assert {v["agent"] for v in verdicts} == {"baseline"} and all(v["valid"] for v in verdicts)
    assert sum(result.outcomes.values()) == n_tasks and not (run_dir / "cost.json").exists()


# -- Ctrl-C, SIGKILL, resume ---------------------------------------------------------------------------------
def test_ctrl_c_then_sigkill_then_resume_stores_every_task_once(slow_stub, tmp_path, ray_tmp):
    run_dir = tmp_path / "run"
    args = [*SLOW_RUN, "--llm-url", slow_stub.base_url, "--run-dir", str(run_dir), "--gpus-per-endpoint", "1"]
    # 10 neurons, 40 tasks (~4 s at the stub's pace): room for two stops mid-run, and each of the 4 sessions
    # builds (and a resume re-checks) half the tasks of SLOW_RUN, whose distractor cutouts dominate a session
    args[args.index("--neurons") + 1] = "10"
    store = run_dir / VERDICTS_NAME

    # 1. the live metrics on 127.0.0.1:P during the run; then Ctrl-C: a clean stop, exit 130, resumable
    port = _free_port()
    live_args = list(args)
    live_args[live_args.index("--metrics-port") + 1] = str(port)
    proc = start_cli(live_args, ray_tmp)
    wait_for_verdicts(store, 3, proc)
    live = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    assert sum(float(line.split()[-1]) for line in live.splitlines()
               if line.startswith("proofpilot_decisions_total{")) >= 3  # fmt: skip
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-1500:]
    assert "--resume" in err.strip().splitlines()[-1]
    after_ctrl_c = complete_lines(store)
    assert store.read_bytes() == b"".join(after_ctrl_c)  # a clean stop leaves no torn line
    assert json.loads((run_dir / MANIFEST_NAME).read_text())["sessions"][-1]["ended"] == "interrupted"

    # 2. resume, then SIGKILL mid-run (the pilot and, with it, its local Ray)
    proc = start_cli([*args, "--resume"], ray_tmp)
    wait_for_verdicts(store, len(after_ctrl_c) + 3, proc)
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    proc.communicate(timeout=60)
    # Ray's GCS, raylet and workers share the driver's fate at once; its agents notice the raylet's death
    # and exit after their 60 s attempt to report it to the dead GCS (checked at the end of the test)
    agents = [p for p in children if p.name().startswith(("ray::DashboardAgent", "ray::RuntimeEnvAgent"))]
    core = [p for p in children if p not in agents]
    assert not alive_processes(core, 30), "Ray processes outlived the killed pilot"
    after_kill = complete_lines(store)
    assert after_kill[: len(after_ctrl_c)] == after_ctrl_c  # nothing stored before was rewritten

    # 3. resume to the end: every task exactly once, and the earlier verdicts unchanged
    done = run_cli([*args, "--resume", "--usd-per-gpu-hour", "4.5"], ray_tmp)  # a lab's own GPU price
    assert done.returncode == 0, done.stderr[-2000:]
    n_tasks = assert_every_task_once(run_dir)
    assert len(after_kill) < n_tasks
    assert complete_lines(store)[: len(after_kill)] == after_kill
    sessions = json.loads((run_dir / MANIFEST_NAME).read_text())["sessions"]
    assert len(sessions) == 3 and sessions[-1]["ended"] == "done"
    # cost.json is the run's: sessions 1 and 3 (the killed session 2 saved no window); cost.sK.json each
    # finished session's own
    run_cost = json.loads((run_dir / "cost.json").read_text())
    own = json.loads((run_dir / "cost.s3.json").read_text())
    answered = Counter(v["session"] for v in read_verdicts(run_dir) if v["answers"] > 0)
    assert answered[2] > 0 and own["throughput"]["decisions"] == answered[3]
    assert run_cost["throughput"]["decisions"] == answered[1] + answered[3]
    assert any(f"{answered[2]} of its decisions are not in this cost" in n for n in run_cost["notes"])
    assert json.loads((run_dir / "cost.s1.json").read_text())["throughput"]["decisions"] == answered[1]
    projection = run_cost["projection"]
    assert projection["usd_per_gpu_hour"] == 4.5 and projection["usd_basis"] == "set with --usd-per-gpu-hour"
    assert projection["usd"] == pytest.approx(projection["gpu_hours"] * 4.5)
    assert (run_dir / "vllm_window.s1.json").exists() and not (run_dir / "vllm_window.s2.json").exists()

    # 4. resuming a finished run changes nothing
    before = store.read_bytes()
    again = run_cli([*args, "--resume"], ray_tmp)
    assert again.returncode == 0 and f"{n_tasks} of {n_tasks} tasks have verdicts (0 new" in again.stdout
    assert store.read_bytes() == before

    # the killed session's Ray agents, given until 120 s after the kill (steps 3 and 4 ran meanwhile)
    assert not alive_processes(agents, killed_at + 120 - time.monotonic()), "Ray agents never exited"


# -- a full disk --------------------------------------------------------------------------------------------
FULL_DISK_SCRIPT = """
set -u
mount -t tmpfs -o size=8m tmpfs "$DISK" || exit 90
"$@" --run-dir "$DISK/run" > "$OUT/stdout" 2> "$OUT/stderr" &
pid=$!
until [ -s "$DISK/run/verdicts.jsonl" ] || ! kill -0 $pid 2>/dev/null; do sleep 0.05; done
cat /dev/zero > "$DISK/filler" 2>/dev/null   # fill what is left of the disk
wait $pid; echo $? > "$OUT/rc"
rm -f "$DISK/filler"
cp -a "$DISK/run" "$OUT/run"
"""


def test_full_disk_stops_the_pilot_and_keeps_the_verdicts(slow_stub, tmp_path, ray_tmp):
    if (
        shutil.which("unshare") is None
        or subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode
    ):
        pytest.skip("no unprivileged mount namespace here (unshare -rm)")
    disk, out = tmp_path / "disk", tmp_path / "out"
    disk.mkdir()
    out.mkdir()
    script = tmp_path / "full_disk.sh"
    script.write_text(FULL_DISK_SCRIPT)
    cmd = pilot_cmd(*SLOW_RUN, "--llm-url", slow_stub.base_url, "--gpus-per-endpoint", "1")
    env = {**os.environ, "PROOFPILOT_RAY_TMPDIR": ray_tmp, "DISK": str(disk), "OUT": str(out)}
    subprocess.run(["unshare", "-rm", "sh", str(script), *cmd], env=env, timeout=300, check=True)

    err = (out / "stderr").read_text().strip()
    assert int((out / "rc").read_text()) == 2, err[-2000:]
    last = err.splitlines()[-1]
    assert last.startswith("proofpilot: error: disk full") and "--resume" in last and "Traceback" not in err
    run_dir = out / "run"
    stored = read_verdicts(run_dir)
    assert stored and (run_dir / VERDICTS_NAME).read_bytes().endswith(b"\n")  # no partial line left
    assert len({v["task_id"] for v in stored}) == len(stored)
    # resuming after a full disk: tests/pilot/test_fault_suite.py (the same store, a file-size limit)


# -- bad input ----------------------------------------------------------------------------------------------
def _closed_port_url() -> str:
    return f"http://127.0.0.1:{_free_port()}/v1"


@pytest.fixture()
def stored_run(tmp_path):
    """A run dir holding three stored verdicts of the `SLOW_RUN` config (written through the store)."""
    run_dir = tmp_path / "run"
    config = PilotConfig(source="fafb_synthetic", run_dir=run_dir, neurons=20, max_ops_per_neuron=2,
                         llm_urls=("http://127.0.0.1:1/v1",), model="stub")  # fmt: skip
    with RunStore.open(run_dir, config.identity(), resume=False) as store:
        store.append([{"task_id": f"{i}:partner", "decision": "merge"} for i in range(3)])
    return run_dir


def _snapshot(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run_dir.iterdir()) if p.is_file()}


def test_no_reachable_endpoint_is_one_line_and_touches_nothing(stored_run, ray_tmp):
    before = _snapshot(stored_run)
    proc = run_cli(
        [*SLOW_RUN, "--llm-url", _closed_port_url(), "--run-dir", str(stored_run), "--resume"], ray_tmp
    )
    assert "unreachable" in one_line_error(proc)
    assert _snapshot(stored_run) == before


def test_resume_with_another_config_is_one_line_and_touches_nothing(stored_run, ray_tmp):
    before = _snapshot(stored_run)
    args = [a if a != "20" else "21" for a in SLOW_RUN]  # --neurons 21
    proc = run_cli(
        [*args, "--llm-url", _closed_port_url(), "--run-dir", str(stored_run), "--resume"], ray_tmp
    )
    assert "different config (neurons 20 -> 21)" in one_line_error(proc)
    assert _snapshot(stored_run) == before


def test_more_neurons_than_the_table_is_one_line_and_writes_nothing(tmp_path, ray_tmp):
    run_dir = tmp_path / "run"
    proc = run_cli(["--datastack", "minnie65_synthetic", "--neurons", "5000", "--agent", "baseline",
                    "--metrics-port", "0", "--no-progress", "--run-dir", str(run_dir)], ray_tmp)  # fmt: skip
    assert "larger than the proofread table (2,314 neurons)" in one_line_error(proc)
    assert not run_dir.exists()
