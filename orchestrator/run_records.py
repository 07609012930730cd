"""Typed records of a run directory as the store writes it (orchestrator/store.py is the writer):

    read_run(run_dir)           -> RunManifest     (run.json)
    read_verdict_rows(run_dir)  -> [StoredVerdict]  (verdicts.jsonl, one per decided task)
    read_failure_rows(run_dir)  -> [StoredFailure]  (llm_errors.jsonl, one per transport failure)

Later stages (eval, report, the pilot's resume) read a run only through these; a line or field that does
not fit is a one-line DataError naming the file (and line) and the field.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from proofpilot.core.records import from_json
from proofpilot.core.vocab import Agent, OpKind
from proofpilot.datastack.records import DataPin
from proofpilot.orchestrator.store import (
    LLM_ERRORS_NAME,
    MANIFEST_NAME,
    VERDICTS_NAME,
    read_llm_errors,
    read_manifest,
    read_verdicts,
)


@dataclass(frozen=True)
class RunIdentity:
    """The run's config (what `resume` requires unchanged); every field optional for older runs."""

    datastack: str | None = None
    table: str | None = None
    neurons: int | None = None
    max_ops_per_neuron: int | None = None
    seed: int | None = None
    agent: str | None = None
    model: str | None = None
    prompt_version: str | None = None
    skeleton_layer: str | None = None


@dataclass(frozen=True)
class SessionRecord:
    """One session of the run: when it started, what was stored before, and (once it ended) how."""

    started_at: str | None = None  # None for the one entry of a run.json rebuilt after a loss
    stored_before: int = 0
    rebuilt: bool = False
    ended: str | None = None  # done | interrupted | llm_unavailable | tasks_set_aside | failed
    stored: int | None = None
    llm_errors: int | None = None
    undecided: int | None = None
    set_aside: tuple[str, ...] = ()
    seconds: float | None = None
    decisions_per_s: float | None = None


@dataclass(frozen=True)
class NeuronWithoutLog:
    root_id: int
    reason: str


@dataclass(frozen=True)
class RunManifest:
    """run.json. `config` is kept as written (its sha256 is `config_hash`); `identity` is its typed view."""

    schema: str
    config: dict[str, Any]
    config_hash: str
    created_at: str | None  # None in a run.json rebuilt after the original was lost
    sessions: tuple[SessionRecord, ...]
    pin: DataPin | None = None
    n_tasks: int | None = None
    neuron_root_ids: tuple[int, ...] = ()
    neurons_without_log: tuple[NeuronWithoutLog, ...] = ()
    identity: RunIdentity = dataclasses.field(default_factory=RunIdentity)  # not on disk: from `config`

    @classmethod
    def from_dict(cls, data: Any, source: str = MANIFEST_NAME) -> RunManifest:
        manifest = from_json(cls, {k: v for k, v in data.items() if k != "identity"}, source)
        return dataclasses.replace(
            manifest, identity=from_json(RunIdentity, manifest.config, source, "config")
        )


def read_run(run_dir: str | os.PathLike) -> RunManifest:
    """The run's manifest; DataError if the directory holds no run or run.json is malformed."""
    return RunManifest.from_dict(read_manifest(run_dir), str(Path(run_dir) / MANIFEST_NAME))


@dataclass(frozen=True, kw_only=True)
class StoredVerdict:
    """One line of verdicts.jsonl: the task's identity and ground truth, the agent's verdict, the outcome.

    Field order is the line's key order (`pilot.session.verdict_record` writes `to_dict()`); `role`,
    `outcome`, `session` and the serving fields are absent from lines of older runs."""

    task_id: str
    operation_id: int
    neuron_root_id: int
    neuron_n_edits: int
    role: str | None = None
    label: str
    agent: Agent
    outcome: str | None = None
    session: int | None = None
    op_kind: OpKind
    decision: str | None
    confidence: float | None = None
    valid: bool
    latency_s: float
    prompt_tokens: int
    completion_tokens: int
    attempts: int
    answers: int
    error_reason: str | None
    finish_reason: str | None = None
    endpoint: str | None = None
    model: str | None = None
    prompt_version: str | None = None
    call_spans: tuple[tuple[float, float], ...] = ()  # (sent, received) per LLM call, monotonic s
    server_queue_s: float | None = None  # vLLM's per-request timings (agent/timings.py); absent: older runs
    server_prefill_s: float | None = None
    server_decode_s: float | None = None
    server_ttft_s: float | None = None
    error_detail: str | None = None  # a failed preparation's one-line cause (error_reason <stage>_failed)
    n_images: int = 0  # views sent with each call (absent from older runs: text-only)
    image_tokens: int = 0  # the images' part of prompt_tokens (absent from older runs: 0)

    @property
    def text_tokens(self) -> int:
        return self.prompt_tokens - self.image_tokens

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, source: str = VERDICTS_NAME) -> StoredVerdict:
        return from_json(cls, data, source)


@dataclass(frozen=True)
class StoredFailure:
    """One line of llm_errors.jsonl: a transport failure of a task (which was asked again)."""

    task_id: str
    reason: str
    attempts: int
    answers: int
    operation_id: int | None = None
    neuron_root_id: int | None = None
    op_kind: OpKind | None = None
    agent: Agent | None = None
    session: int | None = None
    endpoint: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None
    time: str | None = None


def _rows(cls, records: list[dict[str, Any]], path: Path) -> list:
    return [from_json(cls, r, f"{path}:{i}") for i, r in enumerate(records, start=1)]


def read_verdict_rows(run_dir: str | os.PathLike) -> list[StoredVerdict]:
    """Every stored verdict of a run, typed (a torn last line is ignored, as the store does)."""
    return _rows(StoredVerdict, read_verdicts(run_dir), Path(run_dir) / VERDICTS_NAME)


def read_failure_rows(run_dir: str | os.PathLike) -> list[StoredFailure]:
    """Every stored transport failure of a run, typed (none for a run without failures)."""
    return _rows(StoredFailure, read_llm_errors(run_dir), Path(run_dir) / LLM_ERRORS_NAME)
