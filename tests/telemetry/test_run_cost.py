"""The run-level cost.json of a pilot that took several sessions (orchestrator.run_cost)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from proofpilot.orchestrator.run_records import StoredVerdict
from proofpilot.telemetry.cost import build_cost_report
from proofpilot.telemetry.run_cost import gather, run_cost_report, session_file
from tests.telemetry.test_cost import simulate


def _session(n: int, seed: int, service: float = 0.4):
    rng = np.random.default_rng(seed)
    tokens = [
        (int(p), int(o)) for p, o in zip(rng.integers(200, 600, n), rng.integers(10, 40, n), strict=True)
    ]
    ops = ["merge" if i % 3 else "split" for i in range(n)]
    return simulate([service] * n, tokens, ops, slots=4, clients=12, dt=0.1)


def _records(decisions, session: int, first_op: int) -> list[StoredVerdict]:
    return [
        StoredVerdict(
            task_id=f"{first_op + i}:partner", operation_id=first_op + i, neuron_root_id=1, neuron_n_edits=1,
            label="merge", agent="llm", session=session, op_kind=d.op, decision="merge", valid=True,
            latency_s=d.latency_s, prompt_tokens=d.prompt_tokens, completion_tokens=d.completion_tokens,
            attempts=d.llm_calls, answers=d.llm_calls, error_reason=None,
        )
        for i, d in enumerate(decisions)
    ]  # fmt: skip


def test_cost_json_adds_up_every_session_with_a_saved_window(tmp_path):
    w1, d1 = _session(60, 1)
    _, d2 = _session(10, 2)  # killed: its decisions are stored, its window never was
    w3, d3 = _session(40, 3)
    w1.save(session_file(tmp_path, "vllm_window.json", 1))
    w3.save(session_file(tmp_path, "vllm_window.json", 3))
    records = _records(d1, 1, 0) + _records(d2, 2, 1000) + _records(d3, 3, 2000)
    # an error: no LLM answer, no cost
    records.append(dataclasses.replace(records[0], answers=0, operation_id=9999))

    report = run_cost_report(tmp_path, 3, records, gpus_per_endpoint=2)
    one, three = (
        build_cost_report(w1, d1, gpus_per_endpoint=2),
        build_cost_report(w3, d3, gpus_per_endpoint=2),
    )
    tp = report.throughput
    assert tp.decisions == 100 and tp.llm_calls == 100
    assert tp.busy_node_seconds == pytest.approx(
        one.throughput.busy_node_seconds + three.throughput.busy_node_seconds
    )
    assert tp.node_s_per_decision == pytest.approx(tp.busy_node_seconds / 100)
    assert tp.node_s_per_decision == pytest.approx(0.4 / 4, rel=0.08)  # S/K of the simulated server
    assert tp.window_seconds == pytest.approx(one.throughput.window_seconds + three.throughput.window_seconds)
    assert tp.n_endpoints == 1
    assert sum(o.decisions for o in report.per_op.values()) == 100
    assert any("sessions 1, 3 of 3" in n for n in report.notes)
    assert any("session 2 saved no vLLM window" in n and "10 of its decisions" in n for n in report.notes)


def test_no_saved_window_means_no_run_level_cost(tmp_path):
    _, d1 = _session(20, 4)
    assert gather(tmp_path, 2, _records(d1, 1, 0)) is None
    assert run_cost_report(tmp_path, 2, _records(d1, 1, 0)) is None
