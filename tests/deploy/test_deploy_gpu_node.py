"""deploy/: the Prometheus config is valid, the Ray cluster file passes Ray's own validation, the Slurm file
is well-formed, and run_pilot.sh really starts vLLM (a stand-in `vllm` binary), Prometheus and the pilot,
then stops them."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support.prometheus_fixtures import PROMETHEUS_BIN, free_port, requires_prometheus

ROOT = Path(__file__).resolve().parents[2]
GPU_NODE = ROOT / "deploy" / "gpu-node"
PROMTOOL = Path(PROMETHEUS_BIN).with_name("promtool")

FAKE_VLLM = """#!{python}
# stand-in for `vllm serve MODEL --host H --port P ...`: /health and a vLLM-style /metrics
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
args = sys.argv[1:]
last = {{a: args[i + 1] for i, a in enumerate(args[:-1]) if a.startswith("--")}}  # later flags win
open({log!r}, "w").write(" ".join(args))
PAGE = b'vllm:num_requests_running{{engine="0"}} 0.0\\nvllm:request_success_total{{engine="0"}} 0.0\\n'
class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def do_GET(self):
        self.send_response(200 if self.path in ("/health", "/metrics") else 404)
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)
HTTPServer((last["--host"], int(last["--port"])), H).serve_forever()
"""

FAKE_PILOT = """#!{python}
# stand-in for `proofpilot pilot`: records its arguments, then waits until Prometheus scrapes vLLM
# (`proofpilot datastack check`, the launch check before vLLM starts, passes at once)
import json, sys, time, urllib.request
if sys.argv[1:3] == ["datastack", "check"]:
    sys.exit(0)
open({argv!r}, "w").write("\\n".join(sys.argv[1:]))
for _ in range(100):
    try:
        with urllib.request.urlopen("http://127.0.0.1:{prom}/api/v1/targets", timeout=2) as r:
            targets = json.load(r)["data"]["activeTargets"]
        if any(t["labels"]["job"] == "vllm" and t["health"] == "up" for t in targets):
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.2)
sys.exit("prometheus never saw vllm up")
"""


def _executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.prometheus
@requires_prometheus
def test_prometheus_config_is_valid():
    out = subprocess.run([PROMTOOL, "check", "config", ROOT / "deploy/prometheus/prometheus.yml"],
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    jobs = {j["job_name"] for j in yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())[
        "scrape_configs"]}  # fmt: skip
    assert jobs == {"proofpilot", "vllm"}


def test_ray_cluster_file_passes_rays_validation():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(yaml.safe_load((GPU_NODE / "ray-cluster.yaml").read_text()))
    validate_config(config)
    assert config["provider"]["type"] == "local"
    assert any("serve_qwen32b.sh" in cmd for cmd in config["setup_commands"])


def test_slurm_file_asks_for_two_gpus_and_calls_run_pilot():
    text = (GPU_NODE / "pilot.sbatch").read_text()
    directives = [line for line in text.splitlines() if line.startswith("#SBATCH ")]
    assert "#SBATCH --gpus-per-node=2" in directives and "#SBATCH --nodes=1" in directives
    assert "deploy/gpu-node/run_pilot.sh" in text
    for script in ("pilot.sbatch", "run_pilot.sh"):
        assert subprocess.run(["bash", "-n", GPU_NODE / script]).returncode == 0


@pytest.mark.prometheus
@requires_prometheus
def test_run_pilot_starts_vllm_prometheus_and_pilot_then_stops_them(tmp_path):
    vllm_port, metrics_port, prom_port = free_port(), free_port(), free_port()
    vllm_log, argv = tmp_path / "vllm-args.txt", tmp_path / "pilot-args.txt"
    fake_vllm = FAKE_VLLM.format(python=sys.executable, log=str(vllm_log))
    fake_pilot = FAKE_PILOT.format(python=sys.executable, argv=str(argv), prom=prom_port)
    env = dict(
        os.environ,
        VLLM_BIN=str(_executable(tmp_path / "vllm", fake_vllm)),
        PROOFPILOT_BIN=str(_executable(tmp_path / "proofpilot", fake_pilot)),
        PROMETHEUS_BIN=PROMETHEUS_BIN,
        VLLM_PORT=str(vllm_port),
        METRICS_PORT=str(metrics_port),
        PROM_PORT=str(prom_port),
        NEURONS="7",
        VLLM_HEALTH_TIMEOUT_S="60",
    )
    run_dir = tmp_path / "run"
    out = subprocess.run([GPU_NODE / "run_pilot.sh", run_dir, "--resume"], env=env, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    args = argv.read_text().split("\n")
    assert args[0] == "pilot" and "--resume" in args
    assert args[args.index("--llm-url") + 1] == f"http://127.0.0.1:{vllm_port}/v1"
    assert args[args.index("--metrics-port") + 1] == str(metrics_port)
    assert args[args.index("--neurons") + 1] == "7" and args[args.index("--gpus-per-endpoint") + 1] == "2"
    served = vllm_log.read_text()
    assert "--tensor-parallel-size 2" in served  # serve_qwen32b.sh's flags, then the port and name overrides
    assert served.endswith(f"--port {vllm_port} --served-model-name qwen2.5-vl-32b")
    assert f"127.0.0.1:{metrics_port}" in (run_dir / "prometheus.yml").read_text()
    assert not _listening(vllm_port) and not _listening(prom_port)  # both stopped on exit


def test_run_pilot_fails_cleanly_when_vllm_dies(tmp_path):
    dead_vllm = _executable(tmp_path / "vllm", "#!/bin/sh\necho no GPU >&2\nexit 1\n")
    env = dict(os.environ, VLLM_BIN=str(dead_vllm), PROMETHEUS_BIN="true", PROOFPILOT_BIN="true",
               VLLM_PORT=str(free_port()))  # fmt: skip
    out = subprocess.run([GPU_NODE / "run_pilot.sh", tmp_path / "run"], env=env, capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert out.returncode == 1
    assert "vLLM exited" in out.stderr and "no GPU" in (tmp_path / "run/logs/vllm.log").read_text()


def test_run_pilot_needs_a_run_dir():
    out = subprocess.run([GPU_NODE / "run_pilot.sh"], capture_output=True, text=True)
    assert out.returncode != 0 and "usage" in out.stderr


def test_a_failed_datastack_check_stops_run_pilot_before_vllm_starts(tmp_path):
    """The real `proofpilot datastack check` against an embedded server without an L2 cache: one line naming
    it, exit 1, and vLLM is never started."""
    from proofpilot.datastack.embedded.faults import FaultConfig
    from proofpilot.datastack.embedded.server import start_server

    started = tmp_path / "vllm-started"
    vllm = _executable(tmp_path / "vllm", f"#!/bin/sh\ntouch {started}\nsleep 30\n")
    with start_server("minnie65_synthetic", faults=FaultConfig(no_l2cache=True)) as server:
        env = dict(os.environ, VLLM_BIN=str(vllm), PROMETHEUS_BIN="true", VLLM_PORT=str(free_port()),
                   PROOFPILOT_BIN=str(ROOT / ".venv/bin/proofpilot"), DATASTACK="minnie65_synthetic",
                   SERVER_ADDRESS=server.url)  # fmt: skip
        out = subprocess.run([GPU_NODE / "run_pilot.sh", tmp_path / "run"], env=env, capture_output=True,
                             text=True, timeout=120)  # fmt: skip
    assert out.returncode == 1
    lines = [line for line in out.stderr.splitlines() if line.startswith("proofpilot:")]
    assert len(lines) == 1 and "L2 cache for chunkedgraph table 'minnie65_synthetic'" in lines[0], out.stderr
    assert "Traceback" not in out.stderr and not started.exists()
