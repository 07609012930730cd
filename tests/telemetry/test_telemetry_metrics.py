"""PrometheusDecisionLogger / NoOpDecisionLogger: names, units, bounded labels, the exporter's lifecycle."""

from __future__ import annotations

import socket
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from proofpilot.core.errors import ConfigError
from proofpilot.orchestrator.stats import NoOpDecisionLogger
from proofpilot.telemetry.buckets import DECISION_SECONDS_BUCKETS, check_buckets
from proofpilot.telemetry.metrics import (
    MAX_FREE_LABEL_VALUES,
    PrometheusDecisionLogger,
    endpoint_label,
    make_decision_logger,
)


def _samples(logger: PrometheusDecisionLogger) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(logger.exposition().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _value(samples, name, **labels) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_decision_histogram_counters_and_tokens():
    logger = PrometheusDecisionLogger()
    logger.record_decision(op="merge", agent="llm", outcome="correct", seconds=0.07, prompt_tokens=900,
                           completion_tokens=20, llm_calls=1)  # fmt: skip
    logger.record_decision(op="merge", agent="llm", outcome="correct", seconds=12.0, prompt_tokens=1100,
                           completion_tokens=30, llm_calls=2)  # fmt: skip
    logger.record_decision(op="split", agent="baseline", outcome="incorrect", seconds=0.5)
    s = _samples(logger)
    ok = {"op": "merge", "agent": "llm", "outcome": "correct"}
    assert _value(s, "proofpilot_decisions_total", **ok) == 2
    assert _value(s, "proofpilot_decision_seconds_count", **ok) == 2
    assert _value(s, "proofpilot_decision_seconds_sum", **ok) == pytest.approx(12.07)
    assert _value(s, "proofpilot_decision_seconds_bucket", **ok, le="0.075") == 1
    assert _value(s, "proofpilot_decision_seconds_bucket", **ok, le="10.0") == 1
    assert _value(s, "proofpilot_decision_seconds_bucket", **ok, le="15.0") == 2
    assert _value(s, "proofpilot_tokens_total", op="merge", kind="prompt") == 2000
    assert _value(s, "proofpilot_tokens_total", op="merge", kind="completion") == 50
    assert _value(s, "proofpilot_llm_calls_total", op="merge") == 3
    assert ("proofpilot_tokens_total", (("kind", "prompt"), ("op", "split"))) not in s  # baseline: no tokens
    les = {float(dict(k[1])["le"]) for k in s if k[0] == "proofpilot_decision_seconds_bucket"}
    assert les == {*DECISION_SECONDS_BUCKETS, float("inf")}


def test_buckets_span_50ms_to_60s_and_are_checked():
    assert DECISION_SECONDS_BUCKETS[0] == 0.05 and DECISION_SECONDS_BUCKETS[-1] == 60.0
    assert check_buckets(DECISION_SECONDS_BUCKETS) == DECISION_SECONDS_BUCKETS
    for bad in ((), (0.0, 1.0), (1.0, 1.0), (2.0, 1.0)):
        with pytest.raises(ValueError):
            check_buckets(bad)


def test_labels_are_bounded_and_never_carry_ids_or_urls():
    logger = PrometheusDecisionLogger()
    logger.record_decision(op="864691135123456789", agent="llm", outcome="weird", seconds=1.0)
    for i in range(MAX_FREE_LABEL_VALUES + 5):
        logger.record_llm_error(f"reason{i}")
    url = "https://user:secret@cave.example.org:8443/segmentation/api/v1/x?token=abc"
    logger.record_cave_request(url, "200")
    logger.set_inflight("http://gpu-node:8000/v1", 3)
    s = _samples(logger)
    assert _value(s, "proofpilot_decisions_total", op="other", agent="llm", outcome="other") == 1
    reasons = {dict(k[1])["reason"] for k in s if k[0] == "proofpilot_llm_errors_total"}
    assert len(reasons) == MAX_FREE_LABEL_VALUES + 1 and "other" in reasons
    assert _value(s, "proofpilot_llm_errors_total", reason="other") == 5
    text = logger.exposition().decode()
    assert "secret" not in text and "abc" not in text and "864691135123456789" not in text
    assert _value(s, "proofpilot_cave_requests_total", endpoint="cave.example.org:8443", status="200") == 1
    assert _value(s, "proofpilot_inflight", endpoint="gpu-node:8000") == 3
    assert endpoint_label("operation_details") == "operation_details"


def test_inflight_context_manager_counts_up_and_down():
    logger = PrometheusDecisionLogger()
    with logger.inflight("http://127.0.0.1:8011/v1"), logger.inflight("http://127.0.0.1:8011/v1"):
        assert _value(_samples(logger), "proofpilot_inflight", endpoint="127.0.0.1:8011") == 2
    with pytest.raises(RuntimeError), logger.inflight("http://127.0.0.1:8011/v1"):
        raise RuntimeError("request failed")
    assert _value(_samples(logger), "proofpilot_inflight", endpoint="127.0.0.1:8011") == 0


def test_two_loggers_do_not_share_series():
    a, b = PrometheusDecisionLogger(), PrometheusDecisionLogger()
    a.record_decision(op="merge", agent="llm", outcome="correct", seconds=1.0)
    assert b"proofpilot_decisions_total{" not in b.exposition()


def test_exporter_serves_on_loopback_and_shuts_down():
    logger = PrometheusDecisionLogger()
    logger.set_node_seconds_per_decision(0.25)
    handle = logger.start_exporter(port=0)
    assert handle.host == "127.0.0.1" and handle.port > 0
    with urllib.request.urlopen(handle.url, timeout=5) as resp:
        body = resp.read().decode()
    assert "proofpilot_node_seconds_per_decision 0.25" in body
    with pytest.raises(ConfigError, match="cannot serve metrics"):
        PrometheusDecisionLogger().start_exporter(port=handle.port)  # port taken
    handle.shutdown()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", handle.port)) != 0  # nothing listens any more


def test_noop_logger_records_nothing_and_serves_nothing():
    logger = make_decision_logger(enabled=False)
    assert isinstance(logger, NoOpDecisionLogger)
    logger.record_decision(op="merge", agent="llm", outcome="correct", seconds=1.0, prompt_tokens=5)
    logger.record_llm_error("timeout")
    logger.record_cave_request("x", "200")
    logger.set_inflight("x", 1)
    logger.set_node_seconds_per_decision(1.0)
    with logger.inflight("x"):
        pass
    assert logger.start_exporter() is None
    assert isinstance(make_decision_logger(), PrometheusDecisionLogger)
