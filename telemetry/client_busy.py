"""The client-exact cost figure of cost.json (`client_busy`): the union of the pilot's own call
send..receive intervals (telemetry/busy.py) per (session, endpoint), over decisions,
beside the scraped one."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from proofpilot.telemetry.busy import busy_by_group, group_spans
from proofpilot.telemetry.cost_records import ClientBusyCost, DecisionUsage, ThroughputCost


def client_busy_seconds(decisions: Sequence[DecisionUsage]) -> float | None:
    """Union of the pilot's call send..receive intervals, summed over (session, endpoint); None when some
    answered verdict carries no spans (an older run)."""
    groups = _groups(decisions)
    return None if groups is None else float(sum(busy_by_group(groups).values()))


def _groups(decisions: Sequence[DecisionUsage]):
    if any(d.llm_calls > 0 and not d.call_spans for d in decisions):
        return None
    return group_spans(((d.session, d.endpoint), d.call_spans) for d in decisions)


def client_busy_cost(
    decisions: Sequence[DecisionUsage], tp: ThroughputCost, boot_total: np.ndarray
) -> tuple[ClientBusyCost | None, str]:
    """The client-exact figure beside the scraped one, and a note when it is missing or is not a node's
    cost. Its CI: the scraped figure's bootstrap over decisions, rescaled (no edge term)."""
    groups = _groups(decisions)
    if groups is None:
        return None, "no client-exact busy time: some verdicts carry no call send/receive times (older run)"
    busy = float(sum(busy_by_group(groups).values()))
    if busy <= 0:
        return None, "no client-exact busy time: no call spans"
    node_s = busy / len(decisions)
    scale = node_s / tp.node_s_per_decision
    finite = boot_total[np.isfinite(boot_total)] * scale
    lo, hi = np.percentile(finite, [2.5, 97.5]) if finite.size else (node_s, node_s)
    foreign = bool(tp.llm_calls and abs(tp.server_requests - tp.llm_calls) > 0.05 * tp.llm_calls)
    cost = ClientBusyCost(
        busy_node_seconds=busy,
        decisions=len(decisions),
        node_s_per_decision=node_s,
        node_s_per_decision_ci=(float(lo), float(hi)),
        gpu_s_per_decision=tp.gpus_per_endpoint * node_s,
        n_groups=len(groups),
        ratio_to_scraped=scale,
        foreign_load=foreign,
    )
    note = (
        "client-exact node-s per decision counts only the pilot's requests: the server also served others "
        "(or failed requests), so it is not this node's cost; the scraped figure is"
        if foreign
        else ""
    )
    return cost, note
