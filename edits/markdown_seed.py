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
    return [*lines, ""]
