"""cost.json of a run that took several sessions: every session whose vLLM window was saved, together.

Each session writes its own accounting (`cost.sK.json`, from its window `vllm_window.sK.json` and its own
decisions). `cost.json` is the run's: the busy intervals of every saved window and the stored decisions of
those sessions, through the same `build_cost_report`. A session that could not save its window (killed with
SIGKILL, the machine lost) cannot be costed: its decisions are left out, and the notes say which and how many.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proofpilot.orchestrator.run_records import StoredVerdict
from proofpilot.telemetry.cost import CostReport, DecisionUsage, build_cost_report
from proofpilot.telemetry.vllm_scrape import ScrapeWindow

log = logging.getLogger(__name__)


def session_file(run_dir: Path, name: str, session: int) -> Path:
    """`cost.json`, session 2 -> `cost.s2.json` (the per-session copies)."""
    path = Path(run_dir) / name
    return path.with_name(f"{path.stem}.s{session}{path.suffix}")


@dataclass(frozen=True)
class RunCostInputs:
    """What the run-level accounting is built from."""

    window: ScrapeWindow  # every costed session's endpoints, one after another
    decisions: tuple[DecisionUsage, ...]
    edits_by_op: dict[str, int]  # distinct operations decided, per op type
    costed_sessions: tuple[int, ...]
    uncosted: dict[int, int]  # session without a saved window -> its decisions left out
    window_seconds: float  # the costed sessions' windows added up
    n_endpoints: int  # endpoints of one session (the most any costed session had)


def gather(run_dir: Path, n_sessions: int, records: Sequence[StoredVerdict]) -> RunCostInputs | None:
    """The saved windows of sessions 1..n_sessions and the decisions stored by those sessions."""
    windows: dict[int, ScrapeWindow] = {}
    for session in range(1, n_sessions + 1):
        path = session_file(run_dir, "vllm_window.json", session)
        if path.exists():
            windows[session] = ScrapeWindow.load(path)
    decided: dict[int, list[StoredVerdict]] = {}
    for r in records:
        if r.answers > 0:
            decided.setdefault(r.session or 0, []).append(r)
    costed = tuple(s for s in sorted(windows) if decided.get(s))
    if not costed:
        return None
    rows = [r for s in costed for r in decided[s]]
    first = windows[costed[0]]
    durations = [max((ep.duration_s for ep in windows[s].endpoints), default=0.0) for s in costed]
    return RunCostInputs(
        window=ScrapeWindow(first.interval_s, tuple(ep for s in costed for ep in windows[s].endpoints)),
        decisions=tuple(DecisionUsage.from_verdict(r) for r in rows),
        edits_by_op=distinct_operations((r.op_kind, r.operation_id) for r in rows),
        costed_sessions=costed,
        uncosted={s: len(v) for s, v in sorted(decided.items()) if s not in costed},
        window_seconds=float(sum(durations)),
        n_endpoints=max(len(windows[s].endpoints) for s in costed),
    )


def distinct_operations(decided: Iterable[tuple[str, int]]) -> dict[str, int]:
    """Distinct operations per op type among (op kind, operation id) pairs of decided tasks."""
    ops: dict[str, set[int]] = {}
    for op, operation_id in decided:
        ops.setdefault(op, set()).add(int(operation_id))
    return {op: len(ids) for op, ids in ops.items()}


def _sessions(numbers: Sequence[int]) -> str:
    return ("session " if len(numbers) == 1 else "sessions ") + ", ".join(str(s) for s in numbers)


def run_cost_report(
    run_dir: Path, n_sessions: int, records: Sequence[StoredVerdict], **basis: Any
) -> CostReport | None:
    """The run-level report (None when no session has both a saved window and a decision).

    `basis`: the keyword arguments of `build_cost_report` other than the window, decisions and edits."""
    inputs = gather(run_dir, n_sessions, records)
    if inputs is None:
        return None
    report = build_cost_report(inputs.window, inputs.decisions, edits_by_op=inputs.edits_by_op, **basis)
    throughput = dataclasses.replace(
        report.throughput, window_seconds=inputs.window_seconds, n_endpoints=inputs.n_endpoints
    )
    notes = [
        f"run-level cost over {_sessions(inputs.costed_sessions)} of {n_sessions}: "
        f"{len(inputs.decisions)} decisions, their scraped windows added up; each session's own in "
        "cost.sK.json"
    ]
    if inputs.uncosted:
        left_out = sum(inputs.uncosted.values())
        notes.append(
            f"{_sessions(list(inputs.uncosted))} saved no vLLM window (the process was killed): "
            f"{left_out} of its decisions are not in this cost"
            if len(inputs.uncosted) == 1
            else f"{_sessions(list(inputs.uncosted))} saved no vLLM window (killed): "
            f"{left_out} of their decisions are not in this cost"
        )
    log.info("cost.json: %s", notes[0])
    return dataclasses.replace(report, throughput=throughput, notes=(*report.notes, *notes))
