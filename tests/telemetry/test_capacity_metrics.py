"""The busy-node-seconds counter (client-exact, grown per decision), vLLM's per-request timings by op, CAVE
request latency and the run's info metric, as a Prometheus client reads them."""

from __future__ import annotations

import random

import pytest
from prometheus_client.parser import text_string_to_metric_families

from proofpilot.orchestrator.stats import BusyStats, RunInfoStats, ServerTimingStats
from proofpilot.telemetry.busy import BusyTracker, union_seconds
from proofpilot.telemetry.metrics import PrometheusDecisionLogger


def samples(logger) -> dict[tuple[str, tuple], float]:
    text = logger.exposition().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_busy_tracker_adds_up_to_the_union_whatever_the_order():
    rng = random.Random(3)
    spans = [(t, t + rng.uniform(0.05, 0.6)) for t in (rng.uniform(0, 20) for _ in range(300))]
    tracker = BusyTracker()
    order = spans[:]
    rng.shuffle(order)
    added = [tracker.add("ep", order[i : i + 3]) for i in range(0, len(order), 3)]
    assert all(a >= 0 for a in added)
    assert sum(added) == pytest.approx(union_seconds(spans)) == pytest.approx(tracker.total("ep"))
    assert tracker.add("ep", [(spans[0][0] + 0.01, spans[0][0] + 0.02)]) == 0.0  # inside: nothing new
    assert tracker.add("other", [(0.0, 1.0)]) == pytest.approx(1.0)  # keys are apart


def test_series_and_their_labels():
    logger = PrometheusDecisionLogger()
    logger.record_busy(BusyStats("http://127.0.0.1:8011/v1", 1.5))
    logger.record_busy(BusyStats("http://127.0.0.1:8011/v1", 0.25))
    logger.record_busy(BusyStats("http://127.0.0.1:8011/v1", 0.0))
    logger.record_server_timing(ServerTimingStats("merge", "llm", 0.01, 0.02, 0.3, 0.03))
    logger.record_server_timing(ServerTimingStats("split", "llm", None, 0.5, None, None))
    logger.record_run_info(RunInfoStats("tinyqwen", "pp-verdict-1", "llm", "cpu"))
    logger.record_cave_latency("http://127.0.0.1:9/segmentation/api/v1/table/x/root/123/tabular", "200", 0.04)
    got = samples(logger)
    assert got[("proofpilot_busy_node_seconds_total", (("endpoint", "127.0.0.1:8011"),))] == 1.75
    assert got[("proofpilot_server_decode_seconds_count", (("op", "merge"),))] == 1
    assert got[("proofpilot_server_decode_seconds_sum", (("op", "merge"),))] == pytest.approx(0.3)
    assert ("proofpilot_server_decode_seconds_count", (("op", "split"),)) not in got  # not sent: not observed
    assert got[("proofpilot_server_prefill_seconds_sum", (("op", "split"),))] == pytest.approx(0.5)
    info = (("agent", "llm"), ("device", "cpu"), ("model", "tinyqwen"), ("prompt_version", "pp-verdict-1"))
    assert got[("proofpilot_run_info", info)] == 1.0
    cave = [k for k in got if k[0] == "proofpilot_cave_request_seconds_count"]
    assert cave and all("123" not in str(k) for k in cave)  # the route's host:port, never an id
