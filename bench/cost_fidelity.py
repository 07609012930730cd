"""Benchmark: does the cost accounting recover the true cost of a decision under batching?

A local OpenAI-compatible endpoint (its own process, 127.0.0.1) serves at most K requests at a time, each
taking S seconds, and exposes vLLM 0.32-style /metrics (running, waiting, request and token counters,
inference-time histogram). Its true cost is S/K node-seconds per decision (gpus = 1). The agent client
(proofpilot.agent.client, AsyncOpenAI underneath) drives it with C decisions in flight (default 4K);
VllmScraper scrapes /metrics at the pilot's interval (1 s). Printed per (S, K), all measured in the same run:

- the old figure: busy scrape intervals / decisions (telemetry/cost.py `throughput`), and its ratio to S/K;
- the client-exact figure: union of the client's own send..receive intervals / decisions (`client_busy`),
  its 95 % CI, its ratio to S/K (must be within ±3 %) and its ratio to the old figure;
- slots used: the server's own service-time sum / (K × client busy s); below 100 % the endpoint (or the
  client, on a loaded machine) fell short of K/S, so S/K under-states the true per-decision time;
- x srv: client busy s / the server's own busy time (time with a slot in use, clocked in the server): the
  accounting's own error, whatever the load reached.

Then, on the first pair: the pilot at C = K/2 (the server never full: its figure ≈ 2·S/K, ±5 %), and
`proofpilot capacity`'s sweep (telemetry/capacity.py): its knee must be at concurrency ≥ K and its
node-seconds per decision there within ±5 % of S/K. Exit status 1 if any check fails.

    .venv/bin/python bench/cost_fidelity.py
    .venv/bin/python bench/cost_fidelity.py --pairs 0.2:8,0.5:4 --decisions 150 --scrape-interval 1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "capacity-fake"
PROMPT_TOKENS, COMPLETION_TOKENS = 120, 12

METRICS = """\
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{{engine="0",model_name="{m}"}} {running}
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{{engine="0",model_name="{m}"}} {waiting}
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{{engine="0",model_name="{m}"}} {kv}
# TYPE vllm:request_success_total counter
vllm:request_success_total{{engine="0",finished_reason="stop",model_name="{m}"}} {success}
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{{engine="0",model_name="{m}"}} {prompt}
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{{engine="0",model_name="{m}"}} {generation}
# TYPE vllm:request_inference_time_seconds histogram
vllm:request_inference_time_seconds_bucket{{engine="0",le="+Inf",model_name="{m}"}} {success}
vllm:request_inference_time_seconds_count{{engine="0",model_name="{m}"}} {success}
vllm:request_inference_time_seconds_sum{{engine="0",model_name="{m}"}} {inference}
"""


def _serve(service_s: float, slots: int, conn, stop) -> None:
    """The capacity-limited endpoint: a semaphore of `slots`, each request holding one for `service_s`."""
    lock, gate = threading.Lock(), threading.Semaphore(slots)
    st = dict(running=0, waiting=0, success=0, prompt=0, generation=0, inference=0.0)
    busy = {"since": 0.0, "total": 0.0}  # the server's own truth: time with at least one slot in use

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

        def log_message(self, *args):
            pass

        def _send(self, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/busy":
                with lock:
                    now = time.perf_counter()
                    total = busy["total"] + (now - busy["since"] if st["running"] else 0.0)
                self._send(json.dumps({"busy_s": total}).encode())
            elif self.path == "/metrics":
                with lock:
                    page = METRICS.format(m=MODEL, kv=st["running"] / slots, **st)
                self._send(page.encode(), "text/plain; version=0.0.4")
            else:
                self._send(
                    json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model"}]}).encode()
                )

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            schema = body["response_format"]["json_schema"]["schema"]
            decision = schema["properties"]["decision"]["enum"][0]
            with lock:
                st["waiting"] += 1
            gate.acquire()
            with lock:
                st["waiting"] -= 1
                st["running"] += 1
                if st["running"] == 1:
                    busy["since"] = time.perf_counter()
            t0 = time.perf_counter()
            time.sleep(service_s)
            held = time.perf_counter() - t0
            with lock:
                st["running"] -= 1
                if st["running"] == 0:
                    busy["total"] += time.perf_counter() - busy["since"]
                st["success"] += 1
                st["prompt"] += PROMPT_TOKENS
                st["generation"] += COMPLETION_TOKENS
                st["inference"] += held
            gate.release()
            answer = {
                "id": "cmpl-fake", "object": "chat.completion", "created": 0, "model": MODEL,
                "choices": [{"index": 0, "finish_reason": "stop", "message": {
                    "role": "assistant", "content": json.dumps({"decision": decision, "confidence": 0.5})}}],
                "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS,
                          "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS},
            }  # fmt: skip
            self._send(json.dumps(answer).encode())

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    conn.send(f"http://127.0.0.1:{server.server_address[1]}")
    stop.wait()
    server.shutdown()


async def _drive(base_url: str, n: int, concurrency: int) -> list:
    from proofpilot.agent.client import AgentClient
    from proofpilot.agent.records import AgentRequest
    from proofpilot.agent.schema import PROMPT_VERSION

    requests = [
        AgentRequest(f"t{i}", "merge" if i % 2 else "split",
                     ({"role": "user", "content": "merge or not? reply JSON"},), PROMPT_VERSION)
        for i in range(n)
    ]  # fmt: skip
    async with AgentClient(base_url + "/v1", MODEL, max_in_flight=concurrency, timeout_s=120) as client:
        await client.check()
        return await client.decide_all(requests)


@contextlib.contextmanager
def serving(service_s: float, slots: int):
    """The K-slot endpoint in its own process; yields its base URL (no /v1)."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    stop = ctx.Event()
    proc = ctx.Process(target=_serve, args=(service_s, slots, child, stop), daemon=True)
    proc.start()
    try:
        yield parent.recv()
    finally:
        stop.set()
        proc.join(timeout=10)


def run_pilot(url: str, n: int, concurrency: int, scrape_s: float):
    """n decisions at `concurrency` through the agent client, scraped like the pilot; the cost report."""
    from proofpilot.telemetry.cost import DecisionUsage, build_cost_report
    from proofpilot.telemetry.vllm_scrape import VllmScraper

    scraper = VllmScraper([url + "/metrics"], interval_s=scrape_s).start()
    busy0 = _server_busy(url)
    t0 = time.perf_counter()
    verdicts = asyncio.run(_drive(url, n, concurrency))
    wall = time.perf_counter() - t0
    window = scraper.stop()
    server_busy = _server_busy(url) - busy0
    if not all(v.valid for v in verdicts):
        raise SystemExit(f"invalid verdicts: {[v.error_reason for v in verdicts if not v.valid][:3]}")
    report = build_cost_report(window, [DecisionUsage.from_verdict(v) for v in verdicts], gpus_per_endpoint=1)
    return report, wall, server_busy


def _server_busy(url: str) -> float:
    with urllib.request.urlopen(url + "/busy", timeout=10) as answer:
        return float(json.loads(answer.read())["busy_s"])


def _pilot_row(s, k, c, n, report, wall: float, server_busy: float, truth: float) -> tuple[str, float]:
    tp, ex, naive = report.throughput, report.client_busy, report.naive_latency
    service = naive.server_inference_time_per_request_s or float("nan")
    used = service * tp.server_requests / (k * ex.busy_node_seconds)
    ci = f"[{ex.node_s_per_decision_ci[0]:.4f}, {ex.node_s_per_decision_ci[1]:.4f}]"
    ratio = ex.node_s_per_decision / truth
    row = (f"{s:5.2f} {k:3d} {c:3d} {n:4d} {wall:6.2f} | {tp.node_s_per_decision:8.4f} "
           f"{tp.node_s_per_decision / truth:6.3f} | {ex.node_s_per_decision:8.4f} {ci:>17} {ratio:6.3f} "
           f"{ex.ratio_to_scraped:7.3f} | {truth:7.4f} {used:6.1%} "
           f"{ex.busy_node_seconds / server_busy:7.3f}")  # fmt: skip
    return row, ratio


def _capacity(url: str, s: float, k: int, max_concurrency: int) -> tuple[bool, str]:
    from proofpilot.agent.prompt import build_request
    from proofpilot.telemetry.capacity import SweepSpec, sweep

    prompts = [build_request("t1", "merge", {"gap_um": 0.5}), build_request("t2", "split", {"gap_um": 0.5})]
    report = sweep(SweepSpec(url + "/v1", MODEL, max_concurrency=max_concurrency), prompts)
    knee = report.level(report.knee_concurrency)
    cols = f"{'conc':>5} {'n':>4} {'dec/s':>7} {'node-s/dec':>10} {'x S/K':>6} "
    lines = [f"capacity sweep on S={s} K={k} (stopped: {report.stopped})",
             cols + f"{'p50 s':>6} {'p95 s':>6} {'p99 s':>6}"]  # fmt: skip
    for lv in report.levels:
        mark = " <- knee" if lv is knee else ""
        lines.append(f"{lv.concurrency:5d} {lv.decisions:4d} {lv.decisions_per_s:7.2f} "
                     f"{lv.node_s_per_decision:10.4f} {lv.node_s_per_decision / (s / k):6.3f} "
                     f"{lv.latency_p50_s:6.3f} {lv.latency_p95_s:6.3f} "
                     f"{lv.latency_p99_s:6.3f}{mark}")  # fmt: skip
    ratio = knee.node_s_per_decision / (s / k)
    ok = knee.concurrency >= k and abs(ratio - 1) <= 0.05
    verdict = "ok" if ok else "MISS"
    lines.append(f"knee at concurrency {knee.concurrency} (K = {k}): node-s/dec "
                 f"{knee.node_s_per_decision:.4f} = {ratio:.3f} × S/K (±5 %): {verdict}")  # fmt: skip
    return ok, "\n".join(lines)


HEADER = (f"{'S s':>5} {'K':>3} {'C':>3} {'n':>4} {'wall':>6} | {'old':>8} {'x S/K':>6} | {'exact':>8} "
          f"{'95% CI':>17} {'x S/K':>6} {'x old':>7} | {'S/K':>7} {'slots':>6} {'x srv':>7}")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", default="0.2:8,0.5:4,1.0:8", help="S:K pairs (seconds per request : slots)")
    ap.add_argument("--decisions", type=int, default=150, help="decisions per pair")
    ap.add_argument("--concurrency-factor", type=int, default=4, help="decisions in flight = this × K")
    ap.add_argument("--scrape-interval", type=float, default=1.0, help="the old figure's scrape interval (s)")
    args = ap.parse_args()
    pairs = [(float(s), int(k)) for s, k in (p.split(":") for p in args.pairs.split(","))]
    print(f"S/K = the true node-s per decision (gpus = 1); old = scraped every {args.scrape_interval:g} s; "
          "exact = client send/receive union; tolerance ±3 %")  # fmt: skip
    print(HEADER)
    ok, first_url = True, None
    with contextlib.ExitStack() as stack:
        for s, k in pairs:
            url = stack.enter_context(serving(s, k))
            first_url = first_url or url
            c = args.concurrency_factor * k
            report, wall, srv = run_pilot(url, args.decisions, c, args.scrape_interval)
            row, ratio = _pilot_row(s, k, c, args.decisions, report, wall, srv, s / k)
            ok &= abs(ratio - 1) <= 0.03
            print(row)
        (s, k), url = pairs[0], first_url
        c = max(1, k // 2)
        report, wall, srv = run_pilot(url, args.decisions, c, args.scrape_interval)
        row, ratio = _pilot_row(s, k, c, args.decisions, report, wall, srv, 2 * s / k)
        ok &= abs(ratio - 1) <= 0.05
        print(f"at C = K/2 the server is never full: truth column is 2·S/K (±5 %)\n{HEADER}\n{row}")
        cap_ok, text = _capacity(url, s, k, args.concurrency_factor * k)
        ok &= cap_ok
        print(text)
    print("PASS" if ok else "FAIL: a figure is outside its tolerance")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
