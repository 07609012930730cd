"""Every CAVE call has an overall deadline and a response-size cap; tokens a server quotes are redacted.

Against the embedded server over HTTP through caveclient: a change-log body dripped a byte every 0.5 s fails
by its deadline (not by the read timeout, which the drip never trips), an oversized body fails at the cap with
memory bounded by the cap plus one chunk, and a 403 that quotes the request's token gives an error row
without it.
"""

from __future__ import annotations

import logging
import time
import tracemalloc

import pytest
from click.testing import CliRunner

from proofpilot.cli.ingest import ingest_command
from proofpilot.core.redact import MASK, RedactingFilter, known_secrets, redact
from proofpilot.datastack.changelog import fetch_batch, raw_log_fetcher
from proofpilot.datastack.client import CaveConnection, ClientSettings, describe_failure
from proofpilot.datastack.embedded.faults import FaultConfig
from proofpilot.datastack.embedded.generator import population
from proofpilot.datastack.embedded.server import start_server
from proofpilot.datastack.transport import CHUNK

MOUSE = "minnie65_synthetic"
LOG_ROUTE = ("tabular_change_log_many",)
SECRET = "tok3n-" + "h4rdsec" * 4


@pytest.fixture(scope="module")
def server():
    with start_server(MOUSE) as srv:
        yield srv


@pytest.fixture()
def faulty(server):
    yield server
    server.set_faults(None)


def connect(url: str, **kw) -> CaveConnection:
    kw.setdefault("max_retries", 0)
    return CaveConnection(ClientSettings(MOUSE, server_address=url, write_server_cache=False, **kw))


def roots(n: int, start: int = 0) -> list[int]:
    return population(MOUSE).root_ids[start : start + n].tolist()


def test_a_dripping_body_fails_at_the_deadline(faulty):
    conn = connect(faulty.url, read_timeout_s=2.0)
    faulty.set_faults(FaultConfig(drip_s=0.5, routes=LOG_ROUTE))
    [root] = roots(1)
    started = time.monotonic()
    result = fetch_batch(raw_log_fetcher(conn.client.chunkedgraph), [root])
    elapsed = time.monotonic() - started
    assert result.errors == {root: "deadline 2 s exceeded"}
    assert 2.0 <= elapsed < 2.0 + 0.75  # the drip never trips the 2 s read timeout; the deadline does
    assert faulty.faults_injected["drip"] == 1


def test_with_retries_a_dripping_call_is_still_bounded_by_one_deadline(faulty):
    conn = connect(faulty.url, read_timeout_s=1.0, max_retries=1)
    faulty.set_faults(FaultConfig(drip_s=0.5, routes=LOG_ROUTE))
    faulty.reset_counts()
    [root] = roots(1, 7)
    started = time.monotonic()
    result = fetch_batch(raw_log_fetcher(conn.client.chunkedgraph), [root])
    assert result.errors[root] == "deadline 1 s exceeded"
    assert time.monotonic() - started < 1.0 + 0.75  # the body phase is past urllib3's retries
    assert faulty.request_counts["tabular_change_log_many"] == 1


def test_an_oversized_body_fails_at_the_cap_with_bounded_memory(faulty):
    cap = 4 * 2**20
    conn = connect(faulty.url, max_response_bytes=cap)
    faulty.set_faults(FaultConfig(oversize_bytes=300 * 2**20, routes=LOG_ROUTE))
    [root] = roots(1, 2)
    fetch = raw_log_fetcher(conn.client.chunkedgraph)
    tracemalloc.start()
    try:
        result = fetch_batch(fetch, [root])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.errors == {root: "response over 4 MiB"}
    assert peak < cap + CHUNK + 2 * 2**20, peak  # never the 300 MB body: the cap, one chunk, some overhead
    faulty.set_faults(None)
    assert not fetch_batch(fetch, [root]).errors  # the connection pool is still usable afterwards


def test_default_cap_is_64_mib_and_the_ingest_cli_reports_error_rows(faulty, tmp_path):
    assert ClientSettings(MOUSE).max_response_bytes == 64 * 2**20
    faulty.set_faults(FaultConfig(drip_s=0.5, routes=LOG_ROUTE))
    started = time.monotonic()
    args = ["--datastack", MOUSE, "--server-address", faulty.url, "--limit", "2", "--batch-size", "1",
            "--workers", "2", "--timeout", "2", "--retries", "0", "--no-cache", "--no-details",
            "--no-write-server-cache", "--no-progress", "--out", str(tmp_path / "out")]  # fmt: skip
    result = CliRunner().invoke(ingest_command, args)
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started < 30  # two 2 s deadlines in parallel plus set-up, never a hang
    import pyarrow.parquet as pq

    rows = pq.read_table(tmp_path / "out" / "per_neuron.parquet").to_pandas()
    assert list(rows["status"]) == ["error", "error"]
    assert set(rows["reason"]) == {"deadline 2 s exceeded"}


def test_a_403_that_quotes_the_token_gives_an_error_row_without_it(faulty, monkeypatch, caplog):
    monkeypatch.setenv("PROOFPILOT_CAVE_TOKEN", SECRET)
    caplog.set_level(logging.DEBUG)
    conn = connect(faulty.url)
    faulty.set_faults(
        FaultConfig(error_rate=1.0, error_status=403, sticky=True, echo_token=True, routes=LOG_ROUTE)
    )
    [root] = roots(1, 4)
    result = fetch_batch(raw_log_fetcher(conn.client.chunkedgraph), [root])
    reason = result.errors[root]
    assert reason.startswith("HTTP 403") and "credentials" in reason and MASK in reason
    assert SECRET not in reason and "Bearer " + MASK in reason
    assert SECRET not in caplog.text


def test_redact_masks_secret_values_and_credential_shapes(monkeypatch, test_home):
    monkeypatch.setenv("CAVE_TOKEN", "env-secret-value")
    secrets_dir = test_home / ".cloudvolume" / "secrets"
    secrets_dir.mkdir(parents=True, exist_ok=True)
    (secrets_dir / "cave-secret.json").write_text('{"token": "file-secret-value"}')
    try:
        assert {"env-secret-value", "file-secret-value"} <= set(known_secrets())
        text = (
            "no env-secret-value or file-secret-value; Authorization: Bearer abc.def-ghi "
            "?middle_auth_token=qwerty123&x=1 token=zzz9 {'token': 'uvw'} prompt_tokens=5 max_tokens: 7"
        )
        out = redact(text)
        for leaked in ("env-secret-value", "file-secret-value", "abc.def-ghi", "qwerty123", "zzz9", "uvw"):
            assert leaked not in out
        assert "&x=1" in out and "prompt_tokens=5" in out and "max_tokens: 7" in out
        assert redact("Bearer " + MASK) == "Bearer " + MASK  # idempotent
        assert redact("see short", ["short"]) == "see short"  # placeholders like EMPTY are not secrets
    finally:
        (secrets_dir / "cave-secret.json").unlink()


def test_describe_failure_and_the_log_filter_redact(monkeypatch):
    import requests

    monkeypatch.setenv("PROOFPILOT_CAVE_TOKEN", SECRET)
    response = requests.Response()
    response.status_code, response.reason = 401, "Unauthorized"
    response._content = f'{{"message": "bad token {SECRET}"}}'.encode()
    assert SECRET not in describe_failure(requests.HTTPError(response=response))
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "server said %s", (f"hi {SECRET}",), None)
    try:
        raise ValueError(f"boom {SECRET}")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    assert RedactingFilter().filter(record)
    assert SECRET not in record.getMessage() and SECRET not in (record.exc_text or "")
