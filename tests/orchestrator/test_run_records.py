"""Typed readers of a run directory: run.json, verdicts.jsonl and llm_errors.jsonl read back as the records
the store wrote; a malformed file is a one-line DataError naming the file and the field."""

from __future__ import annotations

import json

import pytest

from proofpilot.core.errors import DataError
from proofpilot.datastack.records import DataPin
from proofpilot.orchestrator.run_records import (
    NeuronWithoutLog,
    RunIdentity,
    SessionRecord,
    StoredFailure,
    StoredVerdict,
    read_failure_rows,
    read_run,
    read_verdict_rows,
)
from proofpilot.orchestrator.store import LLM_ERRORS_NAME, MANIFEST_NAME, VERDICTS_NAME, RunStore

CONFIG = {"datastack": "fafb_synthetic", "table": None, "neurons": 3, "seed": 0, "agent": "llm", "model": "m"}
PIN = DataPin(
    "fafb_synthetic", "http://127.0.0.1:8001", "proofread", 783, "2023-09-30T05:10:00+00:00", "8.2.1",
    {"info": "4.5.0"},
)  # fmt: skip


def verdict(i: int, **changes) -> StoredVerdict:
    fields = dict(
        task_id=f"{i}:partner", operation_id=i, neuron_root_id=864691130000000001, neuron_n_edits=4,
        role="partner", label="merge", agent="llm", outcome="correct", session=1, op_kind="merge",
        decision="merge", confidence=0.9, valid=True, latency_s=0.25, prompt_tokens=400, completion_tokens=12,
        attempts=1, answers=1, error_reason=None, finish_reason="stop", endpoint="http://127.0.0.1:8000/v1",
        model="m", prompt_version="pp-verdict-1",
    )  # fmt: skip
    return StoredVerdict(**{**fields, **changes})


def make_run(tmp_path):
    run = tmp_path / "run"
    with RunStore.open(run, CONFIG, resume=False) as store:
        store.update_manifest(pin=PIN.to_dict(), n_tasks=2, neuron_root_ids=[864691130000000001],
                              neurons_without_log=[{"root_id": 7, "reason": "HTTP 500"}])  # fmt: skip
        store.append(
            [verdict(1).to_dict(), verdict(2, decision=None, valid=False, error_reason="x").to_dict()]
        )
        store.append_llm_errors([{"task_id": "2:partner", "reason": "timeout", "attempts": 3, "answers": 0}])
        store.update_manifest(session={"ended": "done", "stored": 2, "set_aside": [], "seconds": 1.5})
    return run


def test_run_files_read_back_as_the_records_written(tmp_path):
    run = make_run(tmp_path)
    manifest = read_run(run)
    assert manifest.pin == PIN and manifest.n_tasks == 2 and manifest.config == CONFIG
    assert manifest.identity == RunIdentity(
        datastack="fafb_synthetic", neurons=3, seed=0, agent="llm", model="m"
    )
    assert manifest.neurons_without_log == (NeuronWithoutLog(7, "HTTP 500"),)
    (session,) = manifest.sessions
    assert session == SessionRecord(session.started_at, 0, ended="done", stored=2, seconds=1.5)
    assert read_verdict_rows(run) == [verdict(1), verdict(2, decision=None, valid=False, error_reason="x")]
    assert read_failure_rows(run) == [StoredFailure("2:partner", "timeout", 3, 0)]


def test_verdict_line_keys_keep_the_writers_order(tmp_path):
    run = make_run(tmp_path)
    first = (run / VERDICTS_NAME).read_text().splitlines()[0]
    assert list(json.loads(first)) == list(verdict(1).to_dict())


def _rewrite_line(path, lineno, edit):
    lines = path.read_text().splitlines()
    data = json.loads(lines[lineno - 1])
    edit(data)
    lines[lineno - 1] = json.dumps(data)
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("name", "edit", "message"),
    [
        (VERDICTS_NAME, lambda d: d.pop("latency_s"), f"{VERDICTS_NAME}:2: missing field latency_s"),
        (
            VERDICTS_NAME,
            lambda d: d.update(valid="yes"),  # the store's own line check names it first
            f"{VERDICTS_NAME}:2: valid is 'yes', not true/false",
        ),
        (
            VERDICTS_NAME,
            lambda d: d.update(op_kind="glue"),
            f"{VERDICTS_NAME}:2: field op_kind must be one of",
        ),
        (LLM_ERRORS_NAME, lambda d: d.pop("reason"), f"{LLM_ERRORS_NAME}:1: missing field reason"),
    ],
)
def test_malformed_run_lines_name_the_line_and_field(tmp_path, name, edit, message):
    run = make_run(tmp_path)
    _rewrite_line(run / name, 2 if name == VERDICTS_NAME else 1, edit)
    with pytest.raises(DataError) as err:
        read_verdict_rows(run) if name == VERDICTS_NAME else read_failure_rows(run)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d.pop("config_hash"), "missing field config_hash"),
        (lambda d: d["sessions"][0].update(stored_before="0"), "field sessions[0].stored_before"),
        (lambda d: d["pin"].pop("table"), "missing field pin.table"),
        (lambda d: d["config"].update(neurons="three"), "field config.neurons"),
    ],
)
def test_malformed_manifest_names_the_field(tmp_path, edit, field):
    run = make_run(tmp_path)
    data = json.loads((run / MANIFEST_NAME).read_text())
    edit(data)
    (run / MANIFEST_NAME).write_text(json.dumps(data))
    with pytest.raises(DataError) as err:
        read_run(run)
    assert f"{MANIFEST_NAME}: {field}" in str(err.value) and "\n" not in str(err.value)
