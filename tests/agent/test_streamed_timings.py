"""Server timings from streaming (agent/streaming.py) for endpoints without vLLM's per-request metrics:
the verdict, its tokens and its call span are what the non-streamed path gives, plus the client's time to
first chunk and decode time; "auto" streams from the first answer that carries no metrics."""

from __future__ import annotations

import asyncio

import pytest

from proofpilot.agent.client import AgentClient
from proofpilot.agent.prompt import build_request
from proofpilot.core.errors import ConfigError
from tests.support.fake_llm import FakeLLM


@pytest.fixture
def fake():
    with FakeLLM() as server:
        yield server


def _ask(fake: FakeLLM, task_ids: list[str], **kwargs):
    requests = [build_request(t, "merge", {"gap_um": 0.5}) for t in task_ids]

    async def go():
        async with AgentClient(fake.base_url, "fake", **kwargs) as client:
            return [await client.decide(r) for r in requests], client  # one at a time: order is known

    return asyncio.run(go())


def test_streamed_call_gives_verdict_tokens_ttft_and_decode(fake):
    (verdict,), _ = _ask(fake, ["good-1"], timings="stream")
    assert fake.bodies[0]["stream"] is True and fake.bodies[0]["stream_options"] == {"include_usage": True}
    assert verdict.valid and verdict.decision == "merge" and verdict.confidence == 0.75
    assert (verdict.prompt_tokens, verdict.completion_tokens) == (11, 7)  # from the usage chunk
    assert verdict.server_queue_s is None and verdict.server_prefill_s is None  # streaming cannot split TTFT
    content = '{"decision": "merge", "confidence": 0.75}'
    gaps = (len(content) + fake.stream_piece - 1) // fake.stream_piece - 1
    assert verdict.server_ttft_s > 0 and verdict.server_decode_s > 0  # client clocks: the first chunk may
    assert verdict.server_ttft_s + verdict.server_decode_s >= gaps * fake.stream_gap_s  # be read late
    (start, end), = verdict.call_spans  # fmt: skip
    assert verdict.server_ttft_s + verdict.server_decode_s <= end - start + 1e-6  # ends with the stream


def test_metrics_mode_never_streams_and_auto_streams_after_an_answer_without_metrics(fake):
    verdicts, client = _ask(fake, ["good-1", "good-2"])
    assert not client.streaming and all("stream" not in b for b in fake.bodies)
    assert all(v.valid and v.server_ttft_s is None for v in verdicts)
    fake.bodies.clear()
    verdicts, client = _ask(fake, ["good-3", "good-4"], timings="auto")
    assert client.streaming and ["stream" in b for b in fake.bodies] == [False, True]
    assert verdicts[0].server_ttft_s is None and verdicts[1].server_ttft_s > 0
    assert all(v.valid for v in verdicts)


def test_invalid_streamed_answer_is_reasked_like_a_plain_one(fake):
    (verdict,), _ = _ask(fake, ["flaky-1"], timings="stream")
    assert verdict.valid and verdict.answers == 2 and len(verdict.call_spans) == 2
    (verdict,), _ = _ask(fake, ["offschema-1"], timings="stream", max_invalid_retries=1)
    assert not verdict.valid and verdict.error_reason == "schema_mismatch" and verdict.answers == 2


def test_a_stream_past_the_deadline_is_a_timeout_verdict(fake):
    fake.stream_gap_s = 1.0  # 5 chunks, 4 s; the attempt's deadline is 0.5 s
    (verdict,), _ = _ask(fake, ["good-1"], timings="stream", timeout_s=0.5, max_retries=0)
    assert not verdict.valid and verdict.error_reason == "timeout" and verdict.answers == 0


def test_unknown_timing_mode_is_a_config_error():
    with pytest.raises(ConfigError, match="timings must be one of"):
        AgentClient("http://127.0.0.1:1/v1", "m", timings="sometimes")
