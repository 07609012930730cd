"""Cluster bootstrap over neurons for the decision metrics (vectorized numpy).

A neuron's decisions are not independent (same morphology, same proofreader, an operation's positive and
control task), so the neuron is the resampling unit: each bootstrap replicate draws n neurons with
replacement and keeps *all* their rows. The draw is represented by a weight matrix W (B × n): W[b, i] is how
often neuron i was drawn in replicate b, i.e. one multinomial(n, 1/n) vector per replicate. Any sum over rows
of a replicate is then W @ (per-neuron sums), and any ratio metric (accuracy, precision, calls per edit, ...)
is a ratio of two such sums. Row-level resampling is the special case "every row its own cluster".
"""

from __future__ import annotations

import numpy as np

from proofpilot.edits.records import Estimate

CLUSTER_PERCENTILE = "cluster bootstrap over neurons (all rows of a drawn neuron kept), percentile interval"
RULE_OF_THREE = (
    "0 (or all) events: the percentile bootstrap degenerates to a point; one-sided exact binomial bound "
    "('rule of three') with each neuron counted as one trial (conservative)"
)
TOO_FEW_CLUSTERS = "fewer than 2 neurons: no interval"
BOTH_AT_BOUNDS = (
    "both sides at 0 % or 100 %: every bootstrap replicate gives the same difference, which bounds nothing; "
    "see each side's own interval"
)
MAX_CELLS = 4_000_000  # replicates × rows held at once by the weighted-quantile bootstrap (32 MB)


def resample_weights(n_clusters: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n_clusters) draw counts; each row sums to n_clusters (clusters resampled with replacement)."""
    if n_clusters < 1:
        return np.zeros((n_boot, 0))
    return rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), size=n_boot).astype(float)


def cluster_sums(cluster_index: np.ndarray, values: np.ndarray, n_clusters: int) -> np.ndarray:
    """Per-cluster sums of each column of `values` (rows × k) → (n_clusters × k)."""
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        values = values[:, None]
    return np.stack(
        [
            np.bincount(cluster_index, weights=values[:, j], minlength=n_clusters)
            for j in range(values.shape[1])
        ],
        axis=1,
    )


def _interval(samples: np.ndarray, level: float) -> tuple[float, float] | None:
    finite = samples[np.isfinite(samples)]
    if finite.size < 2:
        return None
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(finite, [alpha, 1.0 - alpha])
    return (float(lo), float(hi))


def ratio_estimate(
    num: np.ndarray, den: np.ndarray, weights: np.ndarray, level: float, proportion: bool = False
) -> Estimate:
    """num/den summed over clusters (point) and over each replicate's drawn clusters (interval).

    `num`, `den`: per-cluster sums (n,). `proportion`: num counts events among den trials; if every cluster
    has 0 events (or all events) the interval falls back to the exact binomial bound over clusters."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    total_den = float(den.sum())
    if total_den <= 0:
        return Estimate(None, None, "no rows")
    value = float(num.sum()) / total_den
    clusters = int((den > 0).sum())
    if clusters < 2:
        return Estimate(value, None, TOO_FEW_CLUSTERS)
    if proportion and (value == 0.0 or value == 1.0):
        edge = 1.0 - (1.0 - level) ** (1.0 / clusters)  # (1 - p)^clusters = 1 - level, solved for p
        return Estimate(value, (0.0, edge) if value == 0.0 else (1.0 - edge, 1.0), RULE_OF_THREE)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = (weights @ num) / (weights @ den)
    return Estimate(value, _interval(boot, level), CLUSTER_PERCENTILE)


def difference_estimate(
    a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], weights: np.ndarray, level: float
) -> Estimate:
    """(num_a/den_a) − (num_b/den_b) with both ratios from the *same* drawn neurons (a paired interval)."""
    (na, da), (nb, db) = a, b
    if da.sum() <= 0 or db.sum() <= 0:
        return Estimate(None, None, "no rows")
    pa, pb = float(na.sum() / da.sum()), float(nb.sum() / db.sum())
    value = pa - pb
    if int(((da > 0) | (db > 0)).sum()) < 2:
        return Estimate(value, None, TOO_FEW_CLUSTERS)
    if pa in (0.0, 1.0) and pb in (0.0, 1.0):
        return Estimate(value, None, BOTH_AT_BOUNDS)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = (weights @ na) / (weights @ da) - (weights @ nb) / (weights @ db)
    method = CLUSTER_PERCENTILE + " (paired: same draws for both)"
    if pa in (0.0, 1.0) or pb in (0.0, 1.0):
        method += "; one side is at 0 % or 100 % and adds no spread here (see its own interval)"
    return Estimate(value, _interval(boot, level), method)


def quantile_estimates(
    values: np.ndarray, cluster_index: np.ndarray, weights: np.ndarray, qs: tuple[float, ...], level: float
) -> list[Estimate]:
    """The q-quantiles of `values` (inverted CDF) and their cluster-bootstrap intervals.

    Each replicate weights a row by how often its neuron was drawn; a weighted quantile is read off the
    cumulative weights of the sorted values (one pass for all `qs`), in chunks of replicates to bound memory.
    """
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return [Estimate(None, None, "no rows") for _ in qs]
    points = [float(np.quantile(values, q, method="inverted_cdf")) for q in qs]
    if np.unique(cluster_index).size < 2:
        return [Estimate(p, None, TOO_FEW_CLUSTERS) for p in points]
    order = np.argsort(values, kind="stable")
    sorted_values, sorted_cluster = values[order], cluster_index[order]
    out = np.empty((len(qs), weights.shape[0]))
    chunk = max(1, MAX_CELLS // values.size)
    for start in range(0, weights.shape[0], chunk):
        cum = np.cumsum(weights[start : start + chunk][:, sorted_cluster], axis=1)
        total = cum[:, -1]
        for j, q in enumerate(qs):
            idx = np.minimum((cum < q * total[:, None]).sum(axis=1), values.size - 1)
            out[j, start : start + chunk] = np.where(total > 0, sorted_values[idx], np.nan)
    return [Estimate(p, _interval(out[j], level), CLUSTER_PERCENTILE) for j, p in enumerate(points)]


def quantile_estimate(
    values: np.ndarray, cluster_index: np.ndarray, weights: np.ndarray, q: float, level: float
) -> Estimate:
    """One quantile (see `quantile_estimates`)."""
    return quantile_estimates(values, cluster_index, weights, (q,), level)[0]
