"""The report's own plots (matplotlib's object API on the Agg canvas, no pyplot state), as PNG bytes.

Every plot states its units and what its error bars are; the latency plot is labelled as latency, not cost.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from proofpilot.core.vocab import OP_KINDS
from proofpilot.edits.records import Estimate
from proofpilot.eval.decisions import EvalReport
from proofpilot.report.format import duration, sig
from proofpilot.telemetry.cost import CostReport
from proofpilot.telemetry.projection import SEED_T_MERGE_S, SEED_T_SPLIT_S

DPI = 110
OPS = (*OP_KINDS, "all")
MIN_LATENCY_S = 1e-6  # log axes: a latency below 1 µs is drawn at 1 µs


def png_bytes(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()


def _yerr(ests: Sequence[Estimate]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Values and asymmetric error bars (0 where there is no CI)."""
    vals = np.array([np.nan if e.value is None else e.value for e in ests], dtype=float)
    lo = np.array(
        [v - e.ci[0] if e.ci and e.value is not None else 0.0 for v, e in zip(vals, ests, strict=True)]
    )
    hi = np.array(
        [e.ci[1] - v if e.ci and e.value is not None else 0.0 for v, e in zip(vals, ests, strict=True)]
    )
    return vals, np.clip(lo, 0, None), np.clip(hi, 0, None)


def accuracy_figure(ev: EvalReport) -> bytes:
    """Left: accuracy per op type and agent. Right: accuracy (all ops) by the neuron's edit count."""
    fig = Figure(figsize=(10, 3.6))
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.6]})
    n = len(ev.agents)
    width = 0.7 / max(n, 1)
    for i, agent in enumerate(ev.agents):
        ests = [
            g.metrics["accuracy"] if (g := ev.group(agent, op)) else Estimate(None, None, "") for op in OPS
        ]
        vals, lo, hi = _yerr(ests)
        x = np.arange(len(OPS)) + (i - (n - 1) / 2) * width
        ax1.bar(x, vals, width, yerr=[lo, hi], capsize=4, label=agent, color=f"C{i}", alpha=0.85)
        for xi, v in zip(x, vals, strict=True):
            if np.isfinite(v):
                ax1.text(
                    xi, 0.03, f"{v:.2f}", ha="center", va="bottom", fontsize=8, color="white", rotation=90
                )
    ax1.set_xticks(np.arange(len(OPS)), ["merge tasks", "split tasks", "all tasks"])
    ax1.set_ylim(0, 1.05)
    ax1.set_ylabel("accuracy (fraction correct)")
    ax1.set_title("Accuracy per op type\n(error bar: 95 % CI, bootstrap over neurons)", fontsize=10)
    ax1.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax1.legend(fontsize=8, loc="lower right")
    bins = [b for b in ev.bins if b.op == "all"]
    labels = list(dict.fromkeys(b.bin for b in bins if b.scheme == "quartile")) + list(
        dict.fromkeys(b.bin for b in bins if b.scheme == "heavy_tail")
    )
    for i, agent in enumerate(ev.agents):
        by = {b.bin: b for b in bins if b.agent == agent}
        ests = [by[label].accuracy if label in by else Estimate(None, None, "") for label in labels]
        vals, lo, hi = _yerr(ests)
        x = np.arange(len(labels)) + (i - (n - 1) / 2) * 0.15
        ax2.errorbar(x, vals, yerr=[lo, hi], fmt="o", capsize=4, color=f"C{i}", label=agent)
    n_quart = sum(1 for b in dict.fromkeys(b.bin for b in bins if b.scheme == "quartile"))
    if 0 < n_quart < len(labels):
        ax2.axvline(n_quart - 0.5, color="grey", lw=0.8)
    ticks = [label.replace(": ", "\n").replace(" (", "\n(") for label in labels]
    ax2.set_xticks(np.arange(len(labels)), ticks,
                   fontsize=7)  # fmt: skip
    ax2.set_ylim(0, 1.05)
    ax2.set_ylabel("accuracy (all tasks)")
    ax2.set_title(
        "Accuracy by the neuron's edit count: quartiles | heavy tail vs rest\n"
        "(error bar: 95 % CI, bootstrap over neurons)",
        fontsize=10,
    )
    ax2.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return png_bytes(fig)


def latency_figure(rows: pd.DataFrame, agents: Sequence[str]) -> bytes:
    """Empirical CDF of per-decision latency, one panel per op type (client wall time, log scale)."""
    fig = Figure(figsize=(10, 3.4))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, op in zip(axes, OP_KINDS, strict=True):
        for i, agent in enumerate(agents):
            lat = np.sort(
                rows.loc[(rows["agent_label"] == agent) & (rows["op_kind"] == op), "latency_s"].to_numpy(
                    float
                )
            )
            if lat.size == 0:
                continue
            y = np.arange(1, lat.size + 1) / lat.size
            ax.step(np.maximum(lat, MIN_LATENCY_S), y, where="post", color=f"C{i}",
                    label=f"{agent} (n = {lat.size}, median {duration(float(np.median(lat)))})")  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("latency per decision, seconds (client wall time, log scale)")
        ax.set_title(f"{op} tasks", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    axes[0].set_ylabel("fraction of decisions ≤ x")
    fig.suptitle("Latency distribution per op type: a latency, NOT a cost (cost = node-seconds)",
                 fontsize=10)  # fmt: skip
    fig.tight_layout()
    return png_bytes(fig)


def cost_per_edit_figure(cost: CostReport) -> bytes | None:
    """Measured node-seconds per edit (95 % CI) beside the seed's placeholders and the roofline, per op."""
    ops = [op for op in OP_KINDS if op in cost.per_op and cost.per_op[op].node_s_per_edit is not None]
    if not ops:
        return None
    seed = {"merge": SEED_T_MERGE_S, "split": SEED_T_SPLIT_S}
    series = [
        ("measured (this run)", "C0"),
        ("seed placeholder", "C3"),
        ("roofline BF16", "C2"),
        ("roofline FP8", "C4"),
    ]
    fig = Figure(figsize=(10, 1.2 + 1.1 * len(ops)))
    ax = fig.subplots()
    h = 0.8 / len(series)
    for j, op in enumerate(ops):
        d = cost.per_op[op]
        dpe = d.decisions_per_edit or 1.0
        roof = [d.roofline_bf16_node_s_per_decision, d.roofline_fp8_node_s_per_decision]
        vals = [d.node_s_per_edit, seed[op]] + [None if r is None else r * dpe for r in roof]
        for k, ((name, color), v) in enumerate(zip(series, vals, strict=True)):
            if v is None:
                continue
            y = j + (k - 1.5) * h
            err, end, text = None, v, f"{sig(v)} node-s"
            if k == 0 and d.node_s_per_edit_ci:
                lo, hi = d.node_s_per_edit_ci
                err, end = [[max(0.0, v - lo)], [max(0.0, hi - v)]], max(hi, v)
                text += f" [{sig(lo)}, {sig(hi)}]"
            ax.barh(y, v, h, xerr=err, capsize=3, color=color, label=name if j == 0 else None)
            ax.text(end * 1.08, y, text, va="center", fontsize=8)
    ax.set_yticks(range(len(ops)), [f"{op} (per edit)" for op in ops])
    ax.set_xscale("log")
    ax.set_xlabel("node-seconds per edit (one serving node = GPUs per endpoint; log scale)")
    ax.set_title("Cost per edit: measured (95 % CI) vs the seed's placeholders and the Qwen2.5-32B roofline",
                 fontsize=10)  # fmt: skip
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.invert_yaxis()
    lo_x, hi_x = ax.get_xlim()
    ax.set_xlim(lo_x, hi_x * 8)  # room for the labels
    fig.tight_layout()
    return png_bytes(fig)


def full_dataset_figure(costs: Sequence) -> bytes | None:
    """Full-dataset node-hours: measured × projected counts vs the seed's placeholders (95 % CI)."""
    if not costs:
        return None
    fig = Figure(figsize=(10, 1.2 + 0.9 * len(costs)))
    ax = fig.subplots()
    for j, row in enumerate(costs):
        series = (
            (row.measured, "measured cost per edit", "C0"),
            (row.seed, "seed placeholders (2.0 / 2.5 s)", "C3"),
        )
        for k, (proj, name, color) in enumerate(series):
            if proj is None:
                continue
            v, (lo, hi) = proj.node_hours, proj.node_hours_ci
            y = j + (k - 0.5) * 0.38
            ax.barh(
                y, v, 0.36, xerr=[[v - lo], [hi - v]], capsize=3, color=color, label=name if j == 0 else None
            )
            ax.text(hi * 1.1, y, f"{sig(v)} node-h [{sig(lo)}, {sig(hi)}]", va="center", fontsize=8)
    ax.set_yticks(range(len(costs)), [f"{r.kind}\n{r.source}" for r in costs], fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("node-hours for the full dataset (log scale; error bar: 95 % CI)")
    ax.set_title("What a full-dataset run would cost", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.invert_yaxis()
    lo_all = min(r.node_hours_ci[0] for c in costs for r in (c.measured, c.seed) if r is not None)
    hi_all = max(r.node_hours_ci[1] for c in costs for r in (c.measured, c.seed) if r is not None)
    ax.set_xlim(max(lo_all, 1e-6) / 3, hi_all * 30)
    fig.tight_layout()
    return png_bytes(fig)
