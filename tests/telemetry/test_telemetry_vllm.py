"""Telemetry against the REAL vLLM CPU server: the scraped window, the cost report, and the dashboard's
vLLM-side PromQL through a real Prometheus."""

from __future__ import annotations

import asyncio
import random
from urllib.parse import urlsplit

import pytest
from support.prometheus_fixtures import evaluate_dashboard_queries, poll, query

from proofpilot.agent.client import AgentClient
from proofpilot.agent.prompt import build_request
from proofpilot.telemetry import promql
from proofpilot.telemetry.cost import DecisionUsage, build_cost_report
from proofpilot.telemetry.vllm_scrape import VllmScraper

pytestmark = [pytest.mark.vllm, pytest.mark.prometheus]
N = 96


def _requests(n: int):
    rng = random.Random(11)
    return [
        build_request(f"tel{i}", "merge" if i % 2 else "split",
                      {"cable_a_um": rng.uniform(5, 400), "gap_um": rng.expovariate(1.0)})
        for i in range(n)
    ]  # fmt: skip


def _success(prom_url: str) -> float:
    rows = query(prom_url, "sum(vllm:request_success_total)")
    return float(rows[0]["value"][1]) if rows else -1.0


def test_scrape_cost_and_vllm_dashboard_queries_on_real_vllm(vllm_server, prometheus_factory):
    prom = prometheus_factory({"vllm": [urlsplit(vllm_server.metrics_url).netloc]})
    prom.wait_targets_up()
    before = poll(lambda: _success(prom.url) + 1, 30, "first scrape of vLLM") - 1

    scraper = VllmScraper([vllm_server.metrics_url], interval_s=0.1).start()

    async def drive():
        async with AgentClient(vllm_server.base_url, vllm_server.model, max_in_flight=32) as client:
            return await client.decide_all(_requests(N))

    verdicts = asyncio.run(drive())
    window = scraper.stop()

    answers = sum(v.answers for v in verdicts)
    (ep,) = window.endpoints
    served = sum(v for k, v in ep.counter_deltas.items() if k.startswith("vllm:request_success_total{"))
    assert served == answers >= N
    assert ep.busy_fraction > 0 and sum(iv.seconds for iv in ep.intervals() if iv.busy) > 0
    report = build_cost_report(window, [DecisionUsage.from_verdict(v) for v in verdicts], gpus_per_endpoint=1)
    tp = report.throughput
    assert tp.server_requests == answers and 0 < tp.node_s_per_decision < tp.window_seconds
    assert report.naive_latency.ratio_to_node_s_per_decision > 2  # 32 in flight: latencies overlap
    assert report.roofline_at_mean is not None

    poll(lambda: _success(prom.url) >= before + answers, 30, "the run's requests in Prometheus")
    n_series = evaluate_dashboard_queries(prom.url, promql.queries("vllm"))
    assert all(n > 0 for n in n_series.values()), {e: n for e, n in n_series.items() if n == 0}
