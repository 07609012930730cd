"""Formatting helpers of the report page: numbers with their CI and units, tables, inline images."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence

from proofpilot.edits.records import Estimate

DASH = "—"


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


# -- number formatting ---------------------------------------------------------------------------------------
def sig(v: float) -> str:
    """Three significant digits without exponents (thousands separated): 7.50, 0.00727, 1,411."""
    if v == 0 or not math.isfinite(v):
        return f"{v:g}"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{max(0, 2 - math.floor(math.log10(abs(v))))}f}"


def duration(v: float, scale: float | None = None) -> str:
    """Seconds in µs / ms / s, picked from `scale` (so a value and its CI share a unit)."""
    ref = abs(scale if scale is not None else v)
    if ref < 1e-3:
        return f"{sig(v * 1e6)} µs"
    if ref < 1:
        return f"{sig(v * 1e3)} ms"
    return f"{sig(v)} s"


def fmt(v: float | None, kind: str, scale: float | None = None) -> str:
    """`v` as a percentage (pct), count, compact count (compact: 1.65 M), US$ (usd), duration (dur), three
    significant digits (sig) or two decimals (else). `scale` picks the unit of dur / compact (a CI bound takes
    its point's unit)."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):  # not estimable / not priced
        return DASH
    if kind == "pct":
        return f"{100 * v:.1f}"
    if kind == "count":
        return f"{v:,.0f}"
    if kind == "compact":  # large counts: 1.65 M, 433 k
        ref = abs(scale if scale is not None else v)
        return f"{sig(v / 1e6)} M" if ref >= 1e6 else f"{sig(v / 1e3)} k" if ref >= 1e4 else f"{v:,.0f}"
    if kind == "usd":
        return f"${v:,.0f}"
    if kind == "dur":
        return duration(v, scale)
    return sig(v) if kind == "sig" else f"{v:.2f}"


def est_cell(est: Estimate | None, kind: str = "pct", unit: str = "") -> str:
    """A table cell: value (unit) and its CI in a smaller grey span; the CI method as a tooltip."""
    if est is None or est.value is None:
        return f'<td class="na">{DASH}</td>'
    unit_s = f" {unit}" if unit else ""
    v = est.value
    ci = (
        f'<span class="ci"> [{fmt(est.ci[0], kind, v)}, {fmt(est.ci[1], kind, v)}]</span>'
        if est.ci
        else '<span class="ci"> [no CI]</span>'
    )
    return f'<td title="{esc(est.method)}">{fmt(v, kind, v)}{unit_s}{ci}</td>'


def pair_cell(value: float | None, ci: Sequence[float] | None, kind: str, unit: str = "") -> str:
    return est_cell(None if value is None else Estimate(value, tuple(ci) if ci else None, ""), kind, unit)


def table(table_id: str, caption: str, head: Sequence[str], rows: Sequence[str], note: str = "") -> str:
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join(f"<tr>{r}</tr>" for r in rows) or f'<tr><td colspan="{len(head)}">no rows</td></tr>'
    return (
        f'<div class="table-wrap"><table id="{table_id}"><caption>{caption}</caption>'
        f"<thead><tr>{th}</tr></thead>"
        f"<tbody>{body}</tbody></table>" + (f'<p class="note">{note}</p>' if note else "") + "</div>"
    )


def image(png: bytes | None, alt: str, images: list[int]) -> str:
    if not png:
        return ""
    images.append(len(png))
    data = base64.b64encode(png).decode()
    return f'<figure><img src="data:image/png;base64,{data}" alt="{esc(alt)}"></figure>'


def gpu_text(n: int) -> str:
    """'1 GPU', '2 GPUs'."""
    return f"{n} GPU" if int(n) == 1 else f"{n} GPUs"
