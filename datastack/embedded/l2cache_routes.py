"""Level-2 routes of the embedded CAVE server, for pcg_skel and caveclient's L2 calls on any root id.

Chunkedgraph: ``GET node/{root}/lvl2_graph`` (optional ``bounds`` in voxels, answered with the ``Used-Bounds``
header caveclient checks) and ``GET node/{root}/leaves?stop_layer=2``. L2 cache (``/l2cache/api/v1``):
``table_mapping``, ``attribute_metadata`` and ``POST table/{t}/attributes`` (``{}`` for an unknown L2 id).
The L2 nodes come from l2.py; current and expired roots are answered alike.
"""

from __future__ import annotations

import numpy as np

from proofpilot.datastack.embedded import l2
from proofpilot.datastack.embedded.routing import (
    HttpError,
    Request,
    Response,
    Route,
    ServerContext,
    json_response,
    parse_int,
)

V1 = r"/segmentation/api/v1/table/(?P<table>[^/]+)"
L2C = r"/l2cache/api/v1"
ATTRIBUTES = {
    "rep_coord_nm": "uint64",
    "size_nm3": "uint32",
    "area_nm2": "uint32",
    "max_dt_nm": "uint16",
    "mean_dt_nm": "float16",
}


def _level2_of(ctx: ServerContext, root: str) -> l2.Level2:
    root_id = parse_int(root, "root id")
    level = l2.level2(ctx.profile.name, root_id)
    if level is None:
        raise HttpError(400, f"{root_id} is not a valid root id")  # PCG answers an unknown node with 400
    return level


def _bounds_nm(ctx: ServerContext, text: str) -> tuple[np.ndarray, np.ndarray]:
    """PCG's ``x0-x1_y0-y1_z0-z1`` (voxels at the segmentation resolution) as a (lo, hi) box in nm."""
    try:
        box = np.array([[float(v) for v in axis.split("-")] for axis in text.split("_")])
    except ValueError:
        raise HttpError(400, f"bounds {text!r} are not x0-x1_y0-y1_z0-z1") from None
    if box.shape != (3, 2):
        raise HttpError(400, f"bounds {text!r} are not x0-x1_y0-y1_z0-z1")
    res = np.asarray(ctx.profile.segmentation_resolution_nm, dtype=np.float64)
    return box[:, 0] * res, box[:, 1] * res


def _lvl2_graph(ctx: ServerContext, req: Request, table: str, root: str) -> Response:
    ctx.check_pcg_table(table)
    level = _level2_of(ctx, root)
    edges = level.edges
    bounds = req.query.get("bounds")
    if bounds:
        keep = set(level.l2_ids[l2.in_bounds(level, *_bounds_nm(ctx, bounds))].tolist())
        edges = edges[[a in keep and b in keep for a, b in edges.tolist()]].reshape(-1, 2)
    response = json_response({"edge_graph": edges.tolist()})
    response.headers["Used-Bounds"] = "True" if bounds else "False"
    return response


def _leaves(ctx: ServerContext, req: Request, table: str, root: str) -> Response:
    ctx.check_pcg_table(table)
    if parse_int(req.query.get("stop_layer", "1"), "stop_layer") != 2:
        raise HttpError(400, "the embedded chunkedgraph answers leaves only down to stop_layer=2")
    level = _level2_of(ctx, root)
    ids = level.l2_ids
    bounds = req.query.get("bounds")
    if bounds:
        ids = ids[l2.in_bounds(level, *_bounds_nm(ctx, bounds))]
    return json_response({"leaf_ids": ids.tolist()})


def _table_mapping(ctx: ServerContext, req: Request) -> Response:
    table = ctx.profile.pcg_table
    return json_response(
        {table: {"cv_path": f"graphene://{ctx.base_url}/segmentation/table/{table}", "l2cache_id": table}}
    )


def _attribute_metadata(ctx: ServerContext, req: Request) -> Response:
    return json_response(ATTRIBUTES)


def _attributes(ctx: ServerContext, req: Request, table: str) -> Response:
    ctx.check_pcg_table(table)
    values = req.json_body().get("l2_ids")
    if not isinstance(values, list):
        raise HttpError(400, "request body needs a list 'l2_ids'")
    try:
        wanted = [int(v) for v in values]
    except (TypeError, ValueError):
        raise HttpError(400, "l2_ids must be integers") from None
    names = [n for n in req.query.get("attribute_names", "").split(",") if n] or list(ATTRIBUTES)
    unknown = sorted(set(names) - set(ATTRIBUTES))
    if unknown:
        raise HttpError(400, f"unknown attribute(s): {', '.join(unknown)}")
    out = {}
    for l2_id in wanted:
        found = l2.attributes(ctx.profile.name, l2_id)
        out[str(l2_id)] = {n: found[n] for n in names} if found else {}
    return json_response(out)


ROUTES = [
    Route.make("lvl2_graph", "GET", V1 + r"/node/(?P<root>[^/]+)/lvl2_graph", _lvl2_graph),
    Route.make("leaves", "GET", V1 + r"/node/(?P<root>[^/]+)/leaves", _leaves),
    Route.make("l2cache_table_mapping", "GET", L2C + r"/table_mapping", _table_mapping, bootstrap=True),
    Route.make("l2cache_metadata", "GET", L2C + r"/attribute_metadata", _attribute_metadata, bootstrap=True),
    Route.make("l2cache_attributes", "POST", L2C + r"/table/(?P<table>[^/]+)/attributes", _attributes),
]
