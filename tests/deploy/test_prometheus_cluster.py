"""deploy/prometheus/prometheus-cluster.yml with a real Prometheus: vLLM nodes found through file-based
service discovery, and the dashboard's vLLM queries narrowed by its model and instance variables."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml
from support.prometheus_fixtures import poll, prometheus_available, query, run_prometheus

from proofpilot.telemetry import promql

pytestmark = pytest.mark.prometheus
ROOT = Path(__file__).resolve().parents[2]


def _stub_server():
    spec = importlib.util.spec_from_file_location("openai_stub", ROOT / "bench" / "openai_stub.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.StubServer


def test_file_sd_finds_every_node_and_the_variables_narrow_the_vllm_panels(tmp_path):
    if not prometheus_available():
        pytest.skip("Debian's prometheus is not installed (make deps installs it)")
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus-cluster.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    for job in config["scrape_configs"]:
        for sd in job.get("file_sd_configs", []):
            sd["refresh_interval"] = "1s"
    stub = _stub_server()
    with stub(model="model-a") as a, stub(model="model-a") as b, stub(model="model-b") as c:
        hosts = [s.metrics_url.split("/")[2] for s in (a, b, c)]
        (tmp_path / "targets").mkdir()
        (tmp_path / "targets" / "vllm-nodes.json").write_text(json.dumps([{"targets": hosts}]))
        with run_prometheus({}, tmp_path, config_text=yaml.safe_dump(config)) as prom:
            running = promql.queries("vllm")[1]  # sum by (instance) (vllm:num_requests_running{…})
            assert "num_requests_running" in running
            poll(lambda: len(query(prom.url, promql.expand(running))) == 3, 30, "three vLLM nodes scraped")
            one = {"$instance": hosts[1]}
            rows = query(prom.url, promql.expand(running, variables=one))
            assert [r["metric"]["instance"] for r in rows] == [hosts[1]]
            rows = query(prom.url, promql.expand(running, variables={"$model": "model-a"}))
            assert sorted(r["metric"]["instance"] for r in rows) == sorted(hosts[:2])
