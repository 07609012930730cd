"""Agent client, prompt and verdict schema against a local misbehaving OpenAI-compatible endpoint.

The real-vLLM counterparts are in tests/agent/test_vllm_real.py; these run in seconds without vLLM.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket

import jsonschema
import pytest
from support.fake_llm import FakeLLM

from proofpilot.agent.client import AgentClient
from proofpilot.agent.prompt import PROMPT_VERSION, build_request, format_features
from proofpilot.agent.records import Verdict
from proofpilot.agent.schema import InvalidAnswer, parse_answer, response_format, verdict_schema
from proofpilot.cli.main import main
from proofpilot.core.errors import ConfigError, DataError

FEATURES = {"cable_a_um": 12.345678, "gap_um": 0.5, "branch_points_a": 3, "angle_deg": float("nan")}


def _run(fake: FakeLLM, task_ids: list[str], **client_kwargs) -> tuple[list[Verdict], AgentClient]:
    requests = [build_request(tid, "split" if tid.endswith("s") else "merge", FEATURES) for tid in task_ids]

    async def go() -> tuple[list[Verdict], AgentClient]:
        async with AgentClient(fake.base_url, "fake", **client_kwargs) as client:
            return await client.decide_all(requests), client

    return asyncio.run(go())


@pytest.fixture
def fake():
    with FakeLLM() as server:
        yield server


# --- schema and prompt -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op_kind", "decisions"), [("merge", ["merge", "no_merge"]), ("split", ["split", "clean"])]
)
def test_schema_has_op_specific_enum_and_bounded_confidence(op_kind, decisions):
    schema = verdict_schema(op_kind)
    assert schema["properties"]["decision"]["enum"] == decisions
    assert schema["properties"]["confidence"] == {"type": "number", "minimum": 0, "maximum": 1}
    assert schema["additionalProperties"] is False
    fmt = response_format(op_kind)
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["schema"] == schema


@pytest.mark.parametrize(
    ("content", "finish", "reason"),
    [
        ('{"decision":"merge","confidence":0.5}', "length", "length"),
        ("", "stop", "empty_answer"),
        ('{"decision":"merge","confid', "stop", "invalid_json"),
        ('{"decision":"split","confidence":0.5}', "stop", "schema_mismatch"),  # split enum on a merge task
        ('{"decision":"merge","confidence":1.5}', "stop", "schema_mismatch"),
        ('{"decision":"merge","confidence":0.5,"why":"x"}', "stop", "schema_mismatch"),
        ('{"decision":"merge","confidence":true}', "stop", "schema_mismatch"),
    ],
)
def test_parse_answer_rejects_with_reason(content, finish, reason):
    with pytest.raises(InvalidAnswer) as info:
        parse_answer(content, finish, "merge")
    assert info.value.reason == reason


def test_parse_answer_accepts_valid():
    assert parse_answer('{"decision":"clean","confidence":0}', "stop", "split") == ("clean", 0.0)


def test_features_are_compact_text_in_order():
    text = format_features(FEATURES)
    assert text.splitlines() == ["cable_a_um=12.35", "gap_um=0.5", "branch_points_a=3", "angle_deg=n/a"]


def test_text_prompt_and_versions():
    request = build_request("t1", "split", FEATURES)
    assert request.prompt_version == PROMPT_VERSION
    system, user = request.messages
    assert system["role"] == "system" and '"split" or "clean"' in system["content"]
    assert isinstance(user["content"], str) and "gap_um=0.5" in user["content"]


def test_images_become_data_uri_parts():
    png = b"\x89PNG\r\n\x1a\nfake"
    request = build_request("t1", "merge", FEATURES, images=[png, png])
    parts = request.messages[1]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url", "image_url"]
    url = parts[1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == png
    assert request.n_images == 2 and "2 rendered 2-D views" in request.messages[0]["content"]


@pytest.mark.parametrize(
    ("op_kind", "features", "message"),
    [
        ("merge", {"x": "long"}, "not a number"),
        ("merge", {}, "no features"),
        ("rename", FEATURES, "unknown op kind"),
    ],
)
def test_bad_task_input_is_a_data_error(op_kind, features, message):
    with pytest.raises(DataError, match=message):
        build_request("t1", op_kind, features)


def test_client_rejects_tiny_max_tokens_and_bad_url():
    with pytest.raises(ConfigError, match="max_tokens"):
        AgentClient("http://127.0.0.1:1/v1", "m", max_tokens=16)
    with pytest.raises(ConfigError, match="http"):
        AgentClient("gpu-node:8000/v1", "m")


# --- client behaviour --------------------------------------------------------------------------


def test_valid_verdict_records_usage_and_sends_strict_schema_without_seed(fake):
    (verdict,), client = _run(fake, ["good-1s"])
    assert verdict.valid and verdict.decision == "split" and verdict.confidence == 0.75
    assert (verdict.prompt_tokens, verdict.completion_tokens) == (11, 7)
    assert verdict.attempts == verdict.answers == 1
    assert verdict.error_reason is None and verdict.finish_reason == "stop"
    assert verdict.endpoint == fake.base_url and verdict.prompt_version == PROMPT_VERSION
    body = fake.bodies[0]
    assert "seed" not in body
    assert body["max_tokens"] >= 64
    assert body["response_format"] == json.loads(json.dumps(response_format("split")))
    assert client.stats.answers == 1 and client.stats.valid_verdicts == 1


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        ("brokenjson", "invalid_json"),
        ("offschema", "schema_mismatch"),
        ("length", "length"),
        ("empty", "empty_answer"),
        ("garbage", "invalid_response"),
    ],
)
def test_invalid_answers_are_retried_to_the_limit_then_invalid(fake, behaviour, reason):
    (verdict,), client = _run(fake, [f"{behaviour}-1"], max_invalid_retries=2)
    assert not verdict.valid and verdict.decision is None and verdict.confidence is None
    assert verdict.error_reason == reason
    assert verdict.attempts == verdict.answers == 3 == fake.calls[f"{behaviour}-1"]
    assert client.stats.invalid_answers == {reason: 3}
    assert client.stats.failed_tasks == {reason: 1}
    if behaviour != "garbage":
        assert verdict.prompt_tokens == 3 * 11  # every answer's usage is counted


def test_one_invalid_answer_then_a_valid_one(fake):
    (verdict,), client = _run(fake, ["flaky-1"])
    assert verdict.valid and verdict.attempts == 2 and verdict.answers == 2
    assert client.stats.invalid_answers == {"invalid_json": 1} and not client.stats.failed_tasks


def test_every_llm_call_records_its_send_and_receive_times(fake):
    (verdict,), _ = _run(fake, ["flaky-1"])  # an invalid answer, then a valid one: two calls
    spans = verdict.call_spans
    assert len(spans) == verdict.answers == 2
    assert all(a < b for a, b in spans) and spans[0][1] <= spans[1][0]  # sequential, in order
    assert spans[-1][1] - spans[0][0] <= verdict.latency_s


@pytest.mark.parametrize(("behaviour", "reason"), [("err500", "server_error"), ("rl429", "rate_limited")])
def test_5xx_and_429_are_retried_by_the_sdk_and_counted(fake, behaviour, reason):
    (verdict,), client = _run(fake, [f"{behaviour}-1"], max_retries=2)
    assert not verdict.valid and verdict.error_reason == reason
    assert verdict.attempts == 3 == fake.calls[f"{behaviour}-1"]  # 1 try + 2 SDK retries
    assert verdict.answers == 0 and client.stats.failed_tasks == {reason: 1}


@pytest.mark.parametrize(("behaviour", "reason"), [("ctx400", "context_length"), ("bad400", "bad_request")])
def test_http_400_is_not_retried(fake, behaviour, reason):
    (verdict,), _ = _run(fake, [f"{behaviour}-1"], max_retries=3)
    assert verdict.error_reason == reason and verdict.attempts == 1 == fake.calls[f"{behaviour}-1"]


def test_timeout_is_a_reason_not_an_exception(fake):
    (verdict,), _ = _run(fake, ["slow-1"], timeout_s=0.3, max_retries=0)
    assert not verdict.valid and verdict.error_reason == "timeout" and verdict.attempts == 1


def test_unreachable_endpoint_gives_connection_verdicts():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed when the block ends: nothing listens there
    requests = [build_request(f"t{i}", "merge", FEATURES) for i in range(3)]

    async def go():
        async with AgentClient(f"http://127.0.0.1:{port}/v1", "m", max_retries=1) as client:
            return await client.decide_all(requests)

    verdicts = asyncio.run(go())
    assert [v.error_reason for v in verdicts] == ["connection"] * 3
    assert [v.attempts for v in verdicts] == [2] * 3


def test_mixed_batch_keeps_order_and_loses_nothing(fake):
    ids = ["good-1", "brokenjson-2", "ctx400-3", "good-4s", "flaky-5", "err500-6", "offschema-7s"]
    seen: list[str] = []

    async def go():
        async with AgentClient(fake.base_url, "fake", max_retries=1, max_invalid_retries=1) as client:
            requests = [build_request(t, "split" if t.endswith("s") else "merge", FEATURES) for t in ids]
            return await client.decide_all(requests, on_verdict=lambda v: seen.append(v.task_id)), client

    verdicts, client = asyncio.run(go())
    assert [v.task_id for v in verdicts] == ids and sorted(seen) == sorted(ids)
    assert [v.valid for v in verdicts] == [True, False, False, True, True, False, False]
    assert client.stats.failed_tasks == {
        "invalid_json": 1, "context_length": 1, "server_error": 1, "schema_mismatch": 1
    }
    assert client.stats.valid_verdicts == 3
    assert client.stats.answers == sum(v.answers for v in verdicts)
    for verdict in verdicts:
        if verdict.valid:
            answer = {"decision": verdict.decision, "confidence": verdict.confidence}
            jsonschema.validate(answer, verdict_schema(verdict.op_kind))


def test_empty_and_duplicate_task_lists_are_data_errors(fake):
    async def go(requests):
        async with AgentClient(fake.base_url, "fake") as client:
            return await client.decide_all(requests)

    with pytest.raises(DataError, match="empty task list"):
        asyncio.run(go([]))
    with pytest.raises(DataError, match="duplicate"):
        asyncio.run(go([build_request("a", "merge", FEATURES)] * 2))


def test_check_accepts_served_model_and_rejects_unknown(fake):
    async def go(model):
        async with AgentClient(fake.base_url, model) as client:
            return await client.check()

    assert asyncio.run(go("fake"))["id"] == "fake"
    with pytest.raises(DataError, match=r"model 'nope' is not served .*served: fake"):
        asyncio.run(go("nope"))


# --- CLI: one-line errors and a resumable run --------------------------------------------------


def _one_line_error(capsys, argv) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_cli_check_ok_and_errors(fake, capsys):
    assert main(["agent", "check", "--llm-url", fake.base_url, "--model", "fake"]) == 0
    assert "ok: fake" in capsys.readouterr().out
    argv = ["agent", "check", "--llm-url", fake.base_url, "--model", "x"]
    assert "not served" in _one_line_error(capsys, argv)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    assert "unreachable" in _one_line_error(capsys, ["agent", "check", "--llm-url", url, "--model", "fake"])


def test_cli_decide_empty_task_list_is_one_line_error(fake, tmp_path, capsys):
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("\n")
    argv = ["agent", "decide", "--llm-url", fake.base_url, "--model", "fake", "--tasks", str(tasks)]
    assert "empty task list" in _one_line_error(capsys, [*argv, "--out", str(tmp_path / "v.jsonl")])


def test_cli_decide_writes_verdicts_and_resumes(fake, tmp_path, capsys):
    tasks, out = tmp_path / "tasks.jsonl", tmp_path / "verdicts.jsonl"
    rows = [{"task_id": f"good-{i}", "op_kind": "merge", "features": FEATURES} for i in range(3)]
    tasks.write_text("".join(json.dumps(row) + "\n" for row in rows[:2]))
    argv = ["agent", "decide", "--llm-url", fake.base_url, "--model", "fake"]
    argv += ["--tasks", str(tasks), "--out", str(out)]
    assert main(argv) == 0
    tasks.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert main(argv) == 0
    written = [json.loads(line) for line in out.read_text().splitlines()]
    # nothing lost, none repeated
    assert sorted(v["task_id"] for v in written) == ["good-0", "good-1", "good-2"]
    assert sum(fake.calls.values()) == 3
    assert "1 verdicts, 1 valid" in capsys.readouterr().out
