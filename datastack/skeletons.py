"""Skeletons for root ids: cloud-volume reads a precomputed skeleton layer, navis makes TreeNeurons in nm.

The embedded datastack names its layer in its datastack info (``skeleton_source``), as CAVE does. A real
datastack has no single well-known skeleton layer reachable without credentials, so the caller passes one
explicitly (``layer_url``): any ``precomputed://`` source cloud-volume can read (``gs://``, ``s3://``, ``https://``),
e.g. a bucket of skeletons precomputed for the pinned materialization. cloud-volume and navis are imported
lazily (navis costs ~2–3 s).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import requests

from proofpilot.core.errors import ConfigError, DataError
from proofpilot.datastack.client import is_local

if TYPE_CHECKING:
    import navis

log = logging.getLogger(__name__)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # cloud-volume colours some messages


def skeleton_layer_url(
    datastack: str,
    server_url: str | None = None,
    layer_url: str | None = None,
    datastack_info: dict | None = None,
    timeout_s: float = 10.0,
) -> str:
    """The precomputed skeleton layer of a datastack: `layer_url` if given, else the ``skeleton_source`` of
    its datastack info (`datastack_info`, or read over HTTP from a server on this machine, e.g. the embedded
    one).

    A remote datastack's info is not fetched here: its skeleton service holds only current roots, so the
    caller passes a layer explicitly."""
    if layer_url:
        return layer_url
    source = (datastack_info or {}).get("skeleton_source")
    if not source and server_url and is_local(server_url):
        source = _info_from_server(server_url, datastack, timeout_s).get("skeleton_source")
    if source:
        return str(source)
    raise ConfigError(
        f"no skeleton layer known for datastack {datastack!r}: pass a precomputed skeleton layer URL "
        "(e.g. precomputed://gs://bucket/path) or use an embedded datastack with its server URL"
    )


def _info_from_server(server_url: str, datastack: str, timeout_s: float) -> dict:
    """The datastack info as CAVE's info service serves it (the same route caveclient reads)."""

    url = f"{server_url.rstrip('/')}/info/api/v2/datastack/full/{datastack}"
    try:
        response = requests.get(url, timeout=timeout_s)
    except requests.RequestException as exc:
        raise DataError(f"cannot read the datastack info of {datastack!r} from {server_url}: {exc}") from None
    if response.status_code == 404:
        return {}
    if not response.ok:
        raise DataError(f"datastack info of {datastack!r} from {server_url}: HTTP {response.status_code}")
    try:
        info = response.json()
    except ValueError:
        raise DataError(f"datastack info of {datastack!r} from {server_url} is not JSON") from None
    return info if isinstance(info, dict) else {}


def load_skeletons(
    layer_url: str,
    root_ids: Iterable[int],
    *,
    parallel: int = 1,
    timeout_s: float = 30.0,
    missing_ok: bool = False,
) -> dict[int, navis.TreeNeuron]:
    """{root id: TreeNeuron in nm} for every root id; DataError for an unreachable layer or an unknown id
    (with `missing_ok`, unknown ids are simply absent from the answer).

    `parallel` is cloud-volume's download parallelism; `timeout_s` bounds the reachability check of an HTTP
    layer."""
    ids = list(dict.fromkeys(int(r) for r in root_ids))
    if not ids:
        return {}
    skeletons = _read(layer_url, ids, parallel, timeout_s, missing_ok)
    return {root: to_tree_neuron(skeletons[root], root) for root in ids if root in skeletons}


def to_tree_neuron(skeleton, root_id: int) -> navis.TreeNeuron:
    """A cloud-volume Skeleton (physical space, nm) as a navis TreeNeuron with radii and no guessed soma.

    Edges that already form a child→parent forest (as the embedded layer writes them) become the node table
    directly (~4× faster); anything else goes through `navis.edges2neuron`, which orients and de-cycles."""
    # lazy: navis takes seconds to import; only skeleton conversion needs it
    import navis

    # lazy: pandas is only needed on this path
    import pandas as pd

    vertices = np.asarray(skeleton.vertices, dtype=np.float64)
    edges = np.asarray(skeleton.edges, dtype=np.int64).reshape(-1, 2)
    radius = getattr(skeleton, "radius", None)
    parent = _parent_array(edges, len(vertices))
    if parent is None:
        neuron = navis.edges2neuron(edges, vertices=vertices, units="nm", id=int(root_id), soma=None)
        node_ids = neuron.nodes["node_id"].to_numpy()
        if radius is not None and len(radius) == len(vertices):
            neuron.nodes["radius"] = np.asarray(radius, dtype=np.float64)[node_ids]
        return neuron
    nodes = pd.DataFrame(
        {
            "node_id": np.arange(len(vertices)),
            "parent_id": parent,
            "x": vertices[:, 0],
            "y": vertices[:, 1],
            "z": vertices[:, 2],
        }
    )
    if radius is not None and len(radius) == len(vertices):
        nodes["radius"] = np.asarray(radius, dtype=np.float64)
    return navis.TreeNeuron(nodes, units="nm", id=int(root_id), soma=None)


def _parent_array(edges: np.ndarray, n: int) -> np.ndarray | None:
    """Parent index per vertex if `edges` are (child, parent) pairs of a forest, else None."""
    if len(edges) and (edges.min() < 0 or edges.max() >= n):
        return None
    parent = np.full(n, -1, dtype=np.int64)
    parent[edges[:, 0]] = edges[:, 1]
    if len(np.unique(edges[:, 0])) != len(edges):
        return None
    jump = parent.copy()
    for _ in range(int(n).bit_length() + 1):  # pointer doubling: jump = the 2^k-th ancestor
        alive = np.flatnonzero(jump >= 0)
        if len(alive) == 0:
            return parent
        jump[alive] = jump[jump[alive]]
    return None  # some chain never reaches a root: a cycle


def _preflight(layer_url: str, timeout_s: float) -> None:
    """Fail fast with one line on an HTTP layer that is down (cloud-files would retry for ~15 s, and has no
    timeout of its own)."""

    base = layer_url.removeprefix("precomputed://")
    if not base.startswith(("http://", "https://")):
        return
    try:
        response = requests.get(f"{base.rstrip('/')}/info", timeout=timeout_s)
    except requests.RequestException as err:
        raise DataError(f"skeleton layer {layer_url} is unreachable: {_one_line(err)}") from None
    if response.status_code != 200:
        raise DataError(
            f"skeleton layer {layer_url} is not a precomputed layer: GET info gave HTTP "
            f"{response.status_code}"
        )


def _read(layer_url: str, ids: list[int], parallel: int, timeout_s: float, missing_ok: bool = False) -> dict:
    # lazy: cloud-volume takes seconds to import; only layer reads need it
    from cloudvolume import CloudVolume

    # lazy: cloud-volume takes seconds to import; only layer reads need it
    from cloudvolume.exceptions import SkeletonDecodeError

    _preflight(layer_url, timeout_s)
    try:
        volume = CloudVolume(layer_url, progress=False, cache=False, parallel=parallel)
    except Exception as err:  # cloud-volume raises many types (HTTP, JSON, info errors)
        raise DataError(
            f"skeleton layer {layer_url} is unreachable or not a precomputed layer: {_one_line(err)}"
        ) from None
    try:
        found = volume.skeleton.get(ids, allow_missing=True)
    except SkeletonDecodeError as err:
        raise DataError(
            f"skeleton layer {layer_url} returned an unreadable skeleton: {_one_line(err)}"
        ) from None
    except Exception as err:
        raise DataError(f"skeleton layer {layer_url} could not be read: {_one_line(err)}") from None
    by_id = {int(sk.id): sk for sk in found}
    missing = [r for r in ids if r not in by_id]
    if missing and not missing_ok:
        shown = ", ".join(str(r) for r in missing[:5]) + (" …" if len(missing) > 5 else "")
        raise DataError(f"no skeleton for {len(missing)} root id(s) in {layer_url}: {shown}")
    log.debug("read %d skeletons from %s", len(by_id), layer_url)
    return by_id


def _one_line(err: BaseException) -> str:
    text = _ANSI.sub("", str(err)).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:300]
