"""Morphometric features around an interface point, from navis skeletons: what a proofreader looks at.

Inputs are navis TreeNeurons in nm and the interface point in nm. Everything is measured inside a ball of
radius R (default 5 µm) around the point, on the connected piece of each skeleton that comes closest to the
point (for a merge: to the other fragment). Where the piece meets the point there is a *hub* (its nodes
within `HUB_RADIUS_NM`); each edge leaving the hub starts a *branch*, whose direction is the mean position of
its nodes within `TANGENT_REACH_NM` of path length, seen from the hub.

Names carry their unit (`_nm`, `_um`, `_deg`); counts, 0/1 flags and ratios have none. NaN means undefined
(no side branch, no skeleton within R, ...); the prompt shows it as `n/a`.

merge (A = the base, B = the candidate): `gap_nm` between the closest nodes of A and B; `dist_a_nm`,
`dist_b_nm` from the point; `cable_a_um`, `cable_b_um`; `end_a`, `end_b` (1: the fragment ends at the
contact); `angle_deg` (0: B continues A straight on, 180: B doubles back); `radius_a_nm`, `radius_b_nm`,
`radius_ratio` (small / large); `branch_points_a`, `branch_points_b`; `tortuosity_a`, `tortuosity_b`.

split (one segment): `dist_nm`; `cable_um`; `branch_points`; `tortuosity`; `branches_at_point` (branches
leaving the hub); `side_branches` (onward branches besides the straightest continuation); `kink_deg` (turn of
that continuation from the incoming branch, the one towards the skeleton's root, i.e. the soma side);
`side_angle_deg` (largest angle of a side branch to the continued incoming direction: ~90 a right-angle
branch, > 120 doubling back); `side_cable_um`; `radius_jump` (largest / smallest branch radius at the point).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from proofpilot.core.errors import DataError

if TYPE_CHECKING:
    import navis

DEFAULT_RADIUS_NM = 5_000.0
HUB_RADIUS_NM = 150.0
TANGENT_REACH_NM = 1_500.0
NAN = float("nan")

MERGE_FEATURES = (
    "gap_nm",
    "dist_a_nm",
    "dist_b_nm",
    "cable_a_um",
    "cable_b_um",
    "end_a",
    "end_b",
    "angle_deg",
    "radius_a_nm",
    "radius_b_nm",
    "radius_ratio",
    "branch_points_a",
    "branch_points_b",
    "tortuosity_a",
    "tortuosity_b",
)
SPLIT_FEATURES = (
    "dist_nm",
    "cable_um",
    "branch_points",
    "tortuosity",
    "branches_at_point",
    "side_branches",
    "kink_deg",
    "side_angle_deg",
    "side_cable_um",
    "radius_jump",
)


@dataclass(frozen=True)
class Arbor:
    """A skeleton as arrays: xyz (n, 3) nm, parent (n,) node index or -1, radius (n,) nm (NaN if unknown)."""

    xyz: np.ndarray
    parent: np.ndarray
    radius: np.ndarray

    @classmethod
    def from_navis(cls, neuron: navis.TreeNeuron) -> Arbor:
        nodes = neuron.nodes
        if len(nodes) == 0:
            raise DataError(f"skeleton {neuron.id} has no nodes")
        node_id = nodes["node_id"].to_numpy()
        parent_id = nodes["parent_id"].to_numpy()
        if np.array_equal(node_id, np.arange(len(node_id))):
            parent = np.where(parent_id >= 0, parent_id, -1).astype(np.int64)
        else:
            # lazy: pandas is only needed on this path
            import pandas as pd

            parent = pd.Index(node_id).get_indexer(parent_id).astype(np.int64)  # -1 for roots
        xyz = np.column_stack([nodes[c].to_numpy(dtype=np.float64) for c in ("x", "y", "z")])
        radius = nodes["radius"].to_numpy(dtype=np.float64) if "radius" in nodes else np.full(len(xyz), NAN)
        return cls(xyz, parent, radius)

    def degree(self) -> np.ndarray:
        has_parent = self.parent >= 0
        return np.bincount(self.parent[has_parent], minlength=len(self.parent)) + has_parent


@dataclass(frozen=True)
class _Piece:
    """The connected part of an arbor within the ball that holds the anchor, as a small local tree."""

    xyz: np.ndarray  # (m, 3)
    radius: np.ndarray  # (m,)
    degree: np.ndarray  # (m,) degree in the whole skeleton
    up: np.ndarray  # (m,) local parent, -1 if the parent is outside the piece
    length: np.ndarray  # (m,) nm to the local parent (0 where up == -1)
    neighbours: list[list[tuple[int, float]]]  # (node, edge length nm)
    anchor: int


@dataclass(frozen=True)
class _Branch:
    direction: np.ndarray  # unit vector from the hub into the branch
    radius_nm: float
    cable_nm: float
    proximal: bool  # the branch holds the way to the skeleton's root


def _ball_piece(arbor: Arbor, center: np.ndarray, radius_nm: float, anchor: int) -> _Piece:
    """The piece of `arbor` within `radius_nm` of `center` that is connected to node `anchor` (inside)."""
    inside = np.flatnonzero(np.linalg.norm(arbor.xyz - center, axis=1) <= radius_nm)
    local = np.full(len(arbor.parent), -1, dtype=np.int64)
    local[inside] = np.arange(len(inside))
    parent = arbor.parent[inside]
    up = np.where(parent >= 0, local[np.maximum(parent, 0)], -1)
    top = np.where(up >= 0, up, np.arange(len(inside)))
    while True:  # pointer jumping to each node's topmost ancestor inside the ball
        nxt = top[top]
        if np.array_equal(nxt, top):
            break
        top = nxt
    mine = np.flatnonzero(top == top[local[anchor]])
    keep = np.full(len(inside), -1, dtype=np.int64)
    keep[mine] = np.arange(len(mine))
    up = np.where(up[mine] >= 0, keep[np.maximum(up[mine], 0)], -1)
    nodes = inside[mine]
    xyz = arbor.xyz[nodes]
    length = np.where(up >= 0, np.linalg.norm(xyz - xyz[np.maximum(up, 0)], axis=1), 0.0)
    neighbours: list[list[tuple[int, float]]] = [[] for _ in range(len(nodes))]
    for child in np.flatnonzero(up >= 0).tolist():
        par, w = int(up[child]), float(length[child])
        neighbours[child].append((par, w))
        neighbours[par].append((child, w))
    anchor_local = int(keep[local[anchor]])
    return _Piece(xyz, arbor.radius[nodes], arbor.degree()[nodes], up, length, neighbours, anchor_local)


def _walk(piece: _Piece, sources: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
    """Path length from the nearest source to every node (inf where unreachable), and the first node past the
    sources on that path (-1 for the sources themselves: the branch a node belongs to)."""
    n = len(piece.xyz)
    dist, branch = [np.inf] * n, [-1] * n
    stack = []
    for s in sources:
        dist[int(s)] = 0.0
        stack.append(int(s))
    is_source = set(stack)
    while stack:  # label-correcting search; on a tree every node is settled once
        u = stack.pop()
        du, bu = dist[u], branch[u]
        for v, w in piece.neighbours[u]:
            if du + w < dist[v]:
                dist[v] = du + w
                branch[v] = v if u in is_source else bu
                stack.append(v)
    return np.asarray(dist), np.asarray(branch)


def _cable_nm(piece: _Piece, mask: np.ndarray | None = None) -> float:
    """Cable of the piece's edges (those with an end in `mask`, if given)."""
    has = piece.up >= 0
    if mask is not None:
        has &= mask | mask[np.maximum(piece.up, 0)]
    return float(piece.length[has].sum())


def _branches(piece: _Piece, hub: np.ndarray) -> list[_Branch]:
    """The branches leaving the hub (local indices), with direction, radius near the hub and cable."""
    dist, branch = _walk(piece, hub.tolist())
    center = piece.xyz[hub].mean(axis=0)
    proximal = {int(piece.up[h]) for h in hub.tolist() if piece.up[h] >= 0}
    out = []
    for start in np.unique(branch[branch >= 0]).tolist():
        members = branch == start
        near = members & (dist <= TANGENT_REACH_NM)
        if not near.any():
            near = members & (dist <= dist[members].min())
        vector = piece.xyz[near].mean(axis=0) - center
        norm = np.linalg.norm(vector)
        radius = piece.radius[near]
        out.append(
            _Branch(
                vector / norm if norm > 0 else np.zeros(3),
                float(np.nanmean(radius)) if np.isfinite(radius).any() else NAN,
                _cable_nm(piece, members),
                proximal=start in proximal,
            )
        )
    return out


def _hub(piece: _Piece, center: np.ndarray) -> np.ndarray:
    near = np.linalg.norm(piece.xyz - center, axis=1) <= HUB_RADIUS_NM
    near[piece.anchor] = True
    return np.flatnonzero(near)


def _angle_deg(u: np.ndarray, v: np.ndarray) -> float:
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    if nu == 0 or nv == 0:
        return NAN
    return float(np.degrees(np.arccos(np.clip(np.dot(u, v) / (nu * nv), -1.0, 1.0))))


def _tortuosity(piece: _Piece, dist: np.ndarray) -> float:
    """Path length / straight distance from the anchor to the piece's farthest node along the tree."""
    far = int(np.argmax(dist))
    straight = np.linalg.norm(piece.xyz[far] - piece.xyz[piece.anchor])
    return float(dist[far] / straight) if straight > 1.0 else NAN


def _mean_radius(piece: _Piece, dist: np.ndarray) -> float:
    r = piece.radius[dist <= TANGENT_REACH_NM]
    return float(np.nanmean(r)) if np.isfinite(r).any() else NAN


def _describe(piece: _Piece) -> dict[str, float]:
    """Cable (µm), branch points, tortuosity and radius near the anchor (nm) of a piece."""
    dist, _ = _walk(piece, [piece.anchor])
    return {
        "cable_um": _cable_nm(piece) / 1e3,
        "branch_points": float((piece.degree >= 3).sum()),
        "tortuosity": _tortuosity(piece, dist),
        "radius_nm": _mean_radius(piece, dist),
    }


def _point(point_nm) -> np.ndarray:
    p = np.asarray(point_nm, dtype=np.float64).reshape(-1)
    if p.shape != (3,) or not np.isfinite(p).all():
        raise DataError(f"interface point must be three finite numbers (nm), got {point_nm!r}")
    return p


def _check_radius(radius_nm: float) -> float:
    if not np.isfinite(radius_nm) or radius_nm <= HUB_RADIUS_NM:
        raise DataError(f"feature radius must be > {HUB_RADIUS_NM:g} nm, got {radius_nm!r}")
    return float(radius_nm)


def merge_features(
    base: navis.TreeNeuron, candidate: navis.TreeNeuron, point_nm, radius_nm: float = DEFAULT_RADIUS_NM
) -> dict[str, float]:
    """Features of a proposed merge of `candidate` (B) onto `base` (A) at the interface point."""
    # lazy: scipy.spatial loads on first use; most callers never need it
    from scipy.spatial import cKDTree

    p, radius_nm = _point(point_nm), _check_radius(radius_nm)
    a, b = Arbor.from_navis(base), Arbor.from_navis(candidate)
    da, db = np.linalg.norm(a.xyz - p, axis=1), np.linalg.norm(b.xyz - p, axis=1)
    out = dict.fromkeys(MERGE_FEATURES, NAN)
    out["dist_a_nm"], out["dist_b_nm"] = float(da.min()), float(db.min())
    in_a, in_b = np.flatnonzero(da <= radius_nm), np.flatnonzero(db <= radius_nm)
    if len(in_a) == 0 or len(in_b) == 0:
        return out
    gap, nearest_b = cKDTree(b.xyz[in_b]).query(a.xyz[in_a])
    k = int(np.argmin(gap))
    out["gap_nm"] = float(gap[k])
    branches = {}
    for name, arbor, contact in (("a", a, int(in_a[k])), ("b", b, int(in_b[nearest_b[k]]))):
        piece = _ball_piece(arbor, p, radius_nm, contact)
        branches[name] = _branches(piece, _hub(piece, arbor.xyz[contact]))
        described = _describe(piece)
        out[f"cable_{name}_um"] = described["cable_um"]
        out[f"end_{name}"] = float(len(branches[name]) <= 1)
        out[f"radius_{name}_nm"] = described["radius_nm"]
        out[f"branch_points_{name}"] = described["branch_points"]
        out[f"tortuosity_{name}"] = described["tortuosity"]
    turns = [180.0 - _angle_deg(ba.direction, bb.direction) for ba in branches["a"] for bb in branches["b"]]
    turns = [t for t in turns if np.isfinite(t)]
    out["angle_deg"] = min(turns) if turns else NAN
    ra, rb = out["radius_a_nm"], out["radius_b_nm"]
    if np.isfinite(ra) and np.isfinite(rb) and max(ra, rb) > 0:
        out["radius_ratio"] = min(ra, rb) / max(ra, rb)
    return out


def split_features(
    segment: navis.TreeNeuron, point_nm, radius_nm: float = DEFAULT_RADIUS_NM
) -> dict[str, float]:
    """Features of one segment around the point where a false merge would be cut."""
    p, radius_nm = _point(point_nm), _check_radius(radius_nm)
    s = Arbor.from_navis(segment)
    d = np.linalg.norm(s.xyz - p, axis=1)
    anchor = int(np.argmin(d))
    out = dict.fromkeys(SPLIT_FEATURES, NAN)
    out["dist_nm"] = float(d[anchor])
    if d[anchor] > radius_nm:
        return out
    piece = _ball_piece(s, p, radius_nm, anchor)
    described = _describe(piece)
    out["cable_um"] = described["cable_um"]
    out["branch_points"] = described["branch_points"]
    out["tortuosity"] = described["tortuosity"]
    branches = _branches(piece, _hub(piece, p))
    out["branches_at_point"] = float(len(branches))
    out["side_branches"] = 0.0
    out["side_cable_um"] = 0.0
    radii = [br.radius_nm for br in branches if np.isfinite(br.radius_nm) and br.radius_nm > 0]
    if len(radii) >= 2:
        out["radius_jump"] = max(radii) / min(radii)
    # the incoming branch leads to the skeleton's root; without one, the straightest pair is the through path
    incoming = next((br for br in branches if br.proximal), None) or _straightest_partner(branches)
    onward = [br for br in branches if br is not incoming]
    if incoming is None or not onward:
        return out
    angles = np.array([_angle_deg(br.direction, -incoming.direction) for br in onward])
    main = int(np.nanargmin(angles)) if np.isfinite(angles).any() else 0
    sides = [i for i in range(len(onward)) if i != main]
    out["kink_deg"] = float(angles[main])
    out["side_branches"] = float(len(sides))
    out["side_cable_um"] = sum(onward[i].cable_nm for i in sides) / 1e3
    if sides:
        out["side_angle_deg"] = float(np.nanmax(angles[sides])) if np.isfinite(angles[sides]).any() else NAN
    return out


def _straightest_partner(branches: list[_Branch]) -> _Branch | None:
    """Of the two branches closest to opposite, the one with more cable (the other one continues it)."""
    best, pair = -1.0, None
    for i, bi in enumerate(branches):
        for bj in branches[i + 1 :]:
            turn = _angle_deg(bi.direction, bj.direction)
            if np.isfinite(turn) and turn > best:
                best, pair = turn, (bi, bj)
    return None if pair is None else max(pair, key=lambda br: br.cable_nm)
