"""eval.json: its records, its one writer (`write_eval`, with eval_rows.parquet) and its one typed reader
(`read_eval`)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from proofpilot.core.atomic import write_text_atomic
from proofpilot.core.parquet import write_parquet
from proofpilot.core.records import from_json, read_json_object
from proofpilot.core.vocab import OP_KINDS
from proofpilot.edits.records import Estimate
from proofpilot.eval.rows import RunInfo

OPS = (*OP_KINDS, "all")
LATENCY_QUANTILES = {"latency_p50_s": 0.5, "latency_p90_s": 0.9, "latency_p99_s": 0.99}
# metric -> (numerator column, denominator column, is a proportion)
RATIOS = {
    "accuracy": ("correct", "n", True),
    "precision": ("tp", "pred_pos", True),
    "recall": ("tp", "pos", True),
    "specificity": ("tn", "neg", True),
    "f1": ("tp2", "f1_den", True),
    "answered_accuracy": ("correct", "answered", True),
    "no_answer_rate": ("no_answer", "n", True),
    "invalid_rate": ("invalid", "n", True),
    "error_rate": ("error", "n", True),
    "transport_error_rate": ("transport_errors", "llm_requests", True),
    "timeout_rate": ("timeouts", "llm_requests", True),
    "calls_per_edit": ("answers", "ops", False),
    "attempts_per_edit": ("attempts", "ops", False),
    "decisions_per_edit": ("n", "ops", False),
    "latency_mean_s": ("latency_s", "n", False),
}
UNITS = {
    "accuracy": "fraction of tasks decided correctly (0-1); no answer = wrong",
    "precision": "TP / (TP + FP), 0-1",
    "recall": "TP / (TP + FN), 0-1 (sensitivity)",
    "specificity": "TN / (TN + FP), 0-1",
    "f1": "2TP / (2TP + FP + FN), 0-1",
    "answered_accuracy": "correct / tasks with a usable answer, 0-1",
    "no_answer_rate": "tasks without a usable answer / tasks, 0-1",
    "invalid_rate": "tasks whose answers failed the schema (after retries) / tasks, 0-1",
    "error_rate": "tasks whose request was refused (HTTP 400, e.g. a prompt over the context) / tasks, 0-1 "
    "(runs made before transport failures were asked again also count those here)",
    "transport_error_rate": "LLM requests that failed in transport (connection, timeout, HTTP 5xx or 429, "
    "after the client's retries; the task was asked again) / LLM requests (one ask of a task), 0-1",
    "timeout_rate": "LLM requests that timed out (after the client's retries) / LLM requests, 0-1",
    "calls_per_edit": "completed LLM responses (retries of invalid answers included) per ground-truth "
    "operation",
    "attempts_per_edit": "HTTP requests sent (transport retries and failed requests included) per "
    "ground-truth operation",
    "decisions_per_edit": "decision tasks per ground-truth operation",
    "latency_mean_s": "seconds of client wall time per decision (a latency, not a cost)",
    "latency_p50_s": "seconds, median client wall time per decision (a latency, not a cost)",
    "latency_p90_s": "seconds, 90th percentile of client wall time per decision",
    "latency_p99_s": "seconds, 99th percentile of client wall time per decision",
}
SCHEMA = "proofpilot.eval/1"
EVAL_NAME = "eval.json"


@dataclass(frozen=True)
class GroupMetrics:
    """Metrics of one agent on one op type (or all ops pooled)."""

    agent: str
    op: str
    n_tasks: int
    n_neurons: int
    n_operations: int
    confusion: dict[str, int]  # tp, fp, tn, fn (no-answer tasks included as wrong), no_answer_pos/neg
    outcomes: dict[str, int]  # correct, incorrect, invalid, error
    metrics: dict[str, Estimate]


@dataclass(frozen=True)
class BinMetrics:
    """Accuracy of one agent on the neurons of one edit-count bin."""

    agent: str
    op: str
    scheme: str  # "quartile" | "heavy_tail"
    bin: str
    edits_min: int
    edits_max: int
    n_neurons: int
    n_tasks: int
    accuracy: Estimate


@dataclass(frozen=True)
class Contrast:
    """A difference of accuracy: agent a − agent b, or heavy-tail − other neurons (same agent)."""

    kind: str  # "agents" | "heavy_tail"
    op: str
    a: str
    b: str
    difference: Estimate
    paired: bool  # both sides scored on the same task ids
    note: str = ""


@dataclass(frozen=True)
class BootstrapRecipe:
    """How every interval was drawn (enough to recompute them from eval_rows.parquet)."""

    method: str
    clusters: str
    n_clusters: int
    n_bootstrap: int
    seed: int
    ci_level: float
    draw: str


@dataclass(frozen=True)
class EvalReport:
    runs: tuple[RunInfo, ...]
    agents: tuple[str, ...]
    groups: tuple[GroupMetrics, ...]
    bins: tuple[BinMetrics, ...]
    contrasts: tuple[Contrast, ...]
    heavy_tail_threshold_edits: float
    convention: str
    bootstrap: BootstrapRecipe
    notes: tuple[str, ...]
    units: dict[str, str] = field(default_factory=lambda: dict(UNITS))
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    schema: str = SCHEMA

    def group(self, agent: str, op: str) -> GroupMetrics | None:
        return next((g for g in self.groups if g.agent == agent and g.op == op), None)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, source: str = EVAL_NAME) -> EvalReport:
        """The record `to_dict` wrote; DataError naming the field otherwise."""
        return from_json(cls, data, source)


def read_eval(path: Path) -> EvalReport:
    """eval.json (or the eval folder holding it) as the record `write_eval` wrote."""
    path = Path(path)
    path = path / EVAL_NAME if path.is_dir() else path
    return EvalReport.from_dict(read_json_object(path, "evaluation"), str(path))


ROW_COLUMNS = (
    "agent_label", "run_dir", "task_id", "operation_id", "neuron_root_id", "neuron_n_edits", "op_kind",
    "role",
    "label", "decision", "confidence", "valid", "error_reason", "outcome", "positive", "answered",
    "predicted_positive", "correct", "latency_s", "prompt_tokens", "completion_tokens", "attempts",
    "answers", "llm_requests", "transport_errors", "timeouts", "transport_failures", "failed_timeouts",
    "failed_attempts", "failed_answers", "model", "prompt_version", "edit_quartile", "heavy_tail",
)  # fmt: skip


def write_eval(report: EvalReport, rows: pd.DataFrame, out_dir: Path) -> tuple[Path, Path]:
    """eval.json (every number with its CI, units, convention, bootstrap recipe) and eval_rows.parquet."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows_path = out_dir / "eval_rows.parquet"
    keep = [c for c in ROW_COLUMNS if c in rows.columns]
    write_parquet(rows[keep], rows_path)
    data = report.to_dict()
    data["files"] = {"rows": rows_path.name}
    json_path = out_dir / EVAL_NAME
    write_text_atomic(json_path, json.dumps(data, indent=1, allow_nan=False, default=_json_default) + "\n")
    return json_path, rows_path


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
