"""Benchmark: does the cost accounting recover the true cost of a decision under batching?

A local OpenAI-compatible endpoint (its own process, 127.0.0.1) serves at most K requests at a time, each
taking S seconds, and exposes vLLM 0.32-style /metrics (running, waiting, request and token counters,
inference-time histogram). Its true cost is S/K node-seconds per decision (gpus = 1). The agent client
(proofpilot.agent.client, AsyncOpenAI underneath) drives it with C = 3K decisions in flight; VllmScraper
scrapes /metrics; telemetry.cost turns the window into node-seconds per decision. Printed per (S, K): the
reported node-s per decision and its ratio to the S/K baseline (must be within ±5 %), and the naive sums
beside it: client latency per decision (≈ C·S/K, off by the mean concurrency C) and server service time per
request (= S, off by K×). Exit status 1 if any pair misses ±5 %.

    .venv/bin/python bench/cost_fidelity.py
    .venv/bin/python bench/cost_fidelity.py --pairs 0.2:4,0.5:8 --decisions-per-slot 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import sys
import threading
import time
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

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _send(self, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/metrics":
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
            t0 = time.perf_counter()
            time.sleep(service_s)
            held = time.perf_counter() - t0
            with lock:
                st["running"] -= 1
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


def run_pair(service_s: float, slots: int, per_slot: int, conc_factor: int) -> dict:
    from proofpilot.telemetry.cost import DecisionUsage, build_cost_report
    from proofpilot.telemetry.vllm_scrape import VllmScraper

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    stop = ctx.Event()
    proc = ctx.Process(target=_serve, args=(service_s, slots, child, stop), daemon=True)
    proc.start()
    try:
        url = parent.recv()
        n, concurrency = per_slot * slots, conc_factor * slots
        scraper = VllmScraper([url + "/metrics"], interval_s=min(0.05, service_s / 5)).start()
        t0 = time.perf_counter()
        verdicts = asyncio.run(_drive(url, n, concurrency))
        wall = time.perf_counter() - t0
        window = scraper.stop()
    finally:
        stop.set()
        proc.join(timeout=10)
    if not all(v.valid for v in verdicts):
        raise SystemExit(f"invalid verdicts: {[v.error_reason for v in verdicts if not v.valid][:3]}")
    usage = [DecisionUsage(v.op_kind, v.latency_s, v.prompt_tokens, v.completion_tokens, v.answers)
             for v in verdicts]  # fmt: skip
    report = build_cost_report(window, usage, gpus_per_endpoint=1)
    return dict(S=service_s, K=slots, C=concurrency, n=n, wall=wall, report=report)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", default="0.2:4,0.5:8,0.25:16", help="S:K pairs (seconds per request : slots)")
    ap.add_argument("--decisions-per-slot", type=int, default=40, help="decisions = this × K")
    ap.add_argument("--concurrency-factor", type=int, default=3, help="decisions in flight = this × K")
    args = ap.parse_args()
    pairs = [(float(s), int(k)) for s, k in (p.split(":") for p in args.pairs.split(","))]
    print("S/K baseline = the true node-seconds per decision (gpus = 1); tolerance ±5 %")
    cols = [("S s", 5), ("K", 3), ("C", 3), ("n", 4), ("wall s", 7), ("busy s", 7), ("node-s/dec", 10),
            ("95% CI", 17), ("S/K", 7), ("ratio", 6)]  # fmt: skip
    naive_cols = f"| {'latency/dec':>11} {'x S/K':>6} | {'service/req':>11} {'x S/K':>6} | {'slots used':>10}"
    print(" ".join(f"{name:>{width}}" for name, width in cols), naive_cols)
    ok = True
    for s, k in pairs:
        r = run_pair(s, k, args.decisions_per_slot, args.concurrency_factor)
        rep, base = r["report"], s / k
        tp, naive = rep.throughput, rep.naive_latency
        ratio = tp.node_s_per_decision / base
        ok &= abs(ratio - 1) <= 0.05
        service = naive.server_inference_time_per_request_s or float("nan")
        used = service * tp.server_requests / (k * tp.busy_node_seconds)  # slot occupancy in the busy window
        ci = f"[{tp.node_s_per_decision_ci[0]:.4f}, {tp.node_s_per_decision_ci[1]:.4f}]"
        print(f"{s:5.2f} {k:3d} {r['C']:3d} {r['n']:4d} {r['wall']:7.2f} {tp.busy_node_seconds:7.2f} "
              f"{tp.node_s_per_decision:10.4f} {ci:>17} {base:7.4f} {ratio:6.3f} | "
              f"{naive.per_decision_s:11.4f} {naive.per_decision_s / base:6.1f} | "
              f"{service:11.4f} {service / base:6.1f} | {used:10.1%}")  # fmt: skip
    print(
        "ratio = reported / (S/K); latency/dec = naive client latency sum per decision (not a cost, ≈ C×); "
        "service/req = server busy-time sum per request (not a cost, ≈ K×); slots used = that sum / "
        "(K × busy s): below 100 % the endpoint itself fell short of K/S (CPU overhead), so S/K under-states"
    )
    print("PASS" if ok else "FAIL: a pair is outside ±5 % of S/K")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
