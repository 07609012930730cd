"""Materialization-engine routes of the embedded CAVE server: versions, table metadata and Arrow
table queries.
"""

from __future__ import annotations

import operator
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from proofpilot.datastack.embedded.encoding import arrow_stream
from proofpilot.datastack.embedded.proofread_table import proofread_table
from proofpilot.datastack.embedded.routing import (
    HttpError,
    Request,
    Response,
    Route,
    ServerContext,
    json_response,
    parse_int,
)

DS = r"/materialize/api/v[23]/datastack/(?P<datastack>[^/]+)"
VER = DS + r"/version/(?P<version>[^/]+)"
_COMPARISONS = {
    "filter_greater_dict": operator.gt,
    "filter_less_dict": operator.lt,
    "filter_greater_equal_dict": operator.ge,
    "filter_less_equal_dict": operator.le,
}


def _version_metadata(ctx: ServerContext) -> dict:
    p = ctx.profile
    ts = datetime.fromisoformat(p.materialization_timestamp).replace(tzinfo=UTC)
    return {
        "version": p.materialization_version,
        "id": p.materialization_version,
        "datastack": p.name,
        "time_stamp": ts.strftime("%Y-%m-%dT%H:%M:%S.%f"),
        "expires_on": (ts + timedelta(days=3650)).strftime("%Y-%m-%dT%H:%M:%S.%f"),
        "valid": True,
        "status": "AVAILABLE",
        "is_merged": True,
        "parent_version": None,
    }


def _check_version(ctx: ServerContext, datastack: str, version: str) -> None:
    ctx.check_datastack(datastack)
    if parse_int(version, "version") != ctx.profile.materialization_version:
        raise HttpError(404, f"version {version} not found for datastack {datastack!r}")


def _check_table(ctx: ServerContext, datastack: str, version: str, table: str) -> None:
    _check_version(ctx, datastack, version)
    if table != ctx.profile.proofread_table:
        raise HttpError(404, f"table {table!r} not found in datastack {datastack!r} version {version}")


def _table_metadata(ctx: ServerContext) -> dict:
    p = ctx.profile
    vx, vy, vz = p.annotation_resolution_nm
    return {
        "id": 1,
        "table_name": p.proofread_table,
        "aligned_volume": p.aligned_volume,
        "schema": p.proofread_schema,
        "schema_type": p.proofread_schema,
        "description": f"proofread neurons of the synthetic datastack {p.name} (imitates {p.imitates})",
        "notice_text": None,
        "reference_table": None,
        "flat_segmentation_source": None,
        "segmentation_source": f"graphene://{ctx.base_url}/segmentation/table/{p.pcg_table}",
        "pcg_table_name": p.pcg_table,
        "user_id": "0",
        "created": "2021-01-01T00:00:00.000000",
        "last_modified": p.materialization_timestamp,
        "valid": True,
        "read_permission": "PUBLIC",
        "write_permission": "PRIVATE",
        "voxel_resolution_x": vx,
        "voxel_resolution_y": vy,
        "voxel_resolution_z": vz,
    }


def _versions(ctx: ServerContext, req: Request, datastack: str) -> Response:
    ctx.check_datastack(datastack)
    return json_response([ctx.profile.materialization_version])


def _versions_metadata(ctx: ServerContext, req: Request, datastack: str) -> Response:
    ctx.check_datastack(datastack)
    return json_response([_version_metadata(ctx)])


def _version(ctx: ServerContext, req: Request, datastack: str, version: str) -> Response:
    _check_version(ctx, datastack, version)
    return json_response(_version_metadata(ctx))


def _tables(ctx: ServerContext, req: Request, datastack: str, version: str) -> Response:
    _check_version(ctx, datastack, version)
    return json_response([ctx.profile.proofread_table])


def _tables_metadata(ctx: ServerContext, req: Request, datastack: str, version: str) -> Response:
    _check_version(ctx, datastack, version)
    return json_response([_table_metadata(ctx)])


def _metadata(ctx: ServerContext, req: Request, datastack: str, version: str, table: str) -> Response:
    _check_table(ctx, datastack, version, table)
    return json_response(_table_metadata(ctx))


def _count(ctx: ServerContext, req: Request, datastack: str, version: str, table: str) -> Response:
    _check_table(ctx, datastack, version, table)
    return json_response(ctx.profile.n_neurons)


def _column(df: pd.DataFrame, name: str) -> pd.Series:
    if name not in df.columns:
        raise HttpError(400, f"column {name!r} is not in the table")
    return df[name]


def filter_table(df: pd.DataFrame, table: str, body: dict) -> pd.DataFrame:
    """Apply a MaterializationEngine query body (filters, select_columns, offset, limit) to a table."""
    mask = np.ones(len(df), dtype=bool)
    for key, keep in (("filter_in_dict", True), ("filter_notin_dict", False)):
        for col, values in (body.get(key) or {}).get(table, {}).items():
            mask &= _column(df, col).isin(list(values)).to_numpy() == keep
    for col, value in (body.get("filter_equal_dict") or {}).get(table, {}).items():
        mask &= (_column(df, col) == value).to_numpy()
    for key, compare in _COMPARISONS.items():
        for col, value in (body.get(key) or {}).get(table, {}).items():
            mask &= compare(_column(df, col), value).to_numpy()
    out = df[mask] if not mask.all() else df
    select = body.get("select_columns")
    if select is None and body.get("select_column_map"):
        select = body["select_column_map"].get(table)
    if select:
        cols: list[str] = []
        for name in select:
            if name.endswith("_position") and f"{name}_x" in df.columns:
                cols += [f"{name}_x", f"{name}_y", f"{name}_z"]
            else:
                _column(df, name)
                cols.append(name)
        out = out[cols]
    offset = int(body.get("offset") or 0)
    limit = body.get("limit")
    if offset or limit is not None:
        out = out.iloc[offset : None if limit is None else offset + int(limit)]
    return out


def _query(ctx: ServerContext, req: Request, datastack: str, version: str, table: str) -> Response:
    _check_table(ctx, datastack, version, table)
    body = req.json_body()
    df = filter_table(proofread_table(ctx.profile.name), table, body)
    data = arrow_stream(df.reset_index(drop=True), req.headers.get("accept-encoding", ""))
    return Response(200, data, content_type="data.arrow")


ROUTES = [
    Route.make("mat_versions", "GET", DS + r"/versions", _versions, bootstrap=True),
    Route.make("mat_versions_metadata", "GET", DS + r"/metadata", _versions_metadata, bootstrap=True),
    Route.make("mat_version_metadata", "GET", VER, _version, bootstrap=True),
    Route.make("mat_tables", "GET", VER + r"/tables", _tables, bootstrap=True),
    Route.make("mat_tables_metadata", "GET", VER + r"/tables/metadata", _tables_metadata, bootstrap=True),
    Route.make(
        "mat_table_metadata", "GET", VER + r"/table/(?P<table>[^/]+)/metadata", _metadata, bootstrap=True
    ),
    Route.make("mat_table_count", "GET", VER + r"/table/(?P<table>[^/]+)/count", _count),
    Route.make("query", "POST", VER + r"/table/(?P<table>[^/]+)/query", _query),
]
