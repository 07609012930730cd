"""Figure 1's sample-size validation over R independent resamples (summary.json's `resamples`,
edits/resamples.py): the R values of each size as grey dots beside its CI bar, and under each panel the
n-to-n differences (mean of the R paired differences, t interval on R − 1 degrees of freedom)."""

from __future__ import annotations

import numpy as np


def draw_resamples(ax, x: int, resamples: dict | None, sample: dict, key: str, scale: float, labelled: bool):
    """The R independent resamples of this size as grey dots left of the CI bar; True once labelled."""
    spread = (resamples or {}).get("spread", {}).get(str(sample["n"]))
    if not spread or sample["label"] == "full":
        return labelled
    values = np.asarray(spread[key]["values"], dtype=float) * scale
    offsets = x - 0.2 + np.linspace(-0.05, 0.05, len(values))
    label = None if labelled else f"R = {resamples['r']} independent resamples per size"
    ax.plot(offsets, values, "o", color="grey", markersize=3, alpha=0.7, label=label)
    return True


def _number(value: float) -> str:
    return f"{value:+,.0f}" if abs(value) >= 1000 else f"{value:+.3g}"


def draw_differences(ax, resamples: dict | None, key: str, scale: float) -> str:
    """The x-label lines naming each consecutive size difference of `key` with its CI ("" without
    resamples); the panel's units (`scale` 100: percentage points)."""
    if not resamples:
        return ""
    level = round(100 * resamples.get("level", 0.95))
    lines = []
    for d in resamples.get("differences", []):
        if d["statistic"] != key:
            continue
        ci = d.get("difference_ci")
        ci_text = "" if ci is None else f" [{_number(ci[0] * scale)}, {_number(ci[1] * scale)}]"
        rel = d.get("relative_change_pct")
        rel_text = "" if rel is None else f", {rel:+.1f} %"
        lines.append(f"n = {d['b']} − {d['a']}: {_number(d['difference'] * scale)}{ci_text}{rel_text}")
    if not lines:
        return ""
    head = f"difference, mean of R = {resamples['r']} ({level} % CI):"
    return "".join(f"\n{line}" for line in (head, *lines))
