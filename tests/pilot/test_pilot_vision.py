"""Views end to end on the real vLLM CPU servers: the tiny Qwen2.5-VL (one shared server, `vllm_vl`) takes
them and counts them as the image processor does; the text model (`vllm`) rejects them before any task."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile

import pytest

from proofpilot.agent.client import AgentClient
from proofpilot.agent.image_tokens import QWEN25_VL_32B
from proofpilot.agent.prompt import build_request
from proofpilot.agent.vision import blank_png, check_vision
from proofpilot.orchestrator.run_records import read_verdict_rows
from proofpilot.orchestrator.sample_views import read_sample_views
from proofpilot.pilot.capacity_step import CapacityOptions
from proofpilot.pilot.run import PilotConfig, run_pilot
from proofpilot.pilot.views import resolve_views
from proofpilot.report.build import build_report
from proofpilot.tasks.views import view_names
from proofpilot.telemetry.capacity import read_capacity_json
from proofpilot.telemetry.metrics import PrometheusDecisionLogger

FEATURES = {"gap_um": 1.25, "angle_deg": 12.0, "radius_ratio": 0.8}


@pytest.fixture(scope="module")
def ray_tmp():
    path = tempfile.mkdtemp(prefix="ppv-", dir="/tmp")  # short: unix socket paths are limited
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _text_only(request):
    """The same request with its image parts removed (the text the server tokenizes around the images)."""
    user = dict(request.messages[1])
    user["content"] = [p for p in user["content"] if p["type"] == "text"]
    return dataclasses.replace(
        request, task_id=request.task_id + "-text", messages=(request.messages[0], user)
    )


@pytest.mark.vllm_vl
def test_server_prompt_tokens_are_text_plus_k_times_the_processors_image_tokens(vllm_vl_server):
    cases = [(1, 512), (3, 256), (3, 512), (6, 256)]
    requests = []
    for k, px in cases:
        per_view = QWEN25_VL_32B.view_tokens(px)
        request = build_request(f"k{k}-{px}", "merge", FEATURES, [blank_png(px)] * k,
                                view_names=view_names(k), image_tokens=k * per_view)  # fmt: skip
        requests += [request, _text_only(request)]

    async def ask():
        async with AgentClient(vllm_vl_server.base_url, vllm_vl_server.model, max_in_flight=4) as client:
            return await client.decide_all(requests)

    verdicts = {v.task_id: v for v in asyncio.run(ask())}
    for k, px in cases:
        with_views, text = verdicts[f"k{k}-{px}"], verdicts[f"k{k}-{px}-text"]
        assert with_views.answers and text.answers, (with_views.error_reason, text.error_reason)
        text_tokens = text.prompt_tokens // text.answers
        server = with_views.prompt_tokens // with_views.answers
        assert server == text_tokens + k * QWEN25_VL_32B.view_tokens(px), (k, px)
        assert (
            with_views.n_images == k
            and with_views.image_tokens == with_views.answers * k * QWEN25_VL_32B.view_tokens(px)
        )
        assert with_views.text_tokens == with_views.answers * text_tokens

    check = check_vision((vllm_vl_server.base_url,), vllm_vl_server.model, 2, 512, QWEN25_VL_32B)
    assert check.agrees and check.tokens_per_view == 326
    assert resolve_views((vllm_vl_server.base_url,), vllm_vl_server.model, None, 512) == (3, 326)


@pytest.mark.vllm_vl
def test_pilot_with_three_views_stores_image_tokens_and_shows_sample_views(vllm_vl_server, tmp_path, ray_tmp):
    """(A render failure is a task error with its reason: tests/orchestrator/test_prep_pipeline.py, where the
    Ray tasks that render can be given a failing renderer.)"""
    run_dir = tmp_path / "run"
    config = PilotConfig(
        source="minnie65_synthetic", run_dir=run_dir, neurons=3, max_ops_per_neuron=1,
        llm_urls=(vllm_vl_server.base_url,), model=vllm_vl_server.model, gpus_per_endpoint=1, concurrency=8,
        metrics_port=0, progress=False, scrape_interval_s=0.25, ray_temp_dir=ray_tmp, views=3, view_px=256,
        find_capacity=CapacityOptions(max_concurrency=2, min_requests=4),
    )  # fmt: skip
    logger = PrometheusDecisionLogger()
    result = run_pilot(config, logger)

    assert result.complete and not result.interrupted
    rows = read_verdict_rows(run_dir)
    tasks = [json.loads(line)["task_id"] for line in (run_dir / "tasks.jsonl").read_text().splitlines()]
    assert sorted(r.task_id for r in rows) == sorted(tasks)  # every task decided once, none lost
    per_view = QWEN25_VL_32B.view_tokens(256)
    asked = [r for r in rows if r.answers]
    assert asked and all(r.n_images == 3 and r.image_tokens == r.answers * 3 * per_view for r in asked)
    assert all(0 < r.text_tokens < r.prompt_tokens for r in asked)

    cost = json.loads((run_dir / "cost.json").read_text())
    for op in cost["per_op"].values():
        assert op["image_tokens_per_decision"] == 3 * per_view and op["views_per_call"] == 3
        assert 0 < op["image_share"] < 1
    text = logger.exposition().decode()
    image_total = sum(float(line.split()[-1]) for line in text.splitlines()
                      if line.startswith("proofpilot_image_tokens_total{"))  # fmt: skip
    assert image_total == sum(r.image_tokens for r in rows)

    samples = read_sample_views(run_dir)
    assert {s.op_kind for s in samples} == {"merge", "split"}
    assert all(s.view_names == ("xy", "xz", "yz") and len(s.files) == 3 for s in samples)
    # --find-capacity: the sweep replays the run's requests, views stood in by its sample views
    capacity = read_capacity_json(run_dir / "capacity.json")
    assert result.capacity_path == run_dir / "capacity.json"
    assert [lv.concurrency for lv in capacity.levels] == [1, 2] and capacity.knee_concurrency in (1, 2)
    assert all(lv.decisions >= 4 and lv.node_s_per_decision > 0 for lv in capacity.levels)

    report = build_report(run_dir)
    page = report.path.read_text()
    assert 'id="views"' in page and page.count('alt="xy view of task') == len(samples)
    for s in samples:
        assert f"task {s.task_id}" in page
    assert 'id="capacity"' in page and f"{capacity.knee_concurrency} (knee)" in page


@pytest.mark.vllm
def test_views_with_a_text_model_is_one_line_before_any_task(vllm_server, tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "proofpilot.cli", "pilot", "--datastack", "fafb_synthetic", "--neurons", "2",
         "--llm-url", vllm_server.base_url, "--model", vllm_server.model, "--views", "3",
         "--run-dir", str(run_dir), "--metrics-port", "0", "--no-progress"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    err = proc.stderr.strip()
    assert proc.returncode != 0 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("proofpilot: error: --views 3: model 'tinyqwen'") and "rejects images" in err
    assert not run_dir.exists()
    # the default picks text-only prompts for a text model
    assert resolve_views((vllm_server.base_url,), vllm_server.model, None, 512) == (0, 0)
