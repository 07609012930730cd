"""A token that a CAVE server quotes back never leaves the process: `edits` and a baseline `pilot` against an
embedded server whose 403s (per neuron) and 401s (whole call) echo the request's Authorization header and
token; stdout, stderr, the captured logs and every file written (Parquet bytes included) lack the token.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile

import pandas as pd
import pytest

from proofpilot.cli.main import main
from proofpilot.datastack.embedded.faults import FaultConfig
from proofpilot.datastack.embedded.server import start_server

MOUSE = "minnie65_synthetic"
SECRET = "tok3n-" + "ech0ed" * 5
PER_NEURON_403 = FaultConfig(
    error_rate=0.9,
    error_status=403,
    sticky=True,
    seed=1,
    echo_token=True,
    routes=("tabular_change_log_many",),
)


@pytest.fixture(scope="module")
def server():
    with start_server(MOUSE) as srv:
        yield srv


def files_under(*roots) -> list:
    return [p for root in roots if root.exists() for p in root.rglob("*") if p.is_file()]


def assert_absent(texts: list[str], paths: list) -> None:
    for text in texts:
        assert SECRET not in text
    for path in paths:
        assert SECRET.encode() not in path.read_bytes(), path


def edits(url: str, out, cache) -> int:
    return main(["edits", "--datastack", MOUSE, "--server-address", url, "--out", str(out),
                 "--cache-dir", str(cache), "--no-write-server-cache", "--no-progress", "--no-figures",
                 "--retries", "0", "--sample-sizes", "20", "--seed", "3"])  # fmt: skip


def test_edits_never_writes_or_prints_an_echoed_token(
    server, tmp_path, monkeypatch, capsys, caplog, test_home
):
    monkeypatch.setenv("PROOFPILOT_CAVE_TOKEN", SECRET)
    caplog.set_level(logging.DEBUG)
    server.set_faults(PER_NEURON_403)
    try:
        assert edits(server.url, tmp_path / "out", tmp_path / "cache") == 0
        rows = pd.read_parquet(tmp_path / "out" / "per_neuron.parquet")
        reasons = rows.loc[rows["status"] == "error", "reason"]
        assert len(reasons) and all(r.startswith("HTTP 403") and "[redacted]" in r for r in reasons)
        assert (rows["status"] == "ok").any()
        server.set_faults(FaultConfig(error_rate=1.0, error_status=401, sticky=True, echo_token=True,
                                      routes=("query",)))  # fmt: skip
        assert edits(server.url, tmp_path / "out2", tmp_path / "cache2") != 0
    finally:
        server.set_faults(None)
    out, err = capsys.readouterr()
    assert "HTTP 401" in err and "[redacted]" in err and len(err.strip().splitlines()) == 1
    written = files_under(tmp_path, test_home)
    assert {"summary.json", "summary.md", "per_neuron.parquet"} <= {p.name for p in written}
    assert_absent([out, err, caplog.text], written)


def test_baseline_pilot_never_writes_or_prints_an_echoed_token(server, tmp_path, test_home):
    ray_tmp = tempfile.mkdtemp(prefix="ppr-", dir="/tmp")
    server.set_faults(PER_NEURON_403)
    env = {**os.environ, "PROOFPILOT_RAY_TMPDIR": ray_tmp, "PROOFPILOT_CAVE_TOKEN": SECRET,
           "PROOFPILOT_CACHE_DIR": str(tmp_path / "cache")}  # fmt: skip
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "proofpilot.cli", "-vv", "pilot", "--datastack", MOUSE, "--server-address",
           server.url, "--neurons", "12", "--max-ops-per-neuron", "1", "--agent", "baseline",
           "--metrics-port", "0", "--no-progress", "--run-dir", str(run_dir)]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    finally:
        server.set_faults(None)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run_json = (run_dir / "run.json").read_text()
    assert "HTTP 403" in run_json and "[redacted]" in run_json  # the reasons are kept, the token is not
    written = files_under(run_dir, tmp_path, test_home)
    assert any(p.name == "per_neuron.parquet" and p.parent.name == "ingest" for p in written)
    assert_absent([proc.stdout, proc.stderr], written)
