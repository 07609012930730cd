"""The report's body sections: accuracy, measured cost, full-dataset cost, latency, edit statistics.

Units live in the column headers; each cell is a value with its 95 % CI in grey (the CI method as tooltip).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from proofpilot.edits.summary import SummaryRecord
from proofpilot.eval.decisions import EvalReport, GroupMetrics
from proofpilot.report import figures as figs
from proofpilot.report.build import DatasetCost, EditsInput, ReportInputs
from proofpilot.report.format import DASH, esc, est_cell, fmt, gpu_text, image, pair_cell, table
from proofpilot.report.seed_section import reconciliation_section
from proofpilot.telemetry.cost import CostReport, OpCost
from proofpilot.telemetry.projection import SEED_T_MERGE_S, SEED_T_SPLIT_S

SEED_T = {"merge": SEED_T_MERGE_S, "split": SEED_T_SPLIT_S}  # keys: core.vocab.OP_KINDS
NA = f'<td class="na">{DASH}</td>'
CLASSIFICATION = ("accuracy", "precision", "recall", "f1", "specificity", "answered_accuracy")
NO_ANSWER = ("no_answer_rate", "invalid_rate", "error_rate", "transport_error_rate", "timeout_rate")
CALLS = ("calls_per_edit", "attempts_per_edit", "decisions_per_edit")
CONFUSION = ("tp", "fp", "tn", "fn", "no_answer_pos", "no_answer_neg")
LATENCY = ("latency_p50_s", "latency_p90_s", "latency_p99_s", "latency_mean_s")

HEAD = {
    "accuracy": ["agent", "op", "tasks", "neurons", "accuracy", "precision", "recall", "F1", "specificity",
                 "answered accuracy"],
    "comparison": ["agents", "op", "difference", "same tasks", "note"],
    "reliability": ["agent", "op", "edits", "no answer", "invalid", "request error",
                    "transport errors / request", "timeouts / request", "LLM calls / edit",
                    "HTTP attempts / edit", "decisions / edit"],
    "confusion": ["agent", "op", "TP", "FP", "TN", "FN", "no answer, positive", "no answer, negative"],
    "bins": ["agent", "bin", "edits", "neurons", "tasks", "accuracy"],
    "tail": ["agent", "op", "difference", "note"],
    "cost": ["op", "decisions", "LLM calls / edit", "node-s / decision", "node-s / edit", "GPU-s / edit",
             "seed placeholder, node-s / edit", "measured ÷ seed", "roofline BF16, node-s / edit"],
    "full": ["dataset", "counts from", "projected merges", "projected splits", "node-hours", "GPU-hours",
             "US$", "seed placeholders: node-hours", "measured ÷ seed", "roofline BF16: node-hours"],
    "latency": ["agent", "op", "decisions", "median", "p90", "p99", "mean"],
    "edits": ["sample", "neurons ok", "errors", "mean", "median", "merge share, %", "p95",
              "share of edits above p95, %", "Gini", "projected total (per-neuron sums)"],
}  # fmt: skip
CAPTION = {
    "accuracy": "Classification metrics, % (95 % CI)",
    "comparison": "Accuracy difference between agents, percentage points (95 % CI, paired: both agents' rows "
    "from the same neuron draws)",
    "reliability": "No-answer rates per task, transport error and timeout rates per LLM request (a task hit "
    "by an outage is asked again), % (95 % CI), and calls per edit (edit = one ground-truth operation)",
    "confusion": "Confusion matrices, counts (tasks without an answer are in FN / FP already)",
    "bins": "Accuracy by the neuron's edit count, % (all tasks, 95 % CI): quartiles of the sampled neurons' "
    "counts, and the heavy tail above the sample's p95 ({threshold:g} edits)",
    "tail": "Accuracy on heavy-tail neurons minus the other neurons, percentage points (95 % CI)",
    "cost": "Cost per op type (95 % CI)",
    "full": "Full-dataset cost: measured per-edit cost × projected operations (95 % CI)",
    "latency": "Latency per decision (95 % CI)",
    "edits": "Edits per proofread neuron, operations (95 % CI)",
}
NO_COST = (
    '<section id="cost"><h2>Measured cost against the projection</h2><p class="warn">This run has no '
    "cost.json: no LLM answers were timed (e.g. a baseline-only run). The full-dataset table shows the "
    "seed's placeholders only.</p></section>"
)
COST_NOTE = (
    '<p class="note">node = one serving endpoint ({gpus}); node-s = seconds of that node while its '
    "queue was non-empty, divided by the decisions it finished (under continuous batching this is the cost; "
    "a request's latency is not).</p>"
)
LATENCY_NOTE = (
    '<p class="note">Client wall time from the first request to the final outcome, retries included. Under '
    "continuous batching many decisions share the GPUs at once, so a decision's latency is not its cost (see "
    "node-seconds above).</p>"
)
NO_EDITS = (
    '<section id="edits"><h2>Edit statistics</h2><p class="warn">No --edits folder given: run '
    "<code>proofpilot edits</code> and pass its output folder with --edits.</p></section>"
)


def _calls_cells(g: GroupMetrics) -> str:
    m = g.metrics
    if m["calls_per_edit"].value == 0 and m["attempts_per_edit"].value == 0:
        return '<td class="na" colspan="2">no LLM calls</td>' + est_cell(m["decisions_per_edit"], "2f")
    return "".join(est_cell(m[k], "2f") for k in CALLS)


def _accuracy_tables(ev: EvalReport) -> str:
    rows, rel_rows, conf_rows = [], [], []
    for g in ev.groups:
        lead = f"<td>{esc(g.agent)}</td><td>{g.op}</td>"
        counts = f"<td>{g.n_tasks}</td><td>{g.n_neurons}</td>"
        rows.append(lead + counts + "".join(est_cell(g.metrics[k]) for k in CLASSIFICATION))
        no_answer = "".join(est_cell(g.metrics[k]) for k in NO_ANSWER)
        rel_rows.append(lead + f"<td>{g.n_operations}</td>" + no_answer + _calls_cells(g))
        conf_rows.append(lead + "".join(f"<td>{g.confusion[k]}</td>" for k in CONFUSION))
    agents = [
        f"<td>{esc(c.a)} − {esc(c.b)}</td><td>{c.op}</td>{est_cell(c.difference)}"
        f'<td>{"yes" if c.paired else "no"}</td><td class="text">{esc(c.note)}</td>'
        for c in ev.contrasts
        if c.kind == "agents"
    ]
    return (
        table("accuracy-table", CAPTION["accuracy"], HEAD["accuracy"], rows)
        + table("comparison-table", CAPTION["comparison"], HEAD["comparison"], agents)
        + table("reliability-table", CAPTION["reliability"], HEAD["reliability"], rel_rows)
        + table("confusion-table", CAPTION["confusion"], HEAD["confusion"], conf_rows)
    )


def _heavy_tail_tables(ev: EvalReport) -> str:
    bins = [
        f"<td>{esc(b.agent)}</td><td>{esc(b.bin)}</td><td>{b.edits_min}–{b.edits_max}</td>"
        f"<td>{b.n_neurons}</td><td>{b.n_tasks}</td>{est_cell(b.accuracy)}"
        for b in ev.bins
        if b.op == "all"
    ]
    tails = [
        f"<td>{esc(c.a.removesuffix(' heavy tail'))}</td><td>{c.op}</td>{est_cell(c.difference)}"
        f'<td class="text">{esc(c.note)}</td>'
        for c in ev.contrasts
        if c.kind == "heavy_tail"
    ]
    caption = CAPTION["bins"].format(threshold=ev.heavy_tail_threshold_edits)
    return (
        "<h3>Do heavy-tail neurons differ?</h3>"
        + table("edit-bins-table", caption, HEAD["bins"], bins)
        + table("heavy-tail-table", CAPTION["tail"], HEAD["tail"], tails)
    )


def accuracy_section(ev: EvalReport, images: list[int]) -> str:
    b = ev.bootstrap
    intro = (
        '<p class="note">Positive class: <i>merge</i> on merge tasks, <i>split</i> on split tasks (pooled: '
        f'"the edit should be made"). Convention: {esc(ev.convention)}. Every interval: 95 % CI, '
        f"{esc(b.method)}, {b.n_bootstrap} resamples of {b.n_clusters} neurons "
        f"(seed {b.seed}).</p>"
    )
    plot = image(figs.accuracy_figure(ev), "accuracy per op type and by edit count, with 95 % CIs", images)
    return (
        '<section id="accuracy"><h2>Accuracy against ground truth</h2>'
        + intro
        + plot
        + _accuracy_tables(ev)
        + _heavy_tail_tables(ev)
        + "</section>"
    )


def _cost_row(op: str, d: OpCost, gpus: int) -> str:
    per_edit = d.node_s_per_edit
    roof = d.roofline_bf16_node_s_per_decision
    seed = SEED_T.get(op)
    roof_edit = None if roof is None else roof * (d.decisions_per_edit or 1.0)
    return (
        f"<td>{op}</td><td>{d.decisions}</td><td>{fmt(d.calls_per_edit, '2f')}</td>"
        + pair_cell(d.node_s_per_decision, d.node_s_per_decision_ci, "sig")
        + pair_cell(per_edit, d.node_s_per_edit_ci, "sig")
        + f"<td>{fmt(None if per_edit is None else gpus * per_edit, 'sig')}</td>"
        + f"<td>{fmt(seed, 'sig')}</td>"
        + f"<td>{fmt(None if per_edit is None or not seed else per_edit / seed, 'sig')}</td>"
        + f"<td>{fmt(roof_edit, 'sig')}</td>"
    )


def _cost_facts(cost: CostReport) -> str:
    tp, nl, att = cost.throughput, cost.naive_latency, cost.attribution
    lo, hi = tp.node_s_per_decision_ci
    busy = fmt(tp.busy_node_seconds, "sig")
    reason = f" ({esc(att.reason)})" if att.reason else ""
    return (
        f"<li>busy window: {busy} node-s of {fmt(tp.window_seconds, 'sig')} s scraped "
        f"({100 * tp.busy_fraction:.0f} % busy; requests waiting in "
        f"{100 * tp.saturated_fraction:.0f} % of scrapes), {tp.n_endpoints} endpoint(s) of "
        f"{gpu_text(tp.gpus_per_endpoint)}</li>"
        f"<li>{tp.decisions} decisions, {tp.llm_calls} LLM calls: "
        f"<b>{fmt(tp.node_s_per_decision, 'sig')} node-s per decision</b> [{fmt(lo, 'sig')}, "
        f"{fmt(hi, 'sig')}] = {fmt(tp.gpu_s_per_decision, 'sig')} GPU-s per decision</li>"
        f"<li>summing latencies instead would give {fmt(nl.per_decision_s, 'sig')} s per decision, "
        f"{fmt(nl.ratio_to_node_s_per_decision, 'sig')}× the measured cost: {esc(nl.label)}</li>"
        f"<li>per-op split of the busy time: {esc(att.method)}{reason}</li>"
    )


def cost_section(cost: CostReport | None, images: list[int]) -> str:
    if not cost:
        return NO_COST
    gpus = cost.throughput.gpus_per_endpoint
    rows = [_cost_row(op, d, gpus) for op, d in sorted(cost.per_op.items())]
    notes = "".join(f"<li>{esc(n)}</li>" for n in cost.notes)
    units = "".join(f"<li><b>{esc(k)}</b>: {esc(v)}</li>" for k, v in cost.units.items())
    ci_note = "CI: " + esc(cost.throughput.ci_method)
    plot = image(
        figs.cost_per_edit_figure(cost), "node-seconds per edit: measured vs seed vs roofline", images
    )
    return (
        '<section id="cost"><h2>Measured cost against the projection</h2>'
        + _served(cost)
        + COST_NOTE.format(gpus=gpu_text(gpus))
        + f"<ul>{_cost_facts(cost)}</ul>"
        + plot
        + table("cost-table", CAPTION["cost"], HEAD["cost"], rows, note=ci_note)
        + (f'<ul class="warn">{notes}</ul>' if notes else "")
        + f"<details><summary>Units</summary><ul>{units}</ul></details></section>"
    )


def _rate_text(usd_per_gpu_hour: float) -> str:
    return f"${usd_per_gpu_hour:.2f} per GPU-hour" if math.isfinite(usd_per_gpu_hour) else "not priced"


def _served(cost: CostReport) -> str:
    """What served the run, above the cost figures (a rehearsal as a warning)."""
    s = cost.served_by
    if s is None:
        return '<p class="note">what served this run was not recorded (an older cost.json)</p>'
    return f'<p class="{"warn" if s.rehearsal else "note"}" id="served-by"><b>{esc(s.label)}</b></p>'


def _basis(ref) -> str:
    return (
        f'<p class="note"><b>$ basis</b>: {_rate_text(ref.usd_per_gpu_hour)} ({esc(ref.usd_basis)}). '
        f"<b>Units</b>: node-hours = hours of one {ref.gpus_per_node}-GPU serving node; GPU-hours = "
        f"{ref.gpus_per_node} × node-hours. <b>Measured</b> = projected merges × measured node-s per merge "
        "edit + projected splits × node-s per split edit (calls per edit included). "
        "<b>Seed placeholders</b>: "
        f"{ref.seed_t_merge_s:g} s per merge, {ref.seed_t_split_s:g} s per split (node-seconds, one call per "
        f"edit). {esc(ref.ci_note)}.</p>"
    )


def _full_row(c: DatasetCost) -> str:
    m, s = c.measured, c.seed
    cells = (
        f'<td>{esc(c.kind)}<br><small>{esc(c.dataset)}</small></td><td class="text">{esc(c.source)}</td>'
        + pair_cell(s.merges, s.merges_ci, "compact")
        + pair_cell(s.splits, s.splits_ci, "compact")
    )
    if m is None:
        cells += NA * 3
    else:
        cells += pair_cell(m.node_hours, m.node_hours_ci, "sig") + pair_cell(
            m.gpu_hours, m.gpu_hours_ci, "sig"
        )
        cells += pair_cell(m.usd, m.usd_ci, "usd")
    cells += pair_cell(s.node_hours, s.node_hours_ci, "sig")
    cells += f"<td>{fmt(m.ratio_node_hours_to_seed if m else None, 'sig')}</td>"
    return cells + f"<td>{fmt(m.roofline_bf16_node_hours if m else None, 'sig')}</td>"


def full_cost_section(costs: Sequence[DatasetCost], notes: Sequence[str], images: list[int]) -> str:
    ref = next((c.measured or c.seed for c in costs), None)
    note_list = "".join(f"<li>{esc(n)}</li>" for n in notes)
    plot = image(figs.full_dataset_figure(costs), "full-dataset node-hours with 95 % CIs", images)
    return (
        '<section id="full-cost"><h2>What a full-dataset run would cost</h2>'
        + (_basis(ref) if ref else "")
        + plot
        + table("full-dataset-cost-table", CAPTION["full"], HEAD["full"], [_full_row(c) for c in costs])
        + (f'<ul class="warn">{note_list}</ul>' if note_list else "")
        + "</section>"
    )


def latency_section(inp: ReportInputs, images: list[int]) -> str:
    rows = [
        f"<td>{esc(g.agent)}</td><td>{g.op}</td><td>{g.n_tasks}</td>"
        + "".join(est_cell(g.metrics[k], "dur") for k in LATENCY)
        for g in inp.evaluation.groups
    ]
    plot = figs.latency_figure(inp.rows, inp.evaluation.agents)
    return (
        '<section id="latency"><h2>Latency per decision (a latency, not a cost)</h2>'
        + LATENCY_NOTE
        + image(plot, "latency distribution per op type", images)
        + table("latency-table", CAPTION["latency"], HEAD["latency"], rows)
        + "</section>"
    )


def _edits_rows(summary: SummaryRecord) -> list[str]:
    return [
        f"<td>{esc(x.label)}</td><td>{x.n_ok}</td><td>{x.n_errors}</td>"
        + est_cell(x.mean_edits, "sig")
        + est_cell(x.median_edits, "sig")
        + est_cell(x.merge_share, "pct")
        + est_cell(x.p95, "sig")
        + est_cell(x.tail_share, "pct")
        + est_cell(x.gini, "2f")
        + est_cell(x.projected_total, "compact")
        for x in summary.samples
    ]


def _figure_basis(summary: SummaryRecord) -> str:
    basis = summary.cost.basis
    return (
        '<p class="note">The edits stage\'s Figure 3 prices operations at its own basis: '
        f"{basis.t_merge_s} / {basis.t_split_s} node-s per merge / split and "
        f"${basis.usd_per_gpu_hour} per GPU-hour; the full-dataset table above uses the measured cost "
        "per edit instead.</p>"
    )


def edits_section(edits: Sequence[EditsInput], images: list[int]) -> str:
    if not edits:
        return NO_EDITS
    parts = ['<section id="edits"><h2>Edit statistics</h2>']
    for e in edits:
        s = e.summary
        name = esc(s.datastack)
        parts.append(f"<h3>{esc(e.kind)}: {name} ({s.population.n_neurons:,} proofread neurons)</h3>")
        parts.append(table(f"edits-table-{name}", CAPTION["edits"], HEAD["edits"], _edits_rows(s)))
        if e.figures:
            parts.append(_figure_basis(s))
        else:
            parts.append(
                f'<p class="warn">{esc(e.path)}/figures holds no figures (edits run --no-figures?)</p>'
            )
        parts.extend(image(png, f"{s.datastack}: {fig}", images) for fig, png in e.figures)
    parts.append(reconciliation_section([e.summary for e in edits]))
    return "".join(parts) + "</section>"
