"""Wire encodings of the embedded CAVE server: JSON like PyChunkedGraph's
CustomJsonEncoder, the double-encoded
tabular change log, and Arrow IPC streams like MaterializationEngine's query endpoint."""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa

from proofpilot.datastack.embedded.generator import Generator

_MAX_ROWS = 16_384
_INDEX_KEYS = [f'"{k}":' for k in range(_MAX_ROWS)]  # DataFrame.to_json index labels, orient="columns"
TABULAR_COLUMNS = (
    "operation_id",
    "timestamp",
    "user_id",
    "before_root_ids",
    "after_root_ids",
    "is_merge",
    "user_name",
    "user_affiliation",
)


def _default(obj: object) -> object:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, datetime):
        return str(obj)
    if isinstance(obj, pd.DataFrame):
        return obj.to_json()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps(obj: object) -> bytes:
    """Compact JSON bytes: numpy values as numbers/lists, datetimes as str(dt), DataFrames as to_json()."""
    return json.dumps(obj, default=_default, separators=(",", ":")).encode()


class TabularLogEncoder:
    """Builds the `DataFrame.to_json()` text of a neuron's tabular change log directly from its arrays.

    The text is what `pd.DataFrame(...).to_json()` gives for the same frame (orient="columns", index
    labels 0..n-1,
    ints as numbers, lists as arrays, bools as true/false); tests compare the two.
    """

    def __init__(self, gen: Generator):
        self.gen = gen
        n_users = gen.profile.n_users
        self._user_id = [json.dumps(gen.user_id(u)) for u in range(n_users)]
        self._user_name = [json.dumps(gen.user_name(u)) for u in range(n_users)]
        self._user_aff = [json.dumps(gen.user_affiliation(u)) for u in range(n_users)]

    def inner_json(self, neuron_index: int, n_rows: int | None = None) -> str:
        """to_json text of the neuron's log, or of its first `n_rows` rows (the log of an earlier root)."""
        log = self.gen.neuron_log(neuron_index)
        stop = len(log) if n_rows is None else n_rows
        keys = _INDEX_KEYS[:stop]
        users = log.user[:stop].tolist()
        before = [
            (f"[{b},{p}]" if b < p else f"[{p},{b}]") if p else f"[{b}]"  # ascending, as real CAVE
            for b, p in zip(log.before_root[:stop].tolist(), log.partner_root[:stop].tolist(), strict=True)
        ]
        after = log.after_root[:stop].tolist()
        columns = (
            map(str, log.operation_id[:stop].tolist()),
            map(str, log.timestamp_ms[:stop].tolist()),
            (self._user_id[u] for u in users),
            before,
            (f"[{a}]" for a in after),
            ("true" if m else "false" for m in log.is_merge[:stop].tolist()),
            (self._user_name[u] for u in users),
            (self._user_aff[u] for u in users),
        )
        parts = [
            f'"{name}":{{' + ",".join(map(str.__add__, keys, values)) + "}"
            for name, values in zip(TABULAR_COLUMNS, columns, strict=True)
        ]
        return "{" + ",".join(parts) + "}"

    def many(self, states: list[tuple[int, int, int | None]]) -> bytes:
        """The `tabular_change_log_many` body for (root, neuron, n_rows) triples: {"<root>": "<to_json>"}."""
        items = [f'"{root}":{json.dumps(self.inner_json(i, n))}' for root, i, n in states]
        return ("{" + ",".join(items) + "}").encode()


def arrow_stream(df: pd.DataFrame, accept_encoding: str) -> bytes:
    """One-batch Arrow IPC stream, zstd (or lz4) compressed inside the format when the client accepts it."""
    compression = None
    accepted = accept_encoding.lower()
    if "zstd" in accepted:
        compression = "zstd"
    elif "lz4" in accepted:
        compression = "lz4"
    batch = pa.RecordBatch.from_pandas(df, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(
        sink, batch.schema, options=pa.ipc.IpcWriteOptions(compression=compression)
    ) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()
