"""Cost accounting: throughput-based node-seconds, token attribution, projection, roofline, cost.json.

Scrape windows come from a discrete-event simulation of a server with K slots fed by C closed-loop
clients, sampled like the real scraper samples vLLM (prompt tokens counted at prefill, generated tokens
spread over the request, as vLLM's per-step counters do), so every expected value is known exactly.
"""

from __future__ import annotations

import dataclasses
import heapq
import json

import numpy as np
import pytest

from proofpilot.core.errors import ConfigError, DataError
from proofpilot.telemetry.attribution import fit_token_costs
from proofpilot.telemetry.cost import (
    NOT_A_COST,
    DecisionUsage,
    build_cost_report,
    live_cost_updater,
    read_cost_json,
    write_cost_json,
)
from proofpilot.telemetry.projection import (
    SEED_T_MERGE_S,
    SEED_T_SPLIT_S,
    EditsProjection,
    MeasuredPerEdit,
    project_cost,
)
from proofpilot.telemetry.roofline import roofline
from proofpilot.telemetry.vllm_scrape import EndpointWindow, Interval, ScrapeWindow, Snapshot


def simulate(service, tokens, ops, slots, clients, dt, t0=0.3, prefill=None):
    """(ScrapeWindow, decisions) of FIFO requests on `slots` parallel slots from `clients` closed loops.

    Request i spends its first `prefill[i]` seconds (default: none) on its prompt and the rest decoding;
    the prompt and generation counters rise linearly over those phases, as vLLM's per-step counters do.
    """
    n = len(service)
    ready = [t0] * clients  # when each client sends its next request
    heapq.heapify(ready)
    free = [0.0] * slots
    arrive, start, end = np.zeros(n), np.zeros(n), np.zeros(n)
    for i in range(n):
        arrive[i] = heapq.heappop(ready)
        start[i] = max(arrive[i], heapq.heappop(free))
        end[i] = start[i] + service[i]
        heapq.heappush(free, end[i])
        heapq.heappush(ready, end[i])
    p, o = np.array([t[0] for t in tokens], float), np.array([t[1] for t in tokens], float)
    snaps = []
    pre = np.zeros(n) if prefill is None else np.asarray(prefill, float)
    decode_start = start + pre
    for t in np.arange(0.0, end.max() + 3 * dt, dt):
        prefill_frac = np.where(pre > 0, np.clip((t - start) / np.where(pre > 0, pre, 1), 0, 1), start <= t)
        decode_frac = np.clip((t - decode_start) / np.maximum(end - decode_start, 1e-12), 0, 1)
        snaps.append(
            Snapshot(
                t=float(t),
                running=float(np.sum((start <= t) & (t < end))),
                waiting=float(np.sum((arrive <= t) & (t < start))),
                kv_cache_usage=0.0,
                requests=float(np.sum(end <= t)),
                prompt_tokens=float((p * prefill_frac).sum()),
                generation_tokens=float((o * decode_frac).sum()),
                inference_seconds=0.0,
                e2e_seconds=0.0,
            )
        )
    ep = EndpointWindow("http://127.0.0.1:8000/metrics", "2026-01-01T00:00:00+00:00", tuple(snaps), {})
    decisions = [
        DecisionUsage(ops[i], float(end[i] - arrive[i]), int(p[i]), int(o[i]),
                      call_spans=((float(arrive[i]), float(end[i])),))
        for i in range(n)
    ]  # fmt: skip
    return ScrapeWindow(interval_s=dt, endpoints=(ep,)), decisions


@pytest.mark.parametrize(("s", "k", "c"), [(0.4, 4, 16), (1.0, 8, 24)])
def test_node_seconds_per_decision_is_s_over_k_and_latency_sum_is_not(s, k, c):
    n = 40 * k
    window, decisions = simulate([s] * n, [(100, 10)] * n, ["merge"] * n, k, c, dt=0.05)
    report = build_cost_report(window, decisions, gpus_per_endpoint=2)
    tp = report.throughput
    assert tp.node_s_per_decision == pytest.approx(s / k, rel=0.02)
    assert tp.gpu_s_per_decision == pytest.approx(2 * tp.node_s_per_decision)
    lo, hi = tp.node_s_per_decision_ci
    assert lo <= s / k <= hi and (hi - lo) < 0.05 * s / k
    assert report.naive_latency.label == NOT_A_COST
    # closed loop: mean latency = C × S / K, so the latency sum over-counts by ~C (the mean concurrency)
    assert report.naive_latency.ratio_to_node_s_per_decision == pytest.approx(c, rel=0.1)
    assert tp.saturated_fraction > 0.8 and not any("not saturated" in note for note in report.notes)


def test_regression_attributes_cost_to_op_types_by_tokens():
    rng = np.random.default_rng(3)
    a, b, slots = 2e-4, 4e-3, 4  # s per prompt / completion token on one slot
    ops, tokens = [], []
    for i in range(800):
        if i % 3:
            ops.append("merge")
            tokens.append((int(rng.integers(300, 1500)), int(rng.integers(10, 60))))
        else:
            ops.append("split")
            tokens.append((int(rng.integers(1500, 4000)), int(rng.integers(40, 250))))
    service = [a * p + b * o for p, o in tokens]
    window, decisions = simulate(service, tokens, ops, slots, 12, 0.25, prefill=[a * p for p, _ in tokens])
    report = build_cost_report(
        window, decisions, edits_by_op={"merge": 270, "split": 135}, gpus_per_endpoint=2
    )

    att = report.attribution
    assert att.method == "regression", att.reason
    assert att.s_per_prompt_token == pytest.approx(a / slots, rel=0.15)
    assert att.s_per_completion_token == pytest.approx(b / slots, rel=0.3)
    assert att.predicted_over_measured == pytest.approx(1.0, abs=0.05)
    for op in ("merge", "split"):
        truth = np.mean([s for s, o in zip(service, ops, strict=True) if o == op]) / slots
        cost = report.per_op[op]
        assert cost.node_s_per_decision == pytest.approx(truth, rel=0.05)
        lo, hi = cost.node_s_per_decision_ci
        assert lo <= cost.node_s_per_decision <= hi
        assert cost.gpu_s_per_decision == pytest.approx(2 * cost.node_s_per_decision)
    assert report.per_op["split"].node_s_per_decision > 2 * report.per_op["merge"].node_s_per_decision
    merge = report.per_op["merge"]
    assert merge.calls_per_edit == pytest.approx(merge.llm_calls / 270)
    assert merge.node_s_per_edit == pytest.approx(merge.node_s_per_decision * merge.decisions / 270)
    # per-op costs add up to the measured busy time
    total = sum(c.node_s_per_decision * c.decisions for c in report.per_op.values())
    assert total == pytest.approx(report.throughput.busy_node_seconds, rel=1e-9)


def test_collinear_tokens_fall_back_to_token_share_and_say_so():
    # O = P / 20 for every request, and each long scrape interval sums many requests: the interval
    # totals are collinear, so prompt and completion costs cannot be told apart
    tokens = [(100 * (1 + i % 5), 5 * (1 + i % 5)) for i in range(600)]
    window, decisions = simulate([0.001 * p for p, _ in tokens], tokens, ["merge", "split"] * 300, 2, 6, 5.0)
    report = build_cost_report(window, decisions)
    assert report.attribution.method == "token_share"
    assert "collinear" in report.attribution.reason
    assert any("token share" in note for note in report.notes)
    total = sum(c.node_s_per_decision * c.decisions for c in report.per_op.values())
    assert total == pytest.approx(report.throughput.busy_node_seconds)


def _iv(p, o, y):
    return Interval(seconds=y, busy=True, requests=1, prompt_tokens=p, generation_tokens=o)


def test_fit_rejects_negative_coefficients_and_too_few_intervals():
    rows = [
        _iv(p, o, 1e-3 * p - 5e-3 * o) for p, o in [(900, 10), (1000, 60), (1200, 20), (800, 90), (950, 40)]
    ]
    _, att = fit_token_costs(rows)
    assert att.method == "token_share" and "negative" in att.reason
    _, att = fit_token_costs(rows[:2])
    assert att.method == "token_share" and "too few" in att.reason
    _, att = fit_token_costs([_iv(p, 0, 1e-3 * p) for p in (100, 200, 300, 400, 500)])
    assert att.method == "token_share" and "no completion tokens" in att.reason


def test_a_scrape_that_never_saw_the_queue_busy_falls_back_to_the_client_busy_time():
    """A short run can fall between scrapes (or be bound by task preparation): cost.json then rests on the
    union of the pilot's own calls, and says so, instead of having no figure at all."""
    window, decisions = simulate([0.5] * 8, [(10, 1)] * 8, ["merge", "split"] * 4, 2, 4, dt=0.1)
    idle = ScrapeWindow(interval_s=1.0, endpoints=(window.endpoints[0].__class__(
        "u", "t", (window.endpoints[0].snapshots[0],) * 3, {}),))  # fmt: skip
    report = build_cost_report(idle, decisions, gpus_per_endpoint=1)
    spans = [span for d in decisions for span in d.call_spans]
    union = max(e for _, e in spans) - min(s for s, _ in spans)  # 4 closed loops on 2 slots: never idle
    assert report.throughput.busy_node_seconds == pytest.approx(union)
    assert report.throughput.node_s_per_decision == pytest.approx(union / 8)
    assert report.throughput.edge_uncertainty_s == 0 and report.attribution.method == "token_share"
    assert report.client_busy.ratio_to_scraped == pytest.approx(1.0)
    assert any("client-exact union" in n for n in report.notes)
    lo, hi = report.throughput.node_s_per_decision_ci
    assert lo <= report.throughput.node_s_per_decision <= hi


def test_bad_input_is_a_clear_error():
    window, decisions = simulate([0.5] * 8, [(10, 1)] * 8, ["merge"] * 8, 2, 4, dt=0.1)
    with pytest.raises(DataError, match="no finished decisions"):
        build_cost_report(window, [])
    idle = ScrapeWindow(interval_s=1.0, endpoints=(window.endpoints[0].__class__(
        "u", "t", (window.endpoints[0].snapshots[0],) * 3, {}),))  # fmt: skip
    spanless = [dataclasses.replace(d, call_spans=()) for d in decisions]
    with pytest.raises(DataError, match="never seen non-empty"):
        build_cost_report(idle, spanless)
    with pytest.raises(ConfigError):
        EditsProjection("fly", merges=10, merges_ci=(11, 12), splits=1, splits_ci=(0, 2))


def test_seed_placeholders_reproduce_the_seed_fly_figure():
    # the seed's fly n=500 projection: 1,957,368 merges + 691,818 splits at 2.0 s / 2.5 s = 1,568 node-hours
    edits = EditsProjection("fly", 1_957_368, (1_900_000, 2_000_000), 691_818, (650_000, 720_000))
    proj = project_cost(edits, MeasuredPerEdit(0.2, (0.18, 0.25)), MeasuredPerEdit(0.3, (0.25, 0.4)),
                        gpus_per_node=2, usd_per_gpu_hour=2.0)  # fmt: skip
    assert round(proj.seed_node_hours) == 1568
    assert proj.seed_gpu_hours == pytest.approx(2 * proj.seed_node_hours)
    expected = (1_957_368 * 0.2 + 691_818 * 0.3) / 3600
    assert proj.node_hours == pytest.approx(expected)
    assert proj.gpu_hours == pytest.approx(2 * expected) and proj.usd == pytest.approx(4 * expected)
    assert proj.node_hours_ci[0] < proj.node_hours < proj.node_hours_ci[1]
    assert proj.ratio_t_merge_to_seed == pytest.approx(0.2 / SEED_T_MERGE_S)
    assert proj.ratio_t_split_to_seed == pytest.approx(0.3 / SEED_T_SPLIT_S)
    assert proj.ratio_node_hours_to_seed == pytest.approx(expected / proj.seed_node_hours)


def test_roofline_reproduces_reference_table_rows():
    # docs/cost.md "Reference rows": scenario A BF16 104 node-ms (B 196), FP8 51 (546);
    # D BF16 1,512 (22); E 603 (86)
    a = roofline(1500, 50, "bf16")
    assert round(a.node_seconds * 1000) == 104 and a.batch == 196
    assert a.gpu_seconds == pytest.approx(2 * a.node_seconds)
    a8 = roofline(1500, 50, "fp8")
    assert round(a8.node_seconds * 1000) == 51 and a8.batch == 546
    assert round(roofline(13300, 400).node_seconds * 1000) == 1512
    e = roofline(2000, 1500)
    assert round(e.node_seconds * 1000) == 603 and e.batch == 86
    assert round(975_929 * a.node_seconds / 3600) == 28  # mouse: 28 node-h
    with pytest.raises(ConfigError):
        roofline(0, 10)
    with pytest.raises(ConfigError):
        roofline(1500, 50, "int4")


def test_cost_json_has_units_projection_and_no_nan(tmp_path):
    rng = np.random.default_rng(5)
    tokens = [(int(rng.integers(200, 2000)), int(rng.integers(10, 120))) for _ in range(300)]
    ops = ["merge" if i % 2 else "split" for i in range(300)]
    window, decisions = simulate([1e-4 * p + 4e-3 * o for p, o in tokens], tokens, ops, 4, 12, 0.25)
    decisions = [DecisionUsage(d.op, d.latency_s, d.prompt_tokens, d.completion_tokens, 1 + (i % 10 == 1))
                 for i, d in enumerate(decisions)]  # fmt: skip
    edits = EditsProjection("mouse", 450_000, (420_000, 480_000), 525_000, (500_000, 550_000))
    report = build_cost_report(window, decisions, {"merge": 75, "split": 75}, 2, edits, usd_per_gpu_hour=2.5)
    path = write_cost_json(report, tmp_path)
    data = json.loads(path.read_text())  # written with allow_nan=False: strict JSON
    assert not list(tmp_path.glob("*.tmp"))
    assert data["schema"] == "proofpilot.cost/1" and "node_s" in data["units"]
    assert data["naive_latency"]["label"].startswith("not a cost")
    proj = data["projection"]
    assert proj["usd_per_gpu_hour"] == 2.5 and proj["gpu_hours"] == pytest.approx(2 * proj["node_hours"])
    assert proj["roofline_bf16_node_hours"] > 0 and proj["seed_node_hours"] > proj["node_hours"] > 0
    assert data["per_op"]["merge"]["calls_per_edit"] > data["per_op"]["merge"]["decisions_per_edit"]
    assert data["roofline_at_mean"]["bf16"]["node_seconds"] > data["roofline_at_mean"]["fp8"]["node_seconds"]


def _cost_report():
    rng = np.random.default_rng(7)
    tokens = [(int(rng.integers(200, 2000)), int(rng.integers(10, 120))) for _ in range(120)]
    ops = ["merge" if i % 3 else "split" for i in range(120)]
    window, decisions = simulate([1e-4 * p + 4e-3 * o for p, o in tokens], tokens, ops, 4, 12, 0.25)
    edits = EditsProjection("mouse", 450_000, (420_000, 480_000), 525_000, (500_000, 550_000))
    return build_cost_report(window, decisions, {"merge": 40, "split": 20}, 2, edits, n_bootstrap=200)


def test_cost_json_reads_back_as_the_record_written(tmp_path):
    report = _cost_report()
    back = read_cost_json(write_cost_json(report, tmp_path))
    assert back == report
    assert back.per_op["merge"].node_s_per_edit_ci == report.per_op["merge"].node_s_per_edit_ci
    assert read_cost_json(tmp_path) == report  # the run dir names its cost.json


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d["per_op"]["merge"].pop("node_s_per_decision"), "per_op.merge.node_s_per_decision"),
        (lambda d: d["throughput"].update(decisions="many"), "throughput.decisions"),
        (lambda d: d["per_op"]["split"].update(node_s_per_edit_ci=[1.0]), "per_op.split.node_s_per_edit_ci"),
        (lambda d: d.update(projection=[]), "projection"),
    ],
)
def test_malformed_cost_json_names_the_field(tmp_path, edit, field):
    path = write_cost_json(_cost_report(), tmp_path)
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=rf"cost.json: .*{field.replace('.', '[.]')}\b") as err:
        read_cost_json(path)
    assert "\n" not in str(err.value)


def test_cost_json_nulls_of_non_finite_values_read_back(tmp_path):
    report = _cost_report()
    data = json.loads(write_cost_json(report, tmp_path).read_text())
    data["naive_latency"]["ratio_to_node_s_per_decision"] = None  # how an infinite ratio is stored
    data["per_op"]["merge"]["node_s_per_edit"] = None
    (tmp_path / "cost.json").write_text(json.dumps(data))
    back = read_cost_json(tmp_path)
    assert np.isnan(back.naive_latency.ratio_to_node_s_per_decision)
    assert back.per_op["merge"].node_s_per_edit is None and back.throughput == report.throughput


def test_live_cost_updater_sets_the_gauge():
    seen = []

    class Logger:
        def set_node_seconds_per_decision(self, v):
            seen.append(v)

    update = live_cost_updater(Logger())
    update(0.0, 0.0)
    update(10.0, 40.0)
    live_cost_updater(Logger(), decisions_done=lambda: 20)(10.0, 40.0)
    assert seen == [0.25, 0.5]
