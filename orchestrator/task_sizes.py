"""RUN_DIR/task_sizes.jsonl: the size of each decided task's edit (tasks.size.TaskSize), one JSON line each.

    TaskSizeLog(run_dir).append(sizes)   the one writer (the pilot's session, with each batch of verdicts)
    read_task_sizes(run_dir)             the one reader -> {task id: TaskSize}

Written as the store writes verdicts (one `write()` to an O_APPEND descriptor and an fsync per batch; a torn
last line from a crash is cut when the log is first written in a session) and *before* the batch's verdicts:
so a crash between the two leaves a size without its verdict (the task is asked again on `--resume` and its
size written again; the reader keeps the last line of a task), never a decided task without its size. Nothing
here re-asks or re-prepares a decided task. The verdict store's flock covers this file (one pilot per run).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from proofpilot.core.errors import DataError
from proofpilot.orchestrator.store import _AppendLog, _cut_torn_tail, _encode, scan_verdicts
from proofpilot.tasks.size import TaskSize

SIZES_NAME = "task_sizes.jsonl"
_WHAT = "task size"


class TaskSizeLog:
    """Appends task sizes to RUN_DIR/task_sizes.jsonl (see the module docstring); opened on first use."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.path = Path(run_dir) / SIZES_NAME
        self._log: _AppendLog | None = None
        self.n_appended = 0

    def _open(self) -> _AppendLog:
        if self._log is None:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise DataError(f"cannot open {self.path}: {exc.strerror}") from None
            _cut_torn_tail(fd, self.path, scan_verdicts(self.path, _WHAT))
            self._log = _AppendLog(self.path, fd)
        return self._log

    def append(self, sizes: Sequence[TaskSize]) -> int:
        """Store `sizes` with one write and one fsync (StoreFullError on a full disk, the file cut back)."""
        if not sizes:
            return 0
        payload = b"".join(_encode(s.to_dict()) for s in sizes)
        self._open().write(payload, "the verdicts and task sizes stored before are intact")
        self.n_appended += len(sizes)
        return len(sizes)

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def read_task_sizes(run_dir: str | os.PathLike) -> dict[str, TaskSize]:
    """{task id: its size} of a run (the last line of a task wins; none for a run made before sizes were
    stored). A damaged line is a DataError naming it; a torn last line is ignored."""
    path = Path(run_dir) / SIZES_NAME
    records = scan_verdicts(path, _WHAT).records
    return {r["task_id"]: TaskSize.from_dict(r, f"{path}:{i}") for i, r in enumerate(records, start=1)}
