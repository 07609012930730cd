"""Cost accounting of a pilot run, written to cost.json.

Under continuous batching a request's latency is not its cost (docs/cost.md "Latency is not cost").
Measured here:

- node-seconds per decision = busy-window seconds / decisions. "Busy" is every scrape interval that starts
  with the server's queue non-empty (left-endpoint rule), summed over endpoints; one endpoint = one node.
  GPU-seconds = GPUs per endpoint × node-seconds. 95 % CI: moving-block bootstrap over the scrape intervals.
- per op type: least-squares fit of per-interval busy node-seconds on prompt and completion tokens
  (numpy lstsq, no intercept) gives the relative cost a·P + b·O of each decision; per-op costs are then
  scaled so that all decisions add up to the measured busy time (t_op = node_s · mean_op(aP+bO) /
  mean_all(aP+bO)). `predicted_over_measured` < 1 says how much busy time tokens do not explain (idle batch
  slots, ramp-up and drain). When the fit is ill-conditioned (tokens collinear across intervals, too few
  intervals, or a negative coefficient) it falls back to token-share attribution (weights P + O) and says
  why.
- beside it, the client-exact figure (telemetry/busy.py): GPUs × the union of the pilot's own request
  intervals per endpoint / decisions; exact for a server only the pilot uses (`client_busy`).
- calls per edit, the naive latency sum (labelled "not a cost"), the roofline at the measured mean tokens,
  and the full-dataset projection (telemetry/projection.py).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, replace

import numpy as np

from proofpilot.core.errors import DataError
from proofpilot.telemetry.attribution import Attribution, block_bootstrap, decision_weights, fit_token_costs
from proofpilot.telemetry.client_busy import client_busy_cost, client_busy_seconds
from proofpilot.telemetry.cost_records import (  # noqa: F401 - cost.json's records, re-exported
    CI_METHOD,
    COST_NAME,
    N_BOOTSTRAP,
    NOT_A_COST,
    UNITS,
    ClientBusyCost,
    CostReport,
    DecisionUsage,
    NaiveLatencySum,
    OpCost,
    ThroughputCost,
    read_cost_json,
    write_cost_json,
)
from proofpilot.telemetry.projection import (
    DEFAULT_USD_BASIS,
    DEFAULT_USD_PER_GPU_HOUR,
    CostProjection,
    EditsProjection,
    MeasuredPerEdit,
    project_cost,
)
from proofpilot.telemetry.roofline import roofline
from proofpilot.telemetry.served import ServedBy, rehearsal_basis
from proofpilot.telemetry.vllm_scrape import ScrapeWindow


def _ci(samples: np.ndarray, point: float, widen: tuple[float, float]) -> tuple[float, float]:
    """95 % percentile interval of the bootstrap samples, widened by the busy-window edge uncertainty."""
    finite = samples[np.isfinite(samples)]
    lo, hi = np.percentile(finite, [2.5, 97.5]) if finite.size else (point, point)
    return (float(lo) * widen[0], float(hi) * widen[1])


def _edge_seconds(window: ScrapeWindow) -> float:
    """Most the left-endpoint rule can be off: the length of every interval in which the queue went from
    empty to non-empty or back (the switch happened somewhere inside it)."""
    edge = 0.0
    for ep in window.endpoints:
        snaps = ep.snapshots
        for a, b in itertools.pairwise(snaps):
            if a.queue_nonempty != b.queue_nonempty:
                edge += b.t - a.t
    return edge


def build_cost_report(
    window: ScrapeWindow,
    decisions: Sequence[DecisionUsage],
    edits_by_op: Mapping[str, int] | None = None,
    gpus_per_endpoint: int = 2,
    edits_projection: EditsProjection | None = None,
    usd_per_gpu_hour: float = DEFAULT_USD_PER_GPU_HOUR,
    usd_basis: str = DEFAULT_USD_BASIS,
    n_bootstrap: int = N_BOOTSTRAP,
    seed: int = 0,
    served_by: ServedBy | None = None,
) -> CostReport:
    """Everything cost.json holds, from the scraped vLLM window and the pilot's per-decision usage.

    Longer than 80 lines on purpose: the point estimate and every bootstrap resample go through the one
    closure `costs`, so that both use the same attribution model; split, it would take nine arrays."""
    if not decisions:
        raise DataError("no finished decisions: nothing to cost")
    if gpus_per_endpoint < 1:
        raise DataError(f"GPUs per endpoint must be >= 1, got {gpus_per_endpoint}")
    intervals = [iv for ep in window.endpoints for iv in ep.intervals()]
    y = np.array([iv.seconds if iv.busy else 0.0 for iv in intervals])
    r = np.array([iv.requests for iv in intervals])
    busy, served = float(y.sum()), float(r.sum())
    n_dec = len(decisions)
    calls = sum(d.llm_calls for d in decisions)
    unseen = busy <= 0 or served <= 0  # a short run can fall between scrapes: then the client's clock counts
    if unseen:
        busy = client_busy_seconds(decisions) or 0.0
        served = served if served > 0 else float(calls)
        if busy <= 0:
            raise DataError(
                "the vLLM queue was never seen non-empty, or no request finished, in the scraped window, "
                "and the verdicts carry no call send/receive times: no cost measurable"
            )
    node_s = busy / n_dec
    ops = sorted({d.op for d in decisions})
    op_of = np.array([ops.index(d.op) for d in decisions])
    tokens = np.array([[d.prompt_tokens, d.completion_tokens] for d in decisions], dtype=float)
    coef, attribution = (
        (np.full(2, np.nan), Attribution("token_share", "the scrape saw no busy interval to fit", 0))
        if unseen
        else fit_token_costs(intervals)
    )
    regression = attribution.method == "regression"

    # per-decision weights of the attribution model: a·P + b·O (regression), P + O (token share), or 1
    w_point = decision_weights(tokens, coef if regression else None)
    w_mean = float(w_point.mean())

    def costs(ix: np.ndarray, c: np.ndarray) -> tuple[float, np.ndarray]:
        """(overall, per-op) node-s per decision for the decisions `ix` (a resample) and coefficients `c`."""
        overall = node_s * float(w_point[ix].mean()) / w_mean
        if regression:  # the fit sets the relative weights; the measured busy time sets the total
            scale = float((tokens @ c).mean())
            per_dec = node_s * (tokens[ix] @ c) / scale if scale > 0 else np.full(len(ix), np.nan)
        else:
            per_dec = node_s * w_point[ix] / w_mean
        per_op = np.array([per_dec[op_of[ix] == j].mean() if (op_of[ix] == j).any() else np.nan
                           for j in range(len(ops))])  # fmt: skip
        return overall, per_op

    _, point = costs(np.arange(n_dec), coef)
    rng = np.random.default_rng(seed)
    latency_mean = float(np.mean([d.latency_s for d in decisions]))
    block = max(1, round(latency_mean / window.interval_s))
    x_iv = np.array([[iv.prompt_tokens, iv.generation_tokens] for iv in intervals]).reshape(-1, 2)
    iv_idx = block_bootstrap(len(intervals), block, n_bootstrap, rng) if regression else None
    boot_total, boot_ops = np.empty(n_bootstrap), np.empty((n_bootstrap, len(ops)))
    for k in range(n_bootstrap):
        c = coef
        if iv_idx is not None:
            c = np.linalg.lstsq(x_iv[iv_idx[k]], y[iv_idx[k]], rcond=None)[0]
        boot_total[k], boot_ops[k] = costs(rng.integers(0, n_dec, n_dec), c)
    edge = 0.0 if unseen else _edge_seconds(window)
    widen = (max(0.0, busy - edge) / busy, (busy + edge) / busy)
    if regression:
        attribution = _with_consistency(attribution, float((tokens @ coef).sum()) / busy)
    by_op = {op: [d for d in decisions if d.op == op] for op in ops}
    gpus = gpus_per_endpoint

    eps = [ep for ep in window.endpoints if ep.snapshots]
    throughput = ThroughputCost(
        busy_node_seconds=busy,
        window_seconds=max(ep.duration_s for ep in eps),
        busy_fraction=float(np.mean([ep.busy_fraction for ep in eps])),
        saturated_fraction=float(np.mean([ep.saturated_fraction for ep in eps])),
        decisions=n_dec,
        llm_calls=calls,
        server_requests=served,
        node_s_per_decision=node_s,
        node_s_per_decision_ci=_ci(boot_total, node_s, widen),
        gpu_s_per_decision=gpus_per_endpoint * node_s,
        node_s_per_call=busy / served,
        gpus_per_endpoint=gpus_per_endpoint,
        n_endpoints=len(window.endpoints),
        edge_uncertainty_s=edge,
    )
    op_costs = {
        op: _with_images(
            _op_cost(op, by_op[op], float(point[i]), _ci(boot_ops[:, i], point[i], widen), edits_by_op, gpus),
            by_op[op],
            coef if regression else None,
        )
        for i, op in enumerate(ops)
    }
    lat_sum = sum(d.latency_s for d in decisions)
    inf_sum = sum(
        v for k, v in _deltas(window).items() if k.startswith("vllm:request_inference_time_seconds_sum")
    )
    naive = NaiveLatencySum(
        latency_sum_s=lat_sum,
        per_decision_s=lat_sum / n_dec,
        ratio_to_node_s_per_decision=lat_sum / n_dec / node_s,
        server_inference_time_per_request_s=inf_sum / served if inf_sum > 0 else None,
    )
    notes = _notes(throughput, attribution, window) + _image_notes(op_costs)
    if unseen:
        notes += (
            "the scrape never saw the vLLM queue non-empty (a run shorter than a few scrape intervals, or "
            "one bound by task preparation): busy time is the client-exact union of the pilot's own calls",
        )
    client_busy, note = client_busy_cost(decisions, throughput, boot_total)
    notes += (note,) if note else ()
    projection = None
    if served_by is not None and not served_by.priced:  # a rehearsal: CPU seconds not priced as H100 hours
        usd_per_gpu_hour, usd_basis = math.nan, rehearsal_basis(served_by)
        notes += (f"{served_by.label} (node-s are this machine's)",)
    if edits_projection is not None:
        projection, note = _project(
            op_costs, edits_projection, gpus_per_endpoint, usd_per_gpu_hour, usd_basis
        )
        notes += (note,) if note else ()
    p_call = sum(d.prompt_tokens for d in decisions) / calls if calls else 0.0
    o_call = sum(d.completion_tokens for d in decisions) / calls if calls else 0.0
    roof = {prec: roofline(p_call, o_call, prec) for prec in ("bf16", "fp8")} if p_call > 0 else None
    return CostReport(
        throughput=throughput,
        attribution=attribution,
        per_op=op_costs,
        naive_latency=naive,
        roofline_at_mean=roof,
        projection=projection,
        notes=notes,
        client_busy=client_busy,
        served_by=served_by,
    )


def _with_consistency(att: Attribution, ratio: float) -> Attribution:
    return Attribution(**{**asdict(att), "predicted_over_measured": ratio})


def _deltas(window: ScrapeWindow) -> dict[str, float]:
    out: dict[str, float] = {}
    for i, ep in enumerate(window.endpoints):
        out.update({f"{k}#{i}": v for k, v in ep.counter_deltas.items()})
    return out


def _with_images(cost: OpCost, ds, coef: np.ndarray | None) -> OpCost:
    """The op's text/image token split and the share of its attributed cost that image tokens carry: under the
    regression a·image / (a·prompt + b·completion) per decision, else image / (prompt + completion)."""
    calls = sum(d.llm_calls for d in ds)
    image = np.array([d.image_tokens for d in ds], dtype=float)
    prompt = np.array([d.prompt_tokens for d in ds], dtype=float)
    completion = np.array([d.completion_tokens for d in ds], dtype=float)
    a, b = (float(coef[0]), float(coef[1])) if coef is not None else (1.0, 1.0)
    weight = a * prompt + b * completion
    share = float((a * image).sum() / weight.sum()) if image.any() and weight.sum() > 0 else None
    return replace(
        cost,
        views_per_call=sum(d.n_images * d.llm_calls for d in ds) / calls if calls else 0.0,
        image_tokens_per_decision=float(image.mean()),
        text_tokens_per_decision=float((prompt - image).mean()),
        image_share=share,
    )


def _image_notes(op_costs: dict[str, OpCost]) -> tuple[str, ...]:
    parts = [
        f"{op} {c.image_tokens_per_decision:.0f} of {c.prompt_tokens_per_decision:.0f} prompt tokens "
        f"({c.views_per_call:g} views), {c.image_share:.0%} of its node-seconds"
        for op, c in op_costs.items()
        if c.image_share is not None
    ]
    return (f"image tokens per decision: {'; '.join(parts)}",) if parts else ()


def _op_cost(op, ds, node_s, ci, edits_by_op, gpus) -> OpCost:
    n = len(ds)
    calls = sum(d.llm_calls for d in ds)
    edits = (edits_by_op or {}).get(op)
    per_edit = n / edits if edits else None
    p_call = sum(d.prompt_tokens for d in ds) / calls if calls else 0.0
    o_call = sum(d.completion_tokens for d in ds) / calls if calls else 0.0

    def roof(prec: str) -> float | None:
        return roofline(p_call, o_call, prec).node_seconds * calls / n if p_call > 0 else None

    return OpCost(
        op=op,
        decisions=n,
        llm_calls=calls,
        edits=edits,
        calls_per_edit=calls / edits if edits else None,
        decisions_per_edit=per_edit,
        prompt_tokens_per_decision=float(np.mean([d.prompt_tokens for d in ds])),
        completion_tokens_per_decision=float(np.mean([d.completion_tokens for d in ds])),
        node_s_per_decision=node_s,
        node_s_per_decision_ci=ci,
        gpu_s_per_decision=gpus * node_s,
        node_s_per_edit=node_s * per_edit if per_edit else None,
        node_s_per_edit_ci=(ci[0] * per_edit, ci[1] * per_edit) if per_edit else None,
        naive_latency_sum_per_decision_s=float(np.mean([d.latency_s for d in ds])),
        roofline_bf16_node_s_per_decision=roof("bf16"),
        roofline_fp8_node_s_per_decision=roof("fp8"),
    )


def _project(op_costs, edits, gpus, usd, basis) -> tuple[CostProjection | None, str]:
    merge, split = op_costs.get("merge"), op_costs.get("split")
    if merge is None or split is None or merge.node_s_per_edit is None or split.node_s_per_edit is None:
        return (
            None,
            "no full-dataset projection: needs measured merge and split decisions and their edit counts",
        )
    tm = MeasuredPerEdit(merge.node_s_per_edit, _clamp(merge.node_s_per_edit, merge.node_s_per_edit_ci))
    ts = MeasuredPerEdit(split.node_s_per_edit, _clamp(split.node_s_per_edit, split.node_s_per_edit_ci))

    def roof(attr: str) -> tuple[float, float] | None:
        vm, vs = getattr(merge, attr), getattr(split, attr)
        if vm is None or vs is None:
            return None
        return (vm * merge.decisions_per_edit, vs * split.decisions_per_edit)

    proj = project_cost(
        edits, tm, ts, gpus, usd, basis,
        roof("roofline_bf16_node_s_per_decision"), roof("roofline_fp8_node_s_per_decision"),
    )  # fmt: skip
    return proj, ""


def _clamp(value: float, ci: tuple[float, float] | None) -> tuple[float, float]:
    """A bootstrap percentile CI that does not contain the point estimate is widened to contain it."""
    if ci is None or not all(math.isfinite(c) for c in ci):
        return (value, value)
    return (max(0.0, min(ci[0], value)), max(ci[1], value))


def _notes(tp: ThroughputCost, att: Attribution, window: ScrapeWindow) -> tuple[str, ...]:
    notes = []
    if att.method != "regression":
        notes.append(f"per-op cost by token share (prompt + completion tokens), not regression: {att.reason}")
    if tp.saturated_fraction < 0.5:
        notes.append(
            f"requests were waiting in only {tp.saturated_fraction:.0%} of scrapes: the server was not "
            "saturated, so node-seconds per decision include idle batch slots "
            "(raise --concurrency to measure capacity)"
        )
    if tp.llm_calls and abs(tp.server_requests - tp.llm_calls) > 0.05 * tp.llm_calls:
        notes.append(
            f"the server finished {tp.server_requests:.0f} requests but the pilot made {tp.llm_calls} LLM "
            "calls: other clients or failed requests shared the window"
        )
    errors = sum(ep.scrape_errors for ep in window.endpoints)
    if errors:
        notes.append(f"{errors} periodic scrapes failed; their intervals are merged into longer ones")
    return tuple(notes)


def live_cost_updater(
    logger, decisions_done: Callable[[], int] | None = None
) -> Callable[[float, float], None]:
    """An `on_snapshot` callback for VllmScraper keeping the logger's node-seconds-per-decision gauge current.

    Divides by the pilot's finished decisions when `decisions_done` is given, else by the server's finished
    requests (then it is node-seconds per call).
    """

    def update(busy_node_seconds: float, completed_requests: float) -> None:
        done = decisions_done() if decisions_done is not None else completed_requests
        if done > 0 and busy_node_seconds > 0:
            logger.set_node_seconds_per_decision(busy_node_seconds / done)

    return update
