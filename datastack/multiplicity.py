"""How many proofread neurons' change logs hold each sampled operation (its multiplicity m).

An operation enters a second object's lineage through a split: its other side becomes (part of) another
object. For the sampled neurons' logs:

1. the other side of each split = its after_root_ids (operation details: both children) minus the root the
   neuron's own log kept;
2. the latest roots of those at the table's timestamp, from `lineage_graph_multiple` (caveclient
   `get_lineage_graph` with a list; downward only: timestamp_past = timestamp_future = the pin), at most
   `BATCH_ROOTS` roots per call, all calls under one overall deadline;
3. those latest roots that are proofread neurons (the table's root ids) and not sampled are the candidates;
   their change logs are fetched like the sample's (response cache first).

m(op) = the number of distinct table neurons, sampled or candidate, whose log holds op (always ≥ 1 for an
operation of a sampled log). Exact when every neuron holding op is reached through a split's other side.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from proofpilot.core.errors import DataError
from proofpilot.datastack.changelog import LogRows, chunked, split_lists

log = logging.getLogger(__name__)

BATCH_ROOTS = 200
DEFAULT_DEADLINE_S = 600.0
MULTIPLICITY_COLUMNS = {"operation_id": "int64", "m": "int64"}


@dataclass(frozen=True)
class Multiplicity:
    """m per operation of the sampled logs, and what the lookup cost."""

    frame: pd.DataFrame  # MULTIPLICITY_COLUMNS, one row per distinct sampled operation
    n_other_sides: int  # split children outside the sampled neurons' own roots that were looked up
    n_candidates: int  # proofread neurons outside the sample reached through them
    n_candidate_errors: int  # candidates whose log could not be fetched (their share of m is missing)
    lineage_requests: int
    seconds: float


def other_sides(rows: LogRows, operations: pd.DataFrame) -> np.ndarray:
    """Distinct split children (operation details) that are not the root the neuron's own log kept."""
    children = dict(
        zip(operations["operation_id"].tolist(), operations["after_root_ids"].tolist(), strict=True)
    )
    kept = split_lists(rows.after_values, rows.after_offsets)
    out: set[int] = set()
    for op, merge, own in zip(rows.operation_id.tolist(), rows.is_merge.tolist(), kept, strict=True):
        if not merge:
            out.update(int(r) for r in (children.get(op) or ()) if int(r) not in own)
    return np.array(sorted(out), dtype=np.int64)


def _leaves(links: Iterable[dict], roots: list[int]) -> dict[int, set[int]]:
    """Per root, the nodes without children reachable from it (itself if it has none)."""
    children: dict[int, list[int]] = defaultdict(list)
    for link in links:
        children[int(link["source"])].append(int(link["target"]))
    out: dict[int, set[int]] = {}
    for root in roots:
        seen, stack, leaves = {root}, [root], set()
        while stack:
            node = stack.pop()
            kids = children.get(node, ())
            if not kids:
                leaves.add(node)
            for kid in kids:
                if kid not in seen:
                    seen.add(kid)
                    stack.append(kid)
        out[root] = leaves
    return out


def latest_roots(
    chunkedgraph, roots: np.ndarray, timestamp: datetime, deadline_s: float, batch: int = BATCH_ROOTS
) -> tuple[dict[int, set[int]], int]:
    """({root: its latest roots at `timestamp`}, requests), batched lineage-graph calls under `deadline_s`."""
    started, out, requests = time.monotonic(), {}, 0
    for chunk in chunked(roots.tolist(), batch):
        if time.monotonic() - started > deadline_s:
            raise DataError(f"latest-root lookup did not finish within {deadline_s:.0f} s")
        graph = chunkedgraph.get_lineage_graph(chunk, timestamp_past=timestamp, timestamp_future=timestamp)
        requests += 1
        if not isinstance(graph, dict) or not isinstance(graph.get("links"), list):
            raise DataError("lineage_graph_multiple answered without a list of links")
        out.update(_leaves(graph["links"], chunk))
    return out, requests


def _pairs(rows: LogRows) -> pd.DataFrame:
    return pd.DataFrame({"root_id": rows.root_id, "operation_id": rows.operation_id}).drop_duplicates()


def count_holders(sample: pd.DataFrame, others: pd.DataFrame) -> pd.DataFrame:
    """m per distinct operation of `sample` ((root_id, operation_id) rows) counting the neurons of both."""
    both = pd.concat([sample, others[others["operation_id"].isin(sample["operation_id"])]])
    m = both.drop_duplicates().groupby("operation_id")["root_id"].nunique()
    return m.rename("m").reset_index().astype(MULTIPLICITY_COLUMNS)


def lookup_multiplicity(
    ingestion,
    rows: LogRows,
    operations: pd.DataFrame,
    table_roots: Iterable[int],
    timestamp: datetime | None = None,
    deadline_s: float = DEFAULT_DEADLINE_S,
) -> Multiplicity:
    """m of every operation in `rows` (the sampled logs), given the ingestion that fetched them (its
    connection and response cache), the bank of their `operations` and the proofread table's root ids;
    `timestamp` defaults to the connection's pin."""
    t0 = time.monotonic()
    timestamp = timestamp or ingestion.conn.pin_timestamp or datetime.now(UTC)
    sampled = set(np.unique(rows.root_id).tolist())
    sides = other_sides(rows, operations)
    client = ingestion.conn.new_worker_client()
    latest, requests = ingestion.conn._call(
        lambda: latest_roots(client.chunkedgraph, sides, timestamp, deadline_s), "latest-root lookup"
    )
    table = set(int(r) for r in table_roots)
    candidates = sorted({r for leaves in latest.values() for r in leaves if r in table} - sampled)
    parts, found = ingestion.cached_rows(candidates)
    todo = [r for r in candidates if r not in found]
    fetched, errors = ingestion.fetch_changelogs(todo, tqdm(total=len(todo), disable=True))
    if errors:
        log.warning("%d of %d neurons sharing sampled operations: no log", len(errors), len(candidates))
    others = _pairs(LogRows.concat(parts + fetched)) if parts or fetched else _pairs(LogRows.concat([]))
    frame = count_holders(_pairs(rows), others)
    log.info(
        "multiplicity: %d split children looked up, %d neurons outside the sample hold sampled operations",
        len(sides), len(candidates),
    )  # fmt: skip
    return Multiplicity(frame, len(sides), len(candidates), len(errors), requests, time.monotonic() - t0)
