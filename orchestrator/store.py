"""The run store: a run directory with a manifest and append-only JSON-lines files of decisions and failures.

    RUN_DIR/run.json          manifest: the run's identity config, its hash, sessions (rewritten atomically)
    RUN_DIR/verdicts.jsonl    one JSON object per line, one line per decided task, in arrival order
    RUN_DIR/llm_errors.jsonl  one line per transport failure of a task (connection, timeout, server error,
                              rate limited, after the client's own retries); the task was asked again

A decision is a valid answer, an invalid one (failed the schema after the re-asks) or a request error (HTTP
400, a prompt over the context): each is final, so `resume` skips its task. A transport failure says nothing
about the task, so it is not a decision: it goes to llm_errors.jsonl (for the error rates) and the task stays
undecided until an endpoint answers it.

Why JSON lines and not sqlite (WAL): every batch of verdicts is one `write()` to an O_APPEND descriptor
followed by `fsync`, so a crash (SIGKILL, power loss) can only leave a torn *last* line, which `resume`
detects and cuts; a full disk (ENOSPC) leaves the file at a known offset that the store truncates back to,
so what was stored before stays byte-for-byte intact. The file is readable by pandas, jq and a text editor,
and eval reads it without a database driver. sqlite in WAL mode would give the same durability but adds a
-wal/-shm file pair that must travel with the run and a checkpoint step, for no gain at one writer.

One writer at a time: the verdict file is held under an exclusive `flock` while open (released by the
kernel when the process dies, so a SIGKILLed run can be resumed at once).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from proofpilot.core.atomic import write_text_atomic
from proofpilot.core.errors import ConfigError, DataError, ProofpilotError
from proofpilot.orchestrator.verdict_fields import wrong_field

log = logging.getLogger(__name__)

MANIFEST_NAME = "run.json"
VERDICTS_NAME = "verdicts.jsonl"
LLM_ERRORS_NAME = "llm_errors.jsonl"
MANIFEST_SCHEMA = "proofpilot.run/1"
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class StoreFullError(ProofpilotError):
    """The disk (or quota, or file-size limit) is full; everything stored before is intact."""


def config_hash(config: Mapping[str, Any]) -> str:
    """sha256 of the config as canonical JSON (sorted keys, no whitespace)."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _encode(record: Mapping[str, Any]) -> bytes:
    """One JSON line; strict JSON (NaN/inf are not JSON and break other readers)."""
    try:
        return json.dumps(record, separators=(",", ":"), allow_nan=False).encode() + b"\n"
    except (TypeError, ValueError) as exc:
        raise DataError(f"verdict of task {record.get('task_id')!r} is not storable as JSON: {exc}") from None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _write_atomic(path: Path, text: str) -> None:
    """core.atomic's write (temp file, fsync, rename, directory fsync), with the store's errors."""
    try:
        write_text_atomic(path, text)
    except OSError as exc:
        if exc.errno in _DISK_FULL:
            raise StoreFullError(f"disk full writing {path}: {exc.strerror}") from None
        raise DataError(f"cannot write {path}: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class ScanResult:
    """What is in a verdict file: the records, where the last complete line ends, and a torn tail if any."""

    records: list[dict[str, Any]]
    good_bytes: int
    torn_bytes: int


def scan_verdicts(path: Path, what: str = "verdict") -> ScanResult:
    """Parse a verdict (or LLM error) file. A last line without its newline is a torn write from a crash and
    is reported, not returned; a bad line anywhere else is a DataError."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return ScanResult([], 0, 0)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None
    records: list[dict[str, Any]] = []
    pos = 0
    lineno = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        lineno += 1
        if end < 0:  # no newline: the writer died mid-line
            return ScanResult(records, pos, len(data) - pos)
        line = data[pos:end]
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get("task_id"), str):
                raise ValueError(f"not a {what} object")
        except ValueError:
            raise DataError(f"{path}:{lineno}: not a {what} line; the run store is damaged") from None
        wrong = wrong_field(record) if what == "verdict" else None
        if wrong:
            raise DataError(f"{path}:{lineno}: {wrong}; the run store is damaged")
        records.append(record)
        pos = end + 1
    return ScanResult(records, pos, 0)


def read_verdicts(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Every stored verdict of a run (read-only; a torn last line is ignored)."""
    return scan_verdicts(Path(run_dir) / VERDICTS_NAME).records


def read_llm_errors(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Every stored transport failure of a run (read-only; none for a run without failures)."""
    return scan_verdicts(Path(run_dir) / LLM_ERRORS_NAME, "LLM error").records


def read_manifest(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The run's manifest; DataError if the directory holds no run."""
    path = Path(run_dir) / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{run_dir} holds no run (no {MANIFEST_NAME})") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the run manifest {path}: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != MANIFEST_SCHEMA:
        raise DataError(f"{path} is not a proofpilot run manifest ({MANIFEST_SCHEMA})")
    return manifest


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    keys = sorted(set(old) | set(new))
    diffs = [f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]
    return "; ".join(diffs[:4]) + ("; ..." if len(diffs) > 4 else "")


class _AppendLog:
    """One append-only JSON-lines file: each batch is one `write()` to an O_APPEND descriptor and one fsync;
    a write that fails (full disk) is cut back to where it started."""

    def __init__(self, path: Path, fd: int):
        self.path = path
        self.fd = fd
        self._size = os.fstat(fd).st_size

    def write(self, payload: bytes, intact: str) -> None:
        """Write and fsync `payload`; on failure raise StoreFullError / DataError saying what is `intact`."""
        start = self._size
        try:
            view = memoryview(payload)
            while view:
                written = os.write(self.fd, view)
                view = view[written:]
            os.fsync(self.fd)
        except OSError as exc:
            self._cut_back(start)
            if exc.errno in _DISK_FULL:
                raise StoreFullError(
                    f"disk full writing {self.path} ({exc.strerror}); {intact}: free some space and rerun "
                    "with --resume"
                ) from None
            raise DataError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        self._size = start + len(payload)

    def _cut_back(self, size: int) -> None:
        """Remove a partial write (truncation needs no free space)."""
        try:
            os.ftruncate(self.fd, size)
            os.fsync(self.fd)
        except OSError as exc:  # pragma: no cover - the disk is gone altogether
            log.error("could not cut a partial write from %s: %s", self.path, exc)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _cut_torn_tail(fd: int, path: Path, scan: ScanResult) -> None:
    if scan.torn_bytes:
        log.warning(
            "%s: cutting a torn last line (%d bytes, a write cut short by a crash)", path, scan.torn_bytes
        )
        os.ftruncate(fd, scan.good_bytes)
        os.fsync(fd)


class RunStore:
    """An open run directory (`RunStore.open(...)`): `append()` stores decisions durably,
    `append_llm_errors()` transport failures."""

    def __init__(self, run_dir: Path, manifest: dict[str, Any], fd: int, records: list[dict[str, Any]]):
        self.run_dir = run_dir
        self.manifest = manifest
        self._verdicts = _AppendLog(run_dir / VERDICTS_NAME, fd)
        self._errors: _AppendLog | None = None  # opened on the first failure (or at open, if the file exists)
        self._done: set[str] = {r["task_id"] for r in records}
        self.n_appended = 0
        self.n_llm_errors = 0  # failures stored by this session

    # -- opening -------------------------------------------------------------------------------------------
    @staticmethod
    def check(run_dir: str | os.PathLike, config: Mapping[str, Any], resume: bool) -> dict[str, Any]:
        """Read-only check that `run_dir` can be opened for this config; returns the manifest to use.

        Without resume the directory must hold no run; with resume it must hold one made with the same
        config. Either failure is a one-line ConfigError/DataError and nothing is written.
        """
        run_dir = Path(run_dir)
        config = json.loads(json.dumps(dict(config), default=str))  # plain JSON types, as stored
        digest = config_hash(config)
        if resume:
            manifest = read_manifest(run_dir)
            if manifest.get("config_hash") != digest:
                changed = _differences(manifest.get("config", {}), config)
                raise ConfigError(
                    f"{run_dir} was made with a different config ({changed}); "
                    "resume it with the same options or start a new --run-dir"
                )
            return manifest
        verdicts_path = run_dir / VERDICTS_NAME
        if (run_dir / MANIFEST_NAME).exists() or (verdicts_path.exists() and verdicts_path.stat().st_size):
            raise ConfigError(
                f"{run_dir} already holds a run; pass --resume to continue it or choose a new --run-dir"
            )
        return {
            "schema": MANIFEST_SCHEMA,
            "config": config,
            "config_hash": digest,
            "created_at": _now(),
            "sessions": [],
        }

    @classmethod
    def open(cls, run_dir: str | os.PathLike, config: Mapping[str, Any], resume: bool) -> RunStore:
        """Create a new run (`resume=False`) or reopen one made with the same config (`resume=True`).

        `check` runs first, so a refused directory is left exactly as it was. On resume a torn last line
        (a write cut short by a crash) is cut off.
        """
        run_dir = Path(run_dir)
        manifest = cls.check(run_dir, config, resume)
        manifest_path = run_dir / MANIFEST_NAME
        verdicts_path = run_dir / VERDICTS_NAME
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(f"cannot create the run dir {run_dir}: {exc.strerror}") from None
        fd = cls._open_locked(verdicts_path)
        errors_fd = -1
        try:
            scan = scan_verdicts(verdicts_path)
            _cut_torn_tail(fd, verdicts_path, scan)
            errors_path = run_dir / LLM_ERRORS_NAME
            if errors_path.exists():
                errors_fd = cls._open_append(errors_path)
                _cut_torn_tail(errors_fd, errors_path, scan_verdicts(errors_path, "LLM error"))
            duplicates = len(scan.records) - len({r["task_id"] for r in scan.records})
            if duplicates:
                raise DataError(
                    f"{verdicts_path} holds {duplicates} duplicate task ids; the store is damaged"
                )
            session = {"started_at": _now(), "stored_before": len(scan.records)}
            manifest["sessions"] = [*manifest.get("sessions", []), session]
            _write_atomic(manifest_path, json.dumps(manifest, indent=1) + "\n")
        except BaseException:
            os.close(fd)
            if errors_fd >= 0:
                os.close(errors_fd)
            raise
        store = cls(run_dir, manifest, fd, scan.records)
        if errors_fd >= 0:
            store._errors = _AppendLog(errors_path, errors_fd)
        return store

    @staticmethod
    def _open_append(path: Path) -> int:
        try:
            return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise DataError(f"cannot open the run store file {path}: {exc.strerror}") from None

    @classmethod
    def _open_locked(cls, path: Path) -> int:
        fd = cls._open_append(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DataError(
                f"{path} is in use by another pilot; wait for it or choose another --run-dir"
            ) from None
        return fd

    # -- state ---------------------------------------------------------------------------------------------
    @property
    def path(self) -> Path:
        return self.run_dir / VERDICTS_NAME

    @property
    def llm_errors_path(self) -> Path:
        return self.run_dir / LLM_ERRORS_NAME

    @property
    def done_task_ids(self) -> frozenset[str]:
        return frozenset(self._done)

    def __len__(self) -> int:
        return len(self._done)

    # -- writing -------------------------------------------------------------------------------------------
    def append(self, records: Sequence[Mapping[str, Any]]) -> int:
        """Store records (each with a string `task_id`) with one write and one fsync; return how many.

        A record whose task is already stored is skipped (logged), so every task appears once. On a full
        disk the partial write is cut off again and StoreFullError is raised: what was stored before is
        intact, and the run can be resumed once there is space.
        """
        fresh = []
        for record in records:
            task_id = record.get("task_id")
            if not isinstance(task_id, str):
                raise DataError(f"a verdict record needs a string task_id, got {task_id!r}")
            if task_id in self._done:
                log.warning("task %s already has a stored verdict; the new one is dropped", task_id)
                continue
            fresh.append(record)
        if not fresh:
            return 0
        payload = b"".join(_encode(r) for r in fresh)
        self._verdicts.write(payload, self._intact())
        self._done.update(r["task_id"] for r in fresh)
        self.n_appended += len(fresh)
        return len(fresh)

    def append_llm_errors(self, records: Sequence[Mapping[str, Any]]) -> int:
        """Store transport failures (each with a string `task_id`; a task may fail many times) with one write
        and one fsync, as `append` does: durable, and cut back on a full disk."""
        if not records:
            return 0
        for record in records:
            if not isinstance(record.get("task_id"), str):
                raise DataError(f"an LLM error record needs a string task_id, got {record.get('task_id')!r}")
        payload = b"".join(_encode(r) for r in records)
        if self._errors is None:
            path = self.run_dir / LLM_ERRORS_NAME
            self._errors = _AppendLog(path, self._open_append(path))
        self._errors.write(payload, self._intact())
        self.n_llm_errors += len(records)
        return len(records)

    def _intact(self) -> str:
        return f"the {len(self._done)} verdicts stored before are intact"

    def update_manifest(self, session: Mapping[str, Any] | None = None, **fields: Any) -> None:
        """Record facts about the run (top-level `fields`) or the current session (e.g. how it ended)."""
        if session:
            self.manifest["sessions"][-1].update(session)
        self.manifest.update(fields)
        _write_atomic(self.run_dir / MANIFEST_NAME, json.dumps(self.manifest, indent=1) + "\n")

    @property
    def session(self) -> int:
        """1 for the first session of the run, 2 for the first resume, ..."""
        return len(self.manifest["sessions"])

    def close(self) -> None:
        if self._errors is not None:
            self._errors.close()
        self._verdicts.close()  # releases the flock

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def write_json_lines(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Write a whole JSON-lines file atomically (e.g. the run's task list)."""
    _write_atomic(path, "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows))
