"""HTML of the report: one self-contained page (inline CSS, images as base64 data URIs, no script).

A Content-Security-Policy meta tag forbids every external resource, so a browser shows (and the Chromium
test catches) any that slips in. Sections: summary, accuracy, cost (measured vs projected), full-dataset
cost, latency, edit statistics, provenance.
"""

from __future__ import annotations

import json
import math
import platform
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata

from proofpilot.datastack.records import DataPin
from proofpilot.eval.rows import RunInfo
from proofpilot.orchestrator.run_records import read_verdict_rows
from proofpilot.orchestrator.sample_views import read_sample_views
from proofpilot.report.build import EditsInput, ReportInputs
from proofpilot.report.capacity import capacity_section
from proofpilot.report.complexity import complexity_section
from proofpilot.report.format import esc, fmt, gpu_text
from proofpilot.report.sections import (
    accuracy_section,
    cost_section,
    edits_section,
    full_cost_section,
    latency_section,
)
from proofpilot.report.style import CSP, CSS
from proofpilot.report.views import views_section


def _ci(lo: float, hi: float, kind: str) -> str:
    return f"[{fmt(lo, kind)}, {fmt(hi, kind)}]"


def _summary_items(inp: ReportInputs) -> list[str]:
    ev, items = inp.evaluation, []
    for agent in ev.agents:
        g = ev.group(agent, "all")
        if g:
            a = g.metrics["accuracy"]
            ci = f" {_ci(*a.ci, 'pct')} %" if a.ci else " (no CI)"
            no_answer = fmt(g.metrics["no_answer_rate"].value, "pct")
            items.append(
                f"<li><b>{esc(agent)}</b>: accuracy {fmt(a.value, 'pct')} %{ci} on {g.n_tasks} decisions "
                f"from {g.n_neurons} neurons; no usable answer in {no_answer} %</li>"
            )
    for c in ev.contrasts:
        if c.kind == "agents" and c.op == "all" and c.difference.value is not None:
            d = c.difference
            ci = f" [{100 * d.ci[0]:+.1f}, {100 * d.ci[1]:+.1f}]" if d.ci else ""
            items.append(
                f"<li>accuracy {esc(c.a)} − {esc(c.b)}: {100 * d.value:+.1f} points{ci} (paired CI)</li>"
            )
    missing = inp.manifest.neurons_without_log
    if missing:
        sampled = len(inp.manifest.neuron_root_ids)
        items.append(
            f'<li class="warn">{len(missing)} of {sampled} sampled neurons had no readable change log when '
            "the run started; their tasks are not in this run (reasons in run.json)</li>"
        )
    if inp.cost:
        tp = inp.cost.throughput
        served = inp.cost.served_by
        if served is not None:
            cls = ' class="warn"' if served.rehearsal else ""
            items.append(f"<li{cls}><b>{esc(served.label)}</b></li>")
        items.append(
            f"<li>measured cost: {fmt(tp.node_s_per_decision, 'sig')} node-s per decision "
            f"{_ci(*tp.node_s_per_decision_ci, 'sig')} ({gpu_text(tp.gpus_per_endpoint)} per node = "
            f"{fmt(tp.gpu_s_per_decision, 'sig')} GPU-s per decision)</li>"
        )
    for row in inp.dataset_costs:
        p = row.measured
        if p is not None:
            items.append(
                f"<li>full {esc(row.kind)} dataset ({esc(row.source)}): {fmt(p.gpu_hours, 'sig')} GPU-hours "
                f"{_ci(*p.gpu_hours_ci, 'sig')} ≈ {fmt(p.usd, 'usd')} {_ci(*p.usd_ci, 'usd')} at "
                f"{_rate(p.usd_per_gpu_hour)}; the seed's placeholders give "
                f"{fmt(row.seed.gpu_hours, 'sig')} GPU-hours</li>"
            )
    return items


def _rate(usd_per_gpu_hour: float) -> str:
    """$/GPU-h, or "not priced" for a rehearsal (NaN rate)."""
    return f"${usd_per_gpu_hour:.2f}/GPU-h" if math.isfinite(usd_per_gpu_hour) else "not priced (rehearsal)"


def summary_section(inp: ReportInputs) -> str:
    return f'<section id="summary"><h2>Summary</h2><ul>{"".join(_summary_items(inp))}</ul></section>'


def _pin_text(pin: DataPin | None, servers: bool = True) -> str:
    if pin is None:
        return "none recorded"
    text = f"materialization {esc(pin.materialization_version)}, timestamp {esc(pin.timestamp)}"
    if servers:
        text += (
            f", table {esc(pin.table)}, caveclient {esc(pin.caveclient_version)}, servers "
            f"{esc(json.dumps(pin.server_versions))}"
        )
    return text


def _run_items(r: RunInfo) -> str:
    config = esc(json.dumps(r.config, indent=1, sort_keys=True))  # free-form: shown as stored
    return (
        f"<dt>run {esc(r.label)}</dt><dd>{esc(r.run_dir)}; datastack {esc(r.datastack)}; model "
        f"{esc(r.model)}; prompt version {esc(r.prompt_version)}; {r.n_verdicts} verdicts of {r.n_tasks} "
        f"tasks in {r.sessions} session(s); {r.n_llm_errors} LLM transport failures (their tasks asked "
        f"again); config sha256 <code>{esc(r.config_hash)}</code></dd>"
        f"<dt>data pin ({esc(r.label)})</dt><dd>{_pin_text(r.pin)}</dd>"
        f"<dt>config ({esc(r.label)})</dt><dd><pre>{config}</pre></dd>"
    )


def _edits_item(e: EditsInput) -> str:
    sampling = e.summary.sampling
    return (
        f"<dt>edits {esc(e.summary.datastack)}</dt><dd>{esc(e.path)}; {_pin_text(e.summary.pin, False)}; "
        f"sampling {esc(sampling.design)}, seed {esc(sampling.seed)}</dd>"
    )


def provenance_section(inp: ReportInputs, build_seconds: float) -> str:
    ev = inp.evaluation
    items = [_run_items(r) for r in ev.runs] + [_edits_item(e) for e in inp.edits]
    try:
        version = metadata.version("proofpilot")
    except metadata.PackageNotFoundError:
        version = "unknown"
    items.append(
        f"<dt>eval</dt><dd>{esc(ev.bootstrap.draw)}; convention: {esc(ev.convention)}; rows and every "
        f"number: {esc(inp.run_dir / 'eval')}/eval.json, eval_rows.parquet</dd>"
        f"<dt>software</dt><dd>proofpilot {esc(version)}, Python {esc(platform.python_version())}</dd>"
        f"<dt>built</dt><dd>{datetime.now(UTC).isoformat(timespec='seconds')} in {build_seconds:.1f} s</dd>"
    )
    return f'<section id="provenance"><h2>Provenance</h2><dl>{"".join(items)}</dl></section>'


def render_report(inp: ReportInputs, build_seconds: Callable[[], float]) -> tuple[str, int]:
    """The whole page and the number of inline images."""
    images: list[int] = []
    identity = inp.manifest.identity
    title = f"proofpilot pilot report: {identity.datastack or '?'}"
    agents = ", ".join(inp.evaluation.agents)
    notes = "".join(f"<li>{esc(n)}</li>" for n in inp.evaluation.notes)
    body = (
        summary_section(inp)
        + (f'<ul class="warn">{notes}</ul>' if notes else "")
        + accuracy_section(inp.evaluation, images)
        + cost_section(inp.cost, images)
        + capacity_section(inp.capacity, inp.knee, images)
        + full_cost_section(inp.dataset_costs, inp.notes, images)
        + latency_section(inp, images)
        + complexity_section(inp.rows, inp.run_dir, inp.cost)
        + edits_section(inp.edits, images)
        + views_section(inp.run_dir, read_sample_views(inp.run_dir), read_verdict_rows(inp.run_dir), images)
    )
    body += provenance_section(inp, build_seconds())
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>"
        f'<h1>{esc(title)}</h1><p class="sub">agents: {esc(agents)} · model {esc(identity.model)} · '
        f"prompt {esc(identity.prompt_version)} · {esc(inp.run_dir)}</p>{body}</main></body></html>\n"
    )
    return page, len(images)
