"""Scored verdict rows: a run directory's verdicts joined with their ground truth, one row per decision.

Scoring convention (NO_ANSWER_CONVENTION): a task without a usable answer (invalid JSON, schema mismatch,
timeout, server error, or a valid answer naming the other op type's classes) counts as a WRONG answer in
every metric: a positive task without an answer is a false negative, a negative one a false positive. So
accuracy = correct / all tasks. The no-answer rates are reported beside it, and `answered_accuracy`
(correct / answered) shows what the answers alone were worth.

Positive class: `merge` for merge tasks (negative `no_merge`), `split` for split tasks (negative `clean`);
pooled over op types, positive = "the edit should be made".

Transport failures (connection, timeout, HTTP 5xx/429 after the client's retries) are not decisions: the
pilot stores them in llm_errors.jsonl and asks the task again. They are joined to their task's row as counts
(`transport_failures`, `failed_timeouts`, and the HTTP attempts and answers they cost), so the transport and
timeout rates are per LLM request: a request is one ask of a task (its decision, or a failure). Runs made
before this stored transport failures as final verdicts; such a verdict still counts as one failed request.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from proofpilot.agent.records import INVALID_ANSWER_REASONS, TRANSPORT_REASONS
from proofpilot.core.errors import DataError
from proofpilot.core.vocab import ROLE_LABEL, ROLES_OF_OP
from proofpilot.datastack.records import DataPin
from proofpilot.orchestrator.run_records import (
    RunManifest,
    read_failure_rows,
    read_run,
    read_verdict_rows,
)
from proofpilot.orchestrator.store import VERDICTS_NAME

log = logging.getLogger(__name__)

NO_ANSWER_CONVENTION = (
    "a task without a usable answer (invalid, timeout, error) counts as wrong: false negative for a "
    "positive task, false positive for a negative one; accuracy = correct / all tasks. answered_accuracy "
    "= correct / answered tasks, reported beside it with the no-answer rates"
)
# op -> (positive, negative) label: merge -> (merge, no_merge), split -> (split, clean)
CLASSES = {op: (ROLE_LABEL[pos], ROLE_LABEL[neg]) for op, (pos, neg) in ROLES_OF_OP.items()}
TASKS_NAME = "tasks.jsonl"
PER_NEURON = Path("ingest") / "per_neuron.parquet"
FAILURE_COLUMNS = ("transport_failures", "failed_timeouts", "failed_attempts", "failed_answers")


@dataclass(frozen=True)
class RunInfo:
    """Where a run's rows came from: identity, data pin and coverage."""

    run_dir: str
    label: str  # the agent's name in the report (agent, or agent:model when two runs share an agent)
    agent: str
    model: str | None
    prompt_version: str | None
    datastack: str | None
    config: dict[str, Any]
    config_hash: str | None
    pin: DataPin | None
    n_tasks: int | None  # tasks in the run's task list (None: no tasks.jsonl)
    n_verdicts: int
    sessions: int
    n_llm_errors: int = 0  # transport failures in llm_errors.jsonl
    n_llm_errors_undecided: int = 0  # of those, failures of tasks without a verdict (not in the rates)


def _read_run(run_dir: Path) -> tuple[RunManifest, pd.DataFrame]:
    if not run_dir.exists():
        raise DataError(f"{run_dir} does not exist")
    if not run_dir.is_dir():
        raise DataError(f"{run_dir} is not a directory")
    manifest = read_run(run_dir)
    records = read_verdict_rows(run_dir)  # typed: a line lacking a field is a DataError naming it
    if not records:
        raise DataError(f"{run_dir} holds no verdicts ({VERDICTS_NAME} is missing or empty)")
    frame = pd.DataFrame([r.to_dict() for r in records])
    if frame["task_id"].duplicated().any():
        raise DataError(f"{run_dir}/{VERDICTS_NAME}: a task id appears twice; the store is damaged")
    if frame["agent"].nunique() != 1:
        raise DataError(
            f"{run_dir}: verdicts of several agents in one run ({sorted(frame['agent'].unique())})"
        )
    return manifest, frame


def _with_failures(run_dir: Path, frame: pd.DataFrame) -> tuple[pd.DataFrame, int, int]:
    """The verdict rows with their task's transport failures as counts (FAILURE_COLUMNS); also the number of
    failures, and of failures of tasks without a verdict."""
    errors = read_failure_rows(run_dir)  # typed: a line lacking a field is a DataError naming it
    if not errors:
        return frame.assign(**{c: 0 for c in FAILURE_COLUMNS}), 0, 0
    failures = pd.DataFrame([asdict(e) for e in errors])
    per_task = (
        failures.assign(timeout=failures["reason"] == "timeout")
        .groupby("task_id")
        .agg(transport_failures=("reason", "size"), failed_timeouts=("timeout", "sum"),
             failed_attempts=("attempts", "sum"), failed_answers=("answers", "sum"))
    )  # fmt: skip
    joined = frame.merge(per_task, left_on="task_id", right_index=True, how="left")
    joined[list(FAILURE_COLUMNS)] = joined[list(FAILURE_COLUMNS)].fillna(0).astype(int)
    undecided = int((~failures["task_id"].isin(frame["task_id"])).sum())
    return joined, len(failures), undecided


def _check_tasks(run_dir: Path, frame: pd.DataFrame) -> int | None:
    """The run's task list (ground truth as built): labels must agree; returns the number of tasks."""
    path = run_dir / TASKS_NAME
    if not path.exists():
        return None
    if path.stat().st_size == 0:
        return 0
    try:
        tasks = pd.read_json(path, lines=True, dtype={"task_id": str, "label": str})
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if tasks.empty:
        return 0
    if not {"task_id", "label"} <= set(tasks.columns):
        raise DataError(f"{path}: task lines lack task_id / label")
    joined = frame[["task_id", "label"]].merge(tasks[["task_id", "label"]], on="task_id", how="left")
    unknown = joined["label_y"].isna().sum()
    if unknown:
        raise DataError(f"{run_dir}: {unknown} verdicts are for tasks not in {TASKS_NAME}")
    if (joined["label_x"] != joined["label_y"]).any():
        raise DataError(f"{run_dir}: verdict labels differ from {TASKS_NAME}; the run is damaged")
    return len(tasks)


def score(frame: pd.DataFrame) -> pd.DataFrame:
    """Add positive / answered / predicted_positive / correct / outcome columns, and the LLM requests,
    transport errors and timeouts of each task (see module doc)."""
    out = frame.copy()
    bad_op = ~out["op_kind"].isin(list(CLASSES))
    if bad_op.any():
        raise DataError(f"unknown op_kind {out.loc[bad_op, 'op_kind'].iloc[0]!r} (expected merge or split)")
    pos = out["op_kind"].map(lambda op: CLASSES[op][0])
    neg = out["op_kind"].map(lambda op: CLASSES[op][1])
    bad_label = ~((out["label"] == pos) | (out["label"] == neg))
    if bad_label.any():
        row = out.loc[bad_label].iloc[0]
        raise DataError(
            f"task {row['task_id']}: label {row['label']!r} is not a class of a {row['op_kind']} task"
        )
    valid = out["valid"].astype(bool)
    out["positive"] = out["label"] == pos
    out["answered"] = valid & ((out["decision"] == pos) | (out["decision"] == neg))
    predicted = (out["decision"] == pos).astype("boolean")
    out["predicted_positive"] = predicted.where(out["answered"], pd.NA)  # <NA>: no answer
    out["correct"] = out["answered"] & (out["decision"] == out["label"])
    reason = out["error_reason"].fillna("")
    invalid = ~out["answered"] & (valid | reason.isin(INVALID_ANSWER_REASONS))
    out["outcome"] = np.select(
        [out["correct"], out["answered"], invalid], ["correct", "incorrect", "invalid"], default="error"
    )
    failures = {c: out.get(c, 0) for c in FAILURE_COLUMNS}
    out["llm_requests"] = (out["attempts"] > 0).astype(int) + failures["transport_failures"]
    out["transport_errors"] = reason.isin(TRANSPORT_REASONS).astype(int) + failures["transport_failures"]
    out["timeouts"] = (reason == "timeout").astype(int) + failures["failed_timeouts"]
    return out


def _neuron_counts(run_dir: Path, frame: pd.DataFrame) -> pd.Series:
    """Edit counts of the run's sampled neurons (ingest/per_neuron.parquet when present: zero-task neurons
    included), else of the neurons that have tasks."""
    path = run_dir / PER_NEURON
    if path.exists():
        try:
            per = pd.read_parquet(path)
            per = per[per["status"] == "ok"] if "status" in per.columns else per
            return per.set_index("root_id")["n_edits"].astype(int)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("cannot read %s (%s); using the neurons with tasks", path, exc)
    return frame.groupby("neuron_root_id")["neuron_n_edits"].first().astype(int)


def load_runs(run_dirs: list[Path]) -> tuple[pd.DataFrame, tuple[RunInfo, ...], pd.Series]:
    """Scored rows of every run (column `agent_label` tells them apart), their RunInfo, and the edit counts of
    the sampled neurons (for the heavy-tail threshold)."""
    loaded = []
    for run_dir in run_dirs:
        manifest, frame = _read_run(Path(run_dir))
        n_tasks = _check_tasks(Path(run_dir), frame)
        frame, n_errors, n_undecided = _with_failures(Path(run_dir), frame)
        loaded.append((Path(run_dir), manifest, frame, n_tasks, n_errors, n_undecided))
    agents = [f["agent"].iloc[0] for _, _, f, *_ in loaded]
    infos, frames, counts = [], [], []
    for run_dir, manifest, frame, n_tasks, n_errors, n_undecided in loaded:
        identity = manifest.identity
        agent = str(frame["agent"].iloc[0])
        model = identity.model or frame["model"].iloc[0]
        label = agent if agents.count(agent) == 1 else f"{agent}:{model}"
        if label in {i.label for i in infos}:
            raise DataError(f"two runs of the same agent and model ({label}); compare different agents")
        infos.append(
            RunInfo(
                run_dir=str(run_dir),
                label=label,
                agent=agent,
                model=model,
                prompt_version=identity.prompt_version,
                datastack=identity.datastack,
                config=manifest.config,
                config_hash=manifest.config_hash,
                pin=manifest.pin,
                n_tasks=n_tasks,
                n_verdicts=len(frame),
                sessions=len(manifest.sessions),
                n_llm_errors=n_errors,
                n_llm_errors_undecided=n_undecided,
            )
        )
        scored = score(frame)
        scored.insert(0, "agent_label", label)
        scored.insert(1, "run_dir", str(run_dir))
        frames.append(scored)
        counts.append(_neuron_counts(run_dir, frame))
    neuron_counts = pd.concat(counts)
    neuron_counts = neuron_counts[~neuron_counts.index.duplicated()]
    return _concat(frames), tuple(infos), neuron_counts


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The runs' rows in one frame; a column that is all-NA in one run (a baseline has no tokens) takes its
    dtype from the runs that have values (pandas' documented way, without its FutureWarning)."""
    columns = list(dict.fromkeys(c for f in frames for c in f.columns))
    trimmed = [f.dropna(axis=1, how="all") for f in frames]
    return pd.concat(trimmed, ignore_index=True).reindex(columns=columns)
