"""A run dir whose manifest (run.json) is gone: one answer, whichever way the pilot is asked.

With --resume and the run's own options, run.json is rebuilt from what the run stored: the task list
(tasks.jsonl), the pin of the data (ingest/pin.json) and the verdicts (their agent and model must be the
ones given). Without --resume the pilot says that --resume rebuilds it. If the task list or the pin is gone
too, both say what is missing and that the run cannot be continued.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from proofpilot.core.atomic import write_text_atomic
from proofpilot.core.errors import ConfigError, DataError
from proofpilot.orchestrator.store import (
    MANIFEST_NAME,
    MANIFEST_SCHEMA,
    VERDICTS_NAME,
    config_hash,
    read_verdicts,
)

log = logging.getLogger(__name__)

TASKS_NAME = "tasks.jsonl"
PIN_PATH = "ingest/pin.json"


def _holds_run(run_dir: Path) -> bool:
    verdicts = run_dir / VERDICTS_NAME
    return (verdicts.exists() and verdicts.stat().st_size > 0) or (run_dir / TASKS_NAME).exists()


def check_manifest(run_dir: Path, identity: dict[str, Any], resume: bool) -> None:
    """Before the store's own check: rebuild a lost run.json on resume, or say in one line why not."""
    if (run_dir / MANIFEST_NAME).exists() or not _holds_run(run_dir):
        return
    missing = [name for name in (TASKS_NAME, PIN_PATH) if not (run_dir / name).exists()]
    if missing:
        raise DataError(
            f"{run_dir} holds a run whose {MANIFEST_NAME} is gone, and {' and '.join(missing)} too: it "
            "cannot be continued; start a new --run-dir"
        )
    if not resume:
        raise ConfigError(
            f"{run_dir} holds a run whose {MANIFEST_NAME} is gone; pass --resume with the run's options to "
            f"rebuild it from {TASKS_NAME} and continue, or choose a new --run-dir"
        )
    rebuild_manifest(run_dir, identity)


def _read_tasks(path: Path) -> list[dict[str, Any]]:
    try:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}".splitlines()[0]) from None
    if not rows or not all(isinstance(r, dict) and isinstance(r.get("task_id"), str) for r in rows):
        raise DataError(f"{path} holds no task list; the run cannot be continued, start a new --run-dir")
    return rows


def _read_pin(path: Path) -> dict[str, Any]:
    try:
        pin = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}".splitlines()[0]) from None
    if not isinstance(pin, dict):
        raise DataError(f"{path} is not a data pin; the run cannot be continued, start a new --run-dir")
    return pin


def _check_verdicts_fit(run_dir: Path, identity: dict[str, Any], verdicts: list[dict[str, Any]]) -> None:
    """The stored verdicts must come from the agent (and model) given now."""
    expected = {"agent": identity["agent"]}
    if identity["agent"] == "llm":
        expected.update(model=identity["model"], prompt_version=identity["prompt_version"])
    for key, value in expected.items():
        found = sorted({str(v.get(key)) for v in verdicts} - {str(value)})
        if found:
            raise ConfigError(
                f"{run_dir}: its verdicts were made with {key} {found[0]!r}, not {value!r}; resume it with "
                "the run's own options"
            )


def rebuild_manifest(run_dir: Path, identity: dict[str, Any]) -> dict[str, Any]:
    """Write run.json again from the stored task list, pin and verdicts; the sessions before are one entry."""
    tasks = _read_tasks(run_dir / TASKS_NAME)
    pin = _read_pin(run_dir / PIN_PATH)
    verdicts = read_verdicts(run_dir)
    _check_verdicts_fit(run_dir, identity, verdicts)
    config = json.loads(json.dumps(identity, default=str))
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "config": config,
        "config_hash": config_hash(config),
        "created_at": None,  # unknown: the first session's record went with the old run.json
        "rebuilt": True,
        "sessions": [{"rebuilt": True, "stored": len(verdicts)}],
        "pin": pin,
        "n_tasks": len(tasks),
        "neuron_root_ids": sorted({r["neuron_root_id"] for r in tasks if "neuron_root_id" in r}),
        "neurons_without_log": [],
    }
    try:
        write_text_atomic(run_dir / MANIFEST_NAME, json.dumps(manifest, indent=1) + "\n")
    except OSError as exc:
        raise DataError(f"cannot write {run_dir / MANIFEST_NAME}: {exc.strerror or exc}") from None
    log.warning(
        "%s: %s was gone; rebuilt from %s (%d tasks), %s and %d verdicts",
        run_dir, MANIFEST_NAME, TASKS_NAME, len(tasks), PIN_PATH, len(verdicts),
    )  # fmt: skip
    return manifest
