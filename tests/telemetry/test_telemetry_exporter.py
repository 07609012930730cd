"""The /metrics exporter waits for one last scrape after a normal end, bounded by the scrape interval."""

from __future__ import annotations

import threading
import time
import urllib.request

from proofpilot.telemetry.exporter import ScrapeLog
from proofpilot.telemetry.metrics import PrometheusDecisionLogger


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read().decode()


def test_scrape_log_interval_is_the_median_gap():
    log = ScrapeLog()
    assert log.interval_s() is None
    for at in (0.0, 5.0, 10.0, 30.0):
        log.note(at)
    assert log.count == 4 and log.interval_s() == 5.0


def test_every_metrics_request_is_noted():
    logger = PrometheusDecisionLogger()
    handle = logger.start_exporter(port=0)
    try:
        assert handle.scrapes.count == 0
        _scrape(handle.url)
        _scrape(handle.url)
        assert handle.scrapes.count == 2 and handle.scrapes.interval_s() is not None
    finally:
        handle.shutdown()


def test_an_exporter_nobody_scrapes_does_not_wait():
    handle = PrometheusDecisionLogger().start_exporter(port=0)
    try:
        assert handle.wait_for_final_scrape() is False
    finally:
        handle.shutdown()


def test_the_final_scrape_sees_counts_recorded_after_the_last_regular_scrape():
    logger = PrometheusDecisionLogger()
    handle = logger.start_exporter(port=0)
    try:
        now = time.monotonic()
        handle.scrapes.note(now - 20.0)  # a scraper every 10 s, last seen 10 s ago
        handle.scrapes.note(now - 10.0)
        logger.record_decision(op="merge", agent="llm", outcome="correct", seconds=0.5)  # after that scrape
        result: list[bool] = []
        waiter = threading.Thread(target=lambda: result.append(handle.wait_for_final_scrape()))
        waiter.start()
        while waiter.is_alive() and not result:
            body = _scrape(handle.url)  # the scraper's next visit, during the wait
            waiter.join(timeout=0.05)
        waiter.join()
        assert result == [True]
        assert 'proofpilot_decisions_total{agent="llm",op="merge",outcome="correct"} 1.0' in body
    finally:
        handle.shutdown()


def test_the_wait_is_bounded_when_the_scraper_has_gone():
    handle = PrometheusDecisionLogger().start_exporter(port=0)
    try:
        now = time.monotonic()
        handle.scrapes.note(now - 2.0)
        handle.scrapes.note(now - 1.0)
        assert handle.wait_for_final_scrape(max_wait_s=0.1) is False
    finally:
        handle.shutdown()
