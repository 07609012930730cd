"""`proofpilot capacity` against a K-slot OpenAI-compatible stub (bench/openai_stub.py, its own process).

The stub serves at most K requests at a time, each S seconds: its throughput grows with concurrency up to
K, then stays at K/S, and a decision costs S/K node-seconds there.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import socket
from pathlib import Path

import pytest

from proofpilot.agent.prompt import build_request
from proofpilot.cli.main import main
from proofpilot.core.errors import ConfigError, DataError
from proofpilot.telemetry.capacity import (
    SweepSpec,
    levels_up_to,
    read_capacity_json,
    read_prompts,
    sweep,
    write_capacity_json,
)

REPO = Path(__file__).resolve().parents[2]
S, K = 0.2, 4


def _stub_server():
    spec = importlib.util.spec_from_file_location("openai_stub", REPO / "bench" / "openai_stub.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.StubServer


PROMPTS = [build_request("t1", "merge", {"gap_um": 0.5}), build_request("t2", "split", {"angle_deg": 12.0})]


@pytest.fixture(scope="module")
def stub():
    with _stub_server()(model="stub", delay_s=S, slots=K) as server:
        yield server


@pytest.fixture(scope="module")
def swept(stub):
    return sweep(SweepSpec(stub.base_url, "stub", max_concurrency=64, min_requests=8), PROMPTS)


def test_knee_is_at_or_above_k_and_throughput_rises_to_it(swept):
    rates = [lv.decisions_per_s for lv in swept.levels]
    knee = swept.level(swept.knee_concurrency)
    assert swept.knee_concurrency >= K and swept.recommended_concurrency == swept.knee_concurrency
    upto = [lv.decisions_per_s for lv in swept.levels if lv.concurrency <= knee.concurrency]
    assert all(a < b for a, b in itertools.pairwise(upto))  # monotone up to the knee
    beyond = [lv.decisions_per_s for lv in swept.levels if lv.concurrency > knee.concurrency]
    assert beyond and all(r == pytest.approx(knee.decisions_per_s, rel=0.15) for r in beyond)  # then flat
    p95 = [lv.latency_p95_s for lv in swept.levels if lv.concurrency >= K]
    assert all(a < b for a, b in itertools.pairwise(p95))  # past K, more in flight only queues: p95 grows
    assert "grew <" in swept.stopped and len(rates) < len(levels_up_to(64))  # stopped on the plateau
    assert knee.node_s_per_decision == pytest.approx(S / K, rel=0.15)
    one = swept.levels[0].node_s_per_decision  # one in flight: S each, plus the client's own round trip
    assert S <= one < 1.5 * S and one > 2 * knee.node_s_per_decision
    assert all(lv.latency_p50_s <= lv.latency_p95_s <= lv.latency_p99_s for lv in swept.levels)


def test_capacity_json_round_trips(swept, tmp_path):
    path = write_capacity_json(swept, tmp_path)
    assert path.name == "capacity.json" and read_capacity_json(tmp_path) == swept


def test_p95_cap_stops_the_sweep_and_caps_the_recommendation(stub):
    cap = 1.7 * S  # concurrency 2K queues every request for one extra S: p95 ≈ 2 S
    report = sweep(
        SweepSpec(stub.base_url, "stub", max_concurrency=64, min_requests=8, max_p95_s=cap), PROMPTS
    )
    rec = report.level(report.recommended_concurrency)
    assert rec is not None and rec.latency_p95_s <= cap and rec.concurrency <= K
    assert "p95" in report.stopped and report.levels[-1].latency_p95_s > cap


def test_bad_sweep_input_is_a_one_line_error(stub, tmp_path):
    with pytest.raises(ConfigError, match="max-concurrency"):
        sweep(SweepSpec(stub.base_url, "stub", max_concurrency=0), PROMPTS)
    with pytest.raises(DataError, match="not served"):
        sweep(SweepSpec(stub.base_url, "other", max_concurrency=2), PROMPTS)
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"op_kind": "merge", "prompt": "hi"}\n{"op_kind": "sideways", "prompt": "x"}\n')
    with pytest.raises(DataError, match=r"p.jsonl:2:"):
        read_prompts(bad)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _one_line_error(capsys, argv) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_cli_bad_input_one_liners(stub, tmp_path, capsys):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"op_kind": "merge", "prompt": "merge or not?"}) + "\n")
    base = ["capacity", "--prompts", str(prompts)]
    down = f"http://127.0.0.1:{_closed_port()}/v1"
    assert "unreachable" in _one_line_error(capsys, [*base, "--llm-url", down, "--model", "stub"])
    assert "not served" in _one_line_error(capsys, [*base, "--llm-url", stub.base_url, "--model", "x"])
    err = _one_line_error(
        capsys, [*base, "--llm-url", stub.base_url, "--model", "stub", "--max-concurrency", "0"]
    )
    assert "max-concurrency must be >= 1" in err
    err = _one_line_error(capsys, ["capacity", "--llm-url", stub.base_url, "--model", "stub"])
    assert "exactly one of --tasks and --prompts" in err


def test_cli_writes_capacity_json(stub, tmp_path, capsys):
    tasks = tmp_path / "tasks.jsonl"
    rows = [{"task_id": f"t{i}", "op_kind": "merge", "features": {"gap_um": i}} for i in range(3)]
    tasks.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "cap.json"
    argv = ["capacity", "--llm-url", stub.base_url, "--model", "stub", "--tasks", str(tasks),
            "--max-concurrency", "2", "--min-requests", "4", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    report = read_capacity_json(out)
    assert [lv.concurrency for lv in report.levels] == [1, 2] and "recommended concurrency" in printed
    assert report.levels[1].decisions_per_s > report.levels[0].decisions_per_s
