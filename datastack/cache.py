"""On-disk cache of CAVE responses (sqlite3), so that a rerun makes no calls for what it already has.

Keyed by a namespace (server, datastack, pin) plus the root id or operation id. Only successful responses are
stored; a failed neuron or operation is fetched again next time. Root ids and operation ids fit in SQLite's
signed 64-bit INTEGER (real CAVE ids are < 2**63).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from proofpilot.datastack.opdetails import N_META, DetailsChunk, offsets_from_counts

_SCHEMA = """
CREATE TABLE IF NOT EXISTS namespaces (id INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL);
CREATE TABLE IF NOT EXISTS changelog (
    ns INTEGER NOT NULL, root_id INTEGER NOT NULL, payload TEXT NOT NULL, PRIMARY KEY (ns, root_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS opdetails2 (
    ns INTEGER NOT NULL, operation_id INTEGER NOT NULL, x REAL, y REAL, z REAL, roots TEXT NOT NULL,
    status INTEGER NOT NULL, undo_of INTEGER NOT NULL, redo_of INTEGER NOT NULL,
    source_sv INTEGER NOT NULL, sink_sv INTEGER NOT NULL,
    PRIMARY KEY (ns, operation_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tables (
    ns INTEGER NOT NULL, name TEXT NOT NULL, payload TEXT NOT NULL, PRIMARY KEY (ns, name)
) WITHOUT ROWID;
"""
_CHUNK = 900  # ids per IN (...) lookup


def default_cache_dir() -> Path:
    """$PROOFPILOT_CACHE_DIR, else $XDG_CACHE_HOME/proofpilot, else ~/.cache/proofpilot."""
    if os.environ.get("PROOFPILOT_CACHE_DIR"):
        return Path(os.environ["PROOFPILOT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "proofpilot"


def _chunks(values: list[int], size: int = _CHUNK) -> Iterator[list[int]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


class ResponseCache:
    """Successful change logs, operation details and table queries of one namespace."""

    def __init__(self, cache_dir: str | os.PathLike, namespace: str) -> None:
        path = Path(cache_dir)
        path.mkdir(parents=True, exist_ok=True)
        self.path = path / "cave-cache.sqlite3"
        self._db = sqlite3.connect(self.path)
        self._db.executescript("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;" + _SCHEMA)
        self._db.execute("INSERT OR IGNORE INTO namespaces (key) VALUES (?)", (namespace,))
        (self._ns,) = self._db.execute("SELECT id FROM namespaces WHERE key = ?", (namespace,)).fetchone()
        self._db.commit()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _has_any(self, table: str) -> bool:
        row = self._db.execute(f"SELECT 1 FROM {table} WHERE ns = ? LIMIT 1", (self._ns,)).fetchone()
        return row is not None

    # -- change logs: the server's inner JSON string of each root ------------------------------------------
    def get_changelogs(self, root_ids: Iterable[int]) -> dict[int, str]:
        if not self._has_any("changelog"):
            return {}
        found: dict[int, str] = {}
        for chunk in _chunks([int(r) for r in root_ids]):
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT root_id, payload FROM changelog WHERE ns = ? AND root_id IN ({marks})",
                (self._ns, *chunk),
            )
            found.update(rows)
        return found

    def put_changelogs(self, items: Iterable[tuple[int, str]]) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO changelog (ns, root_id, payload) VALUES (?, ?, ?)",
            ((self._ns, int(root), raw if isinstance(raw, str) else json.dumps(raw)) for root, raw in items),
        )
        self._db.commit()

    # -- operation details: interface point (nm), all new roots and the meta columns -----------------------
    # (table opdetails2: `opdetails` of earlier versions lacks the meta columns and is no longer read)
    def get_opdetails(self, operation_ids: np.ndarray) -> DetailsChunk:
        """The cached subset of ``operation_ids`` (in no particular order)."""
        ids: list[int] = []
        points: list[tuple[float, float, float]] = []
        roots: list[int] = []
        counts: list[int] = []
        meta: list[tuple[int, ...]] = []
        if len(operation_ids) and self._has_any("opdetails2"):
            for chunk in _chunks(np.asarray(operation_ids, dtype=np.int64).tolist()):
                marks = ",".join("?" * len(chunk))
                for op, x, y, z, text, *scalars in self._db.execute(
                    "SELECT operation_id, x, y, z, roots, status, undo_of, redo_of, source_sv, sink_sv"
                    " FROM opdetails2"
                    f" WHERE ns = ? AND operation_id IN ({marks})",
                    (self._ns, *chunk),
                ):
                    ids.append(op)
                    points.append((_nan(x), _nan(y), _nan(z)))
                    new_roots = [int(v) for v in text.split(",")] if text else []
                    roots.extend(new_roots)
                    counts.append(len(new_roots))
                    meta.append(tuple(scalars))
        return DetailsChunk(
            np.asarray(ids, dtype=np.int64),
            np.asarray(points, dtype=np.float64).reshape(-1, 3),
            np.asarray(roots, dtype=np.int64),
            offsets_from_counts(counts),
            np.asarray(meta, dtype=np.int64).reshape(-1, N_META),
            {},
            0,
        )

    def put_opdetails(self, chunk: DetailsChunk) -> None:
        bounds = chunk.after_offsets.tolist()
        values = chunk.after_values.tolist()
        meta = chunk.meta.tolist()

        def rows():
            for i, (op, (x, y, z)) in enumerate(
                zip(chunk.operation_id.tolist(), chunk.interface_nm.tolist(), strict=True)
            ):
                yield (
                    self._ns,
                    op,
                    _real(x),
                    _real(y),
                    _real(z),
                    ",".join(map(str, values[bounds[i] : bounds[i + 1]])),
                    *meta[i],
                )

        self._db.executemany(
            "INSERT OR REPLACE INTO opdetails2 (ns, operation_id, x, y, z, roots, status, undo_of, redo_of,"
            " source_sv, sink_sv) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows(),
        )
        self._db.commit()

    # -- small query results (the proofread-neuron table) ------------------------------------------------
    def get_table(self, name: str) -> list[int] | None:
        row = self._db.execute(
            "SELECT payload FROM tables WHERE ns = ? AND name = ?", (self._ns, name)
        ).fetchone()
        return None if row is None else json.loads(row[0])

    def put_table(self, name: str, root_ids: list[int]) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO tables (ns, name, payload) VALUES (?, ?, ?)",
            (self._ns, name, json.dumps(root_ids)),
        )
        self._db.commit()


def _real(value: float) -> float | None:
    return None if value != value else value  # NaN -> NULL


def _nan(value: float | None) -> float:
    return np.nan if value is None else value
