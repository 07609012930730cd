"""Chunkedgraph (PyChunkedGraph) routes of the embedded CAVE server: change logs, operation details, lineage,
root timestamps, latest-root checks, supervoxel→root lookups and the segmentation info."""

from __future__ import annotations

import json
import time
from collections import Counter

import numpy as np

from proofpilot.datastack.embedded import ids, watershed
from proofpilot.datastack.embedded.operation_details import SUPERVOXEL_BASE, operation_details_json
from proofpilot.datastack.embedded.proofread_table import root_of_supervoxel
from proofpilot.datastack.embedded.routing import (
    HttpError,
    Request,
    Response,
    Route,
    ServerContext,
    json_response,
    parse_bool,
    parse_int,
)

V1 = r"/segmentation/api/v1/table/(?P<table>[^/]+)"


def _root_list(req: Request, key: str) -> list[int]:
    data = req.json_body()
    values = data.get(key)
    if not isinstance(values, list):
        raise HttpError(400, f"request body needs a list {key!r}")
    try:
        return [int(v) for v in values]
    except (TypeError, ValueError):
        raise HttpError(400, f"{key} must be integers") from None


def _require_roots(ctx: ServerContext, roots: list[int]) -> None:
    bad = [r for r in roots if not ctx.lineage.exists(r)]
    if bad:
        raise HttpError(400, f"Some ids are not root ids: {bad[:5]}")


def _tabular_many(ctx: ServerContext, req: Request, table: str) -> Response:
    ctx.check_pcg_table(table)
    roots = list(dict.fromkeys(_root_list(req, "root_ids")))
    return Response(200, ctx.tabular.many(_states(ctx, roots)))


def _states(ctx: ServerContext, roots: list[int]) -> list[tuple[int, int, int]]:
    out = []
    for root in roots:
        state = ctx.lineage.state(root)
        if state is None:
            if not ctx.lineage.exists(root):
                raise HttpError(400, f"Some ids are not root ids: [{root}]")
            out.append((root, 0, 0))  # a fragment outside every proofread lineage: no relevant edits
        else:
            out.append((root, state.neuron, state.n_rows))
    return out


def _change_log(ctx: ServerContext, req: Request, table: str, root: str) -> Response:
    ctx.check_pcg_table(table)
    root_id = parse_int(root, "root id")
    ((_, neuron, n_rows),) = _states(ctx, [root_id])
    log = ctx.gen.neuron_log(neuron)
    merges = log.is_merge[:n_rows]
    users = [ctx.gen.user_id(u) for u in log.user[:n_rows].tolist()]
    user_info: dict[str, Counter] = {}
    for user, is_merge in zip(users, merges.tolist(), strict=True):
        user_info.setdefault(user, Counter(n_splits=0, n_mergers=0))[
            "n_mergers" if is_merge else "n_splits"
        ] += 1
    parents, _, _ = ctx.lineage.graph(root_id)
    past, stack = set(), [root_id]
    while stack:
        for p in parents.get(stack.pop(), ()):
            if p not in past:
                past.add(p)
                stack.append(p)
    return json_response(
        {
            "n_splits": int((~merges).sum()) if n_rows else 0,
            "n_mergers": int(merges.sum()) if n_rows else 0,
            "user_info": {u: dict(c) for u, c in user_info.items()},
            "operations_ids": log.operation_id[:n_rows].tolist() if n_rows else [],
            "past_ids": sorted(past),
        }
    )


def _operation_details(ctx: ServerContext, req: Request, table: str) -> Response:
    ctx.check_pcg_table(table)
    try:
        op_ids = json.loads(req.query.get("operation_ids", "[]"))
        op_ids = [int(o) for o in op_ids]
    except (TypeError, ValueError):
        raise HttpError(400, "operation_ids must be a JSON list of integers") from None
    return Response(200, operation_details_json(ctx.gen, op_ids))


def _ms_param(req: Request, name: str) -> float | None:
    """A Unix-seconds query parameter (as caveclient sends timestamps), in milliseconds; None if absent."""
    value = req.query.get(name)
    if value in (None, "", "None"):
        return None
    try:
        return float(value) * 1000.0
    except ValueError:
        raise HttpError(400, f"{name} parameter is not a valid unix timestamp") from None


def _lineage_multiple(ctx: ServerContext, req: Request, table: str) -> Response:
    ctx.check_pcg_table(table)
    roots = _root_list(req, "root_ids")
    _require_roots(ctx, roots)
    graph = ctx.lineage.lineage_graph(
        roots, _ms_param(req, "timestamp_past"), _ms_param(req, "timestamp_future")
    )
    return json_response(graph)


def _lineage_one(ctx: ServerContext, req: Request, table: str, root: str) -> Response:
    ctx.check_pcg_table(table)
    roots = [parse_int(root, "root id")]
    _require_roots(ctx, roots)
    return json_response(
        ctx.lineage.lineage_graph(roots, _ms_param(req, "timestamp_past"), _ms_param(req, "timestamp_future"))
    )


def _root_timestamps(ctx: ServerContext, req: Request, table: str) -> Response:
    ctx.check_pcg_table(table)
    roots = _root_list(req, "node_ids")
    _require_roots(ctx, roots)
    if parse_bool(req.query.get("latest")):
        # until when each root was latest: the query time for latest roots, else its first child's creation
        now_ms = _ms_param(req, "timestamp") or time.time() * 1000.0
        stamps = [_superseded_ms(ctx, r, now_ms) / 1000.0 for r in roots]
    else:
        stamps = [ctx.lineage.timestamp_ms(r) / 1000.0 for r in roots]
    return json_response({"timestamp": stamps})


def _superseded_ms(ctx: ServerContext, root: int, now_ms: float) -> float:
    _, children, _ = ctx.lineage.graph(root)
    kids = children.get(root, [])
    return min(ctx.lineage.timestamp_ms(k) for k in kids) if kids else now_ms


def _is_latest(ctx: ServerContext, req: Request, table: str) -> Response:
    ctx.check_pcg_table(table)
    roots = _root_list(req, "node_ids")
    _require_roots(ctx, roots)
    return json_response({"is_latest": [ctx.lineage.is_latest(r) for r in roots]})


def _past_id_mapping(ctx: ServerContext, req: Request, table: str) -> Response:
    ctx.check_pcg_table(table)
    roots = _root_list(req, "root_ids")
    _require_roots(ctx, roots)
    past = _ms_param(req, "timestamp_past")
    return json_response(
        {"past_id_map": {str(r): ctx.lineage.past_ids(r, past) for r in roots}, "future_id_map": {}}
    )


def _sv_root(ctx: ServerContext, sv: int) -> int:
    """Root at the materialization time of a supervoxel the embedded datastack hands out (0 if unknown)."""
    root = root_of_supervoxel(ctx.profile.name, sv)
    if root is not None:
        return root
    op, k = divmod(sv - SUPERVOXEL_BASE, 8)
    if sv < SUPERVOXEL_BASE or not ctx.gen.operation_exists(op):
        return 0
    owners = ids.op_owner(op)
    log = ctx.gen.neuron_log(owners[0])
    if log.is_merge[log.row_of(op)] or k < 2:
        return ids.root_id(ids.RootKind.NEURON, owners[0])
    if len(owners) == 2:
        return ids.root_id(ids.RootKind.NEURON, owners[1])
    return ids.root_id(ids.RootKind.FOREIGN, op)


def _timestamp_ms(req: Request) -> int | None:
    """The `timestamp` query parameter as PyChunkedGraph reads it: float s -> µs datetime -> ms (floor)."""
    value = req.query.get("timestamp")
    if value in (None, "", "None"):
        return None
    try:
        return round(float(value) * 1e6) // 1000
    except ValueError:
        raise HttpError(400, "timestamp parameter is not a valid unix timestamp") from None


def _sv_root_at(ctx: ServerContext, sv: int, ms: int | None) -> int:
    """Root of a supervoxel at `ms` (None: at materialization, `_sv_root`); 0 if unknown."""
    root = _sv_root(ctx, sv)
    if ms is None or root == 0:
        return root
    if root_of_supervoxel(ctx.profile.name, sv) is not None:
        neuron = ctx.gen.neuron_of_root(root)
        return root if neuron is None else ctx.lineage.neuron_root_at(neuron, ms)
    op, k = divmod(sv - SUPERVOXEL_BASE, 8)
    return ctx.lineage.operation_sv_root_at(op, k, ms)


def _node_root(ctx: ServerContext, req: Request, table: str, node: str) -> Response:
    ctx.check_pcg_table(table)
    root = _sv_root_at(ctx, parse_int(node, "node id"), _timestamp_ms(req))
    if root == 0:
        raise HttpError(400, f"node {node} not found")
    return json_response({"root_id": root})


def _roots_binary(ctx: ServerContext, req: Request, table: str) -> Response:
    ctx.check_pcg_table(table)
    body = req.body
    if req.headers.get("content-encoding", "").lower() == "gzip":  # cloud-volume gzips bodies over 1 MB
        import gzip

        body = gzip.decompress(body)
    svs = np.frombuffer(body, dtype=np.uint64)
    ms = _timestamp_ms(req)
    roots = np.array([_sv_root_at(ctx, int(s), ms) for s in svs.tolist()], dtype=np.uint64)
    ws = watershed.is_watershed(svs)  # the watershed's supervoxels map to roots at the timestamp
    if ws.any():
        roots[ws] = watershed.roots_at(ctx.profile.name, svs[ws], ms)
    return Response(200, roots.tobytes(), content_type="application/octet-stream")


def _oldest_timestamp(ctx: ServerContext, req: Request, table: str) -> Response:
    ctx.check_pcg_table(table)
    return json_response({"iso": str(ctx.gen.ms_to_datetime(ctx.gen.t0_ms))})


def _segmentation_info(ctx: ServerContext, req: Request, table: str) -> Response:
    ctx.check_pcg_table(table)
    p = ctx.profile
    return json_response(
        {
            "app": {"supported_api_versions": [0, 1]},
            "chunks_start_at_voxel_offset": True,
            "data_dir": f"precomputed://{ctx.base_url}/segmentation/data/{p.pcg_table}",
            "data_type": "uint64",
            "graph": {
                "bounding_box": [2048, 2048, 512],
                "chunk_size": [256, 256, 512],
                "n_layers": 10,
                "n_bits_for_layer_id": 8,
                "cv_mip": 0,
                "spatial_bit_masks": {},
            },
            "mesh": "graphene_meshes",
            "mesh_metadata": {"uniform_draco_grid_size": 21.0, "unsharded_mesh_dir": "dynamic"},
            "num_channels": 1,
            "scales": [watershed.scale(p.name)],
            "sharded_mesh": True,
            "type": "segmentation",
            "verify_mesh": False,
        }
    )


ROUTES = [
    Route.make(
        "segmentation_info",
        "GET",
        r"/segmentation/table/(?P<table>[^/]+)/info",
        _segmentation_info,
        bootstrap=True,
    ),
    Route.make("tabular_change_log_many", "GET,POST", V1 + r"/tabular_change_log_many", _tabular_many),
    Route.make("change_log", "GET", V1 + r"/root/(?P<root>[^/]+)/change_log", _change_log),
    Route.make("operation_details", "GET", V1 + r"/operation_details", _operation_details),
    Route.make("lineage_graph_multiple", "POST", V1 + r"/lineage_graph_multiple", _lineage_multiple),
    Route.make("lineage_graph", "GET", V1 + r"/root/(?P<root>[^/]+)/lineage_graph", _lineage_one),
    Route.make("root_timestamps", "POST", V1 + r"/root_timestamps", _root_timestamps),
    Route.make("is_latest_roots", "POST", V1 + r"/is_latest_roots", _is_latest),
    Route.make("past_id_mapping", "GET,POST", V1 + r"/past_id_mapping", _past_id_mapping),
    Route.make("node_root", "GET", V1 + r"/node/(?P<node>[^/]+)/root", _node_root),
    Route.make("roots_binary", "POST", V1 + r"/roots_binary", _roots_binary),
    Route.make("oldest_timestamp", "GET", V1 + r"/oldest_timestamp", _oldest_timestamp),
]
