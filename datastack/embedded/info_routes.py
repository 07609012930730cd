"""Info-service routes (datastack info dict) and the service version probes of the embedded CAVE server."""

from __future__ import annotations

from proofpilot.datastack.embedded.routing import (
    HttpError,
    Request,
    Response,
    Route,
    ServerContext,
    json_response,
)

INFO_VERSION = "4.5.0"
PCG_VERSION = "2.19.0"  # caveclient gates some kwargs on >= 2.17.0
MATERIALIZE_VERSION = "5.13.0"  # query_table needs >= 5.13.0


def datastack_info(ctx: ServerContext) -> dict:
    p = ctx.profile
    url = ctx.base_url
    return {
        "aligned_volume": {
            "name": p.aligned_volume,
            "id": p.aligned_volume_id,
            "image_source": f"precomputed://{url}/em/{p.aligned_volume}",
            "description": f"synthetic stand-in for {p.imitates}",
            "display_name": p.aligned_volume,
        },
        "datastack_name": p.name,
        "local_server": url,
        "segmentation_source": f"graphene://{url}/segmentation/table/{p.pcg_table}",
        "skeleton_source": f"precomputed://{url}/skeletons/{p.name}",
        "synapse_table": None,
        "soma_table": p.proofread_table,
        "analysis_database": None,
        "viewer_site": None,
        "viewer_resolution_x": p.annotation_resolution_nm[0],
        "viewer_resolution_y": p.annotation_resolution_nm[1],
        "viewer_resolution_z": p.annotation_resolution_nm[2],
        "description": f"embedded synthetic datastack imitating {p.imitates}",
        "proofreading_review_table": None,
        "proofreading_status_table": p.proofread_table,
        "cell_identification_table": None,
    }


def _info_version(ctx: ServerContext, req: Request) -> Response:
    return json_response(INFO_VERSION)


def _datastack_full(ctx: ServerContext, req: Request, datastack: str) -> Response:
    ctx.check_datastack(datastack)
    return json_response(datastack_info(ctx))


def _datastacks(ctx: ServerContext, req: Request) -> Response:
    return json_response([ctx.profile.name])


def _aligned_volume(ctx: ServerContext, req: Request, name: str) -> Response:
    info = datastack_info(ctx)["aligned_volume"]
    if name not in (info["name"], str(info["id"])):
        raise HttpError(404, f"aligned volume {name!r} not found")
    return json_response(info)


def _pcg_api_versions(ctx: ServerContext, req: Request) -> Response:
    return json_response([0, 1])


def _pcg_version(ctx: ServerContext, req: Request) -> Response:
    return json_response(PCG_VERSION)


def _mat_api_versions(ctx: ServerContext, req: Request) -> Response:
    return json_response([2, 3])


def _mat_version(ctx: ServerContext, req: Request) -> Response:
    return json_response(MATERIALIZE_VERSION)


ROUTES = [
    Route.make("info_version", "GET", r"/info/version", _info_version, bootstrap=True),
    Route.make(
        "datastack_info",
        "GET",
        r"/info/api/v2/datastack/full/(?P<datastack>[^/]+)",
        _datastack_full,
        bootstrap=True,
    ),
    Route.make("datastacks", "GET", r"/info/api/v2/datastacks", _datastacks, bootstrap=True),
    Route.make(
        "aligned_volume",
        "GET",
        r"/info/api/v2/aligned_volume/(?:id/)?(?P<name>[^/]+)",
        _aligned_volume,
        bootstrap=True,
    ),
    Route.make("pcg_api_versions", "GET", r"/segmentation/api/versions", _pcg_api_versions, bootstrap=True),
    Route.make("pcg_version", "GET", r"/segmentation/api/version", _pcg_version, bootstrap=True),
    Route.make("mat_api_versions", "GET", r"/materialize/api/versions", _mat_api_versions, bootstrap=True),
    Route.make("mat_version", "GET", r"/materialize/version", _mat_version, bootstrap=True),
]
