"""The embedded CAVE server through a real caveclient over HTTP on 127.0.0.1 (conftest's socket guard
is active).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys

import caveclient
import numpy as np
import pandas as pd
import pytest
import requests

from proofpilot.cli.main import main as cli_main
from proofpilot.core.errors import ConfigError
from proofpilot.datastack.embedded import ids
from proofpilot.datastack.embedded.faults import FaultConfig
from proofpilot.datastack.embedded.generator import get_generator, population
from proofpilot.datastack.embedded.ids import RootKind
from proofpilot.datastack.embedded.server import start_server

MOUSE, FLY = "minnie65_synthetic", "fafb_synthetic"
TABLE = "proofreading_status_and_strategy"


@pytest.fixture(scope="module")
def server():
    with start_server(MOUSE) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    return caveclient.CAVEclient(
        MOUSE, server_address=server.url, auth_token="test-token", write_server_cache=False
    )


def _fresh_client(server, **kwargs) -> caveclient.CAVEclient:
    return caveclient.CAVEclient(
        MOUSE,
        server_address=server.url,
        auth_token="test-token",
        write_server_cache=False,
        max_retries=0,
        **kwargs,
    )


def test_construction_and_version_pin(server, test_home):
    pinned = _fresh_client(server, version=1412)
    assert pinned.materialize.version == 1412
    assert pinned.timestamp == pd.Timestamp("2025-05-16T10:10:01.200708", tz="UTC")
    assert pinned.info.segmentation_source().endswith("/" + server.profile.pcg_table)
    assert pinned.info.local_server() == server.url
    assert pinned.materialize.get_versions() == [1412]
    assert pinned.materialize.get_tables() == [TABLE]
    assert pinned.materialize.get_table_metadata(TABLE)["voxel_resolution"] == [4.0, 4.0, 40.0]
    with pytest.raises(ValueError):
        _fresh_client(server, version=999)
    assert not (test_home / ".cloudvolume" / "secrets").exists()  # write_server_cache=False wrote nothing


def test_query_proofread_table(client):
    df = client.materialize.query_table(TABLE)
    assert len(df) == 2314
    np.testing.assert_array_equal(df.pt_root_id.to_numpy(), population(MOUSE).root_ids)
    assert df.pt_root_id.dtype == np.int64 and str(df.created.dtype).startswith("datetime64")
    assert len(df.pt_position.iloc[0]) == 3
    roots = df.pt_root_id.iloc[[5, 9, 11]].tolist()
    some = client.materialize.query_table(
        TABLE, filter_in_dict={"pt_root_id": roots}, select_columns=["id", "pt_root_id", "strategy_axon"]
    )
    assert sorted(some.pt_root_id) == sorted(roots) and list(some.columns) == [
        "id",
        "pt_root_id",
        "strategy_axon",
    ]
    page = client.materialize.query_table(TABLE, limit=10, offset=20, split_positions=True)
    assert page.id.tolist() == df.id.iloc[20:30].tolist() and "pt_position_x" in page.columns
    clean = client.materialize.query_table(TABLE, filter_equal_dict={"strategy_axon": "axon_fully_extended"})
    assert len(clean) > 0 and (clean.strategy_axon == "axon_fully_extended").all()


def test_tabular_change_log_batch_decodes_to_the_generated_logs(client):
    gen = get_generator(MOUSE)
    roots = population(MOUSE).root_ids[100:150]
    logs = client.chunkedgraph.get_tabular_change_log(roots)
    assert sorted(logs) == sorted(int(r) for r in roots)
    for i, root in zip(range(100, 150), roots, strict=True):
        got, want = logs[int(root)], gen.change_log_frame(i)
        assert got.index.tolist() == [str(k) for k in range(len(want))]  # to_json labels, as from CAVE
        pd.testing.assert_frame_equal(got.reset_index(drop=True), want, check_dtype=False)
        assert got.timestamp.dtype == np.int64 and got.operation_id.dtype == np.int64
        assert all(len(a) == 1 for a in got.after_root_ids)  # splits list only the kept root (PCG#473)


def test_shared_split_appears_in_both_neurons_logs(client):
    pop = population(MOUSE)
    pair = int(np.flatnonzero(pop.n_shared[0::2] > 0)[0])
    a, b = (ids.root_id(RootKind.NEURON, 2 * pair), ids.root_id(RootKind.NEURON, 2 * pair + 1))
    logs = client.chunkedgraph.get_tabular_change_log([a, b])
    common = set(logs[a].operation_id) & set(logs[b].operation_id)
    assert len(common) == pop.n_shared[2 * pair] > 0
    details = client.chunkedgraph.get_operation_details(sorted(common))
    assert all(len(d["roots"]) == 2 and "removed_edges" in d for d in details.values())


def test_operation_details_for_500_ids(client):
    logs = client.chunkedgraph.get_tabular_change_log(population(MOUSE).root_ids[:3])
    ops = pd.concat(logs.values()).operation_id.unique()[:500].tolist()
    assert len(ops) == 500
    details = client.chunkedgraph.get_operation_details(ops)
    assert sorted(int(k) for k in details) == sorted(ops)
    d = details[str(ops[0])]
    assert {
        "roots",
        "source_coords",
        "sink_coords",
        "source_ids",
        "sink_ids",
        "user",
        "timestamp",
        "operation_ts",
        "bb_offset",
        "operation_status",
    } <= set(d)


def test_lineage_and_root_calls(client):
    gen = get_generator(MOUSE)
    root = ids.root_id(RootKind.NEURON, 4)
    log = gen.neuron_log(4)
    past = int(log.after_root[0])
    assert client.chunkedgraph.is_latest_roots([root, past]).tolist() == [True, False]
    stamps = client.chunkedgraph.get_root_timestamps([root])
    assert stamps[0] == gen.ms_to_datetime(int(log.timestamp_ms[-1]))
    assert client.chunkedgraph.get_latest_roots(root).tolist() == [root]
    assert root in client.chunkedgraph.get_latest_roots(past).tolist()
    change = client.chunkedgraph.get_change_log(root)
    assert (
        change["n_mergers"] == int(log.is_merge.sum())
        and change["n_splits"] == len(log) - change["n_mergers"]
    )
    table = client.materialize.query_table(TABLE, limit=3)
    assert (
        client.chunkedgraph.get_roots(table.pt_supervoxel_id.to_numpy()).tolist() == table.pt_root_id.tolist()
    )


def test_unknown_names_give_http_errors(server, client):
    with pytest.raises(requests.HTTPError, match="404"):
        caveclient.CAVEclient(
            "no_such_datastack", server_address=server.url, auth_token="t", write_server_cache=False
        )
    with pytest.raises(requests.HTTPError, match="404"):
        client.materialize.query_table("no_such_table")
    with pytest.raises(requests.HTTPError, match="400"):
        client.chunkedgraph.get_tabular_change_log([123456789])
    assert client.chunkedgraph.get_operation_details([ids.op_id(10**6, 0)]) == {}  # left out, as CAVE does


def test_faults_are_injected_deterministically_and_can_be_switched_off(server):
    roots = population(MOUSE).root_ids
    batches = [roots[k : k + 2] for k in range(0, 40, 2)]

    def outcomes() -> list[str]:
        c = _fresh_client(server)
        result = []
        for batch in batches:
            try:
                c.chunkedgraph.get_tabular_change_log(batch)
                result.append("ok")
            except requests.HTTPError as exc:
                result.append(str(exc.response.status_code))
            except json.JSONDecodeError:
                result.append("malformed")
        return result

    config = FaultConfig(
        error_rate=0.3, malformed_rate=0.2, seed=7, routes=("tabular_change_log_many",), sticky=True
    )
    server.set_faults(config)
    first = outcomes()
    server.set_faults(config)
    assert outcomes() == first
    assert {"500", "malformed", "ok"} <= set(first)
    server.set_faults(None)
    assert outcomes() == ["ok"] * len(batches)


def test_timeout_and_latency_faults(server):
    url = f"{server.url}/segmentation/api/v1/table/{server.profile.pcg_table}/operation_details"
    server.set_faults(FaultConfig(timeout_rate=1.0, timeout_hold_s=2.0, routes=("operation_details",)))
    try:
        with pytest.raises(requests.Timeout):
            requests.get(url, params={"operation_ids": "[1]"}, timeout=0.3)
        # bootstrap routes are untouched
        assert requests.get(f"{server.url}/segmentation/api/version", timeout=5).json() == "2.19.0"
        server.set_faults(FaultConfig(latency_s=2.0, routes=("operation_details",)))
        with pytest.raises(requests.Timeout):  # added latency beyond the client's deadline
            requests.get(url, params={"operation_ids": "[1]"}, timeout=0.3)
    finally:
        server.set_faults(None)
    assert server.faults_injected == {} and requests.get(url, params={"operation_ids": "[1]"}, timeout=5).ok


def test_request_counts_per_route(server, client):
    server.reset_counts()
    client.chunkedgraph.get_tabular_change_log(population(MOUSE).root_ids[:2])
    client.chunkedgraph.get_operation_details([1, 2])
    counts = server.request_counts
    assert counts["tabular_change_log_many"] == 1 and counts["operation_details"] == 1
    assert set(counts) <= set(server.ROUTE_NAMES)


def test_fly_profile_serves_the_whole_table():
    with start_server(FLY) as srv:
        c = caveclient.CAVEclient(FLY, server_address=srv.url, auth_token="t", write_server_cache=False)
        df = c.materialize.query_table("proofread_neurons")
        assert len(df) == 139_255 and "superceded_id" in df.columns
        logs = c.chunkedgraph.get_tabular_change_log(df.pt_root_id.iloc[:50].to_numpy())
        assert sum(len(v) for v in logs.values()) == population(FLY).n_edits[:50].sum()


def test_bad_profile_and_bad_fault_config_are_one_line_errors(capsys):
    assert cli_main(["datastack", "serve", "--profile", "nope"]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("proofpilot: error: unknown embedded profile") and "\n" not in err
    with pytest.raises(ConfigError):
        FaultConfig(error_rate=0.8, timeout_rate=0.5)
    with pytest.raises(ConfigError):
        start_server("nope")
    with pytest.raises(ConfigError, match="unknown route"):
        start_server(MOUSE, faults=FaultConfig(error_rate=0.1, routes=("tabular_changelog",)))


def test_cli_serve_runs_in_the_foreground_and_stops_cleanly_on_ctrl_c():
    proc = subprocess.Popen(
        [sys.executable, "-m", "proofpilot.cli", "datastack", "serve", "--profile", MOUSE, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", first).group(0)
        assert (
            requests.get(f"{url}/info/api/v2/datastack/full/{MOUSE}", timeout=10).json()["local_server"]
            == url
        )
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert out.strip().endswith("stopped")
