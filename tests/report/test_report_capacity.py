"""The report's capacity section and the full-dataset cost at the knee (report/capacity.py), and the
requests `pilot --find-capacity` sweeps with (pilot/capacity_step.py)."""

from __future__ import annotations

import pytest
from support.eval_runs import hand_rows, make_cost, make_run
from test_report import PNG, Page

from proofpilot.agent.prompt import build_request, request_images
from proofpilot.core.errors import DataError
from proofpilot.orchestrator.sample_views import write_sample_views
from proofpilot.pilot.capacity_step import run_requests
from proofpilot.report.build import build_report, gather
from proofpilot.telemetry.capacity import CapacityLevel, CapacityReport, write_capacity_json
from proofpilot.telemetry.cost import read_cost_json
from proofpilot.telemetry.projection import EditsProjection
from proofpilot.telemetry.replay import append_request_log


def _level(c: int, per_s: float, node_s: float) -> CapacityLevel:
    n = 4 * c
    return CapacityLevel(concurrency=c, decisions=n, invalid=0, wall_s=n / per_s, busy_s=n * node_s,
                         decisions_per_s=per_s, node_s_per_decision=node_s, gpu_s_per_decision=node_s,
                         latency_p50_s=0.1 * c, latency_p95_s=0.12 * c, latency_p99_s=0.13 * c,
                         gain=None)  # fmt: skip


@pytest.fixture
def swept_run(tmp_path):
    rows = hand_rows()
    run = make_run(tmp_path / "run", rows)
    projection = EditsProjection("fafb_synthetic", 2.0e6, (1.5e6, 2.6e6), 8.0e5, (6.0e5, 1.0e6))
    make_cost(run, rows, gpus=2, projection=projection)
    levels = (_level(1, 2.0, 0.5), _level(2, 3.9, 0.26), _level(4, 7.0, 0.143), _level(8, 7.1, 0.141))
    capacity = CapacityReport(llm_url="http://127.0.0.1:8000/v1", model="tiny", gpus_per_endpoint=2,
                              max_concurrency=8, max_p95_s=None, levels=levels, stopped="reached the bound",
                              knee_concurrency=4, recommended_concurrency=4)  # fmt: skip
    write_capacity_json(capacity, run / "capacity.json")
    return run


def test_full_dataset_cost_at_the_knee_is_the_run_cost_times_the_knee_factor(swept_run):
    inputs, _ = gather(swept_run, (), (), n_bootstrap=200)
    cost = read_cost_json(swept_run / "cost.json")
    factor = 0.143 / cost.throughput.node_s_per_decision  # no call spans here: the scraped figure
    assert inputs.knee.concurrency == 4 and inputs.knee.factor == pytest.approx(factor)
    own, at_knee = inputs.dataset_costs
    assert at_knee.source == f"{own.source}, priced at the capacity knee (4 in flight)"
    assert at_knee.measured.node_hours == pytest.approx(own.measured.node_hours * factor)
    assert at_knee.measured.node_hours_ci == pytest.approx([c * factor for c in own.measured.node_hours_ci])
    assert at_knee.measured.gpu_hours == pytest.approx(2 * at_knee.measured.node_hours)
    assert at_knee.seed.node_hours == pytest.approx(own.seed.node_hours)  # the seed's placeholders unchanged


def test_report_draws_the_sweep_and_its_table(swept_run):
    result = build_report(swept_run, n_bootstrap=200)
    text = result.path.read_text()
    page = Page(text)
    assert 'id="capacity"' in text and "the knee is the lowest concurrency within 3 %" in text
    cells = page.tables["capacity-table"]
    assert "4 (knee)" in cells and [c for c in cells if c.endswith("(knee)")] == ["4 (knee)"]
    full = page.tables["full-dataset-cost-table"]
    assert any("priced at the capacity knee (4 in flight)" in c for c in full)
    alts = [a.get("alt") for t, a in page.tags if t == "img"]
    assert "throughput and latency against requests in flight" in alts
    (swept_run / "capacity.json").unlink()
    plain = build_report(swept_run, out_path=swept_run / "plain.html", n_bootstrap=200)
    assert plain.n_images == result.n_images - 1 and 'id="capacity"' not in plain.path.read_text()


def test_sweep_requests_are_the_logged_ones_with_sample_views_standing_in(tmp_path):
    pngs = [PNG + bytes([i]) for i in range(3)]
    sent = [build_request("t1", "merge", {"gap_um": 1.0}, pngs[:2], view_names=("xy", "xz")),
            build_request("t2", "split", {"gap_um": 2.0}, pngs[:2], view_names=("xy", "xz"))]  # fmt: skip
    append_request_log(tmp_path, sent)
    with pytest.raises(DataError, match="saved no sample views"):
        run_requests(tmp_path)
    write_sample_views(tmp_path, [("t1", "merge", ("xy", "xz"), (pngs[0], pngs[2]))])
    requests = run_requests(tmp_path)
    assert [r.task_id for r in requests] == ["t1", "t2"]
    for r, s in zip(requests, sent, strict=True):
        assert r.messages[0] == s.messages[0]  # the system prompt as sent (it names the views)
        assert r.messages[1]["content"][0] == s.messages[1]["content"][0]  # the text as sent
        assert r.n_images == 2 and set(request_images(r)) <= {pngs[0], pngs[2]}
    with pytest.raises(DataError, match="no logged LLM requests"):
        run_requests(tmp_path / "empty")
