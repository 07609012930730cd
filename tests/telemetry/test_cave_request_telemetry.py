"""Every CAVE request made through the data layer reaches the telemetry observers, labelled by route."""

from caveclient import CAVEclient

from proofpilot.datastack.client import (
    ClientSettings,
    add_request_observer,
    endpoint_name,
    harden_session,
    remove_request_observer,
)
from proofpilot.datastack.embedded.server import start_server
from proofpilot.telemetry.metrics import PrometheusDecisionLogger


def test_endpoint_name_drops_ids_and_api_versions():
    assert endpoint_name("http://h/segmentation/api/v1/table/t/tabular_change_log_many?x=1") == (
        "tabular_change_log_many"
    )
    assert endpoint_name("http://h/materialize/api/v3/datastack/ds/version/1412/table/t/query") == "query"
    url = "http://h/segmentation/api/v1/table/t/root/864691130000000001/change_log"
    assert endpoint_name(url) == "change_log"


def test_cave_requests_are_counted_by_route_and_status():
    logger = PrometheusDecisionLogger()
    add_request_observer(logger.record_cave_request)
    try:
        with start_server("minnie65_synthetic") as server:
            client = CAVEclient("minnie65_synthetic", server_address=server.url, write_server_cache=False)
            harden_session(client.chunkedgraph.session, ClientSettings("minnie65_synthetic"))
            table = client.materialize.query_table("proofreading_status_and_strategy", limit=1)
            root = int(table["pt_root_id"][0])
            client.chunkedgraph.get_tabular_change_log([root])
    finally:
        remove_request_observer(logger.record_cave_request)
    text = logger.exposition().decode()
    assert 'proofpilot_cave_requests_total{endpoint="tabular_change_log_many",status="200"} 1.0' in text


def test_a_local_server_is_never_written_into_caveclients_server_map(test_home):
    from proofpilot.datastack.client import CaveConnection, is_local

    assert is_local("http://127.0.0.1:8580") and is_local("http://localhost:1") and not is_local("https://x.org")
    with start_server("minnie65_synthetic") as server:
        settings = ClientSettings("minnie65_synthetic", server_address=server.url, write_server_cache=True)
        CaveConnection(settings)  # building the client is what may write the map
    assert not list(test_home.rglob("cave_datastack_to_server_map.json"))
