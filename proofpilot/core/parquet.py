"""Parquet files that carry their data pin (datastack, materialization version, timestamp, server versions)
in the file's metadata, so a table read later says which data it came from; written atomically."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from proofpilot.core.atomic import replace_atomic

PIN_KEY = b"proofpilot.pin"


def write_parquet(frame: pd.DataFrame, path: Path, pin: Mapping | None = None) -> Path:
    """`frame` as Parquet at `path` (no index), with `pin` as JSON under the metadata key proofpilot.pin."""
    import pyarrow as pa  # pyarrow and its parquet module cost ~0.3 s; only writers need them

    # lazy: pyarrow's parquet module loads only for Parquet I/O
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    if pin is not None:
        meta = dict(table.schema.metadata or {})
        meta[PIN_KEY] = json.dumps(dict(pin)).encode()
        table = table.replace_schema_metadata(meta)
    return replace_atomic(path, lambda tmp: pq.write_table(table, tmp))


def read_pin(path: Path) -> dict | None:
    """The pin a `write_parquet` file carries, or None."""
    # lazy: pyarrow's parquet module loads only for Parquet I/O
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta[PIN_KEY]) if PIN_KEY in meta else None
