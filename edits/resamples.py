"""Sample-size validation as the seed meant it: R independent samples per size (the seed's "10 random
resamples"), the spread of mean edits, projected total and tail share across them, and the n-to-n differences
with CIs.

Resample r of size n is a simple random sample of its own stream (seed, r, n) (edits.sampling), independent
of the main samples and of each other. Per size: the R values' mean, sd, min and max. Differences between
consecutive sizes: the mean of the R paired differences (resample r of each size; independent draws, so the
pairing only fixes an order) with a t interval on R − 1 degrees of freedom, and the relative change.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
from scipy.stats import t as student_t

from proofpilot.edits.sampling import Sample, draw_samples

DEFAULT_R = 10
STATISTICS = ("mean_edits", "projected_total", "tail_share")


def resample_sets(population: np.ndarray, sizes: tuple[int, ...], seed: int, r: int) -> list[list[Sample]]:
    """R lists of samples (one per size); stream r + 1 of `seed` (stream 0 is the main samples' seed)."""
    if not sizes:  # a census alone (--full): no sampling error to validate
        return []
    return [draw_samples(population, sizes, seed * 1_000_003 + k + 1) for k in range(r)]


def _point(edits: np.ndarray, population: int) -> dict[str, float]:
    p95 = np.percentile(edits, 95)
    total = edits.sum()
    return {
        "mean_edits": float(edits.mean()),
        "projected_total": float(edits.mean() * population),
        "tail_share": float(edits[edits > p95].sum() / total) if total else math.nan,
    }


def resample_validation(
    per_neuron: pd.DataFrame, sets: list[list[Sample]], population: int, level: float
) -> dict:
    """summary.json's `resamples`: values per resample and size, their spread, and consecutive differences."""
    ok = per_neuron[per_neuron["status"] == "ok"].drop_duplicates("root_id").set_index("root_id")["n_edits"]
    values: dict[int, list[dict]] = {}
    for samples in sets:
        for s in samples:
            edits = ok.reindex(s.root_ids).dropna().to_numpy(dtype=float)
            if len(edits) >= 2:
                values.setdefault(s.n, []).append(_point(edits, population))
    spread = {}
    for n, rows in values.items():
        spread[str(n)] = {
            key: {
                "values": [r[key] for r in rows],
                "mean": float(np.mean([r[key] for r in rows])),
                "sd": float(np.std([r[key] for r in rows], ddof=1)) if len(rows) > 1 else None,
                "min": float(np.min([r[key] for r in rows])),
                "max": float(np.max([r[key] for r in rows])),
            }
            for key in STATISTICS
        }
    diffs = []
    for a, b in itertools.pairwise(sorted(values)):
        pairs = min(len(values[a]), len(values[b]))
        for key in STATISTICS:
            d = np.array([values[b][i][key] - values[a][i][key] for i in range(pairs)])
            base = float(np.mean([r[key] for r in values[a]]))
            half = (
                float(student_t.ppf((1 + level) / 2, pairs - 1) * d.std(ddof=1) / math.sqrt(pairs))
                if pairs > 1
                else math.nan
            )
            diffs.append({
                "a": a, "b": b, "statistic": key, "resamples": pairs, "difference": float(d.mean()),
                "difference_ci": [float(d.mean() - half), float(d.mean() + half)] if pairs > 1 else None,
                "relative_change_pct": 100 * float(d.mean()) / base if base else None,
                "largest_abs_change_pct": 100 * float(np.abs(d).max()) / base if base else None,
            })  # fmt: skip
    return {"r": len(sets), "level": level, "spread": spread, "differences": diffs}
