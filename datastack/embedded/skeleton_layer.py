"""The embedded datastack's skeletons as a Neuroglancer precomputed segmentation layer for cloud-volume.

`handle(profile, subpath)` answers ``GET /skeletons/{profile}/{subpath}``:

- ``info``: the segmentation layer (uint64, one scale at the profile's segmentation resolution, skeletons in
  ``skeletons/``), built with cloud-volume's own ``CloudVolume.create_new_info``;
- ``skeletons/info``: ``neuroglancer_skeletons`` with an identity transform (vertices are nm) and one vertex
  attribute, radius float32;
- ``skeletons/<root id>``: the precomputed binary skeleton, encoded by
  ``cloudvolume.Skeleton.to_precomputed``.

Unknown profiles, paths and root ids answer 404. No image chunks are served: the layer is there for its
skeletons.
"""

from __future__ import annotations

import functools
import json

import numpy as np

from proofpilot.datastack.embedded import geometry
from proofpilot.datastack.embedded.profiles import PROFILES, get_profile

SKELETON_DIR = "skeletons"
RADIUS_ATTRIBUTE = {"id": "radius", "data_type": "float32", "num_components": 1}
SKELETON_INFO = {
    "@type": "neuroglancer_skeletons",
    "transform": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0],  # identity: vertices are in nm
    "vertex_attributes": [RADIUS_ATTRIBUTE],
    "sharding": None,
    "spatial_index": None,
}
_JSON = {"Content-Type": "application/json"}
_BINARY = {"Content-Type": "application/octet-stream"}
_NOT_FOUND = (404, {"Content-Type": "text/plain"}, b"not found")

Response = tuple[int, dict[str, str], bytes]


def handle(profile_name: str, subpath: str) -> Response:
    """(status, headers, body) for ``GET /skeletons/{profile_name}/{subpath}``."""
    if profile_name not in PROFILES:
        return _NOT_FOUND
    path = subpath.strip("/")
    if path == "info":
        return 200, dict(_JSON), layer_info_bytes(profile_name)
    if path == f"{SKELETON_DIR}/info":
        return 200, dict(_JSON), json.dumps(SKELETON_INFO).encode()
    head, _, name = path.rpartition("/")
    if head != SKELETON_DIR or not name.isdigit():
        return _NOT_FOUND
    body = skeleton_bytes(profile_name, int(name))
    return _NOT_FOUND if body is None else (200, dict(_BINARY), body)


@functools.cache
def layer_info_bytes(profile_name: str) -> bytes:
    """The layer's ``info`` JSON, made by cloud-volume."""
    # lazy: cloud-volume takes seconds to import; only layer reads need it
    from cloudvolume import CloudVolume

    profile = get_profile(profile_name)
    resolution = np.asarray(profile.segmentation_resolution_nm)
    info = CloudVolume.create_new_info(
        num_channels=1,
        layer_type="segmentation",
        data_type="uint64",
        encoding="raw",
        resolution=resolution.tolist(),
        voxel_offset=[0, 0, 0],
        volume_size=np.ceil(np.asarray(profile.volume_size_nm) / resolution).astype(int).tolist(),
        chunk_size=[256, 256, 32],
        skeletons=SKELETON_DIR,
    )
    return json.dumps(info).encode()


def skeleton_bytes(profile_name: str, root_id: int) -> bytes | None:
    """The precomputed encoding of one root's skeleton; None if the root id does not exist."""
    # lazy: cloud-volume takes seconds to import; only layer reads need it
    from cloudvolume import Skeleton

    sk = geometry.segment_skeleton(profile_name, int(root_id))
    if sk is None:
        return None
    skeleton = Skeleton(
        sk.vertices,
        sk.edges,
        radii=sk.radii,
        segid=int(root_id),
        space="physical",
        extra_attributes=[RADIUS_ATTRIBUTE],
    )
    return skeleton.to_precomputed()
