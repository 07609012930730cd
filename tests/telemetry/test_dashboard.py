"""The committed Grafana dashboard is what deploy/grafana/dashboard.py generates, and it is complete."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import yaml

from proofpilot.telemetry import promql

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"


def _generator():
    spec = importlib.util.spec_from_file_location("pp_dashboard", GRAFANA / "dashboard.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _targets(model: dict) -> list[dict]:
    return [t for p in model["panels"] if p["type"] != "row" for t in p["targets"]]


def test_regenerating_gives_the_committed_json(tmp_path):
    gen = _generator()
    committed = (GRAFANA / "dashboards" / "proofpilot.json").read_text()
    assert gen.render() == committed, "run: .venv/bin/python deploy/grafana/dashboard.py"
    out = tmp_path / "d.json"
    assert gen.main(["dashboard.py", str(out)]) == 0
    assert out.read_text() == committed


def test_dashboard_shows_every_query_with_the_provisioned_datasource():
    model = json.loads((GRAFANA / "dashboards" / "proofpilot.json").read_text())
    targets = _targets(model)
    assert {t["expr"] for t in targets} == set(promql.queries())
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = ds["datasources"][0]["uid"]
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert set(variables) == {"datasource", "model", "instance"}
    source = variables["datasource"]
    assert source["type"] == "datasource" and source["query"] == "prometheus"
    assert variables["datasource"]["current"]["value"] == uid  # defaults to the provisioned datasource
    for name in ("model", "instance"):
        var = variables[name]
        assert var["type"] == "query" and var["includeAll"] and var["allValue"] == ".*"
        assert var["datasource"]["uid"] == "${datasource}" and var["query"].startswith("label_values(vllm:")
    panels = [p for p in model["panels"] if p["type"] != "row"]
    assert all(p["datasource"]["uid"] == "${datasource}" for p in panels)
    assert all(t["datasource"]["uid"] == "${datasource}" for t in targets)
    # every vLLM query follows the model and instance variables
    assert all('model_name=~"$model"' in q.expr and 'instance=~"$instance"' in q.expr
               for p in promql.PANELS for q in p.queries if q.side == "vllm")  # fmt: skip
    ids = [p["id"] for p in model["panels"]]
    assert len(ids) == len(set(ids))
    titles = " | ".join(p["title"] for p in panels)
    for needed in ("by agent and op (p50 / p95 / p99)", "Decisions per second", "Tokens per second",
                   "errors by reason", "In-flight", "running / waiting", "KV-cache",
                   "Node-seconds per decision", "CAVE request latency", "over the window (client-exact)",
                   "Queue / prefill / decode", "What the run serves"):  # fmt: skip
        assert needed in titles
    latency = [q.expr for p in promql.PANELS for q in p.queries if "proofpilot_decision_seconds" in q.expr]
    assert latency and all("by (le, agent, op)" in e for e in latency)  # never pooled across agents


def test_queries_use_vllm_032_names_and_bounded_labels():
    exprs = promql.queries()
    vllm_names = set(re.findall(r"vllm:[a-z_]+", " ".join(exprs)))
    assert "vllm:kv_cache_usage_perc" in vllm_names and "vllm:num_requests_waiting" in vllm_names
    # renamed or removed before 0.32 (docs/serving.md "Metrics")
    assert not vllm_names & {"vllm:gpu_cache_usage_perc", "vllm:time_per_output_token_seconds"}
    pilot_names = set(re.findall(r"proofpilot_[a-z_]+", " ".join(exprs)))
    assert {n.removesuffix("_bucket") for n in pilot_names} <= {
        "proofpilot_decision_seconds", "proofpilot_decisions_total", "proofpilot_tokens_total",
        "proofpilot_llm_errors_total", "proofpilot_inflight", "proofpilot_cave_requests_total",
        "proofpilot_node_seconds_per_decision", "proofpilot_busy_node_seconds_total",
        "proofpilot_cave_request_seconds", "proofpilot_server_queue_seconds",
        "proofpilot_server_prefill_seconds", "proofpilot_server_decode_seconds",
        "proofpilot_server_ttft_seconds", "proofpilot_run_info",
    }  # fmt: skip
    for expr in exprs:
        assert "$" not in promql.expand(expr, "30s")  # rate interval and template variables substituted
        assert expr.count("(") == expr.count(")")
    sides = {q.side for p in promql.PANELS for q in p.queries}
    assert sides == {"pilot", "vllm"}
    assert all(("vllm:" in q.expr) == (q.side == "vllm") for p in promql.PANELS for q in p.queries)
