"""The report's seed-reconciliation table: each number the seed states, recomputed from its own inputs, and
what the `edits` runs given to the report measure (edits/reconcile.py)."""

from __future__ import annotations

from collections.abc import Sequence

from proofpilot.edits.reconcile import combined
from proofpilot.report.format import esc, table

HEAD = ["seed statement", "seed", "recomputed (seed's inputs)", "formula", "here", "units", "why they differ"]
CAPTION = "The seed's numbers reconciled (here: the edits runs of this report; – where none measures it)"


def _fmt(value: float | None, units: str) -> str:
    if value is None:
        return "–"
    if units.startswith("operations") or units.startswith("USD"):
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def reconciliation_section(records: Sequence) -> str:
    if not records:
        return ""
    rows = [
        f"<td>{esc(r.statement)}</td><td>{_fmt(r.seed_value, r.units)}</td>"
        f"<td>{_fmt(r.recomputed, r.units)}</td><td>{esc(r.formula)}</td><td>{_fmt(r.here, r.units)}</td>"
        f"<td>{esc(r.units)}</td><td>{esc(r.why)}</td>"
        for r in combined(list(records))
    ]
    return "<h3>The seed's numbers reconciled</h3>" + table("seed-reconciliation", CAPTION, HEAD, rows)
