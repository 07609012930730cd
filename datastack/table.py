"""The proofread-neuron table of a datastack and root-id lists: which table, its roots at the pin, and
root ids a user gives by hand (validated)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd
import requests

from proofpilot.core.errors import ConfigError, DataError
from proofpilot.datastack.client import CaveConnection, describe_failure
from proofpilot.datastack.shapes import WrongShape, expect, expect_names, integer_ids

log = logging.getLogger(__name__)

ROOT_COLUMN = "pt_root_id"
DEFAULT_TABLES = {
    "minnie65_public": "proofreading_status_and_strategy",
    "minnie65_synthetic": "proofreading_status_and_strategy",
    "flywire_fafb_public": "proofread_neurons",
    "fafb_synthetic": "proofread_neurons",
}
MAX_ROOT_ID = 2**63 - 1


def parse_root_ids(values: Iterable[object]) -> list[int]:
    """Validate root ids given by a user; DataError naming the first malformed one."""
    out = []
    for value in values:
        text = str(value).strip()
        try:
            root = int(text, 10)
        except ValueError:
            raise DataError(f"malformed root id {text!r}: not a decimal integer") from None
        if not 0 < root <= MAX_ROOT_ID:
            raise DataError(f"malformed root id {text!r}: outside 1..2**63-1")
        out.append(root)
    return out


def read_roots_file(path: str | os.PathLike) -> list[int]:
    """Root ids from a text file, one per line (blank lines and '#' comments ignored)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise DataError(f"cannot read root-id file {path}: {exc.strerror}") from None
    return parse_root_ids(line for line in (raw.split("#")[0].strip() for raw in lines) if line)


def dedupe(roots: Sequence[int]) -> tuple[list[int], int]:
    """Table order without repeats, and how many repeats there were."""
    unique = list(dict.fromkeys(int(r) for r in roots))
    return unique, len(roots) - len(unique)


def query_proofread_roots(conn: CaveConnection, table: str) -> list[int]:
    """pt_root_id of every row of the proofread-neuron table at the pin (duplicates kept)."""
    mat = conn.client.materialize
    server = conn.server_address
    try:
        tables = mat.get_tables()
    except requests.RequestException as exc:
        log.debug("table list unavailable: %s", describe_failure(exc))
        tables = None
    if tables is not None:
        expect_names(
            tables, f"CAVE server {server}, route materialize …/version/{conn.materialization_version}/tables"
        )
    if tables is not None and table not in tables:
        raise DataError(
            f"unknown table {table!r} in {conn.datastack} (tables: {', '.join(sorted(tables)) or 'none'})"
        )
    try:
        if conn.settings.timestamp is not None:
            frame = mat.live_query(table, conn.settings.timestamp, select_columns=[ROOT_COLUMN])
        else:
            frame = mat.query_table(table, select_columns=[ROOT_COLUMN])
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status == 404:
            raise DataError(f"unknown table {table!r} in {conn.datastack}") from None
        raise DataError(f"query of table {table!r} failed: {describe_failure(exc)}") from None
    except requests.RequestException as exc:
        raise DataError(f"query of table {table!r} failed: {describe_failure(exc)}") from None
    except (ValueError, TypeError, KeyError) as exc:  # caveclient could not decode what came back
        raise WrongShape(
            f"CAVE server {server}, route materialize …/table/{table}/query: the answer is not a table "
            f"({type(exc).__name__}: {exc})".splitlines()[0][:300]
        ) from None
    where = f"CAVE server {server}, route materialize …/table/{table}/query"
    expect(frame, pd.DataFrame, "a table", where)
    if ROOT_COLUMN not in frame.columns:
        raise DataError(f"table {table!r} has no {ROOT_COLUMN} column")
    return integer_ids(frame[ROOT_COLUMN], ROOT_COLUMN, where)


def resolve_table(datastack: str, table: str | None) -> str:
    if table:
        return table
    if datastack in DEFAULT_TABLES:
        return DEFAULT_TABLES[datastack]
    raise ConfigError(f"no default proofread table for datastack {datastack!r}; pass one with --table")
