"""Neuron geometry of the embedded datastack: real hemibrain skeletons, cut and grafted per edit.

Placement (which template, where, which node an op sits at) is in placement.py. Each root id has one geometry,
whoever asks:

- NEURON(i): neuron i's transformed template.
- PARTNER(merge): the subtree below the op's node, shifted so that its first node lies 1–4 nm past the
  interface point.
- the root a merge starts from (INITIAL, or AFTER of the previous op; see generator.NeuronLog): the neuron
  without that subtree, its new end 1–4 nm before the interface point.
- the root a split starts from: the neuron plus a foreign branch (a moderate branch of another template,
  rotated, radius-scaled) grafted at the op's node; FOREIGN(own split) is that branch alone. A shared split's
  SHARED_BEFORE is the lower neuron plus a branch cut from the other neuron's template; its FOREIGN is the
  other neuron's lineage root, as the generator's logs say.
- DISTRACTOR(op): a piece of another template near the interface point, radius-scaled, 45–90° to the neuron
  (15 % at 15–40°). A merge's is always a contact one (the segment a cutout of the segmentation around the
  interface finds touching the partner: watershed.py); a split's kind is drawn from the op id alone
  (`distractor_kind`; a stream of its own, so the far ones are what they were before contact ones existed):
  - contact (every merge, DISTRACTOR_CONTACT_SHARE of splits): it touches or nearly touches the neuron at
    the point, the hard case of real proofreading (a neighbouring axon, glia, a fragment across a missing
    section), told apart by direction, continuity and calibre rather than by distance. Half of them end
    there ("end-on": a moderate branch starting 1–4 nm past the point like a true partner; half of those
    lie on the base's side, which makes the near-parallel ones an anti-parallel run); the others pass by
    ("side-on"), their centre line 0–40 nm from the base's end. Within CONTACT_ZONE_NM of the contact the
    distance they must keep from the neuron grows from 0 to the clearance; beyond it the clearance holds
    as for a far one.
  - far (the rest): it passes 250 nm–2 µm from the interface point and is cut where it comes within
    DISTRACTOR_CLEARANCE_NM of the neuron.
- AFTER / INITIAL roots: the neuron as the *next* operation of its log finds it, so every merge's before root
  lacks exactly that merge's partner and every split's before root carries exactly that split's graft. One
  edit at a time: the neuron's other edits are not replayed onto it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from proofpilot.core.errors import DataError
from proofpilot.datastack.embedded import ids
from proofpilot.datastack.embedded import placement as pl
from proofpilot.datastack.embedded.ids import RootKind
from proofpilot.datastack.embedded.placement import Layout, Site, Tree
from proofpilot.datastack.embedded.templates import Template

if TYPE_CHECKING:
    from proofpilot.datastack.embedded.generator import Generator

INTERFACE_HALF_GAP_NM = (1.0, 4.0)  # each merge fragment ends this far from the interface point
GRAFT_ANGLE_DEG = (35.0, 150.0)  # foreign branch vs the neuron's direction at the graft point
GRAFT_RADIUS_SCALE = (0.6, 1.7)
DISTRACTOR_DISTANCE_NM = (250.0, 2_000.0)  # closest approach of a distractor to the interface point
DISTRACTOR_CLEARANCE_NM = 150.0  # minimum centre-line distance between a distractor and the neuron
DISTRACTOR_PARALLEL_SHARE = 0.15  # distractors running nearly parallel (15–40°) to the neuron
DISTRACTOR_REACH_NM = (3_000.0, 12_000.0)  # path length of the piece around its closest node
DISTRACTOR_RADIUS_SCALE = (0.5, 2.0)
DISTRACTOR_CONTACT_SHARE = 0.5  # distractors that touch or nearly touch the neuron at the interface point
CONTACT_END_ON_SHARE = 0.5  # contact distractors that end at the point (the others pass by it side-on)
CONTACT_BACKWARD_SHARE = 0.5  # end-on ones lying on the base's side (180° minus the drawn angle)
CONTACT_SIDE_GAP_NM = (0.0, 40.0)  # centre line of a side-on one to the base's end at the point
CONTACT_ZONE_NM = 1_000.0  # a contact one may be closer than the clearance only this near its contact node
_ATTEMPTS, _ENOUGH_ATTEMPTS, _ENOUGH_KEPT = 32, 8, 0.8  # orientations tried per distractor
_STREAM_OPS = 12
_ROLE_MERGE, _ROLE_GRAFT, _ROLE_DISTRACTOR, _ROLE_CONTACT = 1, 2, 3, 4


@dataclass(frozen=True)
class SegmentSkeleton:
    """A skeleton as served: vertices (n, 3) float32 nm, edges (m, 2) uint32 child→parent, radii (n,) nm."""

    vertices: np.ndarray
    edges: np.ndarray
    radii: np.ndarray

    @classmethod
    def from_tree(cls, tree: Tree) -> SegmentSkeleton:
        child = np.flatnonzero(tree.parent >= 0)
        arrays = (
            tree.xyz.astype(np.float32),
            np.stack([child, tree.parent[child]], axis=1).astype(np.uint32),
            tree.radius.astype(np.float32),
        )
        for a in arrays:
            a.setflags(write=False)
        return cls(*arrays)


def op_points_nm(
    profile_name: str, neuron_index: int, operation_ids: np.ndarray, is_merge: np.ndarray
) -> np.ndarray:
    """Interface points (nm, shape (n, 3), float64, on the voxel grid) of the given operations. Deterministic.

    A point depends only on (profile, op id, is_merge), so a shared split gets the same point from both of its
    neurons; `neuron_index` is kept for the caller's contract. Vectorised (~20 µs for 20 ops); thread-safe."""
    lay = pl.layout(profile_name)
    neuron, row = pl.op_nodes(
        lay, np.asarray(operation_ids, dtype=np.int64), np.asarray(is_merge, dtype=bool)
    )
    return pl.snapped_points(lay, neuron, row)


def neuron_anchor_nm(profile_name: str, neuron_indices: np.ndarray) -> np.ndarray:
    """(n, 3) nm positions of the neurons' template roots (the soma end), e.g. for a table's point column."""
    lay = pl.layout(profile_name)
    g = np.asarray(neuron_indices, dtype=np.int64)
    roots = np.stack([t.xyz_nm[0] for t in lay.templates.templates])[g % len(lay.templates)]
    return np.einsum("nij,nj->ni", lay.rotation[g], roots) + lay.translation[g]


# ---- fragments of one operation ----------------------------------------------------------------------------


def _rng(lay: Layout, op: int, role: int) -> np.random.Generator:
    return np.random.default_rng([lay.seed, _STREAM_OPS, role, op])


def _other_template(lay: Layout, s: Site, rng: np.random.Generator) -> Template:
    k = len(lay.templates)
    return lay.templates.templates[(s.neuron % k + 1 + int(rng.integers(k - 1))) % k]


def _merge_parts(lay: Layout, op: int) -> tuple[Tree, Tree]:
    """(base, partner): the neuron without the subtree of the op's node, and that subtree; they meet at p."""
    s = pl.site(lay, op, True)
    tree = pl.neuron_tree(lay, s.neuron)
    size = int(s.template.subtree_size[s.node])
    gap = _rng(lay, op, _ROLE_MERGE).uniform(*INTERFACE_HALF_GAP_NM)
    partner = pl.subtree(tree, s.node, size)
    shift = s.point + gap * s.direction - tree.xyz[s.node]
    partner = Tree(partner.xyz + shift, partner.parent, partner.radius)
    end = Tree((s.point - gap * s.direction)[None], np.array([-1]), tree.radius[s.node : s.node + 1])
    base = pl.join(pl.without_subtree(tree, s.node, size), end, int(tree.parent[s.node]))  # parent < node
    return base, partner


def _graft(lay: Layout, op: int, s: Site) -> Tree:
    """The foreign branch a split removes, in world coordinates, its root 1–4 nm from the interface point."""
    rng = _rng(lay, op, _ROLE_GRAFT)
    if len(ids.op_owner(op)) == 2:  # shared split: the branch comes from the pair partner's template
        t = lay.templates.templates[(s.neuron + 1) % len(lay.templates)]
    else:
        t = _other_template(lay, s, rng)
    w = int(t.merge_candidates[rng.integers(len(t.merge_candidates))])
    angle = np.radians(rng.uniform(*GRAFT_ANGLE_DEG))
    target = pl.direction_at_angle(s.direction, angle, rng.uniform(0, 2 * np.pi))
    rot = pl.rotation_taking(t.direction[w], target, rng.uniform(0, 2 * np.pi))
    piece = pl.subtree(pl.template_tree(t), w, int(t.subtree_size[w]))
    start = s.point + rng.uniform(*INTERFACE_HALF_GAP_NM) * target
    xyz = (piece.xyz - t.xyz_nm[w]) @ rot.T + start
    return Tree(xyz, piece.parent, piece.radius * rng.uniform(*GRAFT_RADIUS_SCALE))


def _split_before(lay: Layout, op: int) -> Tree:
    s = pl.site(lay, op, False)
    return pl.join(pl.neuron_tree(lay, s.neuron), _graft(lay, op, s), s.node)


def distractor_kind(profile_name: str, operation_id: int) -> str:
    """``contact`` or ``far``: the kind of the operation's distractor (see the module docstring)."""
    from proofpilot.datastack.embedded.generator import get_generator

    op = int(operation_id)
    rng = _rng(pl.layout(profile_name), op, _ROLE_CONTACT)
    draw = rng.random()
    gen = get_generator(profile_name)
    if gen.operation_exists(op):
        log = gen.neuron_log(ids.op_owner(op)[0])
        if log.is_merge[log.row_of(op)]:
            return "contact"
    return "contact" if draw < DISTRACTOR_CONTACT_SHARE else "far"


def _distractor(lay: Layout, op: int, is_merge: bool) -> Tree:
    """The op's distractor: a contact one for every merge (a neighbour that touches the interface, which a
    segmentation cutout finds) and for DISTRACTOR_CONTACT_SHARE of the splits, else a far one."""
    s = pl.site(lay, op, is_merge)
    rng = _rng(lay, op, _ROLE_CONTACT)
    if rng.random() < DISTRACTOR_CONTACT_SHARE or is_merge:  # the draw distractor_kind makes
        return _contact_distractor(lay, op, s, is_merge, rng)
    return _far_distractor(lay, s, _rng(lay, op, _ROLE_DISTRACTOR), op)


def _angle(rng: np.random.Generator) -> float:
    """A distractor's angle to the neuron (radians): 45–90°, or 15–40° for DISTRACTOR_PARALLEL_SHARE."""
    parallel = rng.random() < DISTRACTOR_PARALLEL_SHARE
    return float(np.radians(rng.uniform(15.0, 40.0) if parallel else rng.uniform(45.0, 90.0)))


def _neuron_line(lay: Layout, s: Site, span_nm: float):
    """KD-tree of the neuron's centre line (samples SAMPLE_STEP_NM apart) on the edges that can come within
    `span_nm` (plus the edge's own length) of the interface point."""
    # lazy: scipy.spatial loads on first use; most callers never need it
    from scipy.spatial import cKDTree

    neuron = pl.neuron_tree(lay, s.neuron)
    child = np.flatnonzero(neuron.parent >= 0)
    a, b = neuron.xyz[child], neuron.xyz[neuron.parent[child]]
    near = np.linalg.norm(a - s.point, axis=1) < span_nm + np.linalg.norm(b - a, axis=1)
    return cKDTree(pl.edge_samples(a[near], b[near], pl.SAMPLE_STEP_NM)[0])


def _far_distractor(lay: Layout, s: Site, rng: np.random.Generator, op: int) -> Tree:
    """A piece of another template passing near the interface point, clear of the neuron's centre line."""
    t = _other_template(lay, s, rng)
    w = int(t.split_candidates[rng.integers(len(t.split_candidates))])
    reach = rng.uniform(*DISTRACTOR_REACH_NM)
    piece, w_local = pl.geodesic_piece(t, w, reach)
    radius = piece.radius * np.exp(rng.uniform(*np.log(DISTRACTOR_RADIUS_SCALE)))
    distance = np.exp(rng.uniform(*np.log(DISTRACTOR_DISTANCE_NM)))
    farthest = 2 * DISTRACTOR_DISTANCE_NM[1]  # retries move the piece out, up to this far
    # only edges that can come near the piece: an end within its range plus the edge's own length
    neuron_line = _neuron_line(lay, s, reach + farthest + DISTRACTOR_CLEARANCE_NM + 2 * pl.SAMPLE_STEP_NM)
    best: Tree | None = None
    for attempt in range(_ATTEMPTS):  # the orientation that keeps most of the piece clear of the neuron
        target = pl.direction_at_angle(s.direction, _angle(rng), rng.uniform(0, 2 * np.pi))
        normal = np.cross(s.direction, target)
        normal /= np.linalg.norm(normal)
        rot = pl.rotation_taking(t.direction[w], target, rng.uniform(0, 2 * np.pi))
        xyz = (piece.xyz - piece.xyz[w_local]) @ rot.T + s.point + distance * normal
        kept = _clear_of(Tree(xyz, piece.parent, radius), w_local, neuron_line)
        if kept is None:
            distance = min(1.15 * distance, farthest)
        elif best is None or len(kept.parent) > len(best.parent):
            best = kept
        if _settled(best, attempt, piece):
            return best
    if best is None:
        raise RuntimeError(f"no clear placement for the distractor of operation {op}")  # never seen
    return best


def _contact_distractor(lay: Layout, op: int, s: Site, is_merge: bool, rng: np.random.Generator) -> Tree:
    """A piece of another template touching the neuron at the interface point: end-on (its root 1–4 nm past
    the point) or side-on (passing 0–40 nm from the base's end)."""
    t = _other_template(lay, s, rng)
    reach = rng.uniform(*DISTRACTOR_REACH_NM)
    end_on = rng.random() < CONTACT_END_ON_SHARE
    if end_on:  # a moderate branch from its start: the piece ends at the contact
        w = int(t.merge_candidates[rng.integers(len(t.merge_candidates))])
        (piece, axis), w_local = pl.downstream_piece(t, w, reach), 0
        offset = rng.uniform(*INTERFACE_HALF_GAP_NM)
    else:
        w = int(t.split_candidates[rng.integers(len(t.split_candidates))])
        piece, w_local = pl.geodesic_piece(t, w, reach)
        axis = t.direction[w]
        offset = rng.uniform(*CONTACT_SIDE_GAP_NM)
    radius = piece.radius * np.exp(rng.uniform(*np.log(DISTRACTOR_RADIUS_SCALE)))
    base_end = s.point
    if is_merge:  # the base root ends 1–4 nm before the point (_merge_parts)
        base_end = s.point - _rng(lay, op, _ROLE_MERGE).uniform(*INTERFACE_HALF_GAP_NM) * s.direction
    neuron_line = _neuron_line(lay, s, reach + DISTRACTOR_CLEARANCE_NM + 2 * pl.SAMPLE_STEP_NM + offset)
    best: Tree | None = None
    for attempt in range(_ATTEMPTS):
        angle = _angle(rng)
        if end_on and rng.random() < CONTACT_BACKWARD_SHARE:
            angle = np.pi - angle
        target = pl.direction_at_angle(s.direction, angle, rng.uniform(0, 2 * np.pi))
        if end_on:
            contact = s.point + offset * target
        else:
            normal = np.cross(s.direction, target)
            contact = base_end + offset * normal / np.linalg.norm(normal)
        rot = pl.rotation_taking(axis, target, rng.uniform(0, 2 * np.pi))
        xyz = (piece.xyz - piece.xyz[w_local]) @ rot.T + contact
        kept = _clear_of(Tree(xyz, piece.parent, radius), w_local, neuron_line, contact)
        if kept is not None and (best is None or len(kept.parent) > len(best.parent)):
            best = kept
        if _settled(best, attempt, piece):
            return best
    raise RuntimeError(f"no placement keeps 3 nodes of the contact distractor of op {op}")  # never seen


def _settled(best: Tree | None, attempt: int, piece: Tree) -> bool:
    """Stop trying orientations: most of the piece is kept, or enough were tried and one kept 3 nodes."""
    if best is None:
        return False
    return attempt >= _ENOUGH_ATTEMPTS - 1 or len(best.parent) >= _ENOUGH_KEPT * len(piece.parent)


def _clear_of(tree: Tree, w: int, line, contact: np.ndarray | None = None) -> Tree | None:
    """The part of `tree` still connected to node w once every edge that comes within the clearance of `line`
    is cut (both sides are sampled every SAMPLE_STEP_NM, so that step is added as a margin); None if w itself
    is too close or fewer than 3 nodes are left. With a `contact` point, the required distance grows linearly
    from 0 at the contact to the clearance at CONTACT_ZONE_NM from it."""
    full = DISTRACTOR_CLEARANCE_NM + pl.SAMPLE_STEP_NM

    def need(xyz: np.ndarray) -> np.ndarray | float:
        if contact is None:
            return full
        return full * np.minimum(np.linalg.norm(xyz - contact, axis=1) / CONTACT_ZONE_NM, 1.0)

    node_close = line.query(tree.xyz)[0] < need(tree.xyz)
    if node_close[w]:
        return None
    child = np.flatnonzero(tree.parent >= 0)
    points, edge = pl.edge_samples(tree.xyz[child], tree.xyz[tree.parent[child]], pl.SAMPLE_STEP_NM)
    close = np.bincount(edge[line.query(points)[0] < need(points)], minlength=len(child)) > 0
    cut = np.zeros(len(tree.parent), dtype=bool)
    cut[child] = close | node_close[child] | node_close[tree.parent[child]]
    top = np.arange(len(tree.parent))
    for j in child.tolist():  # parents come first
        if not cut[j]:
            top[j] = top[tree.parent[j]]
    nodes = np.flatnonzero(top == top[w])
    return pl.induced(tree, nodes) if len(nodes) >= 3 else None


# ---- root ids ----------------------------------------------------------------------------------------------


def _lineage_tree(lay: Layout, gen: Generator, neuron: int, root: int) -> Tree | None:
    """A lineage root of `neuron` as the next edit of its log finds it; None if it is not in the lineage."""
    log = gen.neuron_log(neuron)
    rows = np.flatnonzero(log.before_root == root)
    if len(rows):
        op = int(log.operation_id[rows[0]])
        return _merge_parts(lay, op)[0] if log.is_merge[rows[0]] else _split_before(lay, op)
    # a root no edit of this neuron starts from (the next edit is a shared split, starting from SHARED_BEFORE)
    initial = root == ids.root_id(RootKind.INITIAL, neuron) and len(log) > 0
    return pl.neuron_tree(lay, neuron) if initial or np.any(log.after_root == root) else None


def _segment_tree(lay: Layout, gen: Generator, kind: RootKind, payload: int, root: int) -> Tree | None:
    if kind in (RootKind.NEURON, RootKind.INITIAL):
        if payload >= gen.n_neurons:
            return None
        if kind is RootKind.NEURON:
            return pl.neuron_tree(lay, payload)
        return _lineage_tree(lay, gen, payload, root)
    op = payload
    if not gen.operation_exists(op):
        return None
    owners = ids.op_owner(op)
    log = gen.neuron_log(owners[0])
    merge = bool(log.is_merge[log.row_of(op)])
    if kind is RootKind.AFTER:
        return _lineage_tree(lay, gen, owners[0], root)
    if kind in (RootKind.PARTNER, RootKind.PARTNER_LOW):
        return _merge_parts(lay, op)[1] if merge else None
    if kind is RootKind.FOREIGN:
        if merge:
            return None
        if len(owners) == 2:
            return _lineage_tree(lay, gen, owners[1], root)
        return _graft(lay, op, pl.site(lay, op, False))
    if kind is RootKind.DISTRACTOR:
        return _distractor(lay, op, merge)
    return _split_before(lay, op) if len(owners) == 2 else None  # SHARED_BEFORE


@functools.lru_cache(maxsize=256)
def segment_skeleton(profile_name: str, root_id: int) -> SegmentSkeleton | None:
    """The skeleton of any root id of the embedded datastack (nm); None for an id that does not exist."""
    # lazy: the generator imports this module
    from proofpilot.datastack.embedded.generator import get_generator

    try:
        kind, payload = ids.decode_root(root_id)
    except ValueError:
        return None
    tree = _segment_tree(pl.layout(profile_name), get_generator(profile_name), kind, payload, int(root_id))
    return None if tree is None else SegmentSkeleton.from_tree(tree)


def op_fragments(profile_name: str, operation_id: int) -> dict[str, int]:
    """Root ids by role for one operation.

    merge: ``base`` (the neuron's root before it, lacking the partner), ``partner``, ``distractor``,
    ``after``; split: ``before_split`` (carries the foreign branch), ``clean`` (the final proofread root),
    ``kept`` and ``foreign`` (the split's two new roots; for a shared split ``foreign`` is the other neuron's
    side); both: ``neuron`` (the final proofread root of the neuron the op's geometry belongs to)."""
    # lazy: the generator imports this module
    from proofpilot.datastack.embedded.generator import get_generator

    gen = get_generator(profile_name)
    op = int(operation_id)
    if not gen.operation_exists(op):
        raise DataError(f"operation {op} does not exist in the embedded datastack {profile_name}")
    owner = ids.op_owner(op)[0]
    log = gen.neuron_log(owner)
    row = log.row_of(op)
    neuron = ids.root_id(RootKind.NEURON, owner)
    before = int(log.before_root[row])
    if log.is_merge[row]:
        return {
            "base": before,
            "partner": int(log.partner_root[row]),
            "distractor": ids.root_id(RootKind.DISTRACTOR, op),
            "after": int(log.after_root[row]),
            "neuron": neuron,
        }
    kept, foreign = gen.split_roots(op)
    return {"before_split": before, "clean": neuron, "kept": kept, "foreign": foreign, "neuron": neuron}
