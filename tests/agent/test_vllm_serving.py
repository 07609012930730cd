"""VllmCpuServer's process handling, with a stand-in `python` in a fake venv (fast, no vLLM needed).

The real server is exercised by tests/agent/test_vllm_real.py; here the launcher script runs a small HTTP
server that answers /health and leaves a child process in its group, as vLLM's engine core does.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path

import pytest

from proofpilot.agent.serving import CpuServerConfig, VllmCpuServer, unavailable_reason
from proofpilot.core.errors import ConfigError, DataError

FAKE_SERVER = """
import http.server, os, subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])   # the 'engine core'
open(os.environ["CHILD_PID_FILE"], "w").write(str(child.pid))
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404); self.end_headers()
    def log_message(self, *args): pass
http.server.HTTPServer((os.environ["LLM_HOST"], int(os.environ["LLM_PORT"])), Health).serve_forever()
"""


def fake_venv(root: Path, body: str) -> CpuServerConfig:
    (root / "venv" / "bin").mkdir(parents=True)
    python = root / "venv" / "bin" / "python"
    python.write_text(f"#!/usr/bin/env bash\nexec {sys.executable} {root / 'fake.py'}\n")
    python.chmod(0o755)
    (root / "fake.py").write_text(body)
    (root / "model").mkdir()
    (root / "model" / "config.json").write_text("{}")
    return CpuServerConfig(
        venv=root / "venv", model_dir=root / "model", cache_dir=root / "cache", startup_timeout_s=30
    )


def test_missing_venv_or_model_is_a_one_line_config_error(tmp_path):
    config = CpuServerConfig(venv=tmp_path / "none", model_dir=tmp_path / "none", cache_dir=tmp_path)
    assert "setup.sh" in unavailable_reason(config)
    with pytest.raises(ConfigError, match=r"no vLLM venv .*setup\.sh"):
        VllmCpuServer(config).start()


def test_a_server_that_dies_at_start_is_a_data_error_with_its_last_log_line(tmp_path):
    config = fake_venv(tmp_path, "import sys; print('RuntimeError: no CPU today'); sys.exit(3)")
    with pytest.raises(DataError, match=r"exited with code 3 .*no CPU today"):
        VllmCpuServer(config).start()


def test_start_waits_for_health_and_stop_ends_the_whole_group(tmp_path, monkeypatch):
    child_pid_file = tmp_path / "child.pid"
    monkeypatch.setenv("CHILD_PID_FILE", str(child_pid_file))
    server = VllmCpuServer(fake_venv(tmp_path, FAKE_SERVER))
    with server:
        assert server.base_url.startswith("http://127.0.0.1:") and server.base_url.endswith("/v1")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        assert opener.open(f"{server.url}/health", timeout=5).status == 200
        first_pid, port = server.pid, server.port
        server.restart()
        assert server.port == port and server.pid != first_pid  # same URL after a restart
        with pytest.raises(ProcessLookupError):
            os.killpg(first_pid, 0)
        last_pid = server.pid
    with pytest.raises(ProcessLookupError):
        os.killpg(last_pid, 0)  # the server and its child are gone
    with pytest.raises(ProcessLookupError):
        os.kill(int(child_pid_file.read_text()), 0)
    assert (tmp_path / "cache" / "logs").is_dir()  # logs under the cache dir, not $HOME
