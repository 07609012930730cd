"""The seed's cost framework: its own arithmetic, units, CIs carried from the totals, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from proofpilot.core.errors import ConfigError
from proofpilot.edits.bootstrap import GroupedSample, bootstrap, point_statistics
from proofpilot.edits.cost import node_hours, sample_cost, sensitivity
from proofpilot.edits.intervals import SampleIntervals
from proofpilot.edits.records import CostBasis

SEED_BASIS = CostBasis(t_merge_s=2.0, t_split_s=2.5, gpus_per_node=2, usd_per_gpu_hour=2.0)


def test_seed_arithmetic_mouse_and_fly():
    mouse = node_hours(459_676, 516_253, SEED_BASIS)
    assert round(mouse, 1) == 613.9  # the seed's "614 GPU-hours" ...
    assert round(mouse * SEED_BASIS.gpus_per_node, 1) == 1227.8  # ... are node-hours: 1,227.8 GPU-hours
    fly = node_hours(1_957_368, 691_818, SEED_BASIS)
    assert round(fly, 1) == 1567.9


@pytest.mark.parametrize("field", ["t_merge_s", "t_split_s", "usd_per_gpu_hour"])
def test_negative_or_missing_numbers_are_config_errors(field):
    with pytest.raises(ConfigError, match="non-negative"):
        CostBasis(**{field: -1.0})
    with pytest.raises(ConfigError):
        CostBasis(**{field: float("nan")})
    with pytest.raises(ConfigError, match="gpus-per-node"):
        CostBasis(gpus_per_node=0)


def _intervals(population: int) -> SampleIntervals:
    rng = np.random.default_rng(3)
    edits = rng.negative_binomial(1, 0.05, size=300)
    merges = rng.binomial(edits, 0.7)
    grouped = GroupedSample.from_counts(edits, merges)
    return SampleIntervals(point_statistics(grouped), bootstrap(grouped, 1000, rng), population, 0.95)


def test_sample_cost_units_and_carried_interval():
    intervals = _intervals(139_255)
    cost = sample_cost("n300", intervals, SEED_BASIS)
    assert cost.node_hours.value == pytest.approx(
        node_hours(cost.merges.value, cost.splits.value, SEED_BASIS)
    )
    assert cost.gpu_hours.value == pytest.approx(2 * cost.node_hours.value)
    assert cost.usd.value == pytest.approx(2.0 * cost.gpu_hours.value)
    lo, hi = cost.node_hours.ci
    assert lo < cost.node_hours.value < hi
    # the joint interval is narrower than adding the merge and split endpoints (they move together)
    naive = node_hours(cost.merges.ci[1], cost.splits.ci[1], SEED_BASIS) - node_hours(
        cost.merges.ci[0], cost.splits.ci[0], SEED_BASIS
    )
    assert hi - lo < naive
    assert cost.usd.ci == pytest.approx((lo * 4.0, hi * 4.0))


def test_sensitivity_is_linear_in_seconds_per_operation():
    intervals = _intervals(139_255)
    points = {p.seconds_per_op: p for p in sensitivity(intervals, SEED_BASIS)}
    assert min(points) == 1.0 and max(points) == 5.0
    total = intervals.linear_total(1, 0)
    assert points[1.0].node_hours.value == pytest.approx(total.value / 3600)
    assert points[5.0].usd.value == pytest.approx(5 * points[1.0].usd.value)
    assert points[5.0].usd.ci[1] == pytest.approx(5 * points[1.0].usd.ci[1])


def test_census_cost_has_zero_width():
    intervals = _intervals(300)
    cost = sample_cost("full", intervals, SEED_BASIS)
    assert cost.usd.ci == (cost.usd.value, cost.usd.value)
