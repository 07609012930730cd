"""`proofpilot export-prompts`: one line per LLM call, read back by vLLM's own CustomDataset and by
`proofpilot capacity --prompts`."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from support.eval_runs import correct_rows, hand_rows, make_run

from proofpilot.agent.prompt import build_request
from proofpilot.agent.serving import CpuServerConfig, unavailable_reason
from proofpilot.cli.main import main
from proofpilot.orchestrator.run_records import read_verdict_rows
from proofpilot.telemetry.capacity import read_prompts
from proofpilot.telemetry.replay import append_request_log, read_replay_jsonl

BENCH = Path(__file__).resolve().parents[2] / "deploy" / "vllm" / "bench_serve.sh"

# vLLM 0.32's loader, as `vllm bench serve --dataset-name custom --custom-output-len -1` calls it
VLLM_READ = """
import json, sys
from transformers import AutoTokenizer
from vllm.benchmarks.datasets.datasets import CustomDataset
tok = AutoTokenizer.from_pretrained(sys.argv[2])
ds = CustomDataset(dataset_path=sys.argv[1], disable_shuffle=True, random_seed=0)
reqs = ds.sample(tokenizer=tok, num_requests=0, output_len=-1)
print(json.dumps([[r.prompt_len, r.expected_output_len] for r in reqs]))
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("replay")
    run = make_run(root / "llm", hand_rows())
    tasks = [json.loads(line) for line in (run / "tasks.jsonl").read_text().splitlines()]
    # what the pilot's session logs before it dispatches (pilot/session.py)
    requests = [build_request(t["task_id"], t["op_kind"], {"gap_um": 0.1 * i, "angle_deg": 3.0 * i})
                for i, t in enumerate(tasks)]  # fmt: skip
    append_request_log(run, requests)
    out = root / "prompts.jsonl"
    assert main(["export-prompts", str(run), "--out", str(out), "--concurrency", "8"]) == 0
    return run, out


def test_one_line_per_llm_call_with_its_output_tokens(exported, capsys):
    run, out = exported
    verdicts = [v for v in read_verdict_rows(run) if v.answers > 0]
    lines = read_replay_jsonl(out)
    assert len(lines) == sum(v.answers for v in verdicts) > len(verdicts)  # a retried decision: 2 lines
    by_task = {v.task_id: v for v in verdicts}
    for line in lines:
        v = by_task[line.task_id]
        assert line.output_tokens == max(1, round(v.completion_tokens / v.answers))
        assert line.op_kind == v.op_kind and line.prompt.startswith(line.messages[0]["content"])
        assert line.messages[1]["content"] in line.prompt
    raw = json.loads(out.read_text().splitlines()[0])
    assert isinstance(raw["prompt"], str) and isinstance(raw["output_tokens"], int)  # vLLM's fields
    assert [r.op_kind for r in read_prompts(out)] == [x.op_kind for x in lines]  # a capacity --prompts file


def test_vllms_custom_dataset_reads_it(exported):
    config = CpuServerConfig()
    if unavailable_reason(config):
        pytest.skip(unavailable_reason(config))
    _, out = exported
    env = {**os.environ, "PROOFPILOT_CACHE_DIR": str(out.parent / "cache")}  # not $HOME
    res = subprocess.run(
        [str(BENCH), "--python", "-c", VLLM_READ, str(out), str(config.model_dir)],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    lines = read_replay_jsonl(out)
    assert [o for _, o in got] == [x.output_tokens for x in lines]
    assert all(p > 20 for p, _ in got)  # the whole system + user text, chat-templated


def test_bad_input_is_one_line(tmp_path, capsys):
    base = make_run(tmp_path / "base", correct_rows(hand_rows()), agent="baseline")
    code = main(["export-prompts", str(base), "--out", str(tmp_path / "x.jsonl")])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "no answered LLM decisions" in err
    llm = make_run(tmp_path / "llm", hand_rows())  # no llm_requests.jsonl, no features: nothing to replay
    code = main(["export-prompts", str(llm), "--out", str(tmp_path / "z.jsonl")])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "no logged request for task" in err
    empty = Path(tmp_path / "empty")
    empty.mkdir()
    code = main(["export-prompts", str(empty), "--out", str(tmp_path / "y.jsonl")])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "Traceback" not in err
