"""A CAVE server that answers JSON of the wrong type ("hello" where a list or an object belongs): a fatal
route gives one line naming the server and the route (exit 2), never a TypeError; a per-neuron or
per-operation route records that line as the failure reason of what it was fetching."""

from __future__ import annotations

import pandas as pd
import pytest

from proofpilot.cli.main import main
from proofpilot.datastack.embedded.faults import FaultConfig
from proofpilot.datastack.embedded.server import start_server

FLY = "fafb_synthetic"


@pytest.fixture(scope="module")
def server():
    with start_server(FLY) as srv:
        yield srv


def ingest(server, route: str, out, capsys) -> tuple[int, str]:
    server.set_faults(FaultConfig(wrong_type_rate=1.0, routes=(route,), include_bootstrap=True))
    try:
        args = ["--limit", "3", "--out", str(out), "--no-cache", "--no-progress", "--retries", "0"]
        code = main(["datastack", "ingest", "--datastack", FLY, "--server-address", server.url, *args])
    finally:
        server.set_faults(FaultConfig())
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("route", "names"),
    [("query", "route materialize …/table/proofread_neurons/query"),
     ("mat_tables", "route materialize …/version/"),
     ("mat_versions", "route materialize …/versions"),
     ("datastack_info", f"route info …/datastack/full/{FLY}")],
)  # fmt: skip
def test_a_wrong_type_on_a_fatal_route_is_one_line_naming_the_server_and_route(
    server, route, names, tmp_path, capsys
):
    code, err = ingest(server, route, tmp_path / "out", capsys)
    line = err.strip().splitlines()[-1]
    assert code == 2, err[-2000:]
    assert line.startswith("proofpilot: error: ") and "Traceback" not in err
    assert f"CAVE server {server.url}" in line and names in line


def test_a_wrong_type_on_the_change_log_is_each_neurons_reason(server, tmp_path, capsys):
    code, err = ingest(server, "tabular_change_log_many", tmp_path / "out", capsys)
    assert code == 0, err[-2000:]
    per_neuron = pd.read_parquet(tmp_path / "out" / "per_neuron.parquet")
    assert (per_neuron["status"] == "error").all() and len(per_neuron) == 3
    reason = per_neuron["reason"].iloc[0]
    assert server.url in reason and "tabular_change_log" in reason and "a string ('hello')" in reason


def test_a_wrong_type_on_operation_details_is_each_operations_reason(server, tmp_path, capsys):
    import caveclient

    from proofpilot.datastack.client import describe_failure
    from proofpilot.datastack.opdetails import raw_details_fetcher
    from proofpilot.datastack.shapes import WrongShape

    code, err = ingest(server, "operation_details", tmp_path / "out", capsys)
    assert code == 0, err[-2000:]  # details are optional: the operations are kept, without interface points
    client = caveclient.CAVEclient(
        FLY, server_address=server.url, auth_token="e0e0", write_server_cache=False
    )
    server.set_faults(FaultConfig(wrong_type_rate=1.0, routes=("operation_details",)))
    try:
        with pytest.raises(WrongShape) as caught:
            raw_details_fetcher(client.chunkedgraph)([1, 2])
    finally:
        server.set_faults(FaultConfig())
    reason = describe_failure(caught.value)
    assert server.url in reason and "operation_details" in reason and "a string ('hello')" in reason
