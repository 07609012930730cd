"""The LLM client bounds every attempt by an overall deadline and a body-size cap, and never logs a key a
server quotes back: a dripping answer becomes a "timeout" verdict by the deadline, an oversized one a
"response_too_large" verdict with memory bounded by the cap, an echoing 401 a verdict whose logs lack the key.
"""

from __future__ import annotations

import asyncio
import logging
import time
import tracemalloc

from support.fake_llm import FakeLLM

from proofpilot.agent.client import AgentClient
from proofpilot.agent.prompt import build_request
from proofpilot.agent.records import TRANSPORT_REASONS, Verdict

FEATURES = {"cable_a_um": 12.3, "gap_um": 0.5}
KEY = "sk-" + "h4rdsec" * 5


def _ask(url: str, task_id: str, **kw) -> Verdict:
    async def go() -> Verdict:
        async with AgentClient(url, "fake", **kw) as client:
            return await client.decide(build_request(task_id, "merge", FEATURES))

    return asyncio.run(go())


def test_a_dripping_answer_fails_at_the_deadline(caplog):
    caplog.set_level(logging.DEBUG, logger="proofpilot")
    with FakeLLM() as fake:
        started = time.monotonic()
        verdict = _ask(fake.base_url, "drip-1", timeout_s=2.0, max_retries=0)
        elapsed = time.monotonic() - started
    assert not verdict.valid and verdict.error_reason == "timeout" and verdict.attempts == 1
    assert 2.0 <= elapsed < 2.0 + 0.75  # httpx's per-read timeout alone would wait for every byte
    assert "deadline 2 s exceeded" in caplog.text


def test_an_oversized_answer_fails_at_the_cap_with_bounded_memory():
    cap = 4 * 2**20
    with FakeLLM() as fake:
        tracemalloc.start()
        try:
            verdict = _ask(fake.base_url, "huge-1", max_retries=1, max_response_bytes=cap)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        sent = fake.sent_bytes["huge-1"]
    assert not verdict.valid and verdict.error_reason == "response_too_large"
    assert verdict.error_reason in TRANSPORT_REASONS  # a pilot asks it again later: resumable, not stored
    assert verdict.attempts == 2  # retried by the SDK like any transport failure
    assert peak < cap + 4 * 2**20, peak  # never the 256 MiB body
    assert sent < fake.huge_bytes  # the client hung up


def test_an_echoed_api_key_never_reaches_the_logs(caplog):
    caplog.set_level(logging.DEBUG)
    with FakeLLM() as fake:
        verdict = _ask(fake.base_url, "echo401-1", api_key=KEY, max_retries=0)
    assert not verdict.valid and verdict.error_reason == "api_error"
    assert "invalid credentials" in caplog.text and KEY not in caplog.text
    assert KEY not in repr(verdict)
