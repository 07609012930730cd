"""Launch checks against the embedded server: what a pilot needs is asked once, before any data, and a miss is
one line naming it (the pilot's own stop: tests/pilot/test_realdata_pilot.py)."""

from __future__ import annotations

import pytest

from proofpilot.core.errors import DataError
from proofpilot.datastack.client import ClientSettings
from proofpilot.datastack.embedded.faults import FaultConfig
from proofpilot.datastack.embedded.server import start_server
from proofpilot.datastack.launch import check_datastack

MOUSE = "minnie65_synthetic"
DATA_ROUTES = (
    "tabular_change_log_many", "query", "operation_details", "roots_binary", "lvl2_graph", "watershed",
)  # fmt: skip


@pytest.fixture(scope="module")
def server():
    with start_server(MOUSE) as srv:
        yield srv


def _settings(url: str) -> ClientSettings:
    return ClientSettings(MOUSE, server_address=url, auth_token="e0e0", write_server_cache=False,
                          max_retries=0, construct_deadline_s=30.0)  # fmt: skip


def test_a_complete_datastack_passes_and_reports_its_versions(server):
    server.reset_counts()
    report = check_datastack(_settings(server.url))
    assert report.missing == ()
    assert report.server_versions["chunkedgraph"] == "2.19.0" and report.pcg_table == MOUSE
    assert report.segmentation_source.startswith("graphene://")
    counts = server.request_counts
    assert counts["pcg_version"] >= 1 and counts["l2cache_table_mapping"] == 1
    assert not any(counts.get(route) for route in DATA_ROUTES)  # no data is read


@pytest.mark.parametrize(
    ("faults", "named"),
    [
        (FaultConfig(no_l2cache=True), "an L2 cache for chunkedgraph table 'minnie65_synthetic'"),
        (FaultConfig(error_rate=1.0, error_status=404, routes=("pcg_version",), include_bootstrap=True),
         "a chunkedgraph server version"),
        (FaultConfig(error_rate=1.0, error_status=503, routes=("l2cache_table_mapping",),
                     include_bootstrap=True),
         "a reachable L2 cache"),
        (FaultConfig(error_rate=1.0, error_status=401, routes=("datastack_info",), include_bootstrap=True),
         "not authorised for datastack"),
    ],
    ids=["no-l2cache", "no-chunkedgraph-version", "l2cache-down", "token-rejected"],
)  # fmt: skip
def test_what_is_missing_is_one_line_naming_it(faults, named):
    with start_server(MOUSE, faults=faults) as srv, pytest.raises(DataError) as err:
        check_datastack(_settings(srv.url))
    message = str(err.value)
    assert named in message and "\n" not in message
