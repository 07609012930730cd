"""summary.md: the edit-distribution report as Markdown, rendered from summary.json alone."""

from __future__ import annotations

from proofpilot.edits.markdown_seed import calibration_md, model_md, reconciliation_md, resamples_md
from proofpilot.edits.summary import PROJECTION_NOTE


def num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f} %"


def ci(pair: list | None, digits: int = 0, percent: bool = False) -> str:
    if pair is None:
        return "not estimable"
    fmt = (lambda v: f"{100 * v:.1f}") if percent else (lambda v: num(v, digits))
    return f"[{fmt(pair[0])} – {fmt(pair[1])}]"


def with_ci(row: dict, key: str, digits: int = 0, percent: bool = False) -> str:
    value = pct(row.get(key)) if percent else num(row.get(key), digits)
    return f"{value} {ci(row.get(f'{key}_ci'), digits, percent)}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def _header(s: dict) -> list[str]:
    pin, pop, smp = s["pin"], s["population"], s["sampling"]
    level = round(100 * smp["ci_level"])
    return [
        f"# Edit distributions: {s['datastack']}",
        "",
        f"- Data: table `{pop['table']}`, **N = {pop['n_neurons']:,}** proofread neurons; "
        "materialization version "
        f"{s['version']} ({pin.get('timestamp') or 'no timestamp'}); server {pin.get('server_address')}; "
        f"caveclient {pin.get('caveclient_version')}.",
        f"- Sampling: {smp['design']}; seed {smp['seed']}; {smp['n_bootstrap']:,} bootstrap resamples; "
        f"{level} % confidence intervals in brackets; {_resamples_line(s)}.",
        f"- Errors: {smp['errors']}.",
        f"- Calibration: {smp['calibration_note']}.",
        *[f"- **{r['label']}**: {r['small_sample_note']}." for r in s["samples"] if r.get("small_sample")],
        "",
    ]


def _table1(s: dict) -> list[str]:
    rows = []
    for r in s["samples"]:
        d = r["dedup"]
        unique = num(d["unique_ops"]) + " " if d["unique_ops"] is not None else "not estimable, bound "
        rows.append(
            [
                s["datastack"],
                f"{r['n']:,}" if r["label"] != "full" else f"{r['n']:,} (all)",
                f"{r['population']:,}",
                with_ci(r, "merge_share", percent=True),
                with_ci(r, "split_share", percent=True),
                with_ci(r, "projected_total"),
                unique + ci(d["unique_ops_ci"]),
                with_ci(r["distinct"], "ops") if r.get("distinct") else "not looked up",
            ]
        )
    lines = ["## Table 1 (the seed's shape, with confidence intervals)", ""]
    lines += _table(
        [
            "Dataset",
            "n",
            "Neurons",
            "Merge %",
            "Split %",
            "Total Edits Proj. (per-neuron sums)",
            "Unique operations proj. (deduplicated)",
            "Distinct operations proj. (1/m)",
        ],
        rows,
    )
    lines += ["", f"**Which total is which.** {PROJECTION_NOTE}", ""]
    return lines


def _errors(s: dict) -> list[str]:
    lines = ["## Neurons whose edit history could not be fetched", ""]
    for r in s["samples"]:
        reasons = ", ".join(f"{k} ({v})" for k, v in r["error_reasons"].items()) or "none"
        lines.append(
            f"- {r['label']}: {r['n_errors']} of {r['n']} sampled neurons are errors (excluded, never "
            f"counted as 0 edits); reasons: {reasons}. {r['n_zero_edits']} ok neurons have a genuinely "
            "empty log."
        )
    return [*lines, ""]


def _per_neuron(s: dict) -> list[str]:
    rows = []
    for r in s["samples"]:
        tops = " / ".join(pct(r.get(f"top_{k}pct_share")) for k in (1, 5, 10))
        rows.append(
            [
                r["label"],
                f"{r['n_ok']:,}",
                str(r["n_errors"]),
                with_ci(r, "mean_edits", 2),
                num(r["sd_edits"], 1),
                with_ci(r, "median_edits", 1),
                f"{r['min_edits']:,}–{r['max_edits']:,}",
                with_ci(r, "p95", 1),
                f"{r['tail_count']} neurons, {with_ci(r, 'tail_share', percent=True)}",
                with_ci(r, "gini", 3),
                tops,
            ]
        )
    lines = ["## Edits per neuron", ""]
    lines += _table(
        [
            "sample",
            "ok",
            "errors",
            "mean",
            "sd",
            "median",
            "min–max",
            "p95",
            "above p95 (share of edits)",
            "Gini",
            "top 1/5/10 % share",
        ],
        rows,
    )
    return [*lines, ""]


def _dedup(s: dict) -> list[str]:
    rows, notes = [], []
    for r in s["samples"]:
        d = r["dedup"]
        rows.append(
            [
                r["label"],
                f"{d['sample_edit_rows']:,}",
                f"{d['sample_unique_ops']:,}",
                "–" if d["sample_dedup_factor"] is None else f"{d['sample_dedup_factor']:.4f}",
                str(d["sharing_pairs_observed"]),
                with_ci(r, "projected_total"),
                (num(d["unique_ops"]) + " " if d["unique_ops"] is not None else "") + ci(d["unique_ops_ci"]),
                (f"{d['dedup_factor']:.4f} " if d["dedup_factor"] is not None else "")
                + ci(d["dedup_factor_ci"], 4),
            ]
        )
        notes.append(f"- {r['label']}: {d['note']} (method: {d['unique_ops_method']}).")
    lines = ["## Per-neuron sums vs distinct operations", ""]
    lines += _table(
        [
            "sample",
            "per-neuron sum (sample)",
            "distinct ops (sample)",
            "sample dedup factor",
            "sharing pairs seen",
            "projected per-neuron sum",
            "projected distinct ops",
            "dedup factor",
        ],
        rows,
    )
    return [*lines, "", *notes, ""]


def _validation(s: dict) -> list[str]:
    if not s["validation"]:
        return []
    by_label = {r["label"]: r for r in s["samples"]}
    rows = [
        [
            f"{v['a']} vs {v['b']}",
            with_ci(by_label[v["a"]], "mean_edits", 2),
            with_ci(by_label[v["b"]], "mean_edits", 2),
            f"{num(v['mean_edits_diff'], 2)} {ci(v['mean_edits_diff_ci'], 2)}",
            "–" if v["relative_change_pct"] is None else f"{v['relative_change_pct']:+.1f} %",
            "yes" if v["ci_overlap"] else "no",
            "yes" if v["independent_draws"] else "no",
        ]
        for v in s["validation"]
    ]
    lines = ["## Sample-size validation (the seed's Figure 1)", ""]
    lines += _table(
        ["samples", "mean a", "mean b", "difference b − a", "change", "CIs overlap", "independent draws"],
        rows,
    )
    return [*lines, ""]


def _cost(s: dict) -> list[str]:
    c = s["cost"]
    b = c["basis"]
    rows = []
    distinct = [c] if c.get("per_neuron_sums") else []  # a distinct-operation primary (the cost's basis)
    for row in [*distinct, *c["per_sample"], *([c["deduplicated"]] if c["deduplicated"] else [])]:
        rows.append(
            [
                row["sample"],
                row["counts_basis"],
                with_ci(row, "merges"),
                with_ci(row, "splits"),
                with_ci(row, "node_hours", 1),
                with_ci(row, "gpu_hours", 1),
                with_ci(row, "usd"),
            ]
        )
    lines = [
        "## Projected cost (the seed's framework)",
        "",
        f"Basis: t_merge = {b['t_merge_s']} s, t_split = {b['t_split_s']} s of a whole node per operation; "
        f"{b['gpus_per_node']} GPUs per node; ${b['usd_per_gpu_hour']} per GPU-hour. {b['formula']}. "
        f"Note: {b['note']}.",
        "",
    ]
    lines += _table(["sample", "counts", "merges", "splits", "node-hours", "GPU-hours", "US$"], rows)
    sens = [
        [
            f"{p['seconds_per_op']:.1f}",
            with_ci(p, "node_hours", 1),
            with_ci(p, "gpu_hours", 1),
            with_ci(p, "usd"),
        ]
        for p in c["sensitivity"]
    ]
    lines += ["", f"Sensitivity (sample {c['sample']}, one time for every operation, per-neuron sums):", ""]
    lines += _table(["s per operation", "node-hours", "GPU-hours", "US$"], sens)
    return [*lines, ""]


def _seed(s: dict) -> list[str]:
    if not s["seed_comparison"]:
        return []

    def mark(flag: bool | None) -> str:
        return "–" if flag is None else ("inside" if flag else "**outside**")

    rows = [
        [
            f"{c['species']} n={c['n']}" + (" (Table 1)" if c["in_seed_table1"] else ""),
            f"{c['seed_mean_edits']:.2f} ({mark(c['mean_edits_inside_ci'])})",
            f"{c['seed_merge_pct']:.1f} % ({mark(c['merge_pct_inside_ci'])})",
            f"{c['seed_projected_total']:,} ({mark(c['projected_total_inside_ci'])})",
        ]
        for c in s["seed_comparison"]
    ]
    lines = ["## The seed's published values against these CIs", ""]
    lines += _table(["seed sample", "mean edits", "merge %", "projected total"], rows)
    return [*lines, ""]


def _methods(s: dict) -> list[str]:
    m = s["sampling"]["ci_methods"]
    lines = ["## Methods", ""] + [f"- {k.replace('_', ' ')}: {v}." for k, v in m.items()]
    lines += ["- Units: " + "; ".join(f"{k}: {v}" for k, v in s["units"].items()) + "."]
    files = [f for f in s["files"] if f.endswith(".png")]
    if files:
        lines += ["", "## Figures", ""] + [f"![{f}]({f})" for f in files]
    return [*lines, ""]


def render(summary: dict) -> str:
    parts = (_header, _table1, _errors, _per_neuron, _dedup, _validation, resamples_md, _cost, _seed,
             model_md, reconciliation_md, calibration_md, _methods)  # fmt: skip
    return "\n".join(line for part in parts for line in part(summary))


def _resamples_line(s: dict) -> str:
    """R, the independent resamples per size behind Figure 1's spread (0: none drawn)."""
    res = s.get("resamples")
    r = res["r"] if res else s.get("config", {}).get("resamples", 0)
    return f"Figure 1 from R = {r} independent resamples per sample size" + ("" if r else " (none drawn)")
