"""Attribute busy node-seconds to prompt and completion tokens: least squares over scrape intervals.

busy_seconds_i ≈ a·prompt_tokens_i + b·completion_tokens_i per scrape interval i (numpy lstsq, no intercept,
as in docs/cost.md "Token attribution"). The fit is refused, with the reason, when it cannot be trusted:
too few busy intervals, a token kind absent, the two token counts nearly collinear across intervals (condition
number of the column-normalised design matrix above COND_MAX), or a negative coefficient.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from proofpilot.telemetry.vllm_scrape import Interval

COND_MAX = 30.0  # condition number of the column-normalised design matrix above which the fit is not trusted
MIN_FIT_INTERVALS = 4


@dataclass(frozen=True)
class Attribution:
    """How busy time was attributed to op types, and why (cost.json's "attribution")."""

    method: str  # "regression" | "token_share"
    reason: str
    n_intervals: int
    s_per_prompt_token: float | None = None
    s_per_completion_token: float | None = None
    condition_number: float | None = None
    r_squared: float | None = None  # uncentred (regression through the origin)
    predicted_over_measured: float | None = None


def fit_token_costs(intervals: Sequence[Interval]) -> tuple[np.ndarray, Attribution]:
    """Fit busy node-seconds ≈ a·prompt + b·completion per interval; the Attribution says if it is usable."""
    rows = [iv for iv in intervals if iv.busy or iv.prompt_tokens or iv.generation_tokens]
    n = len(rows)
    x = np.array([[iv.prompt_tokens, iv.generation_tokens] for iv in rows], dtype=float).reshape(n, 2)
    y = np.array([iv.seconds if iv.busy else 0.0 for iv in rows], dtype=float)
    coef = np.full(2, np.nan)
    if n < MIN_FIT_INTERVALS:
        return coef, Attribution("token_share", f"too few busy intervals ({n}) for a 2-parameter fit", n)
    norms = np.linalg.norm(x, axis=0)
    if np.any(norms == 0):
        kind = "prompt" if norms[0] == 0 else "completion"
        return coef, Attribution("token_share", f"no {kind} tokens in the window: cannot separate a and b", n)
    cond = float(np.linalg.cond(x / norms))
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    ss_tot = float(np.sum(y**2))  # uncentred: the model has no intercept
    r2 = 1.0 - float(np.sum((y - x @ coef) ** 2)) / ss_tot if ss_tot > 0 else None
    fit = {"n_intervals": n, "condition_number": cond, "r_squared": r2}
    a, b = (float(coef[0]), float(coef[1]))
    if not math.isfinite(cond) or cond > COND_MAX:
        reason = (
            "prompt and completion tokens nearly collinear across intervals "
            f"(condition number {cond:.3g} > {COND_MAX:g})"
        )
        return coef, Attribution("token_share", reason, **fit)
    if a < 0 or b < 0:
        reason = f"fit gave a negative cost per token (a={a:.3g} s, b={b:.3g} s): not physical"
        return coef, Attribution("token_share", reason, **fit)
    reason = "least squares of busy node-seconds on (prompt, completion) tokens per scrape interval"
    return coef, Attribution("regression", reason, s_per_prompt_token=a, s_per_completion_token=b, **fit)


def decision_weights(tokens: np.ndarray, coef: np.ndarray | None) -> np.ndarray:
    """Each decision's weight in the attribution of busy time (tokens: (n, 2) prompt, completion summed over
    its calls): a·P + b·O under the regression (`coef` = (a, b)), P + O by token share (`coef` None), 1 each
    when no decision has a token."""
    tokens = np.asarray(tokens, dtype=float).reshape(-1, 2)
    w = tokens @ coef if coef is not None else tokens.sum(axis=1)
    return w if w.any() else np.ones(len(tokens))


def decision_node_seconds(
    node_s_per_decision: float, attribution: Attribution, prompt: np.ndarray, completion: np.ndarray
) -> np.ndarray:
    """Each decision's share of the measured busy time, as cost.json attributes it: node-s per decision ×
    w_i / mean(w) with `decision_weights` (the regression's a, b from `attribution`, else token share).
    The decisions are those cost.json counted (answered ones); their mean is the measured figure."""
    a, b = attribution.s_per_prompt_token, attribution.s_per_completion_token
    regression = attribution.method == "regression" and a is not None and b is not None
    coef = np.array([a, b], dtype=float) if regression else None
    w = decision_weights(np.column_stack([prompt, completion]), coef)
    return node_s_per_decision * w / float(w.mean())


def block_bootstrap(n: int, block: int, reps: int, rng: np.random.Generator) -> np.ndarray:
    """Index arrays (reps × n) of a moving-block bootstrap with blocks of `block` consecutive intervals."""
    block = max(1, min(block, n))
    n_blocks = math.ceil(n / block)
    starts = rng.integers(0, n - block + 1, size=(reps, n_blocks))
    idx = (starts[:, :, None] + np.arange(block)[None, None, :]).reshape(reps, -1)
    return idx[:, :n]
