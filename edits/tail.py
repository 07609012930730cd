"""A tail-aware interval for the mean edits per neuron of a small sample: semi-parametric mean with a Pareto
tail, and a bootstrap-t interval whose resamples come from that semi-parametric fit.

Why: a heavy-tailed table (the fly-like one: skewness 6) is mostly missed by a sample of 100 in its top 1 %,
and the empirical bootstrap cannot put back what the sample lacks, so its upper ends are too low (bootstrap-t
covered the fly-like mean at n = 100 in 0.92 of 400 seeds, most misses with the truth above the interval).

Method (Peng 2001's semi-parametric mean, with a semi-parametric bootstrap-t in place of its normal
approximation), on y = edits + 1 (counts include zeros; the Pareto needs y > 0):

* threshold u = y₍ₙ₋ₖ₎ with k = max(5, round(√n)) (the usual √n rule; no tuning to any table);
* Hill index γ̂ = mean(ln y of the top k) − ln u, capped at GAMMA_CAP = 0.45 so the tail has a finite
  variance (a t-statistic needs one; γ ≥ 1 would have no mean at all);
* semi-parametric mean μ̂ = [Σ(body) + k · u/(1 − γ̂)]/n − 1: the body empirical, the top k replaced by the
  Pareto mean above u;
* B resamples of n from the semi-parametric distribution (each neuron from the tail with probability k/n,
  then u·U^(−γ̂), else from the body), t* = (mean* − μ̂)/se*, interval [μ̂ − t*₀.₉₇₅·se, μ̂ − t*₀.₀₂₅·se] with
  se the sample's SE times the finite-population factor √(1 − n/N).

On a light tail γ̂ is small and μ̂ is close to the sample mean; on a heavy one resamples that reach past the
sample's largest value lengthen the upper arm. Measured coverage is in edits/coverage.json (method "tail"):
over 400 seeds it held the mean as often as bootstrap-t or more in all four cells (fly-like n = 100: 378 vs
369; n = 500: 380 vs 378; mouse-like 379 vs 379 and 385 vs 384). It is not (yet) the CLI's interval: its
point estimate is the semi-parametric mean, not the sample mean Table 1 and the seed reconciliation use; it
needs the raw sample (SampleIntervals holds grouped bootstrap draws); and it is measured for edits only, not
for the merges, splits and node-seconds means the CLI's linear_mean also serves.
"""

from __future__ import annotations

import math

import numpy as np

from proofpilot.edits.intervals import CENSUS, fpc_factor
from proofpilot.edits.records import Estimate

TAIL_T = "semi-parametric (Pareto tail, Hill index) mean with semi-parametric bootstrap-t, FPC"
GAMMA_CAP = 0.45
MIN_TAIL = 5


def tail_size(n: int) -> int:
    """Neurons in the fitted tail: max(MIN_TAIL, round(√n))."""
    return max(MIN_TAIL, round(math.sqrt(n)))


def pareto_fit(values: np.ndarray) -> tuple[float, float, int, float]:
    """(u, γ̂, k, μ̂) of the semi-parametric fit of `values` (counts ≥ 0)."""
    y = np.sort(np.asarray(values, dtype=float)) + 1.0
    n = len(y)
    k = tail_size(n)
    u = y[n - k - 1]
    gamma = min(float(np.mean(np.log(y[n - k :])) - math.log(u)), GAMMA_CAP)
    mean = (y[: n - k].sum() + k * u / (1.0 - gamma)) / n - 1.0
    return float(u), gamma, k, float(mean)


def tail_mean(
    values: np.ndarray, population: int, level: float, rng: np.random.Generator, n_boot: int = 1000
) -> Estimate:
    """The semi-parametric mean of `values` with its semi-parametric bootstrap-t interval."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    fpc = fpc_factor(n, population)
    if fpc == 0.0:
        return Estimate(float(x.mean()), (float(x.mean()), float(x.mean())), CENSUS)
    if n <= tail_size(n) + 1 or x.std() == 0.0:
        return Estimate(float(x.mean()), None, TAIL_T + " (sample too small or without spread)")
    u, gamma, k, mean = pareto_fit(x)
    body = np.sort(x)[: n - k]
    from_tail = np.arange(n)[None, :] < rng.binomial(n, k / n, size=n_boot)[:, None]
    tail = u * rng.random((n_boot, n)) ** (-gamma) - 1.0
    draws = np.where(from_tail, tail, body[rng.integers(n - k, size=(n_boot, n))])
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (draws.mean(axis=1) - mean) / (draws.std(axis=1, ddof=1) / math.sqrt(n))
    t = t[np.isfinite(t)]
    if t.size == 0:
        return Estimate(mean, None, TAIL_T + " (no resample with spread)")
    t_lo, t_hi = np.quantile(t, [(1 - level) / 2, (1 + level) / 2])
    se = x.std(ddof=1) / math.sqrt(n) * fpc
    return Estimate(mean, (max(0.0, mean - t_hi * se), mean - t_lo * se), TAIL_T)
