"""Edit complexity against compute (the seed's next step "correlate edit complexity with computational
time"): per decision, the size of its edit (RUN_DIR/task_sizes.jsonl, measured on the skeletons the decision
looked at: tasks/size.py) beside the compute it took, and the least-squares slope of that compute on the
size with a 95 % cluster-bootstrap CI (neurons resampled, their decisions kept together).

Compute per decision:
- node-seconds: the decision's share of the run's measured busy time, attributed as cost.json attributes it
  (telemetry.attribution.decision_node_seconds: node-s per decision × w_i / mean(w), w = a·P + b·O under the
  token regression, P + O by token share), over the answered decisions cost.json counted;
- tokens: prompt + completion tokens over its LLM calls.

Size measures: cable within R of the interface (both fragments of a merge), skeleton (L2) nodes within R,
and, as before, log2 of the neuron's edit count (how long its history is).

Whether heavy-tail neurons (eval's `heavy_tail`, above the sample's p95 of edits) cost more: the ratio of
mean compute per decision, heavy-tail over the rest, with the same bootstrap's CI. An op's decisions per edit
do not depend on the neuron, so the ratio per decision is the ratio per edit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from proofpilot.orchestrator.task_sizes import SIZES_NAME, read_task_sizes
from proofpilot.report.format import esc, table
from proofpilot.tasks.size import TaskSize
from proofpilot.telemetry.attribution import Attribution, decision_node_seconds
from proofpilot.telemetry.cost import CostReport

N_BOOT = 1000
RESPONSES = (("node_s", "node-s per decision"), ("tokens", "tokens per decision, prompt + completion"))
MEASURES: tuple[tuple[str, str, Callable[[np.ndarray], np.ndarray] | None], ...] = (
    ("cable_near_um", "µm of cable within R of the interface", None),
    ("nodes_near", "skeleton (L2) nodes within R of the interface", None),
    ("neuron_n_edits", "log2 of the neuron's edits", np.log2),
)
HEAD = ["response [units]", "size measure [units]", "decisions", "neurons", "mean size [size units]",
        "intercept [response units]", "slope [response units per size unit, 95 % CI]",
        "heavy-tail / rest, mean response per decision [ratio, 95 % CI]"]  # fmt: skip


@dataclass(frozen=True)
class ComplexityFit:
    response: str  # column of the complexity frame
    units: str
    measure: str
    measure_units: str
    decisions: int
    neurons: int
    mean_size: float
    intercept: float
    slope: float
    slope_ci: tuple[float, float]
    heavy_ratio: float | None
    heavy_ratio_ci: tuple[float, float] | None


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(intercept, slope) of the least-squares line; NaN slope when x does not vary."""
    xc = x - x.mean()
    denom = (xc * xc).sum()
    slope = float((xc * (y - y.mean())).sum() / denom) if denom > 0 else float("nan")
    return float(y.mean() - slope * x.mean()), slope


def _ratio(y: np.ndarray, heavy: np.ndarray) -> float | None:
    if heavy.all() or not heavy.any():
        return None
    rest = y[~heavy].mean()
    return float(y[heavy].mean() / rest) if rest > 0 else None


def fit(
    frame: pd.DataFrame,
    response: str,
    units: str,
    measure: str = "cable_near_um",
    measure_units: str = "µm",
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    seed: int = 0,
) -> ComplexityFit | None:
    """The slope of `response` on `measure` (after `transform`) per decision and the heavy-tail ratio, with
    neuron-cluster bootstrap 95 % CIs; None with fewer than 3 neurons or without the columns."""
    need = {response, measure, "neuron_root_id"}
    if not need <= set(frame.columns):
        return None
    d = frame.dropna(subset=list(need))
    if transform is not None:
        d = d[d[measure] > 0]
    if d["neuron_root_id"].nunique() < 3:
        return None
    x = d[measure].to_numpy(float)
    x = transform(x) if transform is not None else x
    y = d[response].to_numpy(float)
    heavy = d["heavy_tail"].to_numpy(bool) if "heavy_tail" in d else np.zeros(len(d), bool)
    codes, uniq = pd.factorize(d["neuron_root_id"])
    members = [np.flatnonzero(codes == k) for k in range(len(uniq))]
    rng = np.random.default_rng(seed)
    slopes, ratios = [], []
    for _ in range(N_BOOT):
        idx = np.concatenate([members[k] for k in rng.integers(len(members), size=len(members))])
        slopes.append(_line(x[idx], y[idx])[1])
        r = _ratio(y[idx], heavy[idx])
        if r is not None:
            ratios.append(r)
    intercept, slope = _line(x, y)
    ratio = _ratio(y, heavy)
    ratio_ci = tuple(np.quantile(ratios, [0.025, 0.975])) if ratio is not None and len(ratios) > 10 else None
    return ComplexityFit(
        response, units, measure, measure_units, len(d), len(uniq), float(x.mean()), intercept, slope,
        tuple(np.nanquantile(slopes, [0.025, 0.975])), ratio, ratio_ci,
    )  # fmt: skip


def complexity_frame(
    rows: pd.DataFrame,
    sizes: dict[str, TaskSize],
    node_s_per_decision: float | None = None,
    attribution: Attribution | None = None,
) -> pd.DataFrame:
    """One row per answered decision of `rows` (eval rows of one run): its size measures (NaN without a size
    record), `tokens`, and `node_s` (its attributed share, when the run's cost is given)."""
    d = rows[rows["answers"] > 0].copy() if "answers" in rows else rows.copy()
    size_cols = [m for m, _, _ in MEASURES if m != "neuron_n_edits"]
    table_ = pd.DataFrame([s.to_dict() for s in sizes.values()], columns=["task_id", *size_cols])
    d = d.drop(columns=[c for c in size_cols if c in d]).merge(table_, on="task_id", how="left")
    d[size_cols] = d[size_cols].astype(float)
    prompt = d["prompt_tokens"].to_numpy(float)
    completion = d["completion_tokens"].to_numpy(float)
    d["tokens"] = prompt + completion
    if node_s_per_decision is not None and attribution is not None and len(d):
        d["node_s"] = decision_node_seconds(node_s_per_decision, attribution, prompt, completion)
    return d


def fits(frame: pd.DataFrame) -> list[ComplexityFit]:
    """Every (response, size measure) fit the frame allows, node-s first."""
    out = []
    for col, units in RESPONSES:
        for measure, measure_units, transform in MEASURES:
            if (f := fit(frame, col, units, measure, measure_units, transform)) is not None:
                out.append(f)
    return out


def _ratio_cell(f: ComplexityFit) -> str:
    if f.heavy_ratio is None:
        return "<td>–</td>"
    ci = "" if f.heavy_ratio_ci is None else f" [{f.heavy_ratio_ci[0]:.2f}, {f.heavy_ratio_ci[1]:.2f}]"
    return f"<td>{f.heavy_ratio:.2f}{ci}</td>"


def _heavy_line(found: list[ComplexityFit]) -> str:
    f = next((f for f in found if f.response == "node_s" and f.heavy_ratio is not None), None)
    if f is None:
        return "<p>Heavy-tail neurons: no decision of a neuron above the p95 of edits, or no cost.json.</p>"
    lo, hi = f.heavy_ratio_ci or (float("nan"), float("nan"))
    verdict = "more" if lo > 1 else "less" if hi < 1 else "neither more nor less (the CI holds 1)"
    return (
        f"<p>Heavy-tail neurons cost {verdict} per edit: {f.heavy_ratio:.2f}× the node-s per decision of the "
        f"other neurons [95 % CI {lo:.2f}, {hi:.2f}] (an op's decisions per edit do not depend on the "
        "neuron).</p>"
    )


def complexity_section(rows: pd.DataFrame, run_dir: Path, cost: CostReport | None) -> str:
    """The report's section for the run in `run_dir` (its rows of `rows`, its sizes and its cost.json)."""
    if "run_dir" in rows:
        rows = rows[rows["run_dir"] == str(run_dir)]
    if rows.empty:
        return ""
    sizes = read_task_sizes(run_dir)
    node_s = cost.throughput.node_s_per_decision if cost is not None else None
    frame = complexity_frame(rows, sizes, node_s, cost.attribution if cost is not None else None)
    found = fits(frame)
    if not found:
        return ""
    body = [
        f"<td>{esc(f.response)} [{esc(f.units)}]</td><td>{esc(f.measure)} [{esc(f.measure_units)}]</td>"
        f"<td>{f.decisions}</td><td>{f.neurons}</td><td>{f.mean_size:.3g}</td><td>{f.intercept:.3g}</td>"
        f"<td>{f.slope:+.3g} [{f.slope_ci[0]:+.3g}, {f.slope_ci[1]:+.3g}]</td>" + _ratio_cell(f)
        for f in found
    ]
    with_size = int(frame["cable_near_um"].notna().sum())
    caption = (
        "Edit complexity vs compute: least-squares slope of each response per decision on each size measure, "
        "neuron-cluster bootstrap 95 % CIs; node-s are each decision's share of the measured busy time "
        "(cost.json's attribution); heavy-tail neurons (above p95 of edits) over the rest"
    )
    coverage = (
        f"<p>{with_size} of {len(frame)} answered decisions have a size record ({SIZES_NAME}); "
        + ("no cost.json, so no node-s.</p>" if node_s is None else
           f"node-s per decision {node_s:.3g} measured, split by {esc(cost.attribution.method)}.</p>")  # type: ignore[union-attr]
    )  # fmt: skip
    return (
        '<section id="complexity"><h2>Edit complexity vs compute</h2>'
        + coverage
        + table("complexity-table", caption, HEAD, body)
        + _heavy_line(found)
        + "</section>"
    )
