"""What bench/faults.py's scenarios share: a run dir's ledger (tasks against verdicts), the pilot's console
script run, started, waited on and killed, a child's peak memory, and the table's row and printer.

bench/faults.py and bench/fault_cases.py load this file under one module name (`load`), so both use the
same classes; tests/pilot/test_fault_suite.py reaches it through bench/faults.py.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PROOFPILOT = Path(sys.executable).with_name("proofpilot")
FLY = "fafb_synthetic"
# 20 fly-like neurons, 2 operations each: 80 decision tasks
SMALL_RUN = ("--datastack", FLY, "--neurons", "20", "--max-ops-per-neuron", "2", "--metrics-port", "0",
             "--no-progress")  # fmt: skip


def load(path: Path, name: str) -> Any:
    """Import a file that is not in a package under `name` (once: a second call returns the same module)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


# -- what a run dir holds -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ledger:
    expected: int  # tasks of the run (tasks.jsonl)
    stored: int  # distinct tasks with a verdict
    lost: int  # tasks without a verdict
    duplicated: int  # verdict lines beyond the first of a task
    foreign: int  # verdicts of task ids the run does not have
    outcomes: dict[str, int]  # correct / incorrect / invalid / error
    reasons: dict[str, int]  # error_reason of the verdicts that have one

    @property
    def exact(self) -> bool:
        return self.lost == 0 and self.duplicated == 0 and self.foreign == 0


def complete_lines(path: Path) -> bytes:
    """The store's bytes up to its last newline (a line being written is not yet stored)."""
    if not path.exists():
        return b""
    data = path.read_bytes()
    return data[: data.rfind(b"\n") + 1]


def count_ledger(expected: list, stored: list, outcomes: list[str], reasons: list[str]) -> Ledger:
    """Ids that should each have one record (`expected`) against the ids of the records there are."""
    lines = Counter(stored)
    return Ledger(
        expected=len(expected),
        stored=len(set(lines) & set(expected)),
        lost=len(set(expected) - set(lines)),
        duplicated=sum(n - 1 for n in lines.values()),
        foreign=len(set(lines) - set(expected)),
        outcomes=dict(Counter(outcomes)),
        reasons=dict(Counter(r for r in reasons if r)),
    )


def ledger(run_dir: Path) -> Ledger:
    tasks = [json.loads(line)["task_id"] for line in (run_dir / "tasks.jsonl").read_text().splitlines()]
    verdicts = [json.loads(line) for line in complete_lines(run_dir / "verdicts.jsonl").splitlines()]
    return count_ledger(tasks, [v["task_id"] for v in verdicts], [v["outcome"] for v in verdicts],
                        [v.get("error_reason") for v in verdicts])  # fmt: skip


# -- running the pilot's console script ---------------------------------------------------------------------
def pilot_env(ray_tmp: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PROOFPILOT_LLM_URL", "PROOFPILOT_LLM_MODEL")}
    return {**env, "PROOFPILOT_RAY_TMPDIR": ray_tmp, **(extra or {})}


def pilot_cmd(*args: str) -> list[str]:
    return [str(PROOFPILOT), "pilot", *args]


def run_pilot_cli(args: list[str], ray_tmp: str, timeout_s: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(pilot_cmd(*args), capture_output=True, text=True, timeout=timeout_s,
                          env=pilot_env(ray_tmp))  # fmt: skip


def start_pilot_cli(args: list[str], ray_tmp: str, preexec_fn=None, extra_env=None) -> subprocess.Popen:
    return subprocess.Popen(pilot_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=pilot_env(ray_tmp, extra_env), preexec_fn=preexec_fn)  # fmt: skip


def wait_for_verdicts(store: Path, n: int, proc: subprocess.Popen, deadline_s: float = 300) -> int:
    """Poll the store until it holds `n` complete lines; returns how many it holds. Raises if the pilot
    exits first or the deadline passes (the 50 ms pause is a polling interval, not a timing assumption)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        have = complete_lines(store).count(b"\n")
        if have >= n:
            return have
        if proc.poll() is not None:
            raise RuntimeError(f"the pilot exited ({proc.returncode}) before {n} verdicts: "
                               f"{proc.stderr.read()[-1500:] if proc.stderr else ''}")  # fmt: skip
        time.sleep(0.05)
    raise TimeoutError(f"no {n} verdicts within {deadline_s:.0f} s")


@contextlib.contextmanager
def stopped_on_exit(proc: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """Kill the pilot (by its pid) if the block ends while it still runs."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def killed_after(args: list[str], ray_tmp: str, n: int) -> tuple[int, bytes]:
    """Start a pilot, SIGKILL it once its store holds `n` verdicts; (verdicts then, the store's bytes)."""
    store = Path(args[args.index("--run-dir") + 1]) / "verdicts.jsonl"
    with stopped_on_exit(start_pilot_cli(args, ray_tmp)) as proc:
        killed_at = wait_for_verdicts(store, n, proc)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    return killed_at, complete_lines(store)


# -- any command, with its peak memory -----------------------------------------------------------------------
@dataclass(frozen=True)
class Measured:
    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    peak_rss_mib: float  # the child's own peak resident set (wait4's ru_maxrss), not its parent's


def run_measured(cmd: list[str], env: dict[str, str], out_dir: Path, timeout_s: float = 300) -> Measured:
    """Run `cmd`, its output to files in `out_dir`; killed (by its pid) if it outlives `timeout_s`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    out, err = out_dir / "stdout", out_dir / "stderr"
    with open(out, "w") as fo, open(err, "w") as fe:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=fo, stderr=fe, env=env)
        timer = threading.Timer(timeout_s, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; Popen must not wait for it again
    return Measured(proc.returncode, out.read_text(), err.read_text(), wall, usage.ru_maxrss / 1024)


# -- the table ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Figures:
    fault: str
    injected: str
    survived: bool
    ledger: Ledger | None
    prefix_kept: bool | None
    note: str = ""
    figure: str = ""  # the scenario's own measure (time to fail, peak memory, leaks), with its baseline


def print_table(rows: list[Figures]) -> None:
    header = ("fault", "injected", "survived", "expected", "stored", "lost", "dup", "prefix kept", "figure",
              "note")  # fmt: skip
    cells = [header]
    for r in rows:
        b = r.ledger
        nums = (b.expected, b.stored, b.lost, b.duplicated) if b else ("-",) * 4
        prefix = "-" if r.prefix_kept is None else ("yes" if r.prefix_kept else "NO")
        cells.append((r.fault, r.injected, "yes" if r.survived else "NO", *map(str, nums), prefix,
                      r.figure or "-", r.note))  # fmt: skip
    widths = [max(len(str(row[i])) for row in cells) for i in range(len(header) - 1)]
    for row in cells:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + str(row[-1]))
    ran = [r for r in rows if not r.note.startswith("skipped")]
    done = [r for r in ran if r.ledger is not None]
    print(f"\nfaults injected: {len(ran)}; runs survived: {sum(r.survived for r in ran)}; with a ledger: "
          f"{len(done)}, verdicts/rows lost: {sum(r.ledger.lost for r in done)}; duplicated: "
          f"{sum(r.ledger.duplicated for r in done)}; stored prefix rewritten: "
          f"{sum(r.prefix_kept is False for r in done)}")  # fmt: skip
