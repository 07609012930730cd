"""Figures 1-3 of the seed write-up, from the real per-neuron rows and summary.json (never synthetic data).

Figure 1: sample-size validation (mean edits per neuron, projected total, tail share) with CI error bars and
the seed's published values. Figure 2: edits-per-neuron distribution (log axes where heavy-tailed), rank plot
with the p95 tail, Lorenz curve. Figure 3: cost heatmap over seconds per operation × dataset, and the
merge/split composition of operations and of node time. Matplotlib's object API on the Agg canvas (no pyplot
state).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from proofpilot.core.errors import DataError
from proofpilot.edits.figure1_resamples import draw_differences, draw_resamples

DPI = 150
STYLE = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "figure.titlesize": 12,
}
MERGE_COLOUR, SPLIT_COLOUR, TAIL_COLOUR, SEED_COLOUR = "#1f77b4", "#ff7f0e", "#d62728", "#2ca02c"


@dataclass(frozen=True)
class DatasetView:
    """What the figures need of one `edits` run: its summary.json and its per-neuron rows."""

    name: str
    summary: dict
    per_neuron: pd.DataFrame  # with in_<label> columns


def dataset_view(summary: dict, per_neuron: pd.DataFrame) -> DatasetView:
    return DatasetView(summary["datastack"], summary, per_neuron)


def load_dataset(out_dir: Path) -> DatasetView:
    """An earlier `edits` output folder (for drawing several datasets side by side)."""
    try:
        summary = json.loads((out_dir / "summary.json").read_text())
        per_neuron = pd.read_parquet(out_dir / "per_neuron.parquet")
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read an earlier edits output in {out_dir}: {exc}") from None
    return dataset_view(summary, per_neuron)


def _label(sample: dict) -> str:
    return f"all {sample['n']:,} (census)" if sample["label"] == "full" else f"n = {sample['n']:,}"


def _errorbar(ax, x, value, ci, **kw) -> None:
    if value is None:
        return
    yerr = None if ci is None else [[value - ci[0]], [ci[1] - value]]
    ax.errorbar([x], [value], yerr=yerr, fmt="o", capsize=4, markersize=6, **kw)


def _millions(value: float, _pos: int) -> str:
    return f"{value / 1e6:.2f} M" if abs(value) >= 1e6 else f"{value / 1e3:.0f} K"


def _seed_rows(view: DatasetView) -> dict[int, dict]:
    return {c["n"]: c for c in view.summary.get("seed_comparison", [])}


def _draw_distinct(ax, samples: list[dict]) -> str:
    """Distinct (deduplicated) operations next to the per-neuron-sum projection, where estimable; returns a
    note
    naming the samples where they are not."""
    labelled, missing = False, []
    for x, s in enumerate(samples):
        d = s["dedup"]
        if d["unique_ops"] is None:
            missing.append(_label(s))
            continue
        _errorbar(
            ax,
            x - 0.12,
            d["unique_ops"],
            d["unique_ops_ci"],
            color=SPLIT_COLOUR,
            label=None if labelled else "distinct operations",
        )
        labelled = True
    return f"\n(distinct operations not estimable at {', '.join(missing)})" if missing else ""


def figure1(views: list[DatasetView], path: Path) -> Path:
    """Sample-size validation: three panels per dataset, CIs as error bars, the seed's values as diamonds."""
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(12, 3.6 * len(views)), dpi=DPI, layout="constrained")
        axes = np.atleast_2d(fig.subplots(len(views), 3, squeeze=False))
        for row, view in zip(axes, views, strict=True):
            samples, seed = view.summary["samples"], _seed_rows(view)
            labels = [_label(s) for s in samples]
            level = round(100 * view.summary["sampling"]["ci_level"])
            panels = (
                ("mean_edits", "mean edits per neuron\n(operations / neuron)", "seed_mean_edits", 1.0),
                (
                    "projected_total",
                    "projected total edits\n(operations, per-neuron sums)",
                    "seed_projected_total",
                    1.0,
                ),
                (
                    "tail_share",
                    "edits in neurons above p95\n(% of the sample's edits)",
                    "seed_tail_pct",
                    100.0,
                ),
            )
            for ax, (key, ylabel, seed_key, scale) in zip(row, panels, strict=True):
                seed_labelled, drawn = False, False
                for x, s in enumerate(samples):
                    ci = s.get(f"{key}_ci")
                    _errorbar(
                        ax,
                        x,
                        None if s[key] is None else s[key] * scale,
                        None if ci is None else [c * scale for c in ci],
                        color=MERGE_COLOUR,
                        label=f"this run ({level} % CI)" if x == 0 else None,
                    )
                    drawn = draw_resamples(ax, x, view.summary.get("resamples"), s, key, scale, drawn)
                    if s["n"] in seed and s["label"] != "full":
                        value = seed[s["n"]][seed_key]
                        ax.plot(
                            [x + 0.12],
                            [value],
                            "D",
                            color=SEED_COLOUR,
                            markersize=6,
                            label=None if seed_labelled else "seed write-up (published)",
                        )
                        seed_labelled = True
                note = draw_differences(ax, view.summary.get("resamples"), key, scale)
                if key == "projected_total":
                    note += _draw_distinct(ax, samples)
                    ax.yaxis.set_major_formatter(FuncFormatter(_millions))
                ax.set_xticks(range(len(samples)), labels)
                ax.set_xlim(-0.5, len(samples) - 0.5)
                ax.set_xlabel("sample (proofread neurons)" + note)
                ax.set_ylabel(ylabel)
                ax.grid(axis="y", alpha=0.3)
            row[0].set_title(f"{view.name}: mean", loc="left")
            row[1].set_title(
                f"{view.name}: projection to N = {view.summary['population']['n_neurons']:,}", loc="left"
            )
            row[2].set_title(f"{view.name}: heavy tail", loc="left")
            row[0].legend(loc="best")
            row[1].legend(loc="best")
        fig.suptitle(
            "Figure 1. Sample-size validation on independent samples"
            if not views[0].summary["sampling"]["nested"]
            else "Figure 1. Sample-size validation (nested)"
        )
        return _save(fig, path)


def _primary_rows(view: DatasetView) -> tuple[dict, np.ndarray]:
    sample = view.summary["samples"][-1]
    frame = view.per_neuron
    rows = frame[frame[f"in_{sample['label']}"] & (frame["status"] == "ok")]
    return sample, rows["n_edits"].to_numpy(dtype=np.int64)


def _ci_text(ci: list | None, scale: float, digits: int) -> str:
    return "" if ci is None else f" [{scale * ci[0]:.{digits}f}–{scale * ci[1]:.{digits}f}]"


def _heavy_tailed(edits: np.ndarray) -> bool:
    positive = edits[edits > 0]
    return len(positive) > 0 and np.percentile(positive, 99) > 10 * max(np.median(positive), 1)


def figure2(views: list[DatasetView], path: Path) -> Path:
    """Distribution, rank plot with the p95 tail, and Lorenz curve of edits per neuron, per dataset."""
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(13, 3.9 * len(views)), dpi=DPI, layout="constrained")
        axes = fig.subplots(len(views), 3, squeeze=False)
        for (ax_hist, ax_rank, ax_lorenz), view in zip(axes, views, strict=True):
            sample, edits = _primary_rows(view)
            heavy = _heavy_tailed(edits)
            p95, tag = sample["p95"], f"{view.name}, {_label(sample)}"
            zeros = int((edits == 0).sum())
            if heavy:
                bins = np.unique(np.round(np.logspace(0, np.log10(edits.max() + 1), 40)))
                ax_hist.hist(edits[edits > 0], bins=bins, color=MERGE_COLOUR, alpha=0.8)
                ax_hist.set_xscale("log")
                ax_hist.set_yscale("log")
            else:
                ax_hist.hist(edits, bins=40, color=MERGE_COLOUR, alpha=0.8)
            for value, name, style in (
                (sample["median_edits"], "median", "--"),
                (sample["mean_edits"], "mean", "-"),
                (p95, "p95", ":"),
            ):
                if value and (value > 0 or not heavy):
                    ax_hist.axvline(
                        value,
                        color=TAIL_COLOUR if name == "p95" else "k",
                        ls=style,
                        label=f"{name} {value:,.1f}",
                    )
            ax_hist.legend(title=f"{zeros} neurons with 0 edits" if heavy and zeros else None)
            ax_hist.set_xlabel("edits per neuron (operations" + (", log scale)" if heavy else ")"))
            ax_hist.set_ylabel("neurons" + (" (log scale)" if heavy else ""))
            ax_hist.set_title(f"{tag}: distribution", loc="left")

            ranked = np.sort(edits)[::-1]
            rank = np.arange(1, len(ranked) + 1)
            if (
                heavy
            ):  # zero-edit neurons cannot be drawn on a log axis; they are counted in the histogram legend
                rank, ranked = rank[ranked > 0], ranked[ranked > 0]
            tail = ranked > p95
            ax_rank.plot(
                rank[~tail], ranked[~tail], ".", color=MERGE_COLOUR, markersize=3, label="neurons ≤ p95"
            )
            share = sample["tail_share"]
            ci_text = _ci_text(sample["tail_share_ci"], 100.0, 1)
            ax_rank.plot(
                rank[tail],
                ranked[tail],
                ".",
                color=TAIL_COLOUR,
                markersize=4,
                label=f"{int(tail.sum())} neurons > p95: {100 * share:.1f} %{ci_text} of edits",
            )
            ax_rank.axhline(p95, color=TAIL_COLOUR, ls=":", label=f"p95 = {p95:,.1f}")
            if heavy:
                ax_rank.set_yscale("log")
                ax_rank.set_xscale("log")
            ax_rank.set_xlabel("neuron rank (most edited first" + (", log scale)" if heavy else ")"))
            ax_rank.set_ylabel("edits per neuron (operations" + (", log scale)" if heavy else ")"))
            ax_rank.legend(loc="lower left" if heavy else "upper right")
            ax_rank.set_title(f"{tag}: heavy tail", loc="left")

            cum = np.concatenate([[0.0], np.cumsum(np.sort(edits)) / max(edits.sum(), 1)])
            share_neurons = np.linspace(0, 1, len(cum))
            ax_lorenz.plot(
                share_neurons,
                cum,
                color=MERGE_COLOUR,
                label=f"Gini {sample['gini']:.3f}" + _ci_text(sample["gini_ci"], 1.0, 3),
            )
            ax_lorenz.plot([0, 1], [0, 1], color="0.6", ls="--", label="equal effort")
            ax_lorenz.xaxis.set_major_formatter(PercentFormatter(1.0))
            ax_lorenz.yaxis.set_major_formatter(PercentFormatter(1.0))
            ax_lorenz.set_xlabel("neurons, least edited first (cumulative %)")
            ax_lorenz.set_ylabel("edits (cumulative %)")
            ax_lorenz.legend(loc="upper left")
            ax_lorenz.set_title(f"{tag}: Lorenz curve", loc="left")
        fig.suptitle("Figure 2. Edits per proofread neuron (measured rows)")
        return _save(fig, path)


HEATMAP_SECONDS = (1.0, 2.0, 3.0, 4.0, 5.0)


def _usd_text(value: float, sign: bool = True) -> str:
    """Dollars, short; the sign is escaped so that matplotlib never reads a pair of them as maths."""
    text = f"{value / 1e3:,.1f}K" if value >= 1e3 else f"{value:,.0f}"
    return ("\\$" if sign else "") + text


def figure3(views: list[DatasetView], path: Path) -> Path:
    """Cost heatmap (seconds per operation × dataset); merge/split composition of operations and node time."""
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(14, 2.6 + 1.2 * len(views)), dpi=DPI, layout="constrained")
        ax_heat, ax_comp = fig.subplots(1, 2, width_ratios=[1.3, 1])
        costs = [v.summary["cost"] for v in views]
        points = [[p for p in c["sensitivity"] if p["seconds_per_op"] in HEATMAP_SECONDS] for c in costs]
        seconds = [p["seconds_per_op"] for p in points[0]]
        usd = np.array([[p["usd"] for p in row] for row in points])
        norm = LogNorm(vmin=usd.min(), vmax=max(usd.max(), usd.min() * 1.01))
        image = ax_heat.imshow(usd, aspect="auto", cmap="viridis", norm=norm)
        for i, row in enumerate(points):
            for j, p in enumerate(row):
                lo, hi = p["usd_ci"] or (p["usd"], p["usd"])
                colour = "white" if usd[i, j] < np.sqrt(usd.min() * usd.max()) else "black"
                ax_heat.text(
                    j,
                    i,
                    f"{_usd_text(p['usd'])}\n{_usd_text(lo, False)}–{_usd_text(hi, False)}",
                    ha="center",
                    va="center",
                    fontsize=9,
                    color=colour,
                )
        basis = costs[0]["basis"]
        ax_heat.set_xticks(range(len(seconds)), [f"{s:g}" for s in seconds])
        ax_heat.set_yticks(
            range(len(views)), [f"{v.name}\n{_label(v.summary['samples'][-1])}" for v in views]
        )
        ax_heat.set_xlabel("node-seconds per operation (merge or split)")
        fig.colorbar(
            image,
            ax=ax_heat,
            label=f"US\\$ at \\${basis['usd_per_gpu_hour']:g} per GPU-hour, "
            f"{basis['gpus_per_node']} GPUs per node",
        )
        ax_heat.set_title(
            "A. Projected cost, all operations (per-neuron sums);\nUS\\$ and 95 % CI", loc="left"
        )

        labels, merge_parts, errors = [], [], []
        for view, c in zip(views, costs, strict=True):
            s = view.summary["samples"][-1]
            r, r_ci = s["merge_share"], s["merge_share_ci"] or [s["merge_share"]] * 2
            tm, ts = c["basis"]["t_merge_s"], c["basis"]["t_split_s"]

            def time_share(x: float, tm: float = tm, ts: float = ts) -> float:
                return tm * x / (tm * x + ts * (1 - x)) if tm * x + ts * (1 - x) > 0 else 0.0

            for kind, value, ci in (
                ("operations", r, r_ci),
                ("node time", time_share(r), [time_share(r_ci[0]), time_share(r_ci[1])]),
            ):
                labels.append(f"{view.name}\n{kind}")
                merge_parts.append(value)
                errors.append([value - ci[0], ci[1] - value])
        y = np.arange(len(labels))
        merge_parts = np.array(merge_parts)
        ax_comp.barh(y, merge_parts, color=MERGE_COLOUR, label="merges")
        ax_comp.barh(y, 1 - merge_parts, left=merge_parts, color=SPLIT_COLOUR, label="splits")
        ax_comp.errorbar(merge_parts, y, xerr=np.array(errors).T, fmt="none", ecolor="k", capsize=3)
        for yi, m in zip(y, merge_parts, strict=True):
            ax_comp.text(m / 2, yi, f"{100 * m:.1f} %", ha="center", va="center", color="white", fontsize=9)
            ax_comp.text(m + (1 - m) / 2, yi, f"{100 * (1 - m):.1f} %", ha="center", va="center", fontsize=9)
        ax_comp.set_yticks(y, labels)
        ax_comp.invert_yaxis()
        ax_comp.xaxis.set_major_formatter(PercentFormatter(1.0))
        ax_comp.set_xlim(0, 1)
        ax_comp.set_xlabel(
            f"share (node time at t_merge = {basis['t_merge_s']:g} s, t_split = {basis['t_split_s']:g} s)"
        )
        ax_comp.legend(loc="lower right", ncols=2)
        ax_comp.set_title("B. Merge / split shares\n(error bar: 95 % CI)", loc="left")
        fig.suptitle("Figure 3. Cost landscape and composition")
        return _save(fig, path)


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=DPI)
    return path


def make_figures(views: list[DatasetView], fig_dir: Path) -> list[Path]:
    """Figures 1-3 as PNG in `fig_dir`; `views[0]` is this run, the others earlier runs for comparison."""
    fig_dir.mkdir(parents=True, exist_ok=True)
    return [
        figure1(views, fig_dir / "figure1_sample_size_validation.png"),
        figure2(views, fig_dir / "figure2_distributions.png"),
        figure3(views, fig_dir / "figure3_cost.png"),
    ]
