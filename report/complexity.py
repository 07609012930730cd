"""Edit complexity against compute (the seed's next step "correlate edit complexity with computational
time"): per decision, the size of the edited neuron's history (`neuron_n_edits`, from the data) beside the
decision's wall seconds and tokens (eval rows), and the least-squares slope of seconds per decision on
log2(edits of the neuron) with a 95 % cluster-bootstrap CI (neurons resampled, their decisions kept together).

Whether heavy-tail neurons (eval's `heavy_tail` bin, above the sample's p95) cost more per decision: the ratio
of mean seconds per decision, heavy-tail over the rest, with the same bootstrap's CI.

Size measure: the neuron's edit count is what the run persists per decision; the per-operation geometry
features (cable near the interface, fragment sizes) are computed for the prompt but not saved in the run,
so they are not regressed here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from proofpilot.report.format import esc, table

N_BOOT = 1000
HEAD = ["response", "decisions", "neurons", "slope per doubling of the neuron's edits [95 % CI]",
        "heavy-tail / rest, mean per decision [95 % CI]"]  # fmt: skip


@dataclass(frozen=True)
class ComplexityFit:
    response: str  # column of the eval rows
    units: str
    decisions: int
    neurons: int
    slope: float
    slope_ci: tuple[float, float]
    heavy_ratio: float | None
    heavy_ratio_ci: tuple[float, float] | None


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    xc = x - x.mean()
    denom = (xc * xc).sum()
    return float((xc * (y - y.mean())).sum() / denom) if denom > 0 else float("nan")


def _ratio(y: np.ndarray, heavy: np.ndarray) -> float | None:
    if heavy.all() or not heavy.any():
        return None
    rest = y[~heavy].mean()
    return float(y[heavy].mean() / rest) if rest > 0 else None


def fit(rows: pd.DataFrame, response: str, units: str, seed: int = 0) -> ComplexityFit | None:
    """The slope and heavy-tail ratio of `response` per decision, with neuron-cluster bootstrap CIs."""
    need = {response, "neuron_n_edits", "neuron_root_id"}
    if not need <= set(rows.columns):
        return None
    d = rows.dropna(subset=list(need))
    d = d[d["neuron_n_edits"] > 0]
    if d["neuron_root_id"].nunique() < 3:
        return None
    x = np.log2(d["neuron_n_edits"].to_numpy(float))
    y = d[response].to_numpy(float)
    heavy = d["heavy_tail"].to_numpy(bool) if "heavy_tail" in d else np.zeros(len(d), bool)
    codes, uniq = pd.factorize(d["neuron_root_id"])
    members = [np.flatnonzero(codes == k) for k in range(len(uniq))]
    rng = np.random.default_rng(seed)
    slopes, ratios = [], []
    for _ in range(N_BOOT):
        idx = np.concatenate([members[k] for k in rng.integers(len(members), size=len(members))])
        slopes.append(_slope(x[idx], y[idx]))
        r = _ratio(y[idx], heavy[idx])
        if r is not None:
            ratios.append(r)
    ratio = _ratio(y, heavy)
    ratio_ci = tuple(np.quantile(ratios, [0.025, 0.975])) if ratio is not None and len(ratios) > 10 else None
    return ComplexityFit(
        response, units, len(d), len(uniq), _slope(x, y), tuple(np.nanquantile(slopes, [0.025, 0.975])),
        ratio, ratio_ci,
    )  # fmt: skip


RESPONSES = (("latency_s", "s per decision"), ("prompt_tokens", "prompt tokens"),
             ("completion_tokens", "completion tokens"))  # fmt: skip


def _ratio_cell(f: ComplexityFit) -> str:
    if f.heavy_ratio is None:
        return "<td>–</td>"
    ci = "" if f.heavy_ratio_ci is None else f" [{f.heavy_ratio_ci[0]:.2f}, {f.heavy_ratio_ci[1]:.2f}]"
    return f"<td>{f.heavy_ratio:.2f}{ci}</td>"


def complexity_section(rows: pd.DataFrame) -> str:
    fits = [f for col, units in RESPONSES if (f := fit(rows, col, units))]
    if not fits:
        return ""
    body = [
        f"<td>{esc(f.response)} ({esc(f.units)})</td><td>{f.decisions}</td><td>{f.neurons}</td>"
        f"<td>{f.slope:+.3g} [{f.slope_ci[0]:+.3g}, {f.slope_ci[1]:+.3g}]</td>" + _ratio_cell(f)
        for f in fits
    ]
    caption = (
        "Edit complexity vs compute: slope of each response on log2(the neuron's edits), "
        "neuron-cluster bootstrap 95 % CIs; heavy-tail neurons (above p95) over the rest"
    )
    return (
        '<section id="complexity"><h2>Edit complexity vs compute</h2>'
        + table("complexity-table", caption, HEAD, body)
        + "</section>"
    )
