"""Tabular change logs: batched fetching with bisection on failure, and columnar per-row arrays.

The request is caveclient's ``get_tabular_change_log`` request (its endpoint table, its session with auth and
our timeout/retry adapter, its ``handle_response`` error handling); only the decoding differs. caveclient
turns each root's double-encoded JSON into a pandas DataFrame, which costs ~0.4 ms per root (about a minute
for the fly-like table), so the inner JSON strings are decoded here straight into lists and then numpy columns
per batch. The raw inner strings are what the cache stores. A batch that fails is split in halves until single
roots fail alone: one bad neuron costs an error row with its reason, not its 49 neighbours.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import requests

from proofpilot.datastack.client import describe_failure
from proofpilot.datastack.shapes import kind_of

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_BATCH_SIZE = 50
REQUIRED_COLUMNS = ("operation_id", "timestamp", "is_merge", "before_root_ids", "after_root_ids")
PAYLOAD_KEYS = ("operation_id", "timestamp_ms", "is_merge", "user_id", "before_root_ids", "after_root_ids")

# decoded log of one root: {"operation_id": [...], "timestamp_ms": [...], "is_merge": [...], "user_id": [...],
#                           "before_root_ids": [[...]], "after_root_ids": [[...]]}
Payload = dict[str, list]
FetchRaw = Callable[[list[int]], dict[int, str]]


class MalformedLog(ValueError):
    """A change log that does not have the documented columns or types."""


def raw_log_fetcher(chunkedgraph) -> FetchRaw:
    """roots → {root: inner change-log JSON string}, with caveclient's request for get_tabular_change_log."""
    # lazy: caveclient takes seconds to import; only CAVE calls need it
    from caveclient.base import handle_response

    # lazy: caveclient takes seconds to import; only CAVE calls need it
    from caveclient.endpoints import chunkedgraph_endpoints_v1

    url = chunkedgraph_endpoints_v1["tabular_change_log"].format_map(chunkedgraph.default_url_mapping)
    session = chunkedgraph.session

    def fetch(roots: list[int]) -> dict[int, str]:
        body = json.dumps({"root_ids": sorted(set(roots))})
        answer = handle_response(session.get(url, data=body, params={"filtered": True}))
        if not isinstance(answer, dict):
            raise MalformedLog(f"{url} answered {kind_of(answer)} where an object of change logs belongs")
        return {int(k): v for k, v in answer.items()}

    return fetch


def _column(data: dict, name: str, keys: list) -> list:
    col = data[name]
    if not isinstance(col, dict):
        raise MalformedLog(f"column {name} is not an index→value object")
    if list(col) == keys:
        return list(col.values())
    try:
        return [col[k] for k in keys]
    except KeyError:
        raise MalformedLog(f"column {name} lacks rows of operation_id") from None


def _root_lists(values: list, name: str) -> list[list[int]]:
    if not all(type(v) is list for v in values):
        values = [[v] if type(v) is int else v for v in values]
        if not all(type(v) is list for v in values):
            raise MalformedLog(f"{name} holds something other than lists of root ids")
    if not set(map(type, itertools.chain.from_iterable(values))) <= {int}:
        raise MalformedLog(f"{name} holds non-integer root ids")
    return values


def _timestamps_ms(values: list) -> list[int]:
    if set(map(type, values)) <= {int}:
        return values
    try:
        parsed = pd.to_datetime(pd.Series(values), utc=True, errors="raise")
    except (ValueError, TypeError) as exc:
        raise MalformedLog(f"bad timestamps: {exc}") from None
    return (parsed.astype("int64") // 1_000_000).tolist()


def decode_log(inner: str | bytes | dict) -> Payload:
    """One root's change log (the inner ``DataFrame.to_json()`` string) → payload. Raises MalformedLog."""
    try:
        data = json.loads(inner) if isinstance(inner, str | bytes) else inner
    except ValueError as exc:
        raise MalformedLog(f"change log is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedLog("change log is not an object of columns")
    if not data.get("operation_id"):
        if any(isinstance(v, dict) and v for v in data.values()):
            raise MalformedLog("change log has rows but no operation_id column")
        return {key: [] for key in PAYLOAD_KEYS}
    missing = [c for c in REQUIRED_COLUMNS if c not in data]
    if missing:
        raise MalformedLog(f"change log lacks columns {missing}")
    keys = list(data["operation_id"])
    ops = _column(data, "operation_id", keys)
    if not set(map(type, ops)) <= {int}:
        raise MalformedLog("operation_id holds non-integers")
    merges = _column(data, "is_merge", keys)
    if not set(map(type, merges)) <= {bool}:
        raise MalformedLog("is_merge holds non-booleans")
    users = _column(data, "user_id", keys) if "user_id" in data else [""] * len(keys)
    return {
        "operation_id": ops,
        "timestamp_ms": _timestamps_ms(_column(data, "timestamp", keys)),
        "is_merge": merges,
        "user_id": [u if type(u) is str else str(u) for u in users],
        "before_root_ids": _root_lists(_column(data, "before_root_ids", keys), "before_root_ids"),
        "after_root_ids": _root_lists(_column(data, "after_root_ids", keys), "after_root_ids"),
    }


@dataclass(frozen=True)
class BatchResult:
    """Outcome of fetching one batch: payloads of the roots that worked, reasons for those that did not."""

    payloads: dict[int, Payload]
    raw: dict[int, str]  # the inner JSON strings of those roots (what the cache stores)
    errors: dict[int, str]
    requests: int


def bisect_fetch(ask: Callable[[list[int]], T], ids: Sequence[int]) -> tuple[list[T], dict[int, str], int]:
    """Ask for `ids` in one call; on failure bisect until each failing id fails alone (a refused connection
    fails the whole part at once). Returns (answers of the parts that worked, {id: reason}, requests)."""
    answers: list[T] = []
    errors: dict[int, str] = {}
    n_requests = 0
    pending: list[list[int]] = [list(ids)]
    while pending:
        part = pending.pop()
        n_requests += 1
        try:
            answers.append(ask(part))
        except Exception as exc:  # any failure of this request: narrow it down
            if len(part) == 1 or is_server_down(exc):
                reason = describe_failure(exc)
                errors.update((i, reason) for i in part)
            else:
                mid = len(part) // 2
                pending.extend((part[mid:], part[:mid]))
    return answers, errors, n_requests


def fetch_batch(fetch: FetchRaw, roots: Sequence[int]) -> BatchResult:
    """Fetch ``roots`` in one call; on failure bisect until each failing root fails alone."""

    def ask(part: list[int]):
        logs = fetch(part)
        return part, logs, {root: decode_log(logs[root]) for root in part if root in logs}

    answers, errors, n_requests = bisect_fetch(ask, roots)
    payloads: dict[int, Payload] = {}
    raw: dict[int, str] = {}
    for part, logs, got in answers:
        payloads.update(got)
        raw.update((root, logs[root]) for root in got)
        for root in part:
            if root not in got:
                errors[root] = "server returned no change log for this root"
    return BatchResult(payloads, raw, errors, n_requests)


def is_server_down(exc: BaseException) -> bool:
    """A refused or reset connection says nothing about the roots asked for: do not bisect."""
    return isinstance(exc, requests.ConnectionError) and "timed out" not in str(exc).lower()


def chunked(values: Sequence[int], size: int) -> list[list[int]]:
    return [list(values[i : i + size]) for i in range(0, len(values), size)]


@dataclass(frozen=True)
class LogRows:
    """Rows of many neurons' filtered change logs, one entry per (neuron, operation) row."""

    root_id: np.ndarray  # int64
    operation_id: np.ndarray  # int64
    is_merge: np.ndarray  # bool
    timestamp_ms: np.ndarray  # int64
    user_id: pa.Array  # string
    before_values: np.ndarray  # int64, flattened before_root_ids
    before_offsets: np.ndarray  # int64, len = rows + 1
    after_values: np.ndarray  # int64, flattened after_root_ids (change log: kept root only for splits)
    after_offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.operation_id)

    @staticmethod
    def from_payloads(items: Sequence[tuple[int, Payload]]) -> LogRows:
        counts = [len(p["operation_id"]) for _, p in items]
        root_id = np.repeat(np.asarray([r for r, _ in items], dtype=np.int64), counts)

        def column(key: str, dtype) -> np.ndarray:
            return np.fromiter(
                itertools.chain.from_iterable(p[key] for _, p in items), dtype=dtype, count=len(root_id)
            )

        def lists(key: str) -> tuple[np.ndarray, np.ndarray]:
            nested = list(itertools.chain.from_iterable(p[key] for _, p in items))
            offsets = np.zeros(len(nested) + 1, dtype=np.int64)
            np.cumsum([len(v) for v in nested], out=offsets[1:])
            values = np.fromiter(
                itertools.chain.from_iterable(nested), dtype=np.int64, count=int(offsets[-1])
            )
            return values, offsets

        before_values, before_offsets = lists("before_root_ids")
        after_values, after_offsets = lists("after_root_ids")
        users = pa.array(
            list(itertools.chain.from_iterable(p["user_id"] for _, p in items)), type=pa.string()
        )
        return LogRows(
            root_id,
            column("operation_id", np.int64),
            column("is_merge", np.bool_),
            column("timestamp_ms", np.int64),
            users,
            before_values,
            before_offsets,
            after_values,
            after_offsets,
        )

    @staticmethod
    def concat(parts: Sequence[LogRows]) -> LogRows:
        parts = [p for p in parts if p is not None]
        if not parts:
            return LogRows.from_payloads([])

        def offsets(name: str) -> np.ndarray:
            pieces, shift = [np.zeros(1, dtype=np.int64)], 0
            for p in parts:
                off = getattr(p, name)
                pieces.append(off[1:] + shift)
                shift += int(off[-1])
            return np.concatenate(pieces)

        return LogRows(
            np.concatenate([p.root_id for p in parts]),
            np.concatenate([p.operation_id for p in parts]),
            np.concatenate([p.is_merge for p in parts]),
            np.concatenate([p.timestamp_ms for p in parts]),
            pa.concat_arrays([p.user_id for p in parts]),
            np.concatenate([p.before_values for p in parts]),
            offsets("before_offsets"),
            np.concatenate([p.after_values for p in parts]),
            offsets("after_offsets"),
        )

    def take(self, index: np.ndarray) -> LogRows:
        """The rows at ``index`` (with their root lists)."""

        bo, ao = self.before_offsets, self.after_offsets
        bv, bo = gather_lists(self.before_values, bo[index], bo[index + 1] - bo[index])
        av, ao = gather_lists(self.after_values, ao[index], ao[index + 1] - ao[index])
        return LogRows(
            self.root_id[index],
            self.operation_id[index],
            self.is_merge[index],
            self.timestamp_ms[index],
            self.user_id.take(pa.array(index)),
            bv,
            bo,
            av,
            ao,
        )


def gather_lists(
    values: np.ndarray, starts: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``values[starts[i] : starts[i] + lengths[i]]`` → (flattened values, offsets)."""
    offsets = np.zeros(len(starts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    shift = np.repeat(np.asarray(starts, dtype=np.int64) - offsets[:-1], lengths)
    return values[np.arange(offsets[-1], dtype=np.int64) + shift], offsets


def split_lists(values: np.ndarray, offsets: np.ndarray) -> list[list[int]]:
    """Flattened values + offsets → one Python list per row (for the object columns of the contracts)."""
    flat = values.tolist()
    bounds = offsets.tolist()
    return [flat[a:b] for a, b in itertools.pairwise(bounds)]
