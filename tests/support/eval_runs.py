"""Small run directories for the eval and report tests, written by the pilot's own writers.

Verdict lines come from `orchestrator.pilot_session.verdict_record` on real `DecisionTask` / `Verdict`
records into a real `RunStore` (transport failures from `llm_error_record` into its llm_errors.jsonl);
tasks.jsonl from `write_json_lines(task_row(...))`; cost.json from `telemetry.cost.build_cost_report` on a
scraped window; edits folders from the real `edits` stage on the embedded datastack (cached for the session:
both report test modules use the same two folders).
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from proofpilot.agent.records import Verdict
from proofpilot.core.vocab import OP_KINDS, OP_OF_ROLE, ROLE_LABEL
from proofpilot.orchestrator.store import RunStore, write_json_lines
from proofpilot.pilot.inputs import task_row
from proofpilot.pilot.session import llm_error_record, verdict_record
from proofpilot.tasks.records import DecisionTask
from proofpilot.telemetry.cost import DecisionUsage, build_cost_report, write_cost_json
from proofpilot.telemetry.projection import EditsProjection
from proofpilot.telemetry.vllm_scrape import EndpointWindow, ScrapeWindow, Snapshot


@dataclass(frozen=True)
class Row:
    """One decision: the neuron, its edit count, the operation, the task's role and what the agent said."""

    neuron: int
    n_edits: int
    op_id: int
    role: str
    decision: str | None  # None: no answer
    error_reason: str | None = None
    latency_s: float = 0.5
    answers: int = 1
    attempts: int = 1
    prompt_tokens: int = 400
    completion_tokens: int = 20


def task_of(row: Row) -> DecisionTask:
    return DecisionTask(
        task_id=f"{row.op_id}:{row.role}", operation_id=row.op_id, neuron_root_id=row.neuron,
        neuron_n_edits=row.n_edits, op_kind=OP_OF_ROLE[row.role], role=row.role, label=ROLE_LABEL[row.role],
        base_root_id=row.neuron + 1, candidate_root_id=None, interface_nm=(1.0, 2.0, 3.0),
    )  # fmt: skip


def verdict_of(row: Row, task: DecisionTask, model: str) -> Verdict:
    valid = row.decision is not None and row.error_reason is None
    return Verdict(
        task_id=task.task_id, op_kind=task.op_kind, decision=row.decision if valid else None,
        confidence=0.8 if valid else None, valid=valid, latency_s=row.latency_s,
        prompt_tokens=row.prompt_tokens if row.answers else 0,
        completion_tokens=row.completion_tokens if row.answers else 0, attempts=row.attempts,
        answers=row.answers, error_reason=row.error_reason, finish_reason="stop" if row.answers else None,
        endpoint="http://127.0.0.1:8000/v1", model=model, prompt_version="pp-verdict-1",
    )  # fmt: skip


@dataclass(frozen=True)
class Failure:
    """A transport failure of a task (its row's task), which the pilot then asked again."""

    row: Row
    reason: str
    attempts: int = 3  # the client's request and its 2 retries
    latency_s: float = 2.0


def make_run(run_dir: Path, rows: list[Row], agent: str = "llm", model: str = "tiny",
             datastack: str = "fafb_synthetic", with_tasks: bool = True,
             failures: tuple[Failure, ...] = ()) -> Path:  # fmt: skip
    """A run directory as `proofpilot pilot` writes it (manifest, verdicts.jsonl, tasks.jsonl, and
    llm_errors.jsonl when there are `failures`)."""
    config = {
        "datastack": datastack, "table": None, "neurons": len({r.neuron for r in rows}),
        "max_ops_per_neuron": None, "seed": 0, "agent": agent, "model": model if agent == "llm" else None,
        "prompt_version": "pp-verdict-1",
        "skeleton_layer": None,
    }  # fmt: skip
    tasks = [task_of(r) for r in rows]
    with RunStore.open(run_dir, config, resume=False) as store:
        if with_tasks:
            write_json_lines(Path(run_dir) / "tasks.jsonl", (task_row(t) for t in tasks))
        pin = {
            "datastack": datastack,
            "server_address": "http://127.0.0.1:8001",
            "materialization_version": 783,
            "timestamp": "2023-09-30T05:10:00+00:00",
            "table": "proofread_neurons",
            "caveclient_version": "8.2.1",
            "server_versions": {"info": "4.5.0"},
        }
        store.update_manifest(pin=pin, n_tasks=len(tasks))
        pairs = zip(rows, tasks, strict=True)
        store.append([verdict_record(t, verdict_of(r, t, model), agent, store.session) for r, t in pairs])
        lost = []
        for f in failures:
            task = task_of(f.row)
            verdict = verdict_of(Row(f.row.neuron, f.row.n_edits, f.row.op_id, f.row.role, None, f.reason,
                                     f.latency_s, answers=0, attempts=f.attempts), task, model)  # fmt: skip
            lost.append(llm_error_record(task, verdict, agent, store.session))
        store.append_llm_errors(lost)
    return Path(run_dir)


def make_cost(
    run_dir: Path, rows: list[Row], gpus: int = 2, projection: EditsProjection | None = None, served=None
) -> Path:
    """cost.json from a scraped window in which the server was busy for the whole run (one endpoint)."""
    decided = [r for r in rows if r.answers > 0]
    n = len(decided)
    p_tokens = sum(r.prompt_tokens * r.answers for r in decided)
    o_tokens = sum(r.completion_tokens * r.answers for r in decided)
    steps = 20
    snaps = tuple(
        Snapshot(t=0.5 * i, running=4.0 if i < steps else 0.0, waiting=2.0 if i < steps else 0.0,
                 kv_cache_usage=0.1, requests=sum(r.answers for r in decided) * i / steps,
                 prompt_tokens=p_tokens * i / steps, generation_tokens=o_tokens * i / steps,
                 inference_seconds=0.0, e2e_seconds=0.0)
        for i in range(steps + 1)
    )  # fmt: skip
    window = ScrapeWindow(0.5, (EndpointWindow("http://127.0.0.1:8000/metrics", "2026-01-01T00:00:00+00:00",
                                               snaps, {}),))  # fmt: skip
    usage = [
        DecisionUsage(OP_OF_ROLE[r.role], r.latency_s, r.prompt_tokens * r.answers,
                      r.completion_tokens * r.answers, r.answers)
        for r in decided
    ]  # fmt: skip
    ops = {op: len({r.op_id for r in decided if OP_OF_ROLE[r.role] == op}) for op in OP_KINDS}
    assert n and all(ops.values())
    report = build_cost_report(
        window, usage, edits_by_op=ops, gpus_per_endpoint=gpus, edits_projection=projection, served_by=served
    )
    return write_cost_json(report, run_dir)


def hand_rows() -> list[Row]:
    """Three neurons, five operations, ten decisions, whose confusion counts are known by hand:

    merge: TP 2 (op 1, 5 partners), FP 1 (op 1 distractor said merge), FN 1 (op 2 partner said no_merge),
           TN 2 -> accuracy 4/6, precision 2/3, recall 2/3, specificity 2/3, F1 2/3; 6 calls for 3 ops
    split: TP 1 (op 3), FP 1 (op 3 clean: invalid JSON after 3 answers, no answer), FN 1 (op 4 before_split:
           HTTP 400 prompt over the context, no answer), TN 1 -> accuracy 1/2, answered accuracy 2/2,
           invalid 1/4, request error 1/4; 5 calls, 6 attempts for 2 ops (9 with the failures below)

    With `hand_failures()`: merge 7 LLM requests (6 decisions + 1 connection failure), split 5 (4 + 1
    timeout): transport errors 1/7 and 1/5, timeouts 0/7 and 1/5; pooled 2/12 and 1/12.
    """
    a, b, c = 864691130000000001, 864691130000000002, 864691130000000003
    return [
        Row(a, 2, 1, "partner", "merge", latency_s=0.2),
        Row(a, 2, 1, "distractor", "merge", latency_s=0.4),
        Row(b, 5, 2, "partner", "no_merge", latency_s=0.6),
        Row(b, 5, 2, "distractor", "no_merge", latency_s=0.8),
        Row(b, 5, 3, "before_split", "split", latency_s=1.0),
        Row(b, 5, 3, "clean", None, "invalid_json", latency_s=3.0, answers=3, attempts=3),
        Row(c, 40, 4, "before_split", None, "context_length", latency_s=0.3, answers=0, attempts=1),
        Row(c, 40, 4, "clean", "clean", latency_s=1.2),
        Row(c, 40, 5, "partner", "merge", latency_s=1.4),
        Row(c, 40, 5, "distractor", "no_merge", latency_s=1.6),
    ]


def hand_failures() -> tuple[Failure, ...]:
    """Two transport failures of hand_rows' tasks (each asked again and then decided): see hand_rows."""
    rows = {(r.op_id, r.role): r for r in hand_rows()}
    return (
        Failure(rows[1, "partner"], "connection"),
        Failure(rows[3, "before_split"], "timeout", latency_s=90.0),
    )


def correct_rows(rows: list[Row]) -> list[Row]:
    """The same tasks, every one answered correctly (a perfect baseline: no LLM calls)."""
    return [
        Row(r.neuron, r.n_edits, r.op_id, r.role, ROLE_LABEL[r.role], latency_s=1e-5, answers=0, attempts=0,
            prompt_tokens=0, completion_tokens=0)
        for r in rows
    ]  # fmt: skip


def ci_lows(node, path=""):
    """(path, lower end) of every `*_ci` pair in a summary."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key.endswith("_ci") and isinstance(value, list) and value and value[0] is not None:
                yield f"{path}.{key}", value[0]
            else:
                yield from ci_lows(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from ci_lows(value, f"{path}[{i}]")


@functools.cache
def edits_outputs() -> tuple[Path, Path]:
    """(mouse-like, fly-like) `edits` output folders from the real stage on the embedded datastack."""
    from proofpilot.datastack.embedded.server import start_server
    from proofpilot.datastack.source import DataSource
    from proofpilot.edits.analysis import run_edits
    from proofpilot.edits.records import EditsConfig

    root = Path(tempfile.mkdtemp(prefix="pp-report-edits-"))
    atexit.register(shutil.rmtree, root, True)
    out = []
    for datastack, n in (("minnie65_synthetic", 30), ("fafb_synthetic", 60)):
        with start_server(datastack) as server:
            source = DataSource(
                datastack, server_address=server.url, cache_dir=root / "cache", write_server_cache=False
            )
            config = EditsConfig(
                source=source, out_dir=root / datastack, sample_sizes=(n,), progress=False, resamples=0
            )
            run_edits(config)
        out.append(root / datastack)
    return out[0], out[1]
