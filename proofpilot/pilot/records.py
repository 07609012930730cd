"""The run store's line records of a pilot session: a decided task's verdict line (verdicts.jsonl) and a
transport failure's line (llm_errors.jsonl); `orchestrator.run_records` reads them back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from proofpilot.agent.records import INVALID_ANSWER_REASONS, Verdict
from proofpilot.orchestrator.run_records import StoredVerdict
from proofpilot.tasks.records import DecisionTask


def outcome_of(task: DecisionTask, verdict: Verdict) -> str:
    """correct / incorrect for a valid answer; invalid (the model's answer failed the schema) or error."""
    if verdict.valid:
        return "correct" if verdict.decision == task.label else "incorrect"
    return "invalid" if verdict.error_reason in INVALID_ANSWER_REASONS else "error"


def verdict_record(task: DecisionTask, verdict: Verdict, agent: str, session: int) -> dict[str, Any]:
    """One line of the run store: the task's identity and ground truth, the verdict, the outcome."""
    answer = {k: v for k, v in verdict.to_dict().items() if k != "task_id"}
    return StoredVerdict(
        task_id=task.task_id, operation_id=task.operation_id, neuron_root_id=task.neuron_root_id,
        neuron_n_edits=task.neuron_n_edits, role=task.role, label=task.label, agent=agent,
        outcome=outcome_of(task, verdict), session=session, **answer,
    ).to_dict()  # fmt: skip


def llm_error_record(task: DecisionTask, verdict: Verdict, agent: str, session: int) -> dict[str, Any]:
    """One line of llm_errors.jsonl: a transport failure of a task (which stays undecided)."""
    return {
        "task_id": task.task_id,
        "operation_id": task.operation_id,
        "neuron_root_id": task.neuron_root_id,
        "op_kind": task.op_kind,
        "agent": agent,
        "session": session,
        "endpoint": verdict.endpoint,
        "reason": verdict.error_reason,
        "attempts": verdict.attempts,
        "answers": verdict.answers,
        "prompt_tokens": verdict.prompt_tokens,
        "completion_tokens": verdict.completion_tokens,
        "latency_s": verdict.latency_s,
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }
