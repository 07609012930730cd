"""summary.md sections for the seed's own numbers: the reconciliation table (edits/reconcile.py) and the
measured coverage of the Table 1 intervals (edits/calibration.py, read from the bench's saved record)."""

from __future__ import annotations


def _fmt(value: float | None, units: str) -> str:
    if value is None:
        return "–"
    if units.startswith("operations"):
        return f"{value:,.0f}"
    if units.startswith("USD"):
        return f"${value:,.0f}"
    return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"


def reconciliation_md(s: dict) -> list[str]:
    rows = s.get("reconciliation") or []
    if not rows:
        return []
    lines = [
        "## The seed's numbers reconciled",
        "",
        "Each number the seed states; what its own inputs give (edits/reconcile.py, formula shown); what "
        "this run's data gives (– : not measured by this run, e.g. the other dataset); why they differ.",
        "",
        "| seed statement | seed | recomputed | formula | here | units | why |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [r["statement"], _fmt(r["seed_value"], r["units"]), _fmt(r["recomputed"], r["units"]),
                 r["formula"], _fmt(r["here"], r["units"]), r["units"], r["why"]]  # fmt: skip
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return [*lines, ""]


METHODS_LEGEND = (
    "Methods: bootstrap = the intervals this summary reports (bootstrap-t for means and totals); "
    "percentile = the plain percentile bootstrap (baseline); tail = the semi-parametric Pareto-tail mean "
    "with a semi-parametric bootstrap-t (edits/tail.py; a sample of 100 from a heavy-tailed table mostly "
    "misses its top 1 %, which the empirical bootstrap cannot put back); model = the hierarchical model's "
    "posterior predictive interval (edits/hierarchical.py).",
)


def calibration_md(s: dict) -> list[str]:
    cal = s.get("calibration")
    if not cal:
        return []
    lines = ["## Measured coverage of the 95 % intervals", ""]
    if not cal.get("cells"):
        return [*lines, f"- {cal.get('note', 'no coverage record for this datastack')}.", ""]
    lines += [
        f"Coverage of the population value on the embedded table like this dataset, from {cal['source']} "
        f"({cal['date']}; `{cal['command']}`); target {cal['target']:.2f}.",
        "",
        "| n | statistic | method | covered / seeds | coverage |",
        "|---|---|---|---|---|",
    ]
    for c in sorted(cal["cells"], key=lambda c: (c["n"], c["statistic"], c["method"])):
        mark = "" if c["meets_target"] else " (below target)"
        lines.append(
            f"| {c['n']} | {c['statistic']} | {c['method']} | {c['covered']} / {c['seeds']} | "
            f"{c['coverage']:.3f}{mark} |"
        )
    return [*lines, "", *METHODS_LEGEND, ""]


def _est(value: float | None, ci: list | None, digits: int) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}" + (f" [{ci[0]:,.{digits}f}, {ci[1]:,.{digits}f}]" if ci else "")


def model_md(s: dict) -> list[str]:
    fits = s.get("model") or []
    if not fits:
        return []
    samples = {r["label"]: r for r in s["samples"]}
    lines = [
        "## Hierarchical model beside the bootstrap",
        "",
        f"Posterior predictive of the whole table: {fits[0]['method']} (edits/hierarchical.py). "
        "Which is better calibrated: see the measured coverage below.",
        "",
        "| sample | statistic | bootstrap | model | model fit |",
        "|---|---|---|---|---|",
    ]
    for f in fits:
        r = samples.get(f["sample"], {})
        for key, digits in (("mean_edits", 2), ("merge_share", 3), ("projected_total", 0)):
            cells = [_est(r.get(key), r.get(f"{key}_ci"), digits), _est(f[key], f[f"{key}_ci"], digits)]
            lines.append(f"| {f['sample']} | {key} | {cells[0]} | {cells[1]} | "
                         f"{f['fit_seconds']:.1f} s, {f['divergences']} divergences |")  # fmt: skip
    return [*lines, ""]


def resamples_md(s: dict) -> list[str]:
    res = s.get("resamples")
    if not res:
        return []
    lines = [
        f"## Sample-size validation over {res['r']} independent resamples per size",
        "",
        "| n | statistic | mean over resamples | sd | min | max |",
        "|---|---|---|---|---|---|",
    ]
    for n, stats in res["spread"].items():
        for key, v in stats.items():
            sd = "–" if v["sd"] is None else f"{v['sd']:,.4g}"
            lines.append(f"| {n} | {key} | {v['mean']:,.4g} | {sd} | {v['min']:,.4g} | {v['max']:,.4g} |")
    lines += ["", "| sizes | statistic | mean difference [CI] | relative change | largest change |",
              "|---|---|---|---|---|"]  # fmt: skip
    for d in res["differences"]:
        ci = (
            ""
            if d["difference_ci"] is None
            else f" [{d['difference_ci'][0]:,.4g}, {d['difference_ci'][1]:,.4g}]"
        )
        rel = "–" if d["relative_change_pct"] is None else f"{d['relative_change_pct']:+.1f} %"
        big = "–" if d["largest_abs_change_pct"] is None else f"{d['largest_abs_change_pct']:.1f} %"
        lines.append(
            f"| {d['a']} → {d['b']} | {d['statistic']} | {d['difference']:,.4g}{ci} | {rel} | {big} |"
        )
    return [*lines, ""]
