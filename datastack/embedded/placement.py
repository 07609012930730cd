"""Where things are in the embedded datastack's volume: per-neuron placement of the template skeletons, the
interface node of every operation, and the tree and rotation tools the fragments are cut and grafted with.

Neuron i is template ``i % 5`` (templates.py) under a rigid transform drawn from the profile seed: any turn
about z after a tilt of at most MAX_TILT_DEG, and a translation that keeps the whole neuron inside the
profile's volume. An operation's interface node belongs to the neuron ``ids.op_owner(op)[0]`` (a shared split
takes the lower-indexed neuron of its pair) and is picked from the op id by a multiplicative hash: for a merge
among the template's merge candidates (a moderate branch below), for a split among its interior nodes. The
interface point is that node's position rounded to the segmentation voxel grid.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from proofpilot.datastack.embedded import ids
from proofpilot.datastack.embedded.profiles import get_profile
from proofpilot.datastack.embedded.templates import (
    DIRECTION_BASELINE_NM,
    Template,
    TemplateSet,
    load_templates,
)

MAX_TILT_DEG = 25.0  # per-neuron tilt away from the template's (fly brain) orientation
SAMPLE_STEP_NM = 50.0  # centre lines are compared as points this far apart
_STREAM_LAYOUT = 11
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True, eq=False)
class Layout:
    """Placement of every neuron of one profile, plus flat look-up tables for the vectorised op points."""

    seed: int
    resolution: np.ndarray  # (3,) nm per voxel
    salt: np.uint64
    rotation: np.ndarray  # (n_neurons, 3, 3)
    translation: np.ndarray  # (n_neurons, 3) nm
    templates: TemplateSet
    affine: np.ndarray  # (n_neurons, 3, 4): [rotation | translation]
    candidate_xyz1: np.ndarray  # (total, 4): candidate positions with a trailing 1
    candidate_offset: np.ndarray  # (2k,) by key = is_merge * k + template
    candidate_count: np.ndarray  # (2k,) uint64


@dataclass(frozen=True)
class Site:
    """An operation's interface: the node of the owning neuron's template and its world position."""

    neuron: int  # the neuron whose geometry the op belongs to
    template: Template
    node: int
    point: np.ndarray  # interface point, nm (on the voxel grid)
    direction: np.ndarray  # unit vector of the neurite at the node, world frame


@dataclass(frozen=True)
class Tree:
    """Working skeleton in nm: parents precede children, parent -1 marks a root."""

    xyz: np.ndarray
    parent: np.ndarray
    radius: np.ndarray


@functools.cache
def layout(profile_name: str) -> Layout:
    """The profile's placement (built once per process: ~50 ms for 139,255 neurons, plus the templates)."""
    profile = get_profile(profile_name)
    ts = load_templates()
    rng = np.random.default_rng([profile.seed, _STREAM_LAYOUT])
    n = profile.n_neurons
    rotation = _random_rotations(rng, n)
    half = np.stack([np.abs(t.xyz_nm).max(axis=0) for t in ts.templates])[np.arange(n) % len(ts)]
    extent = np.einsum("nij,nj->ni", np.abs(rotation), half)  # half-size of each rotated bounding box
    room = np.maximum(np.asarray(profile.volume_size_nm) - 2 * extent, 0.0)
    translation = extent + rng.random((n, 3)) * room
    salt = np.uint64(int(rng.integers(0, 2**63)))
    res = np.asarray(profile.segmentation_resolution_nm, dtype=np.float64)
    affine = np.concatenate([rotation, translation[:, :, None]], axis=2)
    xyz1 = np.concatenate([ts.candidate_xyz, np.ones((len(ts.candidate_xyz), 1))], axis=1)
    offset, count = ts.candidate_offset.ravel(), ts.candidate_count.ravel().astype(np.uint64)
    return Layout(profile.seed, res, salt, rotation, translation, ts, affine, xyz1, offset, count)


def _random_rotations(rng: np.random.Generator, n: int) -> np.ndarray:
    """n rotations: a tilt of at most MAX_TILT_DEG about x and y, then any turn about z, so that neurons keep
    roughly the template's orientation and fit a flat volume such as the fly brain's 0.28 mm depth."""
    turn = rng.uniform(0, 2 * np.pi, n)
    tilt_x, tilt_y = np.radians(rng.uniform(-MAX_TILT_DEG, MAX_TILT_DEG, (2, n)))
    return _axis_rotation(2, turn) @ _axis_rotation(0, tilt_x) @ _axis_rotation(1, tilt_y)


def _axis_rotation(axis: int, angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    i, j = [k for k in range(3) if k != axis]
    out = np.zeros((len(angle), 3, 3))
    out[:, axis, axis] = 1.0
    out[:, i, i], out[:, i, j], out[:, j, i], out[:, j, j] = c, -s, s, c
    return out


def op_nodes(lay: Layout, ops: np.ndarray, merge: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(geometry neuron, row in the candidate tables) of each op; vectorised, no Python loop."""
    pair, slot = np.divmod(ops - 1, ids.OPS_PER_PAIR)
    neuron = 2 * pair + ((slot >= ids.OWN_OPS_CAP) & (slot < 2 * ids.OWN_OPS_CAP))
    key = merge * len(lay.templates) + neuron % len(lay.templates)
    h = ((ops.astype(np.uint64) ^ lay.salt) * _GOLDEN) >> np.uint64(29)  # Fibonacci hashing of the op id
    return neuron, lay.candidate_offset[key] + (h % lay.candidate_count[key]).astype(np.int64)


def snapped_points(lay: Layout, neuron: np.ndarray, row: np.ndarray) -> np.ndarray:
    """World positions of candidate rows for the given neurons, rounded to the voxel grid (nm)."""
    world = np.einsum("nij,nj->ni", lay.affine[neuron], lay.candidate_xyz1[row])
    return np.rint(world / lay.resolution) * lay.resolution


def site(lay: Layout, op: int, is_merge: bool) -> Site:
    neuron, row = op_nodes(lay, np.array([op], dtype=np.int64), np.array([is_merge]))
    point = snapped_points(lay, neuron, row)[0]  # the very computation op_points_nm makes
    g = int(neuron[0])
    template = lay.templates.templates[g % len(lay.templates)]
    node = int(lay.templates.candidate_node[row[0]])
    return Site(g, template, node, point, lay.rotation[g] @ template.direction[node])


def neuron_tree(lay: Layout, g: int) -> Tree:
    """Neuron g's whole skeleton in world coordinates."""
    t = lay.templates.templates[g % len(lay.templates)]
    return Tree(t.xyz_nm @ lay.rotation[g].T + lay.translation[g], t.parent, t.radius_nm)


def template_tree(t: Template) -> Tree:
    return Tree(t.xyz_nm, t.parent, t.radius_nm)


# ---- trees -------------------------------------------------------------------------------------------------


def subtree(tree: Tree, v: int, size: int) -> Tree:
    """The subtree of v (pre-order: the `size` nodes from v on), v its root."""
    parent = tree.parent[v : v + size] - v
    parent[0] = -1
    return Tree(tree.xyz[v : v + size].copy(), parent, tree.radius[v : v + size].copy())


def without_subtree(tree: Tree, v: int, size: int) -> Tree:
    """The tree minus the subtree of v; nodes before v keep their indices."""
    keep = np.r_[0:v, v + size : len(tree.parent)]
    p = tree.parent[keep]
    parent = np.where(p >= v + size, p - size, p)  # nodes outside a subtree never have parents inside it
    return Tree(tree.xyz[keep], parent, tree.radius[keep])


def join(a: Tree, b: Tree, attach_to: int) -> Tree:
    """b appended to a, b's root(s) hung under a's node `attach_to`."""
    parent = np.where(b.parent >= 0, b.parent + len(a.parent), attach_to)
    return Tree(
        np.concatenate([a.xyz, b.xyz]),
        np.concatenate([a.parent, parent]),
        np.concatenate([a.radius, b.radius]),
    )


def induced(tree: Tree, nodes: np.ndarray) -> Tree:
    """The sub-forest on `nodes` (sorted), parents outside it becoming roots."""
    local = np.full(len(tree.parent), -1, dtype=np.int64)
    local[nodes] = np.arange(len(nodes))
    parent = np.where(tree.parent[nodes] >= 0, local[np.maximum(tree.parent[nodes], 0)], -1)
    return Tree(tree.xyz[nodes], parent, tree.radius[nodes])


def geodesic_piece(t: Template, w: int, reach: float) -> tuple[Tree, int]:
    """The nodes of template t within `reach` nm of node w along the tree; (piece, w's index in it)."""
    lca = np.zeros(t.n_nodes, dtype=np.int64)
    path = [w]
    while t.parent[path[-1]] >= 0:
        path.append(int(t.parent[path[-1]]))
    for a in reversed(path):  # root first; deeper ancestors overwrite their subtree range
        lca[a : a + t.subtree_size[a]] = a
    d = t.root_distance_nm
    nodes = np.flatnonzero(d + d[w] - 2 * d[lca] <= reach)
    return induced(template_tree(t), nodes), int(np.searchsorted(nodes, w))


def downstream_piece(t: Template, w: int, reach: float) -> tuple[Tree, np.ndarray]:
    """The nodes of w's subtree within `reach` nm of w along the tree (w is the piece's root, index 0), and
    the unit vector from w towards the piece's nodes within DIRECTION_BASELINE_NM of path."""
    d = t.root_distance_nm[w : w + t.subtree_size[w]] - t.root_distance_nm[w]
    nodes = w + np.flatnonzero(d <= reach)
    piece = induced(template_tree(t), nodes)
    axis = piece.xyz[d[nodes - w] <= DIRECTION_BASELINE_NM].mean(axis=0) - piece.xyz[0]
    norm = np.linalg.norm(axis)
    return piece, axis / norm if norm > 0 else t.direction[w]


def edge_samples(a: np.ndarray, b: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Points along each segment a[k]→b[k] (ends included) at most `step` nm apart, and their segment k."""
    n = np.ceil(np.linalg.norm(b - a, axis=1) / step).astype(np.int64) + 1
    edge = np.repeat(np.arange(len(a)), n)
    frac = (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)) / np.repeat(np.maximum(n - 1, 1), n)
    return a[edge] + (b - a)[edge] * frac[:, None], edge


# ---- directions --------------------------------------------------------------------------------------------


def direction_at_angle(u: np.ndarray, angle: float, azimuth: float) -> np.ndarray:
    """The unit vector at `angle` from unit vector u, turned by `azimuth` around it."""
    e2, e3 = _perpendiculars(u)
    return np.cos(angle) * u + np.sin(angle) * (np.cos(azimuth) * e2 + np.sin(azimuth) * e3)


def _perpendiculars(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    helper = np.eye(3)[int(np.argmin(np.abs(u)))]
    e2 = np.cross(u, helper)
    e2 /= np.linalg.norm(e2)
    return e2, np.cross(u, e2)


def rotation_taking(a: np.ndarray, b: np.ndarray, roll: float) -> np.ndarray:
    """A rotation that maps unit vector a onto unit vector b, then turns by `roll` about b."""
    a2, a3 = _perpendiculars(a)
    b2, b3 = _perpendiculars(b)
    c, s = np.cos(roll), np.sin(roll)
    frame_a = np.stack([a, a2, a3], axis=1)
    frame_b = np.stack([b, c * b2 + s * b3, -s * b2 + c * b3], axis=1)
    return frame_b @ frame_a.T
