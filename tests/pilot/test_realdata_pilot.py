"""The real-data path end to end: a baseline pilot against `proofpilot datastack serve` in its own process.

The pilot gets only the server's address, as it would get minnie65_public's, so every task it builds came
through the CAVE APIs: roles from ``roots_binary`` at op time − 1 ms, negatives from watershed cutouts,
geometry from ``lvl2_graph`` and the L2 cache. The server's per-route request counts
(``GET /proofpilot/request_counts``) show each was used.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from collections import defaultdict
from pathlib import Path

import pytest

from proofpilot.core.errors import DataError
from proofpilot.datastack.embedded.faults import FaultConfig
from proofpilot.datastack.embedded.server import start_server
from proofpilot.datastack.source import DataSource
from proofpilot.orchestrator.store import read_verdicts
from proofpilot.pilot.run import PilotConfig, run_pilot

PROOFPILOT = Path(sys.executable).with_name("proofpilot")
MOUSE = "minnie65_synthetic"
DATA_ROUTES = (
    "tabular_change_log_many", "query", "operation_details", "roots_binary", "lvl2_graph", "watershed",
)  # fmt: skip


@pytest.fixture
def served_elsewhere():
    """`proofpilot datastack serve` in its own process; yields its URL, then stops it with SIGTERM."""
    proc = subprocess.Popen([PROOFPILOT, "datastack", "serve", "--profile", MOUSE, "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        first = proc.stdout.readline()
        assert "serving at http://127.0.0.1:" in first, first + proc.stderr.read()
        yield first.rsplit(" ", 1)[1].strip()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


def _counts(url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{url}/proofpilot/request_counts", timeout=10) as response:
        return json.load(response)


@pytest.mark.slow
def test_a_baseline_pilot_on_50_neurons_builds_every_task_through_the_apis(served_elsewhere, tmp_path):
    run_dir = tmp_path / "run"
    ray_tmp = tempfile.mkdtemp(prefix="ppr-", dir="/tmp")  # short: unix socket paths are limited
    try:
        out = subprocess.run(
            [PROOFPILOT, "pilot", "--datastack", MOUSE, "--server-address", served_elsewhere,
             "--neurons", "50", "--max-ops-per-neuron", "1", "--agent", "baseline", "--run-dir",
             str(run_dir), "--metrics-port", "0", "--no-progress"],
            capture_output=True, text=True, timeout=600, env={**os.environ, "PROOFPILOT_RAY_TMPDIR": ray_tmp},
        )  # fmt: skip
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "embedded CAVE server" not in out.stdout  # nothing was started in the pilot's process

    tasks = [json.loads(line) for line in (run_dir / "tasks.jsonl").read_text().splitlines()]
    roles = defaultdict(set)
    for task in tasks:
        roles[task["operation_id"]].add(task["role"])
    merges = [op for op, kinds in roles.items() if "partner" in kinds]
    negatives = [t for t in tasks if t["role"] == "distractor"]
    assert len(merges) >= 15 and len(negatives) >= 0.8 * len(merges)
    assert all("partner" in roles[t["operation_id"]] for t in negatives)
    assert all(t["candidate_root_id"] != t["base_root_id"] for t in negatives)

    counts = _counts(served_elsewhere)
    assert counts["roots_binary"] >= len(merges) + len(negatives)  # roles, then each cutout's roots
    assert counts["watershed"] >= len(negatives)  # the cutouts' watershed chunks
    decided = {v["task_id"] for v in read_verdicts(run_dir)}
    assert len(decided) >= 0.95 * len(tasks)
    assert counts["lvl2_graph"] >= len(decided) and counts["l2cache_attributes"] >= len(decided) // 2
    assert "skeletons" not in counts  # no precomputed skeleton layer was read

    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["datastack_checks"]["server_versions"]["chunkedgraph"]
    assert len(manifest["sessions"][-1]["tasks_without_geometry"]) == len(tasks) - len(decided)


def test_a_pilot_on_a_datastack_without_l2_cache_stops_before_any_data(tmp_path):
    run_dir = tmp_path / "run"
    with start_server(MOUSE, faults=FaultConfig(no_l2cache=True)) as srv:
        config = PilotConfig(source=DataSource(MOUSE, server_address=srv.url), run_dir=run_dir, neurons=3,
                             agent="baseline", metrics_port=0, progress=False)  # fmt: skip
        with pytest.raises(DataError, match="lacks what a pilot needs: an L2 cache"):
            run_pilot(config)
        counts = srv.request_counts
    assert not any(counts.get(route) for route in DATA_ROUTES)
    assert not run_dir.exists() or not any(run_dir.iterdir())
