"""Features and views on hand-made navis skeletons whose right values are known."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest

from proofpilot.core.errors import DataError
from proofpilot.tasks.features import MERGE_FEATURES, SPLIT_FEATURES, merge_features, split_features
from proofpilot.tasks.views import render_view_set, render_views, scale_bar_nm, view_names

STEP = 250.0  # nm between nodes
ORIGIN = (0.0, 0.0, 0.0)


def tree(points, parents, radius, node_ids=None):
    """A navis TreeNeuron (nm) from node positions, parent indices (-1 = root) and radii."""
    import navis

    points = np.asarray(points, dtype=float)
    ids = np.arange(len(points)) if node_ids is None else np.asarray(node_ids)
    parent_ids = np.array([ids[p] if p >= 0 else -1 for p in parents])
    nodes = pd.DataFrame(
        {
            "node_id": ids,
            "parent_id": parent_ids,
            "x": points[:, 0],
            "y": points[:, 1],
            "z": points[:, 2],
            "radius": np.broadcast_to(np.asarray(radius, dtype=float), len(points)),
        }
    )
    return navis.TreeNeuron(nodes, units="nm")


def line(start, direction, n, radius):
    """A straight chain of n nodes STEP apart from `start`; the first node is the root."""
    d = np.asarray(direction, dtype=float)
    d /= np.linalg.norm(d)
    points = np.asarray(start, dtype=float) + STEP * np.arange(n)[:, None] * d
    return points, [-1, *range(n - 1)], radius


def direction(angle_deg):
    a = math.radians(angle_deg)
    return (math.cos(a), math.sin(a), 0.0)


def fragments(gap, turn_deg, radius_a=100.0, radius_b=50.0, b_offset=(0.0, 0.0, 0.0)):
    """A runs along +x and ends at x = -gap/2; B starts at +gap/2, turned by `turn_deg` in the xy plane."""
    a_points, a_parents, _ = line((-gap / 2 - 24 * STEP, 0, 0), (1, 0, 0), 25, radius_a)
    b_start = np.array([gap / 2, 0, 0]) + np.asarray(b_offset)
    b_points, b_parents, _ = line(b_start, direction(turn_deg), 25, radius_b)
    return tree(a_points, a_parents, radius_a), tree(b_points, b_parents, radius_b)


@pytest.mark.parametrize("turn", [0.0, 30.0, 90.0, 120.0])  # sharper turns bring B back near A
def test_two_straight_fragments_give_their_gap_and_angle(turn):
    base, candidate = fragments(gap=200.0, turn_deg=turn)
    f = merge_features(base, candidate, ORIGIN)
    assert list(f) == list(MERGE_FEATURES)
    assert f["gap_nm"] == pytest.approx(200.0)
    assert f["dist_a_nm"] == pytest.approx(100.0) and f["dist_b_nm"] == pytest.approx(100.0)
    assert f["angle_deg"] == pytest.approx(turn, abs=0.5)
    assert f["end_a"] == 1.0 and f["end_b"] == 1.0
    # A's nodes at x = -100 - 250 k lie within 5 µm of the point for k <= 19: 19 edges of 250 nm
    assert f["cable_a_um"] == pytest.approx(19 * STEP / 1e3)
    b_nodes = np.array([100.0, 0, 0]) + STEP * np.arange(25)[:, None] * np.asarray(direction(turn))
    inside = int(np.flatnonzero(np.linalg.norm(b_nodes, axis=1) <= 5_000.0).max())
    assert f["cable_b_um"] == pytest.approx(inside * STEP / 1e3)
    assert f["radius_a_nm"] == pytest.approx(100.0) and f["radius_b_nm"] == pytest.approx(50.0)
    assert f["radius_ratio"] == pytest.approx(0.5)
    assert f["branch_points_a"] == 0 and f["branch_points_b"] == 0
    assert f["tortuosity_a"] == pytest.approx(1.0) and f["tortuosity_b"] == pytest.approx(1.0)


def test_a_fragment_passing_by_is_not_an_end_and_is_seen_at_its_distance():
    base, _ = fragments(gap=4.0, turn_deg=0.0)
    # a straight segment along y, crossing the x axis 800 nm past A's end: its closest node is mid-segment
    points, parents, _ = line((800.0, -12 * STEP, 0.0), (0, 1, 0), 25, 60.0)
    passer = tree(points, parents, 60.0)
    f = merge_features(base, passer, ORIGIN)
    assert f["gap_nm"] == pytest.approx(802.0)
    assert f["end_b"] == 0.0 and f["end_a"] == 1.0
    assert f["angle_deg"] == pytest.approx(90.0, abs=0.5)


def test_a_candidate_beyond_the_radius_has_no_local_features():
    base, far = fragments(gap=200.0, turn_deg=0.0, b_offset=(0.0, 20_000.0, 0.0))
    f = merge_features(base, far, ORIGIN, radius_nm=5_000.0)
    assert f["dist_b_nm"] == pytest.approx(math.hypot(100.0, 20_000.0))
    assert math.isnan(f["gap_nm"]) and math.isnan(f["cable_b_um"]) and math.isnan(f["angle_deg"])


def test_node_ids_and_order_do_not_change_the_features():
    base, candidate = fragments(gap=40.0, turn_deg=45.0)
    shuffled = base.nodes.sample(frac=1.0, random_state=1).reset_index(drop=True)
    mapping = dict(zip(shuffled["node_id"], 10_000 + 7 * np.arange(len(shuffled)), strict=True))
    points = shuffled[["x", "y", "z"]].to_numpy()
    order = {nid: i for i, nid in enumerate(shuffled["node_id"])}
    parents = [order.get(p, -1) for p in shuffled["parent_id"]]
    renamed = tree(points, parents, 100.0, node_ids=[mapping[n] for n in shuffled["node_id"]])
    assert merge_features(renamed, candidate, ORIGIN) == pytest.approx(
        merge_features(base, candidate, ORIGIN)
    )


def straight_segment(radius=100.0):
    """49 nodes along x from -6 µm to +6 µm (a node at the origin), rooted at -6 µm."""
    return line((-24 * STEP, 0, 0), (1, 0, 0), 49, radius)


def with_side_branch(angle_deg, length_nodes=12, side_radius=200.0, tilt_z=0.0):
    """The straight segment plus a branch leaving the origin node at `angle_deg` from the onward (+x) way."""
    points, parents, _ = straight_segment()
    origin = 24
    d = np.asarray(direction(angle_deg)) + np.array([0, 0, tilt_z])
    d /= np.linalg.norm(d)
    side = np.arange(1, length_nodes + 1)[:, None] * STEP * d
    side_parents = [origin, *range(len(points), len(points) + length_nodes - 1)]
    radius = np.r_[np.full(len(points), 100.0), np.full(length_nodes, side_radius)]
    return tree(np.vstack([points, side]), parents + side_parents, radius)


@pytest.mark.parametrize("angle", [30.0, 90.0, 150.0])
def test_a_side_branch_at_the_point_gives_its_angle_cable_and_radius_jump(angle):
    f = split_features(with_side_branch(angle), ORIGIN)
    assert list(f) == list(SPLIT_FEATURES)
    assert f["dist_nm"] == pytest.approx(0.0)
    assert f["branches_at_point"] == 3 and f["side_branches"] == 1
    assert f["kink_deg"] == pytest.approx(0.0, abs=1e-6)
    assert f["side_angle_deg"] == pytest.approx(angle, abs=0.5)
    assert f["side_cable_um"] == pytest.approx(12 * STEP / 1e3)
    assert f["radius_jump"] == pytest.approx(2.0)
    assert f["branch_points"] == 1
    assert f["cable_um"] == pytest.approx(10.0 + 3.0)  # 40 edges of the line within 5 µm + the 3-µm branch


def test_a_clean_straight_segment_has_no_side_branch():
    points, parents, radius = straight_segment()
    f = split_features(tree(points, parents, radius), ORIGIN)
    assert f["branches_at_point"] == 2 and f["side_branches"] == 0 and f["side_cable_um"] == 0
    assert math.isnan(f["side_angle_deg"])
    assert f["kink_deg"] == pytest.approx(0.0, abs=1e-6)
    assert f["radius_jump"] == pytest.approx(1.0)
    assert f["tortuosity"] == pytest.approx(1.0)
    assert f["cable_um"] == pytest.approx(10.0)


def test_a_bent_segment_has_its_kink():
    points, parents, _ = line((-24 * STEP, 0, 0), (1, 0, 0), 25, 100.0)  # ends at the origin
    bend, _, _ = line((0, 0, 0), direction(60.0), 25, 100.0)
    all_points = np.vstack([points, bend[1:]])
    all_parents = [*parents, 24, *range(25, 25 + 23)]
    f = split_features(tree(all_points, all_parents, 100.0), ORIGIN)
    assert f["branches_at_point"] == 2 and f["kink_deg"] == pytest.approx(60.0, abs=0.5)


@pytest.mark.parametrize(
    ("point", "radius"), [((math.nan, 0, 0), 5000.0), ((0, 0), 5000.0), (ORIGIN, 100.0), (ORIGIN, math.inf)]
)
def test_bad_point_or_radius_is_a_one_line_error(point, radius):
    points, parents, r = straight_segment()
    with pytest.raises(DataError) as err:
        split_features(tree(points, parents, r), point, radius)
    assert "\n" not in str(err.value)


def _png_size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return image.size


def test_views_are_three_small_pngs_of_different_projections():
    segment = with_side_branch(90.0, tilt_z=0.5)  # the branch leaves the xy plane: three different views
    base, candidate = fragments(gap=200.0, turn_deg=30.0)
    for frags in ([segment], [base, candidate]):
        views = render_views(frags, ORIGIN, 5_000.0, size_px=128)
        assert len(views) == 3
        assert all(v.startswith(b"\x89PNG\r\n\x1a\n") and _png_size(v) == (128, 128) for v in views)
    assert len(set(render_views([segment], ORIGIN, 5_000.0, size_px=128))) == 3


def test_views_reject_bad_input():
    segment = with_side_branch(90.0)
    with pytest.raises(DataError):
        render_views([], ORIGIN, 5_000.0)
    with pytest.raises(DataError):
        render_views([segment] * 3, ORIGIN, 5_000.0)
    with pytest.raises(DataError):
        render_views([segment], ORIGIN, 5_000.0, size_px=4)
    with pytest.raises(DataError):
        render_views([segment], (0, 0, math.nan), 5_000.0)


def test_view_sets_of_one_to_six_views_and_the_scale_bar():
    segment = with_side_branch(90.0, tilt_z=0.5)
    six = render_view_set([segment], ORIGIN, 5_000.0, 6, size_px=112)
    assert len(six) == 6 and len(set(six)) == 6  # the ×3 views differ from the near ones
    assert render_view_set([segment], ORIGIN, 5_000.0, 1, size_px=112) == six[:1]
    assert view_names(6) == ("xy", "xz", "yz", "xy×3", "xz×3", "yz×3")
    assert scale_bar_nm(10_000.0) == 2_000.0 and scale_bar_nm(30_000.0) == 5_000.0
    for n in (0, 7):
        with pytest.raises(DataError):
            render_view_set([segment], ORIGIN, 5_000.0, n)
