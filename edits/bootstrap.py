"""Vectorised bootstrap over neurons for the edit statistics.

A bootstrap resample draws n neurons with replacement from the n sampled ones. Neurons with the same (edits,
merges) pair are interchangeable for every statistic computed here, so a resample is fully described by how
many times each *distinct* pair was drawn: a multinomial vector over the K distinct pairs with probabilities
(group size / n). That is exactly the distribution of index resampling (`idx = rng.integers(n, size=(B, n))`),
aggregated, but it costs O(B·K) instead of O(B·n); K is a few hundred for fly-like counts even at n = 139,255.

Every statistic below is a function of a weight matrix W (B × K, the draw counts per distinct pair, groups
sorted by edits) and is therefore also the point estimate when W is the observed group sizes (one row). Per
resample the engine keeps the first and second moments (so CIs of *any* linear combination a·edits + b·merges,
e.g. node-seconds, can be formed afterwards) plus the order statistics (median, p95, tail share, Gini, top-k
shares).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

TOP_FRACTIONS = (0.01, 0.05, 0.10)
TAIL_QUANTILE = 0.95
# Resamples per chunk are chosen so that one chunk's B × K matrices stay around this many elements.
_CHUNK_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class GroupedSample:
    """A sample's per-neuron (edits, merges) collapsed to distinct pairs, sorted by edits then merges."""

    edits: np.ndarray  # (K,) float64
    merges: np.ndarray  # (K,) float64
    sizes: np.ndarray  # (K,) int64: neurons per distinct pair
    n: int

    @classmethod
    def from_counts(cls, edits: np.ndarray, merges: np.ndarray) -> GroupedSample:
        edits = np.asarray(edits, dtype=np.int64)
        merges = np.asarray(merges, dtype=np.int64)
        if edits.shape != merges.shape or edits.ndim != 1:
            raise ValueError("edits and merges must be 1-D arrays of equal length")
        if np.any(merges > edits) or np.any(merges < 0):
            raise ValueError("merges must lie in [0, edits] for every neuron")
        pairs, sizes = np.unique(np.stack([edits, merges], axis=1), axis=0, return_counts=True)
        return cls(pairs[:, 0].astype(float), pairs[:, 1].astype(float), sizes.astype(np.int64), len(edits))


@dataclass(frozen=True)
class Draws:
    """Per-resample statistics (each an array of length B), or the point estimate (length 1)."""

    s_e: np.ndarray  # Σ edits
    s_m: np.ndarray  # Σ merges
    s_ee: np.ndarray  # Σ edits²
    s_mm: np.ndarray  # Σ merges²
    s_em: np.ndarray  # Σ edits·merges
    median: np.ndarray
    p95: np.ndarray
    tail_share: np.ndarray  # share of edits in neurons with edits > p95 (strict, as the seed)
    tail_share_se: np.ndarray  # linearised SE (influence function), without the finite-population factor
    gini: np.ndarray
    top_shares: dict[float, np.ndarray]  # fraction of neurons -> share of edits in the top ceil(fraction·n)
    top_shares_se: dict[float, np.ndarray]
    n: int

    def linear_mean(self, a: float, b: float) -> np.ndarray:
        """Mean of a·edits + b·merges per neuron."""
        return (a * self.s_e + b * self.s_m) / self.n

    def linear_sd(self, a: float, b: float) -> np.ndarray:
        """Sample standard deviation (ddof=1) of a·edits + b·merges."""
        mean = self.linear_mean(a, b)
        sum_sq = a * a * self.s_ee + 2 * a * b * self.s_em + b * b * self.s_mm
        var = (sum_sq - self.n * mean * mean) / (self.n - 1) if self.n > 1 else np.zeros_like(mean)
        return np.sqrt(np.clip(var, 0.0, None))

    def merge_share(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.s_m / self.s_e

    def merge_share_se(self) -> np.ndarray:
        """Linearised SE of the ratio Σm/Σe (residuals d = m − R·e), without the finite-population factor."""
        ratio = self.merge_share()
        resid_sq = self.s_mm - 2 * ratio * self.s_em + ratio * ratio * self.s_ee
        var_d = np.clip(resid_sq, 0.0, None) / max(self.n - 1, 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.sqrt(var_d / self.n) / (self.s_e / self.n)


def _row_search(cum: np.ndarray, targets: np.ndarray, n: int) -> np.ndarray:
    """Per row r, how many entries of cum[r] are <= targets[r] (rows non-decreasing, within [0, n])."""
    rows, k = cum.shape
    offsets = np.arange(rows, dtype=np.float64) * (n + 1)
    flat = (cum + offsets[:, None]).ravel()
    return np.searchsorted(flat, targets + offsets, side="right") - np.arange(rows) * k


def _order_stat(values: np.ndarray, cum: np.ndarray, rank: np.ndarray, n: int) -> np.ndarray:
    """The rank-th smallest value (0-based) per row."""
    return values[_row_search(cum, rank.astype(np.float64), n)]


def _quantile(values: np.ndarray, cum: np.ndarray, q: float, n: int) -> np.ndarray:
    """Linear-interpolation quantile (numpy/pandas default) per row."""
    h = (n - 1) * q
    lo = np.floor(h)
    rows = cum.shape[0]
    low = _order_stat(values, cum, np.full(rows, lo), n)
    high = _order_stat(values, cum, np.full(rows, min(lo + 1, n - 1)), n)
    return low + (h - lo) * (high - low)


def _sum_smallest(values: np.ndarray, cum: np.ndarray, cum_we: np.ndarray, count: int, n: int) -> np.ndarray:
    """Per row, the sum of the `count` smallest values."""
    rows = cum.shape[0]
    if count <= 0:
        return np.zeros(rows)
    j = _row_search(cum, np.full(rows, float(count)), n)  # groups 0..j-1 lie fully inside
    r = np.arange(rows)
    full_cum = np.where(j > 0, cum[r, np.maximum(j - 1, 0)], 0.0)
    full_sum = np.where(j > 0, cum_we[r, np.maximum(j - 1, 0)], 0.0)
    partial = np.where(j < cum.shape[1], (count - full_cum) * values[np.minimum(j, cum.shape[1] - 1)], 0.0)
    return full_sum + partial


def _share_above_se(
    values: np.ndarray,
    w: np.ndarray,
    threshold: np.ndarray,
    q: float | np.ndarray,
    share: np.ndarray,
    s_e: np.ndarray,
    n: int,
) -> np.ndarray:
    """Linearised SE of T = Σ x·1(x > ξ) / Σ x with ξ the q-quantile, per row.

        Influence function: IF(x) = [x·1(x > ξ) + ξ·(1(x ≤ ξ) − q) − A − T·(x − μ)] / μ
    with A = mean of x·1(x > ξ);
        the density at ξ cancels, so no smoothing is needed.
    """
    mu = s_e / n
    above = values[None, :] > threshold[:, None]
    a = share * mu
    q = np.broadcast_to(np.asarray(q, dtype=float), mu.shape)
    influence = (
        np.where(above, values[None, :], 0.0)
        + threshold[:, None] * ((~above) - q[:, None])
        - a[:, None]
        - share[:, None] * (values[None, :] - mu[:, None])
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt((w * influence**2).sum(axis=1) / n / n) / mu


def statistics(grouped: GroupedSample, weights: np.ndarray) -> Draws:
    """All statistics for each row of `weights` (B × K draw counts over the groups of `grouped`)."""
    w = np.asarray(weights, dtype=np.float64)
    e, m, n = grouped.edits, grouped.merges, grouped.n
    s_e = w @ e
    s_m = w @ m
    cum = np.cumsum(w, axis=1)
    cum_we = np.cumsum(w * e, axis=1)
    p95 = _quantile(e, cum, TAIL_QUANTILE, n)
    # edits above the threshold: groups from the first with e > p95 onwards
    first_above = np.searchsorted(e, p95, side="right")
    r = np.arange(w.shape[0])
    below = np.where(first_above > 0, cum_we[r, np.maximum(first_above - 1, 0)], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        tail_share = (s_e - below) / s_e
        gini = (w * e * (2 * cum - w - n)).sum(axis=1) / (n * s_e)
        top, top_se = {}, {}
        for frac in TOP_FRACTIONS:
            rest = n - int(np.ceil(frac * n))  # neurons outside the top
            top[frac] = (s_e - _sum_smallest(e, cum, cum_we, rest, n)) / s_e
            boundary = _order_stat(e, cum, np.full(w.shape[0], float(max(rest - 1, 0))), n)
            top_se[frac] = _share_above_se(e, w, boundary, rest / n, top[frac], s_e, n)
    return Draws(
        s_e=s_e,
        s_m=s_m,
        s_ee=w @ (e * e),
        s_mm=w @ (m * m),
        s_em=w @ (e * m),
        median=_quantile(e, cum, 0.5, n),
        p95=p95,
        tail_share=tail_share,
        tail_share_se=_share_above_se(e, w, p95, TAIL_QUANTILE, tail_share, s_e, n),
        gini=gini,
        top_shares=top,
        top_shares_se=top_se,
        n=n,
    )


def point_statistics(grouped: GroupedSample) -> Draws:
    """The statistics of the sample itself."""
    return statistics(grouped, grouped.sizes[None, :])


def resample_weights(grouped: GroupedSample, n_boot: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Multinomial draw counts over the groups, in chunks of rows; n_boot rows in total."""
    k = len(grouped.sizes)
    chunk = max(1, min(n_boot, _CHUNK_ELEMENTS // max(k, 1)))
    pvals = grouped.sizes / grouped.n
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        yield rng.multinomial(grouped.n, pvals, size=b)
        done += b


def bootstrap(grouped: GroupedSample, n_boot: int, rng: np.random.Generator) -> Draws:
    """Statistics of `n_boot` resamples (with replacement, over neurons)."""
    parts = [statistics(grouped, w) for w in resample_weights(grouped, n_boot, rng)]
    return Draws(
        **{
            name: np.concatenate([getattr(p, name) for p in parts])
            for name in (
                "s_e",
                "s_m",
                "s_ee",
                "s_mm",
                "s_em",
                "median",
                "p95",
                "tail_share",
                "tail_share_se",
                "gini",
            )
        },
        top_shares={f: np.concatenate([p.top_shares[f] for p in parts]) for f in TOP_FRACTIONS},
        top_shares_se={f: np.concatenate([p.top_shares_se[f] for p in parts]) for f in TOP_FRACTIONS},
        n=grouped.n,
    )
