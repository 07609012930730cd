"""Operation details in chunks: all new roots of each operation and its interface point in nm.

``get_operation_details`` puts the ids in the URL, so they go ≤ 500 per call (docs/cave.md
"Operation details"). ``roots`` lists both children of a split (the tabular log keeps only one,
PyChunkedGraph#473). The interface point is the midpoint of the source and sink centroids, converted from
mip-0 segmentation voxels to nm with the segmentation resolution. A chunk that fails is bisected like
change-log batches; an operation whose details cannot be fetched keeps NaN coordinates and its reason.

The request is caveclient's (endpoint table, session, ``handle_response``); the body is read with simdjson's
lazy parser, which touches only ``roots``, the coordinates and the few scalars of ``meta`` (status, undo/redo
target, the first edge's supervoxels): a full ``json.loads`` of the edges, supervoxel
ids and timestamps of 2.5 M operations costs about half a minute more on the fly-like table.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import quote

import numpy as np
import simdjson

from proofpilot.datastack.changelog import bisect_fetch
from proofpilot.datastack.shapes import WrongShape, kind_of

log = logging.getLogger(__name__)

MAX_IDS_PER_CALL = 500
# columns of DetailsChunk.meta (int64): operation_status (-1 if absent; 0 is success), undo_operation_id and
# redo_operation_id (0 if none), and the source and sink supervoxels of the first edge: added_edges[0] for a
# merge (source = the side the proofreader clicked first), else source_ids[0] / sink_ids[0], else
# removed_edges[0] (0 if none).
META_STATUS, META_UNDO_OF, META_REDO_OF, META_SOURCE_SV, META_SINK_SV = range(5)
N_META = 5
FetchDetails = Callable[[list[int]], bytes]


def raw_details_fetcher(chunkedgraph) -> FetchDetails:
    """operation ids → raw JSON body of caveclient's get_operation_details request."""
    # lazy: caveclient takes seconds to import; only CAVE calls need it
    from caveclient.base import handle_response

    # lazy: caveclient takes seconds to import; only CAVE calls need it
    from caveclient.endpoints import chunkedgraph_endpoints_v1

    url = chunkedgraph_endpoints_v1["operation_details"].format_map(chunkedgraph.default_url_mapping)
    session = chunkedgraph.session

    def fetch(operation_ids: list[int]) -> bytes:
        ids = quote(json.dumps([int(o) for o in operation_ids], separators=(",", ":")), safe=",")
        body = handle_response(session.get(f"{url}?operation_ids={ids}"), as_json=False).content
        if not body.lstrip().startswith(b"{"):  # JSON of another type (or none): name the route
            try:
                kind = kind_of(json.loads(body))
            except ValueError:
                kind = "something that is not JSON"
            raise WrongShape(f"{url} answered {kind} where an object of operation details belongs")
        return body

    return fetch


@dataclass(frozen=True)
class DetailsChunk:
    """Parsed details of some operations; ``errors`` maps the operations that failed to a reason."""

    operation_id: np.ndarray  # int64
    interface_nm: np.ndarray  # float64 (n, 3), NaN where the operation has no source/sink coordinates
    after_values: np.ndarray  # int64, all new roots of every operation, flattened
    after_offsets: np.ndarray  # int64, len = n + 1
    meta: np.ndarray  # int64 (n, N_META), columns META_*
    errors: dict[int, str]
    requests: int


def _centroids(flat: list, counts: list[int]) -> np.ndarray:
    """Mean of each operation's coordinate rows; NaN for operations with none."""
    counts_arr = np.asarray(counts, dtype=np.int64)
    out = np.full((len(counts), 3), np.nan)
    if not flat:
        return out
    values = np.asarray(flat, dtype=np.float64).reshape(-1, 3)
    has = counts_arr > 0
    starts = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts_arr[:-1], out=starts[1:])
    sums = np.add.reduceat(values, starts[has], axis=0)
    out[has] = sums / counts_arr[has, None]
    return out


def parse_details(body: bytes, operation_ids: Sequence[int], resolution_nm: np.ndarray) -> DetailsChunk:
    """Raw ``operation_details`` body → columns. ValueError if it is not JSON or lacks an asked-for id."""
    details = simdjson.Parser().parse(body)
    if not isinstance(details, simdjson.Object):
        raise ValueError("operation-details response is not an object")
    src_flat: list = []
    src_counts: list[int] = []
    sink_flat: list = []
    sink_counts: list[int] = []
    roots: list[int] = []
    root_counts: list[int] = []
    meta: list[list[int]] = []
    for op in operation_ids:
        entry = details.get(str(op))
        if not isinstance(entry, simdjson.Object):
            raise ValueError(f"operation {op} missing from the operation-details response")
        for key, flat, counts in (
            ("source_coords", src_flat, src_counts),
            ("sink_coords", sink_flat, sink_counts),
        ):
            coords = entry.get(key)
            coords = coords.as_list() if isinstance(coords, simdjson.Array) else []
            flat.extend(coords)
            counts.append(len(coords))
        new_roots = entry.get("roots")
        new_roots = new_roots.as_list() if isinstance(new_roots, simdjson.Array) else []
        roots.extend(new_roots)
        root_counts.append(len(new_roots))
        meta.append(_meta(entry))
    points = (_centroids(src_flat, src_counts) + _centroids(sink_flat, sink_counts)) / 2 * resolution_nm
    return DetailsChunk(
        np.asarray(operation_ids, dtype=np.int64),
        points,
        np.asarray(roots, dtype=np.int64),
        offsets_from_counts(root_counts),
        np.asarray(meta, dtype=np.int64).reshape(-1, N_META),
        {},
        1,
    )


def _int(value, default: int = 0) -> int:
    return int(value) if type(value) is int else default


def _first_pair(entry, source_key: str, sink_key: str | None) -> tuple[int, int] | None:
    """(first of source_key, first of sink_key), or the first pair of an edge list when sink_key is None."""
    first = entry.get(source_key)
    if not isinstance(first, simdjson.Array) or len(first) == 0:
        return None
    if sink_key is None:
        edge = first[0]
        return (_int(edge[0]), _int(edge[1])) if isinstance(edge, simdjson.Array) and len(edge) >= 2 else None
    second = entry.get(sink_key)
    if not isinstance(second, simdjson.Array) or len(second) == 0:
        return None
    return _int(first[0]), _int(second[0])


def _meta(entry) -> list[int]:
    pair = (
        _first_pair(entry, "added_edges", None)
        or _first_pair(entry, "source_ids", "sink_ids")
        or _first_pair(entry, "removed_edges", None)
        or (0, 0)
    )
    return [
        _int(entry.get("operation_status"), -1),
        _int(entry.get("undo_operation_id")),
        _int(entry.get("redo_operation_id")),
        *pair,
    ]


def offsets_from_counts(counts) -> np.ndarray:
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets


def concat_chunks(chunks: Sequence[DetailsChunk]) -> DetailsChunk:
    """One chunk from many (offsets shifted, errors merged)."""
    errors: dict[int, str] = {}
    for c in chunks:
        errors.update(c.errors)
    if not chunks:
        return DetailsChunk(
            np.zeros(0, np.int64),
            np.zeros((0, 3)),
            np.zeros(0, np.int64),
            np.zeros(1, np.int64),
            np.zeros((0, N_META), np.int64),
            errors,
            0,
        )
    return DetailsChunk(
        np.concatenate([c.operation_id for c in chunks]),
        np.concatenate([c.interface_nm for c in chunks]),
        np.concatenate([c.after_values for c in chunks]),
        offsets_from_counts(np.concatenate([np.diff(c.after_offsets) for c in chunks])),
        np.concatenate([c.meta for c in chunks]),
        errors,
        sum(c.requests for c in chunks),
    )


def fetch_details(
    fetch: FetchDetails, operation_ids: Sequence[int], resolution_nm: np.ndarray
) -> DetailsChunk:
    """Fetch one chunk (≤ MAX_IDS_PER_CALL ids); on failure bisect until each failing operation is alone."""
    if len(operation_ids) > MAX_IDS_PER_CALL:
        raise ValueError(f"at most {MAX_IDS_PER_CALL} operation ids per call")
    ok, errors, n_requests = bisect_fetch(
        lambda part: parse_details(fetch(part), part, resolution_nm), operation_ids
    )
    merged = concat_chunks(ok)
    return DetailsChunk(
        merged.operation_id,
        merged.interface_nm,
        merged.after_values,
        merged.after_offsets,
        merged.meta,
        errors,
        n_requests,
    )
