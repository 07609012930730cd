"""The embedded datastack's watershed: a precomputed segmentation layer rasterised on demand near merges.

The segmentation info's ``data_dir`` points at ``{server}/segmentation/data/{table}``; cloud-volume graphene
reads its chunks (``{key}/{x0}-{x1}_{y0}-{y1}_{z0}-{z1}``, raw uint64, Fortran order) and maps the labels to
roots with ``roots_binary`` at a timestamp. What is painted depends on position only, so chunks agree:

- every merge X whose interface point lies within PAINT_RADIUS_NM of a voxel paints, there, the skeletons of
  its before root (supervoxel ``sv(X, 4)``), its distractor (``sv(X, 6)``) and its partner (``sv(X, 5)``),
  each edge a capsule of the node radius (at least MIN_RADIUS_NM, at most MAX_RADIUS_NM); where capsules
  overlap, a voxel goes to the one whose centre line is nearest relative to its radius (surfaces meet
  half-way, as touching neurites do).
- ``roots_at``: sv(X, 4) is the root of X's neuron at T (its last edit at or before T; the initial root before
  any); sv(X, 5) is PARTNER(X) before X and the neuron's root from X on; sv(X, 6) is DISTRACTOR(X).

So a cutout at X's time minus 1 ms shows X's two before roots meeting and X's distractor touching them, plus
whatever nearby merges of other neurons (or of the same neuron) put there. Merges are found through a grid of
all own-operation interface points, built once per profile (a second or a few).
"""

from __future__ import annotations

import functools
import re
import threading

import numpy as np

from proofpilot.datastack.embedded import geometry, ids
from proofpilot.datastack.embedded.generator import get_generator, population
from proofpilot.datastack.embedded.operation_details import SUPERVOXEL_BASE
from proofpilot.datastack.embedded.profiles import get_profile
from proofpilot.datastack.embedded.routing import HttpError, Request, Response, Route, ServerContext

PAINT_RADIUS_NM = 1_000.0  # a merge's fragments are painted this far around its interface point
MIN_RADIUS_NM = 24.0  # thin neurites still cover the voxel centres of a 40-nm section
MAX_RADIUS_NM = 400.0
CHUNK_VOXELS = (64, 64, 16)
K_BASE, K_PARTNER, K_DISTRACTOR = 4, 5, 6  # supervoxel slots (operation_details uses 0..3)
_CELL_NM = 4_000.0
_CHUNK_NAME = re.compile(r"(\d+)-(\d+)_(\d+)-(\d+)_(\d+)-(\d+)")
_lock = threading.Lock()


def sv(operation_id: int, k: int) -> int:
    return SUPERVOXEL_BASE + 8 * int(operation_id) + k


def scale(profile_name: str) -> dict:
    """The watershed's one scale (mip 0 at the segmentation resolution), as the segmentation info lists it."""
    p = get_profile(profile_name)
    res = [float(r) for r in p.segmentation_resolution_nm]
    return {
        "chunk_sizes": [list(CHUNK_VOXELS)],
        "encoding": "raw",
        "key": "_".join(str(int(r)) for r in res),
        "resolution": res,
        "size": [int(s / r) for s, r in zip(p.volume_size_nm, res, strict=True)],
        "voxel_offset": [0, 0, 0],
    }


@functools.cache
def _grid(profile_name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sorted cell keys, their op ids, their points nm) of every own operation's would-be merge point."""
    pop = population(profile_name)
    idx = np.arange(pop.profile.n_neurons)
    pair, side = np.divmod(idx, 2)
    owner = np.repeat(idx, pop.n_own)
    slot = np.arange(len(owner)) - np.repeat(np.cumsum(pop.n_own) - pop.n_own, pop.n_own)
    ops = 1 + pair[owner] * ids.OPS_PER_PAIR + side[owner] * ids.OWN_OPS_CAP + slot
    points = geometry.op_points_nm(profile_name, 0, ops, np.ones(len(ops), dtype=bool))
    keys = _keys(np.floor(points / _CELL_NM).astype(np.int64))
    order = np.argsort(keys, kind="stable")
    return keys[order], ops[order], points[order]


def _keys(cells: np.ndarray) -> np.ndarray:
    c = cells + 1024
    return (c[..., 0] << 22) | (c[..., 1] << 11) | c[..., 2]


def merges_near(profile_name: str, lo_nm: np.ndarray, hi_nm: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(op id, interface point) of the merges whose point lies within PAINT_RADIUS_NM of the box."""
    with _lock:
        keys, ops, points = _grid(profile_name)
    lo = np.floor((lo_nm - PAINT_RADIUS_NM) / _CELL_NM).astype(np.int64)
    hi = np.floor((hi_nm + PAINT_RADIUS_NM) / _CELL_NM).astype(np.int64)
    mesh = np.stack(np.meshgrid(*[np.arange(a, b + 1) for a, b in zip(lo, hi, strict=True)]), -1)
    wanted = np.unique(_keys(mesh.reshape(-1, 3)))
    start, stop = np.searchsorted(keys, wanted), np.searchsorted(keys, wanted, side="right")
    rows = np.concatenate([np.arange(a, b) for a, b in zip(start, stop, strict=True)] or [[]]).astype(int)
    gen = get_generator(profile_name)
    out = []
    for r in rows.tolist():
        p, op = points[r], int(ops[r])
        gap = np.maximum(np.maximum(lo_nm - p, p - hi_nm), 0.0)
        if np.linalg.norm(gap) <= PAINT_RADIUS_NM and _is_merge(gen, op):
            out.append((op, p))
    return sorted(out, key=lambda item: item[0])


def _is_merge(gen, op: int) -> bool:
    log = gen.neuron_log(ids.op_owner(op)[0])
    return bool(log.is_merge[log.row_of(op)])


def chunk(profile_name: str, start: tuple[int, int, int], stop: tuple[int, int, int]) -> np.ndarray:
    """The watershed labels (uint64, shape stop - start) of a voxel box at mip 0."""
    res = np.asarray(get_profile(profile_name).segmentation_resolution_nm, dtype=np.float64)
    shape = tuple(int(b - a) for a, b in zip(start, stop, strict=True))
    labels = np.zeros(shape, dtype=np.uint64)
    score = np.full(shape, np.inf, dtype=np.float32)  # distance / radius of the label painted so far
    axes = [(np.arange(a, b) + 0.5) * r for a, b, r in zip(start, stop, res, strict=True)]
    lo_nm, hi_nm = np.array([a[0] for a in axes]), np.array([a[-1] for a in axes])
    fragments = geometry.op_fragments
    for op, point in merges_near(profile_name, lo_nm, hi_nm):
        roles = fragments(profile_name, op)
        for k, role in ((K_BASE, "base"), (K_DISTRACTOR, "distractor"), (K_PARTNER, "partner")):
            skeleton = geometry.segment_skeleton(profile_name, roles[role])
            if skeleton is not None:
                _paint(labels, score, axes, skeleton, point, sv(op, k))
    return labels


def _paint(labels, score, axes: list[np.ndarray], sk, point: np.ndarray, label: int) -> None:
    """Label the voxels (centres on `axes`) inside the skeleton's edge capsules and near `point`, where this
    skeleton's relative distance (distance / radius) beats the one painted so far."""
    a = sk.vertices[sk.edges[:, 0]].astype(np.float64)
    b = sk.vertices[sk.edges[:, 1]].astype(np.float64)
    r = np.clip(np.maximum(sk.radii[sk.edges[:, 0]], sk.radii[sk.edges[:, 1]]), MIN_RADIUS_NM, MAX_RADIUS_NM)
    lo = np.array([ax[0] for ax in axes]) - r[:, None]
    hi = np.array([ax[-1] for ax in axes]) + r[:, None]
    inside = np.all((np.maximum(a, b) >= lo) & (np.minimum(a, b) <= hi), axis=1)
    near = np.linalg.norm(0.5 * (a + b) - point, axis=1) <= PAINT_RADIUS_NM + np.linalg.norm(b - a, axis=1)
    for j in np.flatnonzero(inside & near).tolist():
        sl = []
        for d, ax in enumerate(axes):
            low, high = min(a[j, d], b[j, d]) - r[j], max(a[j, d], b[j, d]) + r[j]
            sl.append(slice(int(np.searchsorted(ax, low)), int(np.searchsorted(ax, high, side="right"))))
        if any(s.start >= s.stop for s in sl):
            continue
        grid = np.stack(np.meshgrid(*[ax[s] for ax, s in zip(axes, sl, strict=True)], indexing="ij"), -1)
        ab = b[j] - a[j]
        t = np.clip(((grid - a[j]) @ ab) / max(float(ab @ ab), 1e-9), 0.0, 1.0)
        dist = np.linalg.norm(grid - (a[j] + t[..., None] * ab), axis=-1)
        ratio = dist / r[j]
        box = tuple(sl)
        hit = (
            (ratio <= 1.0) & (ratio < score[box]) & (np.linalg.norm(grid - point, axis=-1) <= PAINT_RADIUS_NM)
        )
        labels[box][hit] = label
        score[box][hit] = ratio[hit]


def roots_at(profile_name: str, supervoxels: np.ndarray, timestamp_ms: float | None) -> np.ndarray:
    """Root of each watershed supervoxel at `timestamp_ms` (None: now); 0 where it is not one of ours."""
    gen = get_generator(profile_name)
    t = np.inf if timestamp_ms is None else float(timestamp_ms)
    out = np.zeros(len(supervoxels), dtype=np.uint64)
    for i, s in enumerate(np.asarray(supervoxels, dtype=np.uint64).tolist()):
        op, k = divmod(int(s) - SUPERVOXEL_BASE, 8)
        if s < SUPERVOXEL_BASE or k not in (K_BASE, K_PARTNER, K_DISTRACTOR) or not gen.operation_exists(op):
            continue
        neuron = ids.op_owner(op)[0]
        log = gen.neuron_log(neuron)
        row = log.row_of(op)
        if not log.is_merge[row]:
            continue
        if k == K_DISTRACTOR:
            out[i] = ids.root_id(ids.RootKind.DISTRACTOR, op)
        elif k == K_PARTNER and t < log.timestamp_ms[row]:
            out[i] = int(log.partner_root[row])
        else:
            last = int(np.searchsorted(log.timestamp_ms, t, side="right")) - 1
            out[i] = int(log.after_root[last]) if last >= 0 else ids.root_id(ids.RootKind.INITIAL, neuron)
    return out


def is_watershed(supervoxels: np.ndarray) -> np.ndarray:
    """Which ids are watershed supervoxels of this module (slots K_BASE..K_DISTRACTOR)."""
    s = np.asarray(supervoxels, dtype=np.uint64)
    k = (s - np.uint64(SUPERVOXEL_BASE)) % np.uint64(8)
    return (s >= np.uint64(SUPERVOXEL_BASE)) & (k >= K_BASE) & (k <= K_DISTRACTOR)


def _data(ctx: ServerContext, req: Request, table: str, subpath: str) -> Response:
    ctx.check_pcg_table(table)
    info = scale(ctx.profile.name)
    path = subpath.strip("/")
    if path == "info":
        from proofpilot.datastack.embedded.encoding import dumps

        body = {"type": "segmentation", "data_type": "uint64", "num_channels": 1, "scales": [info]}
        return Response(200, dumps(body))
    key, _, name = path.partition("/")
    match = _CHUNK_NAME.fullmatch(name)
    if key != info["key"] or match is None:
        raise HttpError(404, f"no watershed file {path!r}")
    x0, x1, y0, y1, z0, z1 = (int(v) for v in match.groups())
    start, stop = (x0, y0, z0), (x1, y1, z1)
    size = info["size"]
    if any(b <= a or b - a > 4 * c for a, b, c in zip(start, stop, CHUNK_VOXELS, strict=True)) or any(
        b > s for b, s in zip(stop, size, strict=True)
    ):
        raise HttpError(404, f"no watershed chunk {name!r}")
    labels = chunk(ctx.profile.name, start, stop)
    return Response(200, labels.tobytes(order="F"), content_type="application/octet-stream")


ROUTES = [Route.make("watershed", "GET", r"/segmentation/data/(?P<table>[^/]+)/(?P<subpath>.*)", _data)]
