"""vLLM's per-request timings (agent/timings.py): read from the real CPU server's responses, stored per
verdict (old verdict lines still read), summed over a decision's calls."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from proofpilot.agent.client import AgentClient
from proofpilot.agent.prompt import build_request
from proofpilot.agent.timings import CallTiming, call_timing, decision_timing
from proofpilot.orchestrator.run_records import StoredVerdict


def test_call_timing_reads_vllms_metrics_object():
    completion = SimpleNamespace(model_extra={"metrics": {
        "queue_time_ms": 12.5, "time_to_first_token_ms": 40.0, "generation_time_ms": 250.0,
        "mean_itl_ms": 9.0,
    }})  # fmt: skip
    assert call_timing(completion) == CallTiming(0.0125, 0.04, 0.25)
    assert call_timing(SimpleNamespace(model_extra={})) is None  # a server without the flag
    assert call_timing(SimpleNamespace(model_extra={"metrics": {"queue_time_ms": None}})) is None
    bad = SimpleNamespace(model_extra={"metrics": {"queue_time_ms": "x", "generation_time_ms": -1,
                                                   "time_to_first_token_ms": 5}})  # fmt: skip
    assert call_timing(bad) == CallTiming(None, 0.005, None)


def test_decision_timing_sums_calls_and_ttft_is_queue_plus_prefill():
    got = decision_timing([CallTiming(0.01, 0.02, 0.3), None, CallTiming(0.03, 0.04, None)])
    assert got["server_queue_s"] == pytest.approx(0.04) and got["server_prefill_s"] == pytest.approx(0.06)
    assert got["server_decode_s"] == pytest.approx(0.3) and got["server_ttft_s"] == pytest.approx(0.10)
    assert set(decision_timing([None]).values()) == {None}


def test_old_verdict_lines_read_without_timings():
    old = {"task_id": "t", "operation_id": 1, "neuron_root_id": 2, "neuron_n_edits": 3, "label": "merge",
           "agent": "llm", "op_kind": "merge", "decision": "merge", "valid": True, "latency_s": 0.2,
           "prompt_tokens": 10, "completion_tokens": 5, "attempts": 1, "answers": 1,
           "error_reason": None}  # fmt: skip
    row = StoredVerdict.from_dict(old)
    assert row.server_queue_s is None and row.server_decode_s is None and row.server_ttft_s is None


@pytest.mark.vllm
def test_real_server_gives_queue_prefill_decode_per_verdict(vllm_server):
    requests = [build_request(f"t{i}", "merge" if i % 2 else "split", {"gap_um": i / 10}) for i in range(24)]

    async def run():
        async with AgentClient(vllm_server.base_url, vllm_server.model, max_in_flight=24) as client:
            return await client.decide_all(requests)

    verdicts = [v for v in asyncio.run(run()) if v.answers > 0]
    assert verdicts
    for v in verdicts:
        assert v.server_queue_s is not None and v.server_queue_s >= 0
        assert v.server_prefill_s is not None and v.server_prefill_s > 0
        assert v.server_ttft_s == pytest.approx(v.server_queue_s + v.server_prefill_s)
        assert v.server_decode_s is not None and v.server_decode_s >= 0
        # the server's phases happen inside the client's own span of each call
        assert v.server_ttft_s + v.server_decode_s <= sum(b - a for a, b in v.call_spans) + 1e-3
    assert max(v.server_queue_s for v in verdicts) > 0  # 24 at once on 2 cores: some wait


@pytest.mark.vllm
def test_real_server_streamed_gives_the_same_verdicts_with_client_ttft_and_decode(vllm_server):
    """`timings="stream"` on real vLLM (as for a server without per-request metrics): every answer parses,
    the usage chunk gives the tokens, and the client's TTFT and decode sit inside each call's span."""
    requests = [build_request(f"s{i}", "merge" if i % 2 else "split", {"gap_um": i / 10}) for i in range(8)]

    async def run():
        async with AgentClient(vllm_server.base_url, vllm_server.model, timings="stream") as client:
            return await client.decide_all(requests)

    verdicts = [v for v in asyncio.run(run()) if v.answers > 0]
    assert verdicts
    for v in verdicts:
        assert v.prompt_tokens > 0 and v.completion_tokens > 0
        assert v.server_queue_s is None and v.server_prefill_s is None
        assert v.server_ttft_s > 0 and v.server_decode_s >= 0
        assert v.server_ttft_s + v.server_decode_s <= sum(b - a for a, b in v.call_spans) + 1e-3
    assert sum(v.valid for v in verdicts) >= len(verdicts) // 2  # a random-weight model, grammar-bound
