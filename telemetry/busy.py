"""Exact busy time: how long at least one of the pilot's own requests was in flight, per endpoint.

The agent client records (sent, received) of every LLM call on the host's monotonic clock
(`Verdict.call_spans`). An endpoint serving only the pilot is busy exactly while one of them is in flight,
so its busy time is the length of the union of those intervals, to the clock's resolution: no scrape
interval, no left-endpoint rule. Spans are grouped per (session, endpoint): one session's calls to one
endpoint come from one client on one host, so their clocks agree; sessions never overlap in time.

It is the pilot's busy time, not the node's: requests of other clients on the same server are not in it
(the scraped window, telemetry/cost.py, still counts them and says so).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence

Span = tuple[float, float]


def union_seconds(spans: Iterable[Span]) -> float:
    """Length of the union of the intervals [a, b]; an empty or reversed span adds nothing."""
    total = 0.0
    run: list[float] | None = None  # [start, end] of the current run of overlapping spans
    for a, b in sorted((a, b) for a, b in spans if b > a):
        if run is None or a > run[1]:  # a gap: close the run so far
            total += run[1] - run[0] if run else 0.0
            run = [a, b]
        else:
            run[1] = max(run[1], b)
    return total + (run[1] - run[0] if run else 0.0)


def busy_by_group(groups: Mapping[Hashable, Sequence[Span]]) -> dict[Hashable, float]:
    """Busy seconds of each group of spans (a group = one endpoint of one session)."""
    return {key: union_seconds(spans) for key, spans in groups.items()}


def group_spans(rows: Iterable[tuple[Hashable, Sequence[Span]]]) -> dict[Hashable, list[Span]]:
    """(group key, spans of one decision) rows -> spans per group."""
    out: dict[Hashable, list[Span]] = {}
    for key, spans in rows:
        out.setdefault(key, []).extend(spans)
    return out


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100, linear interpolation) of `values`; NaN when empty."""
    if not values:
        return float("nan")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


class BusyTracker:
    """The union of spans so far, per key, grown one decision at a time: `add` returns the busy seconds the
    new spans added (what a Prometheus counter of busy node-seconds is increased by). Spans may arrive out
    of order; the merged runs are kept sorted and disjoint."""

    def __init__(self) -> None:
        self._runs: dict[Hashable, list[list[float]]] = {}

    def add(self, key: Hashable, spans: Iterable[Span]) -> float:
        runs = self._runs.setdefault(key, [])
        before = sum(b - a for a, b in runs)
        for a, b in spans:
            if b <= a:
                continue
            keep = [r for r in runs if r[1] < a or r[0] > b]
            touching = [r for r in runs if not (r[1] < a or r[0] > b)]
            lo = min([a, *(r[0] for r in touching)])
            hi = max([b, *(r[1] for r in touching)])
            runs[:] = sorted([*keep, [lo, hi]])
        return sum(b - a for a, b in runs) - before

    def total(self, key: Hashable) -> float:
        return sum(b - a for a, b in self._runs.get(key, []))
