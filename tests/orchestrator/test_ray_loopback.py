"""A local Ray session (as a pilot starts one) listens on loopback only, and keeps its files to this user:
the temp dir 0700 (even one that was left world-writable), Ray's auth token 0600."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# Runs in a fresh interpreter (Ray is per process): start Ray the way a pilot does, run a task and an actor so
# that workers are up, then list every TCP listener of this process and all it spawned.
_PROBE = """
import json, os, sys
import psutil, ray
from proofpilot.orchestrator.ray_session import RayOptions, ray_session, token_path

@ray.remote
def ping():
    return os.getpid()

@ray.remote(num_cpus=0)
class Echo:
    def echo(self, x):
        return x

with ray_session(RayOptions(num_cpus=1, temp_dir=sys.argv[1])) as started:
    ray.get([ping.remote(), Echo.remote().echo.remote(1)])
    me = psutil.Process()
    listeners = []
    for proc in [me, *me.children(recursive=True)]:
        try:
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    listeners.append([proc.name(), conn.laddr.ip, conn.laddr.port])
        except psutil.Error:
            pass
    token = token_path()
    print(json.dumps({
        "started": started, "listeners": listeners, "node_ip": ray.util.get_node_ip_address(),
        "cluster_env": os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"),
        "token_mode": oct(token.stat().st_mode & 0o777) if token.exists() else None,
        "temp_mode": oct(os.stat(sys.argv[1]).st_mode & 0o777),
    }))
"""

LOOPBACK = ("127.", "::ffff:127.", "::1")


@pytest.fixture
def open_temp_dir():
    path = tempfile.mkdtemp(prefix="ppl-", dir="/tmp")  # short: unix socket paths are limited
    os.chmod(path, 0o777)  # left world-writable by someone: the session closes it
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_a_local_ray_session_listens_on_loopback_only(open_temp_dir):
    probe = subprocess.run(
        [sys.executable, "-c", _PROBE, open_temp_dir], capture_output=True, text=True, timeout=300,
        env={**os.environ, "RAY_AUTH_TOKEN_PATH": ""},
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr[-2000:]
    report = json.loads(probe.stdout.strip().splitlines()[-1])
    assert report["started"] and report["node_ip"] == "127.0.0.1"
    names = {name for name, _, _ in report["listeners"]}
    assert {"gcs_server", "raylet"} <= names  # the walk saw Ray's core processes, not just the driver
    exposed = [entry for entry in report["listeners"] if not entry[1].startswith(LOOPBACK)]
    assert exposed == []
    assert report["cluster_env"] is None  # the switch is only held while Ray starts
    assert report["temp_mode"] == "0o700"
    assert report["token_mode"] == "0o600"  # token auth is on by default for a local instance


def test_an_existing_token_file_readable_by_others_is_closed(tmp_path, monkeypatch):
    from proofpilot.orchestrator.ray_session import _keep_private, private_dir, token_path

    token = tmp_path / "auth_token"
    token.write_text("x" * 32)
    token.chmod(0o644)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token))
    assert token_path() == token
    _keep_private(token)
    assert stat.S_IMODE(token.stat().st_mode) == 0o600

    fresh = tmp_path / "new" / "ray"
    assert private_dir(str(fresh)) == str(fresh)
    assert stat.S_IMODE(Path(fresh).stat().st_mode) == 0o700
