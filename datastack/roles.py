"""Roles of an operation's segments, read from the operation itself (docs/cave.md "Roles").

CAVE lists ``before_root_ids`` in ascending id order (PyChunkedGraph writes them ``np.unique``'d), so their
order says nothing about which segment was the neuron. The operation does: a merge's ``added_edges[0]`` is
[source supervoxel, sink supervoxel] (the bank's ``source_sv`` / ``sink_sv``), and their roots just before the
edit, ``get_roots(svs, timestamp=op time − 1 ms)`` (the server's resolution is 1 ms), are the base (source
side) and the partner (sink side). A split needs no lookup: its one before-root is the pre-split root and
``operation_details["roots"]`` its new roots.

Requests: ``get_roots`` answers at one timestamp per call and every operation has its own, so a lookup costs
one call per merge (its two supervoxels), none per split; calls run on the connection's session, with its
timeout and retries. A merge whose lookup fails, or whose roots are not its two before-roots, has no roles
(its reason is kept), so no task is built from a guess.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import requests

from proofpilot.datastack.client import describe_failure
from proofpilot.datastack.records import Operation, OperationRoles

log = logging.getLogger(__name__)


class CaveRoles:
    """Role lookup through a caveclient ChunkedGraphClient (``client.chunkedgraph``)."""

    def __init__(self, chunkedgraph) -> None:
        self.chunkedgraph = chunkedgraph
        self.requests = 0
        self.failures: dict[int, str] = {}

    def roles(self, operations: Sequence[Operation]) -> dict[int, OperationRoles]:
        """Roles of every operation that has them (merges: one get_roots call each)."""
        out: dict[int, OperationRoles] = {}
        for op in operations:
            record = self._merge(op) if op.is_merge else _split(op)
            if record is not None:
                out[op.operation_id] = record
        if self.failures:
            log.warning(
                "%d merges without roles (e.g. %s)", len(self.failures), next(iter(self.failures.values()))
            )
        log.info("roles of %d operations from %d get_roots calls", len(out), self.requests)
        return out

    def _merge(self, op: Operation) -> OperationRoles | None:
        if not (op.source_sv and op.sink_sv):
            self.failures[op.operation_id] = f"merge {op.operation_id} has no added_edges in its details"
            return None
        before = datetime.fromtimestamp((op.timestamp_ms - 1) / 1000.0, UTC)
        self.requests += 1
        try:
            roots = self.chunkedgraph.get_roots(
                np.array([op.source_sv, op.sink_sv], dtype=np.uint64), timestamp=before
            )
        except requests.RequestException as exc:
            self.failures[op.operation_id] = f"get_roots of merge {op.operation_id}: {describe_failure(exc)}"
            return None
        base, partner = (int(r) for r in roots)
        if base == partner or sorted((base, partner)) != sorted(op.before_root_ids):
            self.failures[op.operation_id] = (
                f"merge {op.operation_id}: roots {base}, {partner} before it are not its before-roots"
            )
            return None
        return OperationRoles(op.operation_id, True, base, partner, op.after_root_ids)


def _split(op: Operation) -> OperationRoles | None:
    if len(op.before_root_ids) != 1:
        return None
    return OperationRoles(op.operation_id, False, op.before_root_ids[0], None, op.after_root_ids)
