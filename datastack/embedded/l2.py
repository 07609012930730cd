"""Level-2 nodes of the embedded datastack, derived from its skeletons (what pcg_skel reads of a real one).

A real chunkedgraph cuts a root into L2 fragments (its supervoxels within one chunk). Here each root's
skeleton is cut into short runs of cable instead: a run starts at the root, after each branch point, and
every `L2_SPAN_NM` of path length along an unbranched stretch. One run is one L2 node:

- its id encodes the root and the run's index (layer 2 in the top 8 bits, as ``info.graph`` declares), so
  `rep_coord_nm` and friends can be answered for any L2 id without a table, for current and expired roots
  alike (real L2 ids outlive their roots: reference cave-realdata.md 3.2);
- `rep_coord_nm` is the run's distal node (absolute nm, on the centre line; real ones are the fragment's
  point of maximal distance transform), so that the chords between adjacent L2 nodes retrace the cable;
  `size_nm3` / `area_nm2` are the run's frustum volume and lateral area; `max_dt_nm` its largest radius;
- L2 edges join runs that a skeleton edge crosses.

Unlike real CAVE an edit here mints new L2 ids for the whole root (the embedded roots share no nodes).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from proofpilot.datastack.embedded import geometry, ids

L2_SPAN_NM = 500.0  # path length of cable per L2 node along an unbranched stretch
LAYER_SHIFT = 56  # n_bits_for_layer_id = 8 in the served info.graph
ROOT_SHIFT = 22  # bits for the run index of a root (4 M runs)
_LAYER2 = 2 << LAYER_SHIFT
_RUN_MASK = (1 << ROOT_SHIFT) - 1
_ROOT_OFFSET = ids.KIND_STRIDE  # root - ROOT_BASE is >= -KIND_STRIDE (PARTNER_LOW)


@dataclass(frozen=True)
class Level2:
    """The L2 nodes of one root: ids (k,), edges (e, 2) of L2 ids, per-node features, run of each vertex."""

    l2_ids: np.ndarray
    edges: np.ndarray
    rep_coord_nm: np.ndarray  # (k, 3) float64
    size_nm3: np.ndarray
    area_nm2: np.ndarray
    max_dt_nm: np.ndarray
    run_of_vertex: np.ndarray  # (n,) run index of each skeleton vertex
    vertices_nm: np.ndarray  # (n, 3) the skeleton's vertices, for bounds


def l2_id(root_id: int, run: int) -> int:
    return _LAYER2 | ((int(root_id) - ids.ROOT_BASE + _ROOT_OFFSET) << ROOT_SHIFT) | int(run)


def decode_l2(l2: int) -> tuple[int, int] | None:
    """(root id, run index) of an L2 id minted here; None for anything else."""
    l2 = int(l2)
    if l2 >> LAYER_SHIFT != 2:
        return None
    body = l2 & ((1 << LAYER_SHIFT) - 1)
    return (body >> ROOT_SHIFT) - _ROOT_OFFSET + ids.ROOT_BASE, body & _RUN_MASK


def _runs(parent: np.ndarray, seg_len: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(run index, path length from the run's first vertex) per vertex (vertices in any order; parent -1 at
    roots). Runs are contiguous paths."""
    n = len(parent)
    order = _topological(parent)
    n_children = np.bincount(parent[parent >= 0], minlength=n)
    run = np.empty(n, dtype=np.int64)
    start_dist = np.zeros(n)  # path length from the run's first vertex
    next_run = 0
    for v in order.tolist():
        p = parent[v]
        if p < 0 or n_children[p] > 1:
            run[v], start_dist[v] = next_run, 0.0
            next_run += 1
            continue
        d = start_dist[p] + seg_len[v]
        if d > L2_SPAN_NM:
            run[v], start_dist[v] = next_run, 0.0
            next_run += 1
        else:
            run[v], start_dist[v] = run[p], d
    return run, start_dist


def _topological(parent: np.ndarray) -> np.ndarray:
    """Vertex order with every parent before its children (breadth first from the roots)."""
    n = len(parent)
    children: list[list[int]] = [[] for _ in range(n)]
    for v, p in enumerate(parent.tolist()):
        if p >= 0:
            children[p].append(v)
    order = [int(v) for v in np.flatnonzero(parent < 0)]
    i = 0
    while i < len(order):
        order.extend(children[order[i]])
        i += 1
    return np.asarray(order, dtype=np.int64)


@functools.lru_cache(maxsize=256)
def level2(profile_name: str, root_id: int) -> Level2 | None:
    """The L2 nodes of a root of the embedded datastack; None if the root id has no geometry."""
    sk = geometry.segment_skeleton(profile_name, int(root_id))
    if sk is None:
        return None
    xyz = sk.vertices.astype(np.float64)
    parent = np.full(len(xyz), -1, dtype=np.int64)
    parent[sk.edges[:, 0].astype(np.int64)] = sk.edges[:, 1].astype(np.int64)
    has_parent = parent >= 0
    seg_len = np.zeros(len(xyz))
    seg_len[has_parent] = np.linalg.norm(xyz[has_parent] - xyz[parent[has_parent]], axis=1)
    run, along = _runs(parent, seg_len)
    k = int(run.max()) + 1
    radius = np.nan_to_num(sk.radii.astype(np.float64), nan=0.0)
    r_parent = np.where(has_parent, radius[np.maximum(parent, 0)], radius)
    vol = np.pi * seg_len * (radius**2 + radius * r_parent + r_parent**2) / 3.0
    area = np.pi * (radius + r_parent) * np.hypot(seg_len, radius - r_parent)
    rep = _rep_vertices(run, along, k)
    max_r = np.zeros(k)
    np.maximum.at(max_r, run, radius)
    cross = has_parent & (run != run[np.maximum(parent, 0)])
    pairs = np.stack([run[cross], run[parent[cross]]], axis=1)
    to_id = np.vectorize(lambda r: l2_id(root_id, r), otypes=[np.int64])
    return Level2(
        l2_ids=to_id(np.arange(k)),
        edges=to_id(pairs).reshape(-1, 2) if len(pairs) else np.zeros((0, 2), dtype=np.int64),
        rep_coord_nm=xyz[rep],
        size_nm3=np.bincount(run, vol, minlength=k),
        area_nm2=np.bincount(run, area, minlength=k),
        max_dt_nm=max_r,
        run_of_vertex=run,
        vertices_nm=xyz,
    )


def _rep_vertices(run: np.ndarray, along: np.ndarray, k: int) -> np.ndarray:
    """Per run, its distal vertex (the farthest along the run's path from its first vertex)."""
    order = np.lexsort((-along, run))
    first = np.ones(len(order), dtype=bool)
    first[1:] = run[order][1:] != run[order][:-1]
    return order[first]


def in_bounds(level: Level2, lo_nm: np.ndarray, hi_nm: np.ndarray) -> np.ndarray:
    """Mask of the L2 nodes with any vertex inside the box [lo, hi] (nm)."""
    inside = np.all((level.vertices_nm >= lo_nm) & (level.vertices_nm <= hi_nm), axis=1)
    mask = np.zeros(len(level.l2_ids), dtype=bool)
    mask[level.run_of_vertex[inside]] = True
    return mask


def attributes(profile_name: str, l2: int) -> dict[str, object]:
    """The L2 cache's attributes of one L2 id ({} for an unknown one, as the real cache answers)."""
    decoded = decode_l2(l2)
    if decoded is None:
        return {}
    root, run = decoded
    try:
        level = level2(profile_name, root)
    except ValueError:
        return {}
    if level is None or run >= len(level.l2_ids):
        return {}
    return {
        "rep_coord_nm": [float(c) for c in level.rep_coord_nm[run]],
        "size_nm3": round(float(level.size_nm3[run])),
        "area_nm2": round(float(level.area_nm2[run])),
        "max_dt_nm": round(2.0 * float(level.max_dt_nm[run])),  # a diameter, as the cache's DT is
        "mean_dt_nm": float(2.0 * level.max_dt_nm[run]),
    }
