"""The CAVE client layer against the embedded server, over HTTP through caveclient (no mocks).

Covers: connection, pinning and version recording; every call the layer makes (proofread table, tabular change
logs, operation details, segmentation info); our decoding of change logs equals caveclient's own; timeouts and
retries on 429/5xx; bisection of a failing batch; bad input; the token never reaching logs, files or HOME.
"""

from __future__ import annotations

import logging
import socket
import time
from datetime import UTC, datetime

import caveclient
import numpy as np
import pytest
from click.testing import CliRunner

from proofpilot.cli.ingest import ingest_command
from proofpilot.core.errors import DataError
from proofpilot.datastack.changelog import decode_log, fetch_batch, raw_log_fetcher
from proofpilot.datastack.client import CaveConnection, ClientSettings, resolve_token
from proofpilot.datastack.embedded import geometry
from proofpilot.datastack.embedded.faults import FaultConfig
from proofpilot.datastack.embedded.generator import get_generator, population
from proofpilot.datastack.embedded.profiles import get_profile
from proofpilot.datastack.embedded.server import start_server
from proofpilot.datastack.ingest import (
    IngestOptions,
    ingest,
    parse_root_ids,
    query_proofread_roots,
    read_roots_file,
    write_result,
)
from proofpilot.datastack.opdetails import fetch_details, raw_details_fetcher

MOUSE = "minnie65_synthetic"


@pytest.fixture(scope="module")
def server():
    with start_server(MOUSE) as srv:
        yield srv


@pytest.fixture()
def faulty(server):
    """The shared server; any faults a test sets are cleared afterwards."""
    yield server
    server.set_faults(None)


def settings(url: str, **kw) -> ClientSettings:
    kw.setdefault("backoff_factor", 0.01)
    return ClientSettings(MOUSE, server_address=url, write_server_cache=False, **kw)


@pytest.fixture(scope="module")
def conn(server) -> CaveConnection:
    return CaveConnection(settings(server.url))


def test_connection_pins_latest_version_and_records_versions(conn):
    profile = get_profile(MOUSE)
    pin = conn.pin(profile.proofread_table)
    assert pin.materialization_version == profile.materialization_version
    expected_ts = datetime.fromisoformat(profile.materialization_timestamp).replace(tzinfo=UTC)
    assert datetime.fromisoformat(pin.timestamp) == expected_ts
    assert pin.caveclient_version == caveclient.__version__
    assert set(pin.server_versions) == {"info", "materialize", "chunkedgraph"}
    assert all(isinstance(v, str) and v for v in pin.server_versions.values())
    assert pin.server_address == conn.server_address and pin.datastack == MOUSE
    assert conn.voxel_resolution_nm == profile.segmentation_resolution_nm


def test_explicit_version_and_unknown_version(server):
    version = get_profile(MOUSE).materialization_version
    assert CaveConnection(settings(server.url, version=version)).materialization_version == version
    with pytest.raises(DataError, match=r"version 999999 is not available"):
        CaveConnection(settings(server.url, version=999999))


def test_timestamp_pin_uses_a_live_query(server):
    cutoff = datetime(2025, 6, 1, tzinfo=UTC)
    conn = CaveConnection(settings(server.url, timestamp=cutoff))
    pin = conn.pin("proofreading_status_and_strategy")
    assert pin.materialization_version is None and datetime.fromisoformat(pin.timestamp) == cutoff
    assert query_proofread_roots(conn, pin.table) == population(MOUSE).root_ids.tolist()
    assert server.request_counts.get("is_latest_roots", 0) > 0  # caveclient's live_query sequence ran


def test_proofread_table_query_matches_the_population(conn):
    roots = query_proofread_roots(conn, get_profile(MOUSE).proofread_table)
    assert roots == population(MOUSE).root_ids.tolist()


def test_change_logs_decode_like_caveclient_and_match_the_generator(conn):
    gen = get_generator(MOUSE)
    roots = population(MOUSE).root_ids[[0, 1, 7]].tolist()
    result = fetch_batch(raw_log_fetcher(conn.client.chunkedgraph), roots)
    assert result.errors == {} and result.requests == 1
    theirs = conn.client.chunkedgraph.get_tabular_change_log(roots, filtered=True)
    for index, root in zip([0, 1, 7], roots, strict=True):
        ours, frame = result.payloads[root], theirs[root]
        assert ours == decode_log(result.raw[root])
        assert ours["operation_id"] == frame["operation_id"].tolist()
        assert ours["timestamp_ms"] == frame["timestamp"].tolist()
        assert ours["is_merge"] == frame["is_merge"].tolist()
        assert ours["user_id"] == frame["user_id"].astype(str).tolist()
        assert ours["before_root_ids"] == frame["before_root_ids"].tolist()
        assert ours["after_root_ids"] == frame["after_root_ids"].tolist()
        truth = gen.neuron_log(index)
        assert ours["operation_id"] == truth.operation_id.tolist()
        assert ours["is_merge"] == truth.is_merge.tolist()


def test_operation_details_give_both_split_roots_and_interface_points_in_nm(conn):
    gen = get_generator(MOUSE)
    log = gen.neuron_log(2)
    ops = log.operation_id[:40].tolist()
    res = np.asarray(conn.voxel_resolution_nm)
    chunk = fetch_details(raw_details_fetcher(conn.client.chunkedgraph), ops, res)
    theirs = conn.client.chunkedgraph.get_operation_details(ops)  # caveclient's own call: same roots
    for op, start, stop in zip(
        chunk.operation_id, chunk.after_offsets[:-1], chunk.after_offsets[1:], strict=True
    ):
        assert chunk.after_values[start:stop].tolist() == theirs[str(op)]["roots"]
    assert chunk.errors == {} and chunk.requests == 1
    order = np.argsort(chunk.operation_id)
    assert chunk.operation_id[order].tolist() == sorted(ops)
    expected = geometry.op_points_nm(MOUSE, 2, log.operation_id[:40], log.is_merge[:40])
    got = chunk.interface_nm[np.searchsorted(chunk.operation_id, ops, sorter=order)]
    np.testing.assert_allclose(got[:, :], expected, atol=1e-3)
    n_roots = np.diff(chunk.after_offsets)[np.searchsorted(chunk.operation_id, ops, sorter=order)]
    assert (n_roots == np.where(log.is_merge[:40], 1, 2)).all()


def test_a_bad_root_fails_alone_via_bisection(conn, server):
    roots = population(MOUSE).root_ids[:49].tolist()
    not_a_root = roots[-1] + 10**9  # valid format, unknown to the server: the whole batch gets HTTP 400
    server.reset_counts()
    result = fetch_batch(raw_log_fetcher(conn.client.chunkedgraph), [*roots, not_a_root])
    assert set(result.payloads) == set(roots)
    assert list(result.errors) == [not_a_root]
    assert result.errors[not_a_root].startswith("HTTP 400")
    assert server.request_counts["tabular_change_log_many"] == result.requests > 1


def test_retries_cover_429_and_5xx_with_backoff(faulty):
    conn = CaveConnection(settings(faulty.url, max_retries=2))
    fetch = raw_log_fetcher(conn.client.chunkedgraph)
    root = int(population(MOUSE).root_ids[3])
    for status in (429, 500, 503):
        faulty.set_faults(
            FaultConfig(error_rate=1.0, error_status=status, sticky=True, routes=("tabular_change_log_many",))
        )
        faulty.reset_counts()
        result = fetch_batch(fetch, [root])
        assert result.errors[root].startswith(f"HTTP {status}")
        assert faulty.request_counts["tabular_change_log_many"] == 3  # first try + 2 retries
    faulty.set_faults(
        FaultConfig(error_rate=0.3, error_status=503, seed=3, routes=("tabular_change_log_many",))
    )
    fetch = raw_log_fetcher(CaveConnection(settings(faulty.url, max_retries=6)).client.chunkedgraph)
    results = [fetch_batch(fetch, [r]) for r in population(MOUSE).root_ids[:20].tolist()]
    assert all(not r.errors for r in results)  # non-sticky faults: retries get through
    assert faulty.faults_injected.get("error", 0) > 0


def test_malformed_bodies_become_error_rows(faulty, conn):
    roots = population(MOUSE).root_ids[10:14].tolist()
    faulty.set_faults(FaultConfig(malformed_rate=1.0, sticky=True, routes=("tabular_change_log_many",)))
    result = fetch_batch(raw_log_fetcher(conn.client.chunkedgraph), roots)
    assert sorted(result.errors) == sorted(roots) and not result.payloads
    assert all(reason.startswith("malformed response") for reason in result.errors.values())
    assert result.requests == 2 * len(roots) - 1  # bisected down to single roots


def test_read_timeout_is_enforced_and_retried(faulty):
    conn = CaveConnection(settings(faulty.url, read_timeout_s=0.3, max_retries=1))
    faulty.set_faults(FaultConfig(timeout_rate=1.0, timeout_hold_s=5.0, routes=("tabular_change_log_many",)))
    faulty.reset_counts()
    root = int(population(MOUSE).root_ids[5])
    started = time.monotonic()
    result = fetch_batch(raw_log_fetcher(conn.client.chunkedgraph), [root])
    assert time.monotonic() - started < 4.0  # well before the server would answer (5 s hold per try)
    assert result.errors[root].startswith("timeout")
    assert faulty.request_counts["tabular_change_log_many"] == 2


def test_bad_input_gives_one_line_data_errors(server, tmp_path):
    with pytest.raises(DataError, match="unknown datastack 'no_such_stack'") as err:
        CaveConnection(ClientSettings("no_such_stack", server_address=server.url, write_server_cache=False))
    assert "\n" not in str(err.value)

    with pytest.raises(DataError, match="unknown table 'no_such_table'"):
        ingest(settings(server.url), IngestOptions(table="no_such_table", cache_dir=tmp_path, progress=False))

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    started = time.monotonic()
    with pytest.raises(DataError, match=r"cannot reach CAVE server .*connection refused"):
        CaveConnection(settings(dead))
    assert time.monotonic() - started < 5.0

    for bad in ("12ab", "-5", "1.5", str(2**64)):
        with pytest.raises(DataError, match="malformed root id"):
            parse_root_ids([bad])
    roots_file = tmp_path / "roots.txt"
    roots_file.write_text("864691130000000001\n864691130000000002x\n")
    with pytest.raises(DataError, match="malformed root id '864691130000000002x'"):
        read_roots_file(roots_file)
    result = CliRunner().invoke(
        ingest_command,
        [
            "--datastack",
            MOUSE,
            "--server-address",
            server.url,
            "--roots",
            str(roots_file),
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert isinstance(result.exception, DataError)
    assert not (tmp_path / "out").exists()


def test_token_from_env_is_used_but_never_logged_or_written(server, tmp_path, monkeypatch, caplog, test_home):
    secret = "tok3n-" + "5ecret" * 4
    monkeypatch.setenv("PROOFPILOT_CAVE_TOKEN", secret)
    assert resolve_token(None) == secret
    caplog.set_level(logging.DEBUG)
    out = tmp_path / "out"
    cache = tmp_path / "cache"
    result = CliRunner().invoke(
        ingest_command,
        [
            "--datastack",
            MOUSE,
            "--server-address",
            server.url,
            "--limit",
            "4",
            "--cache-dir",
            str(cache),
            "--no-write-server-cache",
            "--no-progress",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    conn = CaveConnection(settings(server.url))
    assert conn.client.chunkedgraph.session.headers["Authorization"] == f"Bearer {secret}"
    assert secret not in caplog.text and secret not in result.output
    files = [p for p in (*out.rglob("*"), *cache.rglob("*"), *test_home.rglob("*")) if p.is_file()]
    assert any(p.suffix == ".parquet" for p in files)
    for path in files:
        assert secret.encode() not in path.read_bytes(), path
    assert not (test_home / ".cloudvolume" / "secrets" / "cave_datastack_to_server_map.json").exists()


def test_write_result_embeds_the_pin(server, tmp_path):
    import pyarrow.parquet as pq

    result = ingest(settings(server.url), IngestOptions(limit=3, cache_dir=tmp_path / "c", progress=False))
    paths = write_result(result, tmp_path / "out")
    for name in ("per_neuron", "operations", "membership"):
        meta = pq.read_schema(paths[name]).metadata
        assert b"proofpilot.pin" in meta
        assert str(result.pin.materialization_version).encode() in meta[b"proofpilot.pin"]
    assert paths["pin"].read_text().count(result.pin.datastack) == 1
    assert len(pq.read_table(paths["per_neuron"])) == 3


def test_nothing_written_under_the_real_home(real_home, server, tmp_path):
    if real_home is None or not real_home.exists():
        pytest.skip("no real HOME")
    started = time.time() - 1
    ingest(settings(server.url), IngestOptions(limit=2, cache_dir=tmp_path, progress=False))
    touched = [
        p
        for sub in (".cloudvolume", ".cache/proofpilot")
        for p in (real_home / sub).rglob("*")
        if p.is_file() and p.stat().st_mtime >= started
    ]
    assert touched == []
