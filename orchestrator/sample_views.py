"""Sample views of a run: the rendered views the agent saw for a few tasks per op type, for the report.

    write_sample_views(run_dir, samples)  -> views/<n>-<view>.png and views/index.jsonl (the writer)
    read_sample_views(run_dir)            -> [SampleViews]                                (the typed reader)

A line of index.jsonl names the task, its op type, the view names and the PNG files (relative to views/).
A run without views has no views/ folder; reading it gives an empty list.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from proofpilot.core.atomic import replace_atomic
from proofpilot.core.errors import DataError
from proofpilot.core.records import from_json

VIEWS_DIR = "views"
INDEX_NAME = "index.jsonl"


@dataclass(frozen=True)
class SampleViews:
    task_id: str
    op_kind: str
    view_names: tuple[str, ...]
    files: tuple[str, ...]  # PNGs in views/, one per view name

    def to_dict(self) -> dict:
        return asdict(self)


def write_sample_views(
    run_dir: str | os.PathLike, samples: list[tuple[str, str, tuple[str, ...], tuple[bytes, ...]]]
) -> list[SampleViews]:
    """Write (task id, op kind, view names, PNG bytes) samples not written before; the index as written."""
    folder = Path(run_dir) / VIEWS_DIR
    folder.mkdir(exist_ok=True)
    done = {s.task_id for s in read_sample_views(run_dir)}
    lines = []
    n = len(done)
    for task_id, op_kind, names, pngs in samples:
        if task_id in done or len(names) != len(pngs):
            continue
        files = tuple(f"{n:03d}-{name.replace('×', 'x')}.png" for name in names)
        for file, png in zip(files, pngs, strict=True):
            replace_atomic(folder / file, lambda tmp, data=png: tmp.write_bytes(data))
        lines.append(json.dumps(SampleViews(task_id, op_kind, tuple(names), files).to_dict()) + "\n")
        done.add(task_id)
        n += 1
    if lines:
        with open(folder / INDEX_NAME, "a", encoding="utf-8") as f:
            f.writelines(lines)
    return read_sample_views(run_dir)


def read_sample_views(run_dir: str | os.PathLike) -> list[SampleViews]:
    """The run's sample views (none for a text-only run); DataError naming the line for a damaged one."""
    path = Path(run_dir) / VIEWS_DIR / INDEX_NAME
    if not path.exists():
        return []
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            raise DataError(f"{path}:{i} is not JSON") from None
        out.append(from_json(SampleViews, data, f"{path}:{i}"))
    return out
