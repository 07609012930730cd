"""Geometry of the embedded datastack: real hemibrain skeletons, merge fragments that meet at the interface
point, grafted split branches, distractors that touch the neuron at the point or stay clear of it, and local
features that carry signal."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy.spatial import cKDTree

from proofpilot.core.errors import DataError
from proofpilot.datastack.embedded import geometry, ids
from proofpilot.datastack.embedded.generator import get_generator
from proofpilot.datastack.embedded.ids import RootKind
from proofpilot.datastack.embedded.lineage import Lineage
from proofpilot.datastack.embedded.profiles import get_profile

MOUSE, FLY = "minnie65_synthetic", "fafb_synthetic"
FEW_NM = 5.0  # "within a few nm"
VOXEL_HALF_DIAGONAL_NM = 0.5 * float(np.linalg.norm([16, 16, 40]))


def _sample_neurons(profile: str, n: int, seed: int) -> list[int]:
    gen = get_generator(profile)
    rng = np.random.default_rng(seed)
    picked = rng.choice(gen.n_neurons, size=min(4 * n, gen.n_neurons), replace=False)
    return [int(i) for i in picked if len(gen.neuron_log(int(i)))][:n]


def _ops(
    profile: str, neurons: list[int], per_neuron: int, merge: bool, seed: int = 0
) -> list[tuple[int, int]]:
    """(neuron, op id) pairs: up to `per_neuron` own merges (or own splits) of each neuron."""
    gen = get_generator(profile)
    rng = np.random.default_rng(seed)
    out = []
    for i in neurons:
        log = gen.neuron_log(i)
        rows = np.flatnonzero((log.is_merge == merge) & ~log.is_shared)
        for r in rng.permutation(rows)[:per_neuron]:
            out.append((i, int(log.operation_id[r])))
    return out


def _point(profile: str, neuron: int, op: int, merge: bool) -> np.ndarray:
    return geometry.op_points_nm(profile, neuron, np.array([op]), np.array([merge]))[0]


def _densify(sk: geometry.SegmentSkeleton, step: float = 50.0) -> np.ndarray:
    """The skeleton's centre line as points at most `step` nm apart."""
    v = sk.vertices.astype(np.float64)
    a, b = v[sk.edges[:, 0]], v[sk.edges[:, 1]]
    n = np.ceil(np.linalg.norm(b - a, axis=1) / step).astype(int) + 1
    k = np.repeat(np.arange(len(a)), n)
    t = (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)) / np.repeat(n - 1, n)
    return np.concatenate([v, a[k] + (b - a)[k] * t[:, None]])


def _n_roots(sk: geometry.SegmentSkeleton) -> int:
    return len(sk.vertices) - len(np.unique(sk.edges[:, 0]))


@pytest.mark.parametrize("profile", [MOUSE, FLY])
def test_op_points_are_deterministic_on_the_voxel_grid_and_inside_the_volume(profile):
    gen = get_generator(profile)
    prof = get_profile(profile)
    res = np.asarray(prof.segmentation_resolution_nm)
    for i in _sample_neurons(profile, 30, seed=1):
        log = gen.neuron_log(i)
        pts = geometry.op_points_nm(profile, i, log.operation_id, log.is_merge)
        assert pts.shape == (len(log), 3) and pts.dtype == np.float64
        again = geometry.op_points_nm(profile, i, log.operation_id.tolist(), log.is_merge.tolist())
        np.testing.assert_array_equal(pts, again)
        # one op at a time gives the same point as the batch (no dependence on what else is asked)
        k = len(log) // 2
        np.testing.assert_array_equal(
            _point(profile, i, int(log.operation_id[k]), bool(log.is_merge[k])), pts[k]
        )
        np.testing.assert_allclose(pts / res, np.rint(pts / res), atol=1e-9)
        assert (pts >= 0).all()
        assert (pts <= np.asarray(prof.volume_size_nm)).all()
    assert geometry.op_points_nm(profile, 0, np.zeros(0, np.int64), np.zeros(0, bool)).shape == (0, 3)


def test_neurons_differ_and_ops_spread_over_the_neuron():
    gen = get_generator(MOUSE)
    centres, spreads = [], []
    for i in range(6):
        log = gen.neuron_log(i)
        pts = geometry.op_points_nm(MOUSE, i, log.operation_id, log.is_merge)
        centres.append(pts.mean(axis=0))
        spreads.append(np.linalg.norm(pts - pts.mean(axis=0), axis=1).mean())
        assert len(np.unique(pts, axis=0)) > 0.5 * len(pts)
    gaps = [np.linalg.norm(a - b) for k, a in enumerate(centres) for b in centres[k + 1 :]]
    assert min(gaps) > 10_000  # neurons are placed apart (nm)
    assert min(spreads) > 5_000  # edits spread over tens of µm of arbor, not a single spot


def test_shared_split_has_one_point_for_both_neurons():
    gen = get_generator(MOUSE)
    pair = next(p for p in range(gen.n_neurons // 2) if gen.population.n_shared[2 * p] > 0)
    op = ids.op_id(pair, 2 * ids.OWN_OPS_CAP)
    a = _point(MOUSE, 2 * pair, op, False)
    b = _point(MOUSE, 2 * pair + 1, op, False)
    np.testing.assert_array_equal(a, b)
    fragments = geometry.op_fragments(MOUSE, op)
    assert ids.decode_root(fragments["before_split"])[0] is RootKind.SHARED_BEFORE
    before = geometry.segment_skeleton(MOUSE, fragments["before_split"])
    clean = geometry.segment_skeleton(MOUSE, fragments["clean"])
    assert len(before.vertices) > len(clean.vertices)
    assert (
        np.linalg.norm(before.vertices[len(clean.vertices)] - a) < FEW_NM
    )  # the grafted branch starts at the point


def test_skeletons_are_deterministic_across_processes():
    gen = get_generator(FLY)
    i = _sample_neurons(FLY, 1, seed=3)[0]
    ops = [int(o) for o in gen.neuron_log(i).operation_id[:8]]
    merge = gen.neuron_log(i).is_merge[:8]
    assert {geometry.distractor_kind(FLY, o) for o in np.asarray(ops)[merge]} == {"contact"}
    distractors = {ids.root_id(RootKind.DISTRACTOR, o) for o in ops}  # exist for every op, merge or split
    roots = sorted(set(geometry.op_fragments(FLY, ops[0]).values()) | distractors)
    code = (
        "import json, sys, hashlib\n"
        "from proofpilot.datastack.embedded import geometry\n"
        "roots = json.loads(sys.argv[1])\n"
        "out = {}\n"
        "for r in roots:\n"
        "    s = geometry.segment_skeleton('fafb_synthetic', r)\n"
        "    blob = s.vertices.tobytes() + s.edges.tobytes() + s.radii.tobytes()\n"
        "    out[str(r)] = hashlib.sha256(blob).hexdigest()\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(roots)], capture_output=True, text=True, check=True
    )
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    import hashlib

    for r in roots:
        s = geometry.segment_skeleton(FLY, r)
        ours = hashlib.sha256(s.vertices.tobytes() + s.edges.tobytes() + s.radii.tobytes()).hexdigest()
        assert theirs[str(r)] == ours


def test_merge_fragments_meet_at_the_interface_point_for_100_mouse_neurons():
    neurons = _sample_neurons(MOUSE, 100, seed=7)
    assert len(neurons) == 100
    ops = _ops(MOUSE, neurons, per_neuron=3, merge=True)
    assert len(ops) >= 250
    for neuron, op in ops:
        p = _point(MOUSE, neuron, op, True)
        roles = geometry.op_fragments(MOUSE, op)
        base = geometry.segment_skeleton(MOUSE, roles["base"])
        partner = geometry.segment_skeleton(MOUSE, roles["partner"])
        whole = geometry.segment_skeleton(MOUSE, roles["neuron"])
        assert np.linalg.norm(base.vertices - p, axis=1).min() < FEW_NM
        assert np.linalg.norm(partner.vertices - p, axis=1).min() < FEW_NM
        assert len(base.vertices) + len(partner.vertices) == len(whole.vertices) + 1  # + the base's end node
        assert _n_roots(base) == 1 and _n_roots(partner) == 1
        assert len(partner.vertices) >= 2
        # the partner is the neuron's own branch, only shifted by a few nm
        assert cKDTree(whole.vertices).query(partner.vertices)[0].max() < VOXEL_HALF_DIAGONAL_NM + FEW_NM


def test_split_graft_sits_at_the_interface_point():
    neurons = _sample_neurons(MOUSE, 40, seed=11)
    for neuron, op in _ops(MOUSE, neurons, per_neuron=2, merge=False):
        p = _point(MOUSE, neuron, op, False)
        roles = geometry.op_fragments(MOUSE, op)
        before = geometry.segment_skeleton(MOUSE, roles["before_split"])
        clean = geometry.segment_skeleton(MOUSE, roles["clean"])
        foreign = geometry.segment_skeleton(MOUSE, roles["foreign"])
        n = len(clean.vertices)
        assert len(before.vertices) == n + len(foreign.vertices)
        np.testing.assert_array_equal(before.vertices[:n], clean.vertices)  # the neuron, untouched
        np.testing.assert_array_equal(before.vertices[n:], foreign.vertices)  # plus the foreign branch
        assert np.linalg.norm(foreign.vertices[0] - p) < FEW_NM
        graft_edge = before.edges[before.edges[:, 0] == n][0]
        attach = before.vertices[graft_edge[1]]
        assert graft_edge[1] < n and np.linalg.norm(attach - p) < VOXEL_HALF_DIAGONAL_NM + 1
        assert _n_roots(before) == 1 and _n_roots(foreign) == 1


def test_merge_distractors_touch_the_neuron_at_the_point_and_about_half_of_split_ones_stay_clear():
    """Every merge's distractor touches the interface (so a segmentation cutout finds it, watershed.py); a
    split's touches for DISTRACTOR_CONTACT_SHARE of the ops and otherwise stays clear of the neuron."""
    neurons = _sample_neurons(MOUSE, 40, seed=5)
    merges = _ops(MOUSE, neurons, per_neuron=2, merge=True)
    splits = _ops(MOUSE, neurons, per_neuron=2, merge=False)
    assert len(merges) >= 70 and len(splits) >= 60
    contact, far_closest = [], []
    for (neuron, op), is_merge in [(o, True) for o in merges] + [(o, False) for o in splits]:
        p = _point(MOUSE, neuron, op, is_merge)
        roles = geometry.op_fragments(MOUSE, op) | {"distractor": ids.root_id(RootKind.DISTRACTOR, op)}
        distractor = _densify(geometry.segment_skeleton(MOUSE, roles["distractor"]))
        base = _densify(geometry.segment_skeleton(MOUSE, roles["base" if is_merge else "neuron"]))
        whole = _densify(geometry.segment_skeleton(MOUSE, roles["neuron"]))
        if is_merge:
            partner = geometry.segment_skeleton(MOUSE, roles["partner"])
            assert np.linalg.norm(partner.vertices - p, axis=1).min() < FEW_NM  # the true partner meets it
        sk = geometry.segment_skeleton(MOUSE, roles["distractor"])
        assert len(sk.vertices) >= 3 and _n_roots(sk) == 1
        to_base = cKDTree(base).query(distractor)[0]
        to_neuron = cKDTree(whole).query(distractor)[0]
        touches = to_base.min() <= 40.0
        kind = geometry.distractor_kind(MOUSE, op)
        if is_merge:
            assert touches and kind == "contact"
        else:
            contact.append(kind == "contact")
        if is_merge:  # at the interface point, and clear of the neuron away from it
            assert np.linalg.norm(distractor[np.argmin(to_base)] - p) < 50.0
            away = np.linalg.norm(distractor - p, axis=1) > geometry.CONTACT_ZONE_NM + 50.0
            assert away.any() and to_neuron[away].min() >= geometry.DISTRACTOR_CLEARANCE_NM - 1.0
        elif kind == "far":
            assert to_neuron.min() >= geometry.DISTRACTOR_CLEARANCE_NM - 1.0
            far_closest.append(np.linalg.norm(distractor - p, axis=1).min())
    share = float(np.mean(contact))
    assert abs(share - geometry.DISTRACTOR_CONTACT_SHARE) < 0.2, share  # binomial sd ≈ 0.06 for n ≈ 70
    far_closest = np.asarray(far_closest)
    # p lies on the neuron, so a far one is at least the clearance (less the point's snap) from it
    assert far_closest.min() >= geometry.DISTRACTOR_CLEARANCE_NM - VOXEL_HALF_DIAGONAL_NM
    assert np.median(far_closest) < 2_500.0  # near the interface, not somewhere else in the volume


def test_contact_distractors_give_small_gaps_but_other_directions_than_true_partners():
    """What the agent sees: a contact distractor's gap to the base overlaps the true partner's (a few nm to
    40 nm), while it leaves the interface at another angle than the partner, which continues the neuron."""
    neurons = _sample_neurons(MOUSE, 40, seed=23)
    gaps, turns = {"partner": [], "contact": []}, {"partner": [], "contact": []}
    for neuron, op in _ops(MOUSE, neurons, per_neuron=2, merge=True):
        if geometry.distractor_kind(MOUSE, op) != "contact":
            continue
        p = _point(MOUSE, neuron, op, True)
        roles = geometry.op_fragments(MOUSE, op)
        base = geometry.segment_skeleton(MOUSE, roles["base"])
        base_local = _local(base, p)
        for role, name in (("partner", "partner"), ("distractor", "contact")):
            cand = geometry.segment_skeleton(MOUSE, roles[role])
            gaps[name].append(cKDTree(base.vertices).query(cand.vertices)[0].min())
            cos = np.clip(-base_local["direction"] @ _local(cand, p)["direction"], -1, 1)
            turns[name].append(np.degrees(np.arccos(cos)))
    assert len(gaps["contact"]) >= 20
    g_p, g_c = np.asarray(gaps["partner"]), np.asarray(gaps["contact"])
    assert g_p.max() <= 2 * geometry.INTERFACE_HALF_GAP_NM[1] + 0.01 and g_c.max() <= 40.0 + 0.01
    assert (g_c <= g_p.max()).mean() > 0.25  # many touch as closely as a true partner does
    t_p, t_c = np.asarray(turns["partner"]), np.asarray(turns["contact"])
    assert np.median(t_c) > np.median(t_p) + 20.0


def _local(sk: geometry.SegmentSkeleton, p: np.ndarray, radius: float = 1_500.0) -> dict[str, float]:
    v = sk.vertices.astype(np.float64)
    d = np.linalg.norm(v - p, axis=1)
    e = sk.edges.astype(np.int64)
    inside = (d[e[:, 0]] < radius) & (d[e[:, 1]] < radius)
    degree = np.bincount(e[inside].ravel(), minlength=len(v))
    near = int(np.argmin(d))
    towards = v[d < 2_500.0].mean(axis=0) - v[near]
    return {
        "gap": float(d[near]),
        "branch_points": float((degree >= 3).sum()),
        "radius": float(sk.radii[near]),
        "direction": towards / (np.linalg.norm(towards) + 1e-9),
    }


def test_local_features_separate_better_than_chance_but_not_perfectly():
    neurons = _sample_neurons(MOUSE, 40, seed=13)
    angle_partner, angle_distractor = [], []
    for neuron, op in _ops(MOUSE, neurons, per_neuron=2, merge=True):
        p = _point(MOUSE, neuron, op, True)
        roles = geometry.op_fragments(MOUSE, op)
        base = _local(geometry.segment_skeleton(MOUSE, roles["base"]), p)
        for role, sink in (("partner", angle_partner), ("distractor", angle_distractor)):
            cand = _local(geometry.segment_skeleton(MOUSE, roles[role]), p)
            sink.append(np.degrees(np.arccos(np.clip(-base["direction"] @ cand["direction"], -1, 1))))
    a_p, a_d = np.asarray(angle_partner), np.asarray(angle_distractor)
    auc_angle = (a_p[:, None] < a_d[None, :]).mean()  # partners continue the neuron, distractors cross it
    assert 0.6 < auc_angle < 0.98

    more_branches = []
    for neuron, op in _ops(MOUSE, neurons, per_neuron=2, merge=False):
        p = _point(MOUSE, neuron, op, False)
        roles = geometry.op_fragments(MOUSE, op)
        before = _local(geometry.segment_skeleton(MOUSE, roles["before_split"]), p)
        clean = _local(geometry.segment_skeleton(MOUSE, roles["clean"]), p)
        more_branches.append(before["branch_points"] > clean["branch_points"])
    share = float(np.mean(more_branches))
    assert 0.6 < share < 1.0  # a graft adds branching at the point, but the clean arbor branches too


def test_every_root_of_the_sampled_logs_has_a_skeleton_and_unknown_ids_have_none():
    gen = get_generator(MOUSE)
    lineage = Lineage(gen)
    for i in _sample_neurons(MOUSE, 3, seed=17):
        log = gen.neuron_log(i)
        rows = np.linspace(0, len(log) - 1, 8).astype(int)
        roots = (set(log.before_root[rows]) | set(log.after_root[rows]) | set(log.partner_root[rows])) - {0}
        for r in roots:
            assert lineage.exists(int(r))
            assert geometry.segment_skeleton(MOUSE, int(r)) is not None, ids.decode_root(int(r))
    last = gen.neuron_log(0)
    assert geometry.segment_skeleton(MOUSE, ids.root_id(RootKind.AFTER, int(last.operation_id[-1]))) is None
    assert geometry.segment_skeleton(MOUSE, ids.root_id(RootKind.NEURON, gen.n_neurons)) is None
    assert geometry.segment_skeleton(MOUSE, 12345) is None
    merge_op = int(last.operation_id[np.flatnonzero(last.is_merge)[0]])
    assert geometry.segment_skeleton(MOUSE, ids.root_id(RootKind.FOREIGN, merge_op)) is None
    with pytest.raises(DataError, match="does not exist"):
        geometry.op_fragments(MOUSE, ids.op_id(0, ids.OWN_OPS_CAP - 1))
