"""Exact busy time from the client's own send/receive times, and its place in cost.json."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from proofpilot.telemetry.busy import busy_by_group, group_spans, percentile, union_seconds
from proofpilot.telemetry.cost import build_cost_report, read_cost_json, write_cost_json
from tests.telemetry.test_cost import simulate


def _brute_union(spans, step=1e-3):
    """Union length on a grid of `step` (the spans below are multiples of it)."""
    grid = np.arange(0, 20, step) + step / 2
    return float(np.any([(grid > a) & (grid < b) for a, b in spans], axis=0).sum() * step)


@pytest.mark.parametrize(
    "spans",
    [
        [(0.0, 1.0), (0.5, 2.0), (3.0, 4.0), (3.5, 3.6)],  # overlap, gap, nested
        [(5.0, 6.0), (1.0, 2.0), (2.0, 3.0)],  # unsorted, touching
        [(1.0, 1.0), (2.0, 1.5), (4.0, 4.25)],  # empty and reversed spans add nothing
        [(0.0, 10.0), (1.0, 2.0), (9.5, 12.0), (15.0, 15.5)],
    ],
)
def test_union_seconds_is_the_length_of_the_union(spans):
    assert union_seconds(spans) == pytest.approx(_brute_union(spans), abs=1e-9)


def test_random_intervals_union_matches_a_grid_count():
    rng = np.random.default_rng(5)
    starts = rng.integers(0, 15_000, 60) / 1000
    spans = [(float(a), float(a + rng.integers(1, 900) / 1000)) for a in starts]
    assert union_seconds(spans) == pytest.approx(_brute_union(spans), abs=1e-6)
    assert union_seconds([]) == 0.0


def test_spans_are_grouped_per_endpoint_and_session():
    groups = group_spans([(("a", 1), [(0.0, 1.0)]), (("b", 1), [(0.0, 1.0)]), (("a", 1), [(0.5, 1.5)])])
    assert busy_by_group(groups) == {("a", 1): 1.5, ("b", 1): 1.0}  # endpoints add, one endpoint unions


def test_percentile_interpolates():
    assert percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.5 and percentile([], 50) != percentile([], 50)


@pytest.mark.parametrize(("s", "k", "c"), [(0.2, 8, 32), (0.5, 4, 12)])
def test_client_exact_cost_is_s_over_k_on_a_short_run_with_coarse_scrapes(s, k, c):
    n = 20 * k  # a whole number of rounds: the saturated server is busy exactly n·S/K
    window, decisions = simulate([s] * n, [(100, 10)] * n, ["merge"] * n, k, c, dt=1.0)
    report = build_cost_report(window, decisions, gpus_per_endpoint=2, n_bootstrap=200)
    exact, scraped = report.client_busy, report.throughput
    assert exact is not None and not exact.foreign_load
    assert exact.node_s_per_decision == pytest.approx(s / k, rel=1e-6)
    assert exact.gpu_s_per_decision == pytest.approx(2 * s / k, rel=1e-6)
    lo, hi = exact.node_s_per_decision_ci
    assert lo <= exact.node_s_per_decision <= hi
    assert exact.ratio_to_scraped == pytest.approx(exact.node_s_per_decision / scraped.node_s_per_decision)


def test_other_clients_on_the_server_make_the_client_figure_not_a_node_cost():
    n = 64
    window, decisions = simulate([0.2] * n, [(100, 10)] * n, ["merge"] * n, 4, 16, dt=0.05)
    report = build_cost_report(window, decisions[::2], n_bootstrap=50)  # half the load is not the pilot's
    assert report.client_busy is not None and report.client_busy.foreign_load
    assert any("not this node's cost" in note for note in report.notes)


def test_decisions_without_call_spans_get_no_client_figure():
    window, decisions = simulate([0.2] * 32, [(100, 10)] * 32, ["merge"] * 32, 4, 8, dt=0.05)
    old = [dataclasses.replace(d, call_spans=()) for d in decisions]
    report = build_cost_report(window, old, n_bootstrap=50)
    assert report.client_busy is None and any("no client-exact" in note for note in report.notes)


def test_cost_json_round_trips_the_client_figure_and_reads_old_files(tmp_path):
    window, decisions = simulate([0.2] * 64, [(100, 10)] * 64, ["merge", "split"] * 32, 4, 16, dt=0.1)
    report = build_cost_report(window, decisions, n_bootstrap=50)
    path = write_cost_json(report, tmp_path)
    assert read_cost_json(path) == report and report.client_busy is not None
    data = json.loads(path.read_text())
    del data["client_busy"]  # a cost.json written before the client figure existed
    path.write_text(json.dumps(data))
    old = read_cost_json(path)
    assert old.client_busy is None and old.throughput == report.throughput
