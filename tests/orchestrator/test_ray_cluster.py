"""`--ray-address`: a pilot attaches to a running Ray cluster (a head node started with `ray start`, as on the
GPU node's cluster file) instead of starting its own, and leaves that cluster running when it ends."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from support.prometheus_fixtures import free_port, poll

from proofpilot.core.errors import ConfigError, DataError
from proofpilot.orchestrator.ray_session import check_ray_address
from proofpilot.orchestrator.store import read_verdicts
from proofpilot.pilot.run import PilotConfig, run_pilot

RAY = Path(sys.executable).with_name("ray")


@pytest.fixture(scope="module")
def ray_head():
    """A one-node Ray cluster on 127.0.0.1 (its own process group, stopped with it; `ray stop` would also
    stop every other Ray instance of this user)."""
    temp_dir = tempfile.mkdtemp(prefix="pph-", dir="/tmp")  # short: unix socket paths are limited
    port = free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    head = subprocess.Popen(
        [str(RAY), "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
         "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp_dir}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    address = f"127.0.0.1:{port}"
    try:
        poll(lambda: _cluster_answers(address), 120, "the Ray head node")
        yield address, head
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _cluster_answers(address: str) -> bool:
    probe = subprocess.run([str(RAY), "status", f"--address={address}"], capture_output=True, text=True)
    return probe.returncode == 0


def test_a_pilot_runs_on_an_existing_cluster_and_leaves_it_up(ray_head, tmp_path):
    address, head = ray_head
    run_dir = tmp_path / "run"
    config = PilotConfig(source="fafb_synthetic", run_dir=run_dir, neurons=5, max_ops_per_neuron=2,
                         agent="baseline", metrics_port=0, progress=False, ray_address=address)  # fmt: skip
    result = run_pilot(config)
    assert result.complete and result.n_new == result.n_tasks > 0
    assert Counter(v["task_id"] for v in read_verdicts(run_dir)).most_common(1)[0][1] == 1
    assert head.poll() is None and _cluster_answers(address)  # the pilot only disconnected

    again = run_pilot(PilotConfig(**{**config.__dict__, "run_dir": tmp_path / "second"}))
    assert again.complete and again.n_new == result.n_tasks  # a second driver on the same cluster


def test_an_unreachable_cluster_is_one_clear_error(tmp_path):
    config = PilotConfig(source="fafb_synthetic", run_dir=tmp_path / "run", neurons=2, agent="baseline",
                         metrics_port=0, progress=False, ray_address=f"127.0.0.1:{free_port()}")  # fmt: skip
    with pytest.raises(DataError, match=r"cannot reach the Ray cluster at 127\.0\.0\.1:") as caught:
        run_pilot(config)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "run").exists()  # checked before anything is fetched or written


@pytest.mark.parametrize("address", ["head-node", "127.0.0.1:port"])
def test_a_malformed_cluster_address_is_one_clear_error(address):
    with pytest.raises(ConfigError, match="--ray-address must be HOST:PORT"):
        check_ray_address(address)
