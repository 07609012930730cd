"""The fault suite's figures: each fault injected into a real pilot run, whether the run survived, and
whether a verdict was lost, duplicated or rewritten.

1. CAVE errors: the embedded server answers HTTP 500 to 5 % of its data calls (change logs, operation
   details, skeleton files) while a baseline pilot ingests 20 fly-like neurons. 1b: change logs that can
   never be read (a sticky, non-retried HTTP 400 on 60 % of the change-log calls): those neurons must be
   error rows; then the run is resumed once the server answers again.
2. LLM server restart: the real vLLM CPU server (tiny Qwen2) is restarted while a pilot is dispatching to
   it (the restart is triggered once the store holds verdicts); requests that fail are logged in
   llm_errors.jsonl and their tasks asked again once the server answers; then the run is resumed.
3. Malformed model output: an OpenAI-compatible endpoint answers a share of the requests with broken JSON,
   off-schema JSON, cut-off or empty answers or a non-JSON body (tests/support/fake_llm.py's behaviours).
4. SIGKILL mid-run, then `--resume` (against bench/openai_stub.py answering after 0.2 s).
5. A full disk for the run store: a small tmpfs (in a private mount namespace) that is filled while the
   pilot writes; where mounting is impossible, a file-size limit (RLIMIT_FSIZE, EFBIG) put on the running
   pilot. Then `--resume` with space again.

A row counts the run's tasks (tasks.jsonl) against its verdicts (verdicts.jsonl): stored = distinct task ids
with a verdict, lost = tasks without one, duplicated = extra lines of a task; "prefix kept" says whether the
bytes stored before the fault are still the first bytes of the store after the run and its resume. The
same scenarios, with more assertions, are tests/pilot/test_fault_suite.py (4 and the tmpfs variant of 5 are in
tests/pilot/test_pilot_e2e.py).

6 to 11 are the hardening rows (bench/fault_cases.py): a token echoed in 401/403s, a dripping and an
oversized CAVE body, Ray's listeners, a deleted run.json, a 4-neuron edits sample into the report. A row
has a figure where the scenario measures one, against a baseline of the same run where that means something.

    .venv/bin/python bench/faults.py               # all eleven (starts a vLLM CPU server for fault 2)
    .venv/bin/python bench/faults.py --skip-vllm   # without fault 2
    .venv/bin/python bench/faults.py --only token deadline ray run-json small-sample   # 6 to 11
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any


def _load_kit() -> Any:
    """bench/fault_kit.py, once per process (bench/fault_cases.py finds it in sys.modules)."""
    spec = importlib.util.spec_from_file_location(KIT_NAME, Path(__file__).with_name("fault_kit.py"))
    module = sys.modules[KIT_NAME] = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


KIT_NAME = "bench_fault_kit"
kit = sys.modules.get(KIT_NAME) or _load_kit()
# the shared bookkeeping, under the names tests/pilot/test_fault_suite.py uses
REPO, FLY, SMALL_RUN, Figures, Ledger = kit.REPO, kit.FLY, kit.SMALL_RUN, kit.Figures, kit.Ledger
ledger, complete_lines, pilot_env, pilot_cmd = kit.ledger, kit.complete_lines, kit.pilot_env, kit.pilot_cmd
run_pilot_cli, start_pilot_cli, stopped_on_exit = kit.run_pilot_cli, kit.start_pilot_cli, kit.stopped_on_exit
wait_for_verdicts, print_table = kit.wait_for_verdicts, kit.print_table
StubServer = kit.load(REPO / "bench" / "openai_stub.py", "_faults_openai_stub").StubServer
FakeLLM = kit.load(REPO / "tests" / "support" / "fake_llm.py", "_faults_fake_llm").FakeLLM
cases = kit.load(REPO / "bench" / "fault_cases.py", "bench_fault_cases")


# -- fault 3: an endpoint that breaks a known share of its answers ------------------------------------------
MALFORMED_KINDS = {  # fake_llm behaviour -> the reason the client must record
    "brokenjson": "invalid_json",
    "offschema": "schema_mismatch",
    "length": "length",
    "empty": "empty_answer",
    "garbage": "invalid_response",
}
FLAKY_SHARE, BROKEN_SHARE = 0.25, 0.15


def behaviour_of(task_id: str) -> str:
    """The fixed plan: 25 % of tasks get broken JSON on the first answer only ("flaky"), 15 % get one
    malformed kind on every answer (3 answers with the client's 2 re-asks), the rest a valid verdict."""
    digest = hashlib.blake2b(task_id.encode(), digest_size=8).digest()
    u = int.from_bytes(digest[:4], "big") / 2**32
    if u < FLAKY_SHARE:
        return "flaky"
    if u < FLAKY_SHARE + BROKEN_SHARE:
        kinds = sorted(MALFORMED_KINDS)
        return kinds[int.from_bytes(digest[4:], "big") % len(kinds)]
    return "good"


class MalformedLLM(FakeLLM):
    """tests/support/fake_llm.py's endpoint, with each pilot task's behaviour taken from `behaviour_of`."""

    def answer(self, task_id: str, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        return super().answer(f"{behaviour_of(task_id)}-{task_id}", body)

    def malformed_requests(self) -> int:
        """Answers that were malformed: the first of a flaky task, every one of a broken task."""
        return sum(1 if key.startswith("flaky-") else n
                   for key, n in self.calls.items() if not key.startswith("good-"))  # fmt: skip


# -- fault 5: a full disk ------------------------------------------------------------------------------------
def ignore_sigxfsz() -> None:
    """In the pilot before exec: a write past RLIMIT_FSIZE fails with EFBIG instead of killing it."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def limit_file_size(pid: int, max_bytes: int) -> None:
    """Cap every file the process `pid` writes at `max_bytes` (children it already started keep no cap)."""
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (max_bytes, max_bytes))


TMPFS_SCRIPT = """
set -u
mount -t tmpfs -o size=8m tmpfs "$DISK" || exit 90
"$@" --run-dir "$DISK/run" > "$OUT/stdout" 2> "$OUT/stderr" &
pid=$!
until [ -s "$DISK/run/verdicts.jsonl" ] || ! kill -0 $pid 2>/dev/null; do sleep 0.05; done
cp "$DISK/run/verdicts.jsonl" "$OUT/at_fill"
cat /dev/zero > "$DISK/filler" 2>/dev/null
wait $pid; echo $? > "$OUT/rc"
rm -f "$DISK/filler"
cp -a "$DISK/run" "$OUT/run"
"""


def tmpfs_available() -> bool:
    if shutil.which("unshare") is None:
        return False
    with tempfile.TemporaryDirectory() as probe:
        cmd = ["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=4k tmpfs {probe}"]
        return subprocess.run(cmd, capture_output=True).returncode == 0


# -- the five scenarios -------------------------------------------------------------------------------------
def cave_errors(work: Path, ray_tmp: str) -> Figures:
    from proofpilot.datastack.embedded.faults import FaultConfig
    from proofpilot.datastack.embedded.server import start_server

    run_dir = work / "cave-errors"
    with start_server(FLY, faults=FaultConfig(error_rate=0.05, seed=3)) as server:
        proc = run_pilot_cli([*SMALL_RUN, "--agent", "baseline", "--server-address", server.url,
                              "--run-dir", str(run_dir)], ray_tmp)  # fmt: skip
        injected, counts = server.faults_injected, server.request_counts
    data_calls = sum(n for route, n in counts.items() if route in DATA_ROUTES)
    ok = proc.returncode == 0
    what = f"HTTP 500 on {injected.get('error', 0)} of {data_calls} data calls"
    return Figures("1 CAVE errors (5 %)", what, ok, ledger(run_dir) if ok else None, None,
                   "all retried" if ok else proc.stderr.strip()[-200:])  # fmt: skip


DATA_ROUTES = ("query", "tabular_change_log_many", "operation_details", "skeletons")
UNFETCHABLE = dict(error_rate=0.6, error_status=400, sticky=True, seed=1, routes=("tabular_change_log_many",))


def cave_logs_lost(work: Path, ray_tmp: str) -> Figures:
    """Change logs that can never be read (sticky, not retried): reported neurons; then resume after CAVE
    recovers."""
    import pandas as pd

    from proofpilot.datastack.embedded.faults import FaultConfig
    from proofpilot.datastack.embedded.server import start_server

    run_dir = work / "cave-lost"
    with start_server(FLY, faults=FaultConfig(**UNFETCHABLE)) as server:
        args = [*SMALL_RUN, "--agent", "baseline", "--server-address", server.url, "--run-dir", str(run_dir)]
        proc = run_pilot_cli(args, ray_tmp)
        server.set_faults(None)
        before = complete_lines(run_dir / "verdicts.jsonl")
        resumed = run_pilot_cli([*args, "--resume"], ray_tmp)
    if proc.returncode != 0:
        return Figures("1b CAVE logs lost", "-", False, None, None, proc.stderr.strip()[-200:])
    per = pd.read_parquet(run_dir / "ingest" / "per_neuron.parquet")
    n_failed = int((per["status"] == "error").sum())
    resume = f"resume after recovery: exit {resumed.returncode}"
    if "differ" in resumed.stderr:
        resume += ", refused: 'the tasks built now differ'"
    return Figures("1b CAVE logs lost", f"sticky HTTP 400: {n_failed} of {len(per)} neurons unreadable", True,
                   ledger(run_dir), complete_lines(run_dir / "verdicts.jsonl").startswith(before),
                   f"{n_failed} error rows (n_edits NA); {resume}")  # fmt: skip


def llm_restart(work: Path, ray_tmp: str) -> Figures:
    from proofpilot.agent.serving import CpuServerConfig, VllmCpuServer, unavailable_reason
    from proofpilot.orchestrator.store import read_llm_errors

    config = CpuServerConfig(log_path=work / "vllm.log")
    reason = unavailable_reason(config)
    if reason:
        return Figures("2 LLM server restart", "-", False, None, None, f"skipped: {reason}")
    run_dir = work / "llm-restart"
    store = run_dir / "verdicts.jsonl"
    with VllmCpuServer(config) as server:
        args = [*SMALL_RUN, "--llm-url", server.base_url, "--model", server.model, "--gpus-per-endpoint", "1",
                "--concurrency", "4", "--timeout", "30", "--run-dir", str(run_dir)]  # fmt: skip
        with stopped_on_exit(start_pilot_cli(args, ray_tmp)) as proc:
            at_restart = wait_for_verdicts(store, 3, proc)
            before = complete_lines(store)
            started = time.monotonic()
            server.restart()
            outage_s = time.monotonic() - started
            proc.communicate(timeout=600)
        resumed = run_pilot_cli([*args, "--resume"], ray_tmp)
    book = ledger(run_dir)
    failed = read_llm_errors(run_dir)  # transport failures are logged apart; their tasks are re-queued
    survived = proc.returncode == 0 and resumed.returncode == 0
    return Figures("2 LLM server restart", f"restart after {at_restart} verdicts, {outage_s:.0f} s down",
                   survived, book, complete_lines(store).startswith(before),
                   f"{len(failed)} requests failed {dict(Counter(e['reason'] for e in failed))}, "
                   f"their tasks asked again; {book.outcomes.get('error', 0)} error verdicts")  # fmt: skip


def malformed_output(work: Path, ray_tmp: str) -> Figures:
    from proofpilot.pilot.run import PilotConfig, run_pilot

    run_dir = work / "malformed"
    with MalformedLLM() as llm:
        config = PilotConfig(source=FLY, run_dir=run_dir, neurons=20, max_ops_per_neuron=2,
                             llm_urls=(llm.base_url,), model="fake", gpus_per_endpoint=1, concurrency=8,
                             metrics_port=0, progress=False, ray_temp_dir=ray_tmp)  # fmt: skip
        result = run_pilot(config)
        requests, malformed = sum(llm.calls.values()), llm.malformed_requests()
    book = ledger(run_dir)
    return Figures("3 malformed model output", f"{malformed} of {requests} answers malformed",
                   result.complete, book, None, f"invalid by reason {book.reasons}")  # fmt: skip


def sigkill_resume(work: Path, ray_tmp: str, stub_url: str) -> Figures:
    run_dir = work / "sigkill"
    args = [*SMALL_RUN, "--llm-url", stub_url, "--model", "stub", "--gpus-per-endpoint", "1",
            "--concurrency", "2", "--run-dir", str(run_dir)]  # fmt: skip
    killed_at, before = kit.killed_after(args, ray_tmp, 10)
    resumed = run_pilot_cli([*args, "--resume"], ray_tmp)
    return Figures("4 SIGKILL + resume", f"SIGKILL after {killed_at} verdicts", resumed.returncode == 0,
                   ledger(run_dir), complete_lines(run_dir / "verdicts.jsonl").startswith(before),
                   "test: test_pilot_e2e.py::test_ctrl_c_then_sigkill_then_resume_...")  # fmt: skip


def full_disk(work: Path, ray_tmp: str, stub_url: str) -> Figures:
    args = [*SMALL_RUN, "--llm-url", stub_url, "--model", "stub", "--gpus-per-endpoint", "1",
            "--concurrency", "2"]  # fmt: skip
    if tmpfs_available():
        how, (rc, err, run_dir, at_fill) = "8 MiB tmpfs filled", _fill_tmpfs(work, ray_tmp, args)
    else:
        how, (rc, err, run_dir, at_fill) = "RLIMIT_FSIZE (EFBIG)", _fill_rlimit(work, ray_tmp, args)
    stopped = complete_lines(run_dir / "verdicts.jsonl")
    one_line = err.strip().splitlines()[-1] if err.strip() else ""
    resumed = run_pilot_cli([*args, "--run-dir", str(run_dir), "--resume"], ray_tmp)
    book = ledger(run_dir)
    after = complete_lines(run_dir / "verdicts.jsonl")
    survived = rc == 2 and "disk full" in one_line and resumed.returncode == 0
    n_fill, n_stopped = at_fill.count(b"\n"), stopped.count(b"\n")
    return Figures("5 full disk + resume", f"{how} after {n_fill} verdicts; stopped at {n_stopped}", survived,
                   book, after.startswith(stopped) and stopped.startswith(at_fill),
                   f"exit {rc}, stderr's last line: {one_line[:50]}...")  # fmt: skip


def _fill_tmpfs(work: Path, ray_tmp: str, args: list[str]) -> tuple[int, str, Path, bytes]:
    disk, out = work / "disk", work / "disk-out"
    disk.mkdir()
    out.mkdir()
    script = work / "fill.sh"
    script.write_text(TMPFS_SCRIPT)
    env = {**pilot_env(ray_tmp), "DISK": str(disk), "OUT": str(out)}
    subprocess.run(["unshare", "-rm", "sh", str(script), *pilot_cmd(*args)], env=env, timeout=600, check=True)
    at_fill = complete_lines(out / "at_fill")
    return int((out / "rc").read_text()), (out / "stderr").read_text(), out / "run", at_fill


def _fill_rlimit(work: Path, ray_tmp: str, args: list[str]) -> tuple[int, str, Path, bytes]:
    run_dir = work / "rlimit-run"
    store = run_dir / "verdicts.jsonl"
    proc = start_pilot_cli([*args, "--run-dir", str(run_dir)], ray_tmp, ignore_sigxfsz)
    with stopped_on_exit(proc):
        wait_for_verdicts(store, 3, proc)
        at_fill = complete_lines(store)
        limit_file_size(proc.pid, len(at_fill) + 1000)  # room for about 2 more verdicts, then EFBIG
        _, err = proc.communicate(timeout=600)
    return proc.returncode, err, run_dir, at_fill


# 1 to 5 here; 6 to 11 in bench/fault_cases.py
SCENARIOS = ("cave", "cave-lost", "vllm", "malformed", "sigkill", "disk",
             "token", "deadline", "ray", "run-json", "small-sample")  # fmt: skip


def scenario(name: str, work: Path, ray_tmp: str, stub_url: str) -> list[Figures]:
    run = {
        "cave": lambda: cave_errors(work, ray_tmp),
        "cave-lost": lambda: cave_logs_lost(work, ray_tmp),
        "vllm": lambda: llm_restart(work, ray_tmp),
        "malformed": lambda: malformed_output(work, ray_tmp),
        "sigkill": lambda: sigkill_resume(work, ray_tmp, stub_url),
        "disk": lambda: full_disk(work, ray_tmp, stub_url),
        "token": lambda: cases.token_echo(work, ray_tmp),
        "deadline": lambda: cases.deadline_and_size(work),  # two rows: a dripping and an oversized body
        "ray": lambda: cases.ray_listeners(work, ray_tmp, stub_url),
        "run-json": lambda: cases.lost_manifest(work, ray_tmp, stub_url),
        "small-sample": lambda: cases.small_sample(work),
    }[name]()
    return run if isinstance(run, list) else [run]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-vllm", action="store_true", help="skip fault 2 (needs the vLLM CPU venv)")
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, metavar="NAME",
                        help=f"run only these scenarios ({', '.join(SCENARIOS)})")  # fmt: skip
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the pilots' own warnings are expected here
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the start")
    rows: list[Figures] = []
    with tempfile.TemporaryDirectory(prefix="pp-faults-") as tmp, StubServer(delay_s=0.2) as stub:
        work, ray_tmp = Path(tmp), tempfile.mkdtemp(prefix="ppf-", dir="/tmp")
        try:
            for name in args.only or SCENARIOS:
                if name == "vllm" and args.skip_vllm:
                    rows.append(Figures("2 LLM server restart", "-", False, None, None, "skipped"))
                    continue
                started = time.monotonic()
                rows.extend(scenario(name, work, ray_tmp, stub.base_url))
                print(f"{name}: {time.monotonic() - started:.0f} s", flush=True)
        finally:
            shutil.rmtree(ray_tmp, ignore_errors=True)
    print()
    print_table(rows)
    ran = [r for r in rows if not r.note.startswith("skipped")]
    kept = all(r.ledger.exact and r.prefix_kept is not False for r in ran if r.ledger is not None)
    return 0 if kept and all(r.survived for r in ran) else 1


if __name__ == "__main__":
    sys.exit(main())
