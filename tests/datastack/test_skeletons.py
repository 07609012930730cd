"""The embedded precomputed skeleton layer, read over HTTP by cloud-volume into navis TreeNeurons."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from proofpilot.core.errors import ConfigError, DataError
from proofpilot.datastack import skeletons
from proofpilot.datastack.embedded import geometry, ids, skeleton_layer
from proofpilot.datastack.embedded.generator import get_generator
from proofpilot.datastack.embedded.ids import RootKind
from proofpilot.datastack.embedded.server import start_server

MOUSE = "minnie65_synthetic"
FEW_NM = 5.0


@pytest.fixture(scope="module")
def server():
    with start_server(MOUSE) as srv:
        yield srv


@pytest.fixture(scope="module")
def layer(server) -> str:
    return skeletons.skeleton_layer_url(MOUSE, server_url=server.url)


def test_layer_info_describes_a_segmentation_layer_with_skeletons():
    status, headers, body = skeleton_layer.handle(MOUSE, "info")
    assert status == 200 and headers["Content-Type"] == "application/json"
    info = json.loads(body)
    assert info["type"] == "segmentation" and info["data_type"] == "uint64"
    assert info["skeletons"] == "skeletons"
    assert info["scales"][0]["resolution"] == [8, 8, 40]
    status, _, body = skeleton_layer.handle("fafb_synthetic", "info")
    assert json.loads(body)["scales"][0]["resolution"] == [16, 16, 40]
    status, _, body = skeleton_layer.handle(MOUSE, "skeletons/info")
    sk_info = json.loads(body)
    assert sk_info["@type"] == "neuroglancer_skeletons"
    assert sk_info["vertex_attributes"] == [{"id": "radius", "data_type": "float32", "num_components": 1}]
    assert sk_info["transform"] == [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0]


@pytest.mark.parametrize(
    ("profile", "subpath"),
    [
        ("no_such_profile", "info"),
        (MOUSE, "skeletons/12345"),
        (MOUSE, f"skeletons/{ids.root_id(RootKind.NEURON, 10**6)}"),
        (MOUSE, "skeletons/not-a-number"),
        (MOUSE, "mesh/info"),
        (MOUSE, "skeletons/1/2"),
    ],
)
def test_unknown_things_are_404(profile, subpath):
    assert skeleton_layer.handle(profile, subpath)[0] == 404


def _cloud_files() -> set[str]:
    """Files where cloud-volume and cloud-files write (conftest points these into the private HOME)."""
    home = os.environ["HOME"]
    places = [os.environ["CLOUD_VOLUME_DIR"], os.environ["CLOUD_FILES_LOCK_DIR"]]
    places += [os.path.join(home, ".cloudvolume"), os.path.join(home, ".cloudfiles")]
    return {os.path.join(d, f) for place in places for d, _, files in os.walk(place) for f in files}


def _one_merge_and_one_split(neuron: int) -> list[tuple[int, bool]]:
    log = get_generator(MOUSE).neuron_log(neuron)
    picks = []
    for merge in (True, False):
        rows = np.flatnonzero(log.is_merge == merge)
        if len(rows):
            picks.append((int(log.operation_id[rows[len(rows) // 2]]), merge))
    return picks


def test_fragments_of_100_sampled_mouse_neurons_load_through_cloud_volume_into_navis(layer):
    gen = get_generator(MOUSE)
    neurons = np.random.default_rng(23).choice(gen.n_neurons, size=100, replace=False).tolist()
    wanted: dict[int, list[tuple[str, int, bool]]] = {}
    for neuron in neurons:
        for op, merge in _one_merge_and_one_split(neuron):
            for role, root in geometry.op_fragments(MOUSE, op).items():
                if role in {"base", "partner", "distractor", "before_split", "foreign"}:
                    wanted.setdefault(root, []).append((role, op, merge))
    before = _cloud_files()
    loaded = skeletons.load_skeletons(layer, list(wanted))
    assert set(loaded) == set(wanted)
    assert _cloud_files() == before  # cache=False: cloud-volume wrote no cache, lock or secret file
    for root, uses in wanted.items():
        neuron = loaded[root]
        served = geometry.segment_skeleton(MOUSE, root)
        assert str(neuron.units) == "1 nanometer" and int(neuron.id) == root
        assert neuron.n_nodes == len(served.vertices) and neuron.n_trees == 1
        np.testing.assert_allclose(
            neuron.nodes[["x", "y", "z"]].to_numpy(), served.vertices, rtol=0, atol=1e-3
        )
        np.testing.assert_allclose(neuron.nodes["radius"].to_numpy(), served.radii)
        for role, op, merge in uses:
            if role in {"base", "partner"}:  # both merge fragments reach the interface point
                owner = ids.op_owner(op)[0]
                p = geometry.op_points_nm(MOUSE, owner, np.array([op]), np.array([merge]))[0]
                xyz = neuron.nodes[["x", "y", "z"]].to_numpy()
                assert np.linalg.norm(xyz - p, axis=1).min() < FEW_NM


def test_unknown_root_id_is_a_one_line_data_error(layer):
    missing = ids.root_id(RootKind.NEURON, 10**6)
    with pytest.raises(DataError, match=f"no skeleton for 1 root id.*{missing}") as err:
        skeletons.load_skeletons(layer, [ids.root_id(RootKind.NEURON, 0), missing])
    assert "\n" not in str(err.value)


def test_unreachable_layer_is_a_one_line_data_error(server):
    with pytest.raises(DataError, match="unreachable") as err:
        skeletons.load_skeletons("precomputed://http://127.0.0.1:9/skeletons/x", [1])
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match="not a precomputed layer: GET info gave HTTP 404") as err:
        skeletons.load_skeletons(f"precomputed://{server.url}/no/layer/here", [1])
    assert "\n" not in str(err.value)


def test_layer_url_for_embedded_and_real_datastacks(server):
    # the embedded server names its layer in the datastack info it serves over HTTP, as CAVE does
    assert (
        skeletons.skeleton_layer_url(MOUSE, server_url=server.url + "/")
        == f"precomputed://{server.url}/skeletons/minnie65_synthetic"
    )
    info = {"skeleton_source": "precomputed://https://example.org/skel"}
    assert skeletons.skeleton_layer_url("minnie65_public", datastack_info=info) == info["skeleton_source"]
    assert (
        skeletons.skeleton_layer_url("minnie65_public", layer_url="precomputed://gs://b/s")
        == "precomputed://gs://b/s"
    )
    with pytest.raises(ConfigError, match="no skeleton layer known"):
        skeletons.skeleton_layer_url("minnie65_public", server_url="https://minnie.microns-daf.com")
    assert skeletons.load_skeletons("precomputed://http://127.0.0.1:9/x", []) == {}


def test_edges_in_any_orientation_become_one_tree():
    from cloudvolume import Skeleton

    vertices = np.array([[0, 0, 0], [100, 0, 0], [200, 0, 0], [200, 100, 0]], dtype=np.float32)
    for edges in ([[1, 0], [2, 1], [3, 2]], [[0, 1], [2, 1], [2, 3]]):  # child→parent, then mixed
        sk = Skeleton(
            vertices, np.array(edges, dtype=np.uint32), radii=np.ones(4, np.float32), space="physical"
        )
        neuron = skeletons.to_tree_neuron(sk, 7)
        assert neuron.n_nodes == 4 and neuron.n_trees == 1
        assert neuron.cable_length == pytest.approx(300.0)
