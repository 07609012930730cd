"""Geometry of historical roots: the embedded server's level-2 graph and L2 cache, read by pcg_skel."""

from __future__ import annotations

import caveclient
import numpy as np
import pytest

from proofpilot.datastack.embedded import geometry, l2
from proofpilot.datastack.embedded.server import start_server
from proofpilot.datastack.geometry import CroppedPcg, PcgSkeletons

MOUSE = "minnie65_synthetic"
MERGE_OP = 2  # neuron 0's second operation, a merge: its base and partner are expired roots
CABLE_TOLERANCE = 0.05


@pytest.fixture(scope="module")
def server():
    with start_server(MOUSE) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    return caveclient.CAVEclient(
        MOUSE, server_address=server.url, auth_token="test-token", write_server_cache=False
    )


@pytest.fixture(scope="module")
def fragments(client):
    roots = geometry.op_fragments(MOUSE, MERGE_OP)
    expired = [roots["base"], roots["partner"]]
    assert not any(client.chunkedgraph.is_latest_roots(expired))
    return roots


def _cable_nm(vertices: np.ndarray, edges: np.ndarray) -> float:
    v = np.asarray(vertices, dtype=np.float64)
    e = np.asarray(edges, dtype=np.int64)
    return float(np.linalg.norm(v[e[:, 0]] - v[e[:, 1]], axis=1).sum())


def test_level2_graph_and_l2_cache_answer_for_an_expired_root(client, fragments):
    base = fragments["base"]
    edges = np.asarray(client.chunkedgraph.level2_chunk_graph(base), dtype=np.int64)
    l2_ids = np.unique(edges)
    assert len(edges) == len(l2_ids) - 1  # a tree of L2 nodes
    leaves = client.chunkedgraph.get_leaves(base, stop_layer=2)
    assert set(leaves.tolist()) == set(l2_ids.tolist())
    assert client.l2cache.has_cache()
    data = client.l2cache.get_l2data([*l2_ids[:50].tolist(), 12345], attributes=["rep_coord_nm", "size_nm3"])
    assert data["12345"] == {}
    reps = np.array([data[str(i)]["rep_coord_nm"] for i in l2_ids[:50]])
    sk = geometry.segment_skeleton(MOUSE, base)
    nearest = np.min(np.linalg.norm(sk.vertices[None, :, :] - reps[:, None, :], axis=2), axis=1)
    assert nearest.max() < 1.0  # every representative point lies on the root's centre line (nm)
    assert all(data[str(i)]["size_nm3"] > 0 for i in l2_ids[:50])


def test_bounded_level2_graph_keeps_the_l2_nodes_near_the_box(client, fragments):
    base = fragments["base"]
    center = geometry.segment_skeleton(MOUSE, base).vertices[100].astype(np.float64)
    resolution = np.asarray(client.chunkedgraph.base_resolution, dtype=np.float64)
    half = 3_000.0
    bounds = np.stack([(center - half) // resolution, (center + half) // resolution + 1], axis=1)
    edges = np.asarray(client.chunkedgraph.level2_chunk_graph(base, bounds=bounds.astype(int)))
    full = client.chunkedgraph.level2_chunk_graph(base)
    assert 0 < len(edges) < len(full)
    reps = client.l2cache.get_l2data(np.unique(edges).tolist(), attributes=["rep_coord_nm"])
    xyz = np.array([v["rep_coord_nm"] for v in reps.values()])
    assert np.abs(xyz - center).max() < half + l2.L2_SPAN_NM


def test_pcg_skeleton_of_expired_roots_matches_the_embedded_cable(server, client, fragments):
    server.reset_counts()
    source = PcgSkeletons(client, invalidation_d_nm=l2.L2_SPAN_NM)
    roots = [fragments["base"], fragments["partner"]]
    built = source.get_many(roots)
    assert set(built) == set(roots) and not source.failures
    for root in roots:
        sk = geometry.segment_skeleton(MOUSE, root)
        truth = _cable_nm(sk.vertices, sk.edges)
        assert str(built[root].units.units) == "nanometer"
        cable = built[root].cable_length
        assert float(getattr(cable, "magnitude", cable)) == pytest.approx(truth, rel=CABLE_TOLERANCE)
    counts = server.request_counts
    assert counts["lvl2_graph"] == len(roots)
    assert counts["l2cache_attributes"] >= len(roots)
    assert counts.get("skeletons", 0) == 0  # no precomputed layer involved


def test_a_root_without_l2_data_is_a_failure_with_a_reason(client, fragments, monkeypatch):
    partner, distractor = fragments["partner"], fragments["distractor"]
    real = l2.attributes

    def cache_lacks_partner(profile, l2_id):
        decoded = l2.decode_l2(l2_id)
        return {} if decoded and decoded[0] == partner else real(profile, l2_id)

    monkeypatch.setattr(l2, "attributes", cache_lacks_partner)
    unknown = 864691139999999999
    source = PcgSkeletons(client, invalidation_d_nm=l2.L2_SPAN_NM)
    built = source.get_many([partner, unknown, distractor])
    assert set(built) == {distractor}
    assert "not yet computed" in source.failures[partner]
    assert "HTTP 400" in source.failures[unknown] and "not a valid root id" in source.failures[unknown]


def test_a_crop_around_a_point_reads_a_bounded_level2_graph(server, client, fragments):
    base = fragments["base"]
    center = geometry.segment_skeleton(MOUSE, base).vertices[100].astype(np.float64)
    source = PcgSkeletons(client, invalidation_d_nm=l2.L2_SPAN_NM)
    whole = source.get_many([base])[base]
    server.reset_counts()
    crop = source.around(base, center, 5_000.0)
    assert 1 < len(crop.nodes) < len(whole.nodes)
    xyz = crop.nodes[["x", "y", "z"]].to_numpy()
    assert np.abs(xyz - center).max() < 5_000.0 + l2.L2_SPAN_NM
    assert np.linalg.norm(xyz - center, axis=1).min() < l2.L2_SPAN_NM  # the crop holds the point's cable
    assert server.request_counts["lvl2_graph"] == 1  # the bounded graph only, passed on to pcg_skel


def test_a_crop_source_gives_a_root_that_misses_the_box_whole(server, client, fragments):
    base = fragments["base"]
    vertices = geometry.segment_skeleton(MOUSE, base).vertices.astype(np.float64)
    far = vertices.max(axis=0) + 50_000.0  # no cable of the root within ±6 µm of this point
    pcg = PcgSkeletons(client, invalidation_d_nm=l2.L2_SPAN_NM)
    near = CroppedPcg(pcg, vertices[100], 6_000.0)
    away = CroppedPcg(pcg, far, 6_000.0)
    server.reset_counts()
    cropped = near.get_many([base])[base]
    whole = away.get_many([base])[base]
    assert len(cropped.nodes) < len(whole.nodes) == len(pcg.get_many([base])[base].nodes)
    assert server.request_counts["lvl2_graph"] == 3  # two bounded graphs (one empty), then the whole root
    assert away.failures == {} and near.failures == {}
