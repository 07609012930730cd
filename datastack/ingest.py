"""Ingestion: proofread neurons → change logs → operation details → per-neuron rows and the operation bank.

Order of work: connect and pin; read the proofread-neuron table (or take the given roots); take what the cache
has; fetch the rest in batches on a few worker threads (one CAVEclient each), bisecting failed batches; then
the operation details of every distinct operation not yet cached, in chunks of ≤ 500. Every success is cached
as it arrives, so an interrupted or faulty run loses nothing and a rerun only asks for what is missing.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from proofpilot.core.errors import ConfigError, DataError
from proofpilot.core.parquet import write_parquet
from proofpilot.core.redact import known_secrets, redact
from proofpilot.datastack.bank import (
    build_bank,
    build_membership,
    dropped_operations,
    unique_pairs,
    without_operations,
)
from proofpilot.datastack.cache import ResponseCache, default_cache_dir
from proofpilot.datastack.changelog import (
    DEFAULT_BATCH_SIZE,
    BatchResult,
    LogRows,
    chunked,
    decode_log,
    fetch_batch,
    raw_log_fetcher,
)
from proofpilot.datastack.client import CaveConnection, ClientSettings
from proofpilot.datastack.opdetails import (
    MAX_IDS_PER_CALL,
    DetailsChunk,
    concat_chunks,
    fetch_details,
    raw_details_fetcher,
)
from proofpilot.datastack.records import PER_NEURON_COLUMNS, DataPin
from proofpilot.datastack.table import (  # noqa: F401 - part of the ingestion's API
    DEFAULT_TABLES,
    MAX_ROOT_ID,
    ROOT_COLUMN,
    dedupe,
    parse_root_ids,
    query_proofread_roots,
    read_roots_file,
    resolve_table,
)

log = logging.getLogger(__name__)

_CACHE_READ_CHUNK = 5000


@dataclass(frozen=True)
class IngestOptions:
    """What to ingest and how hard to push the server."""

    table: str | None = None  # proofread-neuron table; default by datastack name (DEFAULT_TABLES)
    root_ids: tuple[int, ...] | None = None  # ingest these instead of the table
    limit: int | None = None  # only the first N neurons (table order)
    batch_size: int = DEFAULT_BATCH_SIZE  # roots per change-log call
    details_chunk: int = MAX_IDS_PER_CALL  # operation ids per details call
    workers: int = 2  # concurrent requests (one CAVEclient per worker)
    cache_dir: Path | None = None  # None: default_cache_dir()
    use_cache: bool = True
    with_details: bool = True  # False: counts and bank rows only, no interface points
    progress: bool = True
    max_connection_failures: int = 3  # consecutive batches lost to a refused connection before giving up

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= 1000:
            raise ConfigError(f"batch size must be in [1, 1000], got {self.batch_size}")
        if not 1 <= self.details_chunk <= MAX_IDS_PER_CALL:
            raise ConfigError(f"details chunk must be in [1, {MAX_IDS_PER_CALL}], got {self.details_chunk}")
        if self.workers < 1:
            raise ConfigError("workers must be >= 1")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be >= 1, got {self.limit}")


@dataclass(frozen=True)
class IngestStats:
    """Coverage and cost of one ingestion."""

    n_table_rows: int
    n_duplicate_roots: int
    n_neurons: int
    n_ok: int
    n_error: int
    n_from_cache: int
    n_operations: int
    n_operations_without_details: int
    changelog_requests: int
    details_requests: int
    seconds: float
    # left out of the operation bank (still in membership and per-neuron counts): bank.dropped_operations
    n_operations_failed: int = 0
    n_undo_redo: int = 0
    n_undone: int = 0


@dataclass(frozen=True, eq=False)
class IngestResult:
    per_neuron: pd.DataFrame  # PER_NEURON_COLUMNS
    operations: pd.DataFrame  # OPERATION_COLUMNS
    membership: pd.DataFrame  # MEMBERSHIP_COLUMNS
    pin: DataPin
    stats: IngestStats | None = field(default=None, compare=False)
    operation_errors: dict[int, str] = field(default_factory=dict, compare=False)
    # operations of the change logs left out of the bank: {operation id: bank.DROP_REASONS reason}
    dropped_operations: dict[int, str] = field(default_factory=dict, compare=False)


class _Workers:
    """A thread pool whose threads each own a CAVEclient (the main connection's when there is one worker)."""

    def __init__(self, conn: CaveConnection, n: int) -> None:
        self._conn, self._n = conn, n
        self._local = threading.local()
        self.pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="cave") if n > 1 else None

    def client(self):
        if self.pool is None:
            return self._conn.client
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._conn.new_worker_client()
        return client

    def map(self, fn: Callable, items: Sequence) -> Iterable:
        return map(fn, items) if self.pool is None else self.pool.map(fn, items)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _per_neuron_frame(roots: list[int], rows: LogRows, errors: dict[int, str]) -> pd.DataFrame:
    roots_arr = np.asarray(roots, dtype=np.int64)
    order = np.argsort(roots_arr)
    pos = order[np.searchsorted(roots_arr, rows.root_id, sorter=order)]
    n_edits = np.bincount(pos, minlength=len(roots)).astype(np.int64)
    n_merges = np.bincount(pos, weights=rows.is_merge, minlength=len(roots)).astype(np.int64)
    failed = np.fromiter((r in errors for r in roots), dtype=bool, count=len(roots))
    secrets = known_secrets()  # reasons quote servers; describe_failure redacts, this is the second guard
    errors = {r: redact(why, secrets) for r, why in errors.items()}
    frame = pd.DataFrame(
        {
            "root_id": roots_arr,
            "status": np.where(failed, "error", "ok"),
            "reason": [errors.get(r, "") for r in roots],
            "n_edits": pd.array(n_edits, dtype="Int64"),
            "n_merges": pd.array(n_merges, dtype="Int64"),
            "n_splits": pd.array(n_edits - n_merges, dtype="Int64"),
        }
    ).astype(PER_NEURON_COLUMNS)
    frame.loc[failed, ["n_edits", "n_merges", "n_splits"]] = pd.NA
    return frame


class _LostServer:
    """Gives up (DataError) after ``limit`` consecutive units of work lost to refused/reset connections."""

    def __init__(self, limit: int) -> None:
        self.limit, self.in_a_row, self.good = limit, 0, 0

    def check(self, n_ok: int, errors: dict[int, str], what: str) -> None:
        if n_ok or not errors or not all(r.startswith("connection error") for r in errors.values()):
            self.in_a_row, self.good = 0, self.good + (n_ok > 0)
            return
        self.in_a_row += 1
        if self.in_a_row >= self.limit:
            reason = next(iter(errors.values()))
            raise DataError(
                f"lost the CAVE server after {self.good} good {what} (results so far are cached): {reason}"
            )


def _empty_rows() -> LogRows:
    return LogRows.from_payloads([])


class Ingestion:
    """One ingestion run over an open connection (see `ingest`)."""

    def __init__(self, conn: CaveConnection, options: IngestOptions) -> None:
        self.conn, self.opt = conn, options
        self.cache: ResponseCache | None = None
        if options.use_cache:
            self.cache = ResponseCache(options.cache_dir or default_cache_dir(), conn.cache_namespace())
        self.changelog_requests = 0
        self.details_requests = 0
        self.rows: LogRows | None = None

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()

    # -- neurons -------------------------------------------------------------------------------------------
    def table_roots(self, table: str) -> list[int]:
        cached = self.cache.get_table(table) if self.cache is not None else None
        if cached is not None:
            return cached
        roots = query_proofread_roots(self.conn, table)
        if self.cache is not None:
            self.cache.put_table(table, roots)
        return roots

    def cached_rows(self, roots: list[int]) -> tuple[list[LogRows], set[int]]:
        parts: list[LogRows] = []
        found: set[int] = set()
        if self.cache is None:
            return parts, found
        for start in range(0, len(roots), _CACHE_READ_CHUNK):
            got = self.cache.get_changelogs(roots[start : start + _CACHE_READ_CHUNK])
            if got:
                parts.append(LogRows.from_payloads([(root, decode_log(raw)) for root, raw in got.items()]))
                found.update(got)
        return parts, found

    def fetch_changelogs(self, roots: list[int], bar: tqdm) -> tuple[list[LogRows], dict[int, str]]:
        parts: list[LogRows] = []
        errors: dict[int, str] = {}
        workers = _Workers(self.conn, self.opt.workers)

        def work(batch: list[int]) -> BatchResult:
            return fetch_batch(raw_log_fetcher(workers.client().chunkedgraph), batch)

        lost = _LostServer(self.opt.max_connection_failures)
        try:
            for result in workers.map(work, chunked(roots, self.opt.batch_size)):
                self.changelog_requests += result.requests
                if result.payloads:
                    if self.cache is not None:
                        self.cache.put_changelogs(result.raw.items())
                    parts.append(LogRows.from_payloads(list(result.payloads.items())))
                errors.update(result.errors)
                bar.update(len(result.payloads) + len(result.errors))
                lost.check(len(result.payloads), result.errors, "change-log batches")
        finally:
            workers.close()
        return parts, errors

    # -- operations ----------------------------------------------------------------------------------------
    def operation_details(self, op_ids: np.ndarray) -> DetailsChunk:
        cached = self.cache.get_opdetails(op_ids) if self.cache is not None else concat_chunks([])
        missing = np.setdiff1d(op_ids, cached.operation_id, assume_unique=True)
        if len(missing) == 0:
            return cached
        resolution = np.asarray(self.conn.voxel_resolution_nm, dtype=np.float64)
        workers = _Workers(self.conn, self.opt.workers)

        def work(chunk: list[int]) -> DetailsChunk:
            return fetch_details(raw_details_fetcher(workers.client().chunkedgraph), chunk, resolution)

        parts = [cached]
        bar = tqdm(total=len(missing), unit="op", desc="operation details", disable=not self.opt.progress)
        lost = _LostServer(self.opt.max_connection_failures)
        try:
            for result in workers.map(work, chunked(missing.tolist(), self.opt.details_chunk)):
                self.details_requests += result.requests
                if self.cache is not None and len(result.operation_id):
                    self.cache.put_opdetails(result)
                parts.append(result)
                bar.update(len(result.operation_id) + len(result.errors))
                lost.check(len(result.operation_id), result.errors, "operation-detail chunks")
        finally:
            workers.close()
            bar.close()
        return concat_chunks(parts)

    # -- the whole run -------------------------------------------------------------------------------------
    def run(self, table: str, given_roots: Sequence[int] | None) -> IngestResult:
        """Ingest ``given_roots``, or when None every neuron of ``table`` (recorded in the pin)."""
        t0 = time.perf_counter()
        raw = list(given_roots) if given_roots is not None else self.table_roots(table)
        roots, n_dup = dedupe(raw)
        if n_dup:
            log.warning(
                "%d duplicate root ids in %s (of %d rows); each neuron is ingested once",
                n_dup,
                "the given roots" if given_roots is not None else table,
                len(raw),
            )
        if self.opt.limit is not None:
            roots = roots[: self.opt.limit]
        parts, found = self.cached_rows(roots)
        todo = [r for r in roots if r not in found]
        log.info("%d neurons: %d from cache, %d to fetch", len(roots), len(found), len(todo))
        bar = tqdm(
            total=len(roots),
            initial=len(found),
            unit="neuron",
            desc="change logs",
            disable=not self.opt.progress,
        )
        try:
            fetched, errors = self.fetch_changelogs(todo, bar)
        finally:
            bar.close()
        rows = unique_pairs(LogRows.concat(parts + fetched) if parts or fetched else _empty_rows())
        self.rows = rows  # the logs' own rows (kept roots of splits), for datastack.multiplicity
        op_ids = np.unique(rows.operation_id)
        details = self.operation_details(op_ids) if self.opt.with_details else concat_chunks([])
        dropped = dropped_operations(details)
        reasons = Counter(dropped.values())
        operations = build_bank(without_operations(rows, dropped), details)
        per_neuron = _per_neuron_frame(roots, rows, errors)
        n_err = len(errors)
        stats = IngestStats(
            n_table_rows=len(raw),
            n_duplicate_roots=n_dup,
            n_neurons=len(roots),
            n_ok=len(roots) - n_err,
            n_error=n_err,
            n_from_cache=len(found),
            n_operations=len(operations),
            n_operations_without_details=int(operations["interface_x_nm"].isna().sum()),
            changelog_requests=self.changelog_requests,
            details_requests=self.details_requests,
            seconds=time.perf_counter() - t0,
            n_operations_failed=reasons["failed"],
            n_undo_redo=reasons["undo"] + reasons["redo"],
            n_undone=reasons["undone"],
        )
        if n_err:
            log.warning(
                "%d of %d neurons could not be fetched (error rows; rerun to retry them)", n_err, len(roots)
            )
        membership, pin = build_membership(rows), self.conn.pin(table)
        return IngestResult(per_neuron, operations, membership, pin, stats, dict(details.errors), dropped)


def ingest(settings: ClientSettings, options: IngestOptions | None = None) -> IngestResult:
    """Connect, pin, and ingest the proofread neurons of one datastack (see module docstring).

    >>> from proofpilot.datastack.embedded.server import start_server
    >>> from proofpilot.datastack.source import DataSource
    >>> with start_server("minnie65_synthetic") as server:
    ...     source = DataSource("minnie65_synthetic", server_address=server.url, auth_token="t",
    ...                         use_cache=False, write_server_cache=False)
    ...     result = ingest(source.client_settings(), IngestOptions(limit=3, progress=False, use_cache=False))
    >>> len(result.per_neuron), set(result.per_neuron["status"])
    (3, {'ok'})
    >>> int(result.per_neuron["n_edits"].sum()) == len(result.membership)
    True
    """
    options = options or IngestOptions()
    table = (
        options.table or ""
        if options.root_ids is not None
        else resolve_table(settings.datastack, options.table)
    )
    conn = CaveConnection(settings)
    run = Ingestion(conn, options)
    try:
        return run.run(table, options.root_ids)
    finally:
        run.close()


def write_result(result: IngestResult, out_dir: str | os.PathLike) -> dict[str, Path]:
    """per_neuron/operations/membership.parquet (pin in each file's metadata), pin.json and summary.json."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create output folder {out}: {exc.strerror}") from None
    paths = {name: out / f"{name}.parquet" for name in ("per_neuron", "operations", "membership")}
    for name, path in paths.items():
        write_parquet(getattr(result, name), path, result.pin.to_dict())
    paths["pin"] = out / "pin.json"
    paths["pin"].write_text(json.dumps(result.pin.to_dict(), indent=2) + "\n")
    paths["summary"] = out / "summary.json"
    summary = {"pin": result.pin.to_dict(), "stats": asdict(result.stats) if result.stats else None}
    paths["summary"].write_text(json.dumps(summary, indent=2) + "\n")
    return paths
