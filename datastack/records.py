"""Typed records handed from the datastack stage to the others.

Per-neuron and per-operation tables are pandas DataFrames with the column contracts below (one row per neuron,
one row per operation_id); row-level access uses the dataclasses. All coordinates are in nanometres.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

NeuronStatus = Literal["ok", "error"]

# per_neuron DataFrame: one row per proofread neuron that was asked for.
PER_NEURON_COLUMNS = {
    "root_id": "int64",
    "status": "string",  # "ok" | "error"
    "reason": "string",  # error reason (empty for ok rows)
    "n_edits": "Int64",  # NA for error rows: an error is never 0 edits
    "n_merges": "Int64",
    "n_splits": "Int64",
}

# operations DataFrame (the operation bank): one row per operation_id, deduplicated across neurons.
OPERATION_COLUMNS = {
    "operation_id": "int64",
    "is_merge": "bool",
    "timestamp": "datetime64[ms, UTC]",
    "user_id": "string",
    "before_root_ids": "object",  # list[int]
    "after_root_ids": "object",  # list[int]: for splits both children, from operation_details["roots"]
    "interface_x_nm": "float64",
    "interface_y_nm": "float64",
    "interface_z_nm": "float64",
    "neuron_root_ids": "object",  # list[int]: proofread neurons whose filtered logs contain the operation
    "n_neurons": "int64",
    # the first edge's supervoxels from operation_details (opdetails.META_*): a merge's added_edges[0] =
    # [source, sink]; 0 where the details lack them
    "source_sv": "int64",
    "sink_sv": "int64",
}

# membership DataFrame: (root_id, operation_id) pairs, one per row of each neuron's filtered change log.
MEMBERSHIP_COLUMNS = {"root_id": "int64", "operation_id": "int64", "is_merge": "bool"}


@dataclass(frozen=True)
class DataPin:
    """What an artifact was computed from; written into every artifact."""

    datastack: str
    server_address: str
    table: str
    materialization_version: int | None
    timestamp: str  # ISO-8601 UTC of the materialization (or the pinned cutoff)
    caveclient_version: str
    server_versions: dict[str, str | None] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Operation:
    """One row of the operation bank."""

    operation_id: int
    is_merge: bool
    timestamp_ms: int
    before_root_ids: tuple[int, ...]
    after_root_ids: tuple[int, ...]
    interface_nm: tuple[float, float, float]
    neuron_root_ids: tuple[int, ...]
    source_sv: int = 0  # a merge's added_edges[0][0] (the side clicked first); 0 if unknown
    sink_sv: int = 0  # a merge's added_edges[0][1]

    @property
    def kind(self) -> Literal["merge", "split"]:
        return "merge" if self.is_merge else "split"


@dataclass(frozen=True)
class OperationRoles:
    """Which segment plays which part in one operation, from the operation itself (datastack/roles.py).

    merge: ``base_root_id`` holds the source supervoxel and ``partner_root_id`` the sink one, just before it;
    split: ``base_root_id`` is the root it cut and ``partner_root_id`` None.
    ``after_root_ids``: its new roots."""

    operation_id: int
    is_merge: bool
    base_root_id: int
    partner_root_id: int | None
    after_root_ids: tuple[int, ...]
