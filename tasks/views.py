"""Rendered views for a vision model: 2-D projections of the fragments around the interface point.

A view is a square PNG of `size_px` pixels showing the skeleton edges inside a cube around the interface
point (nm), drawn as lines (base / segment blue, candidate orange, as in ConnectomeBench), a black cross at
the point and a scale bar (a round length of about a quarter of the width, labelled in µm) in the lower left
corner. `VIEW_ORDER` lists the views in the order a request takes them: the xy, xz and yz projections of the
cube of half-size R (the features' radius), then the same three of a 3R cube for context.
`render_view_set(…, n)` draws the first n. matplotlib's Agg canvas is used directly (no pyplot state, no
display).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from proofpilot.core.errors import DataError

if TYPE_CHECKING:
    import navis

COLOURS = ("#1f77b4", "#ff7f0e")  # base or segment, candidate
PROJECTIONS = {"xy": (0, 1), "xz": (0, 2), "yz": (1, 2)}
CONTEXT_ZOOM = 3.0  # views 4-6 show a cube this many times larger
VIEW_ORDER: tuple[tuple[str, float], ...] = tuple(
    (name, zoom) for zoom in (1.0, CONTEXT_ZOOM) for name in PROJECTIONS
)
MAX_VIEWS = len(VIEW_ORDER)
MIN_SIZE_PX, MAX_SIZE_PX = 28, 2048


def view_names(n_views: int) -> tuple[str, ...]:
    """'xy', 'xz', 'yz', 'xy×3', … for the first n views."""
    return tuple(name if zoom == 1.0 else f"{name}×{zoom:g}" for name, zoom in VIEW_ORDER[:n_views])


def _segments(neuron: navis.TreeNeuron, center: np.ndarray, half: float) -> np.ndarray:
    """(k, 2, 3) edges of the skeleton whose two ends lie inside the cube."""
    nodes = neuron.nodes
    xyz = np.column_stack([nodes[c].to_numpy(dtype=np.float64) for c in ("x", "y", "z")])
    index = {int(n): i for i, n in enumerate(nodes["node_id"].to_numpy())}
    parent = np.array([index.get(int(p), -1) for p in nodes["parent_id"].to_numpy()], dtype=np.int64)
    inside = np.all(np.abs(xyz - center) <= half, axis=1)
    child = np.flatnonzero((parent >= 0) & inside)
    child = child[inside[parent[child]]]
    return np.stack([xyz[child], xyz[parent[child]]], axis=1)


def scale_bar_nm(width_nm: float) -> float:
    """A round length (1, 2 or 5 × 10^k nm) of at most a quarter of the view's width."""
    target = width_nm / 4
    power = 10.0 ** np.floor(np.log10(target))
    return float(max(m * power for m in (1, 2, 5) if m * power <= target))


def render_view_set(
    fragments: Sequence[navis.TreeNeuron], point_nm, radius_nm: float, n_views: int, size_px: int = 256
) -> tuple[bytes, ...]:
    """PNG bytes of the first `n_views` views of `VIEW_ORDER` (first fragment blue, second orange)."""
    # lazy: matplotlib takes seconds to import; only drawing needs it
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure

    if not fragments or len(fragments) > len(COLOURS):
        raise DataError(f"views need 1 or {len(COLOURS)} fragments, got {len(fragments)}")
    if not MIN_SIZE_PX <= size_px <= MAX_SIZE_PX:
        raise DataError(f"view size must be {MIN_SIZE_PX}–{MAX_SIZE_PX} px, got {size_px}")
    if not 1 <= n_views <= MAX_VIEWS:
        raise DataError(f"views per task must be 1–{MAX_VIEWS}, got {n_views}")
    center = np.asarray(point_nm, dtype=np.float64)
    if center.shape != (3,) or not np.isfinite(center).all() or not radius_nm > 0:
        raise DataError(
            f"views need a finite 3-D point and a positive radius, got {point_nm!r}, {radius_nm!r}"
        )
    dpi = 100
    fig = Figure(figsize=(size_px / dpi, size_px / dpi), dpi=dpi, facecolor="white")
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    segments: dict[float, list[np.ndarray]] = {}
    out = []
    for name, zoom in VIEW_ORDER[:n_views]:
        half = radius_nm * zoom
        if zoom not in segments:
            segments[zoom] = [_segments(f, center, half) for f in fragments]
        i, j = PROJECTIONS[name]
        ax.clear()
        ax.set_axis_off()
        for colour, seg in zip(COLOURS, segments[zoom], strict=False):
            if len(seg):
                ax.add_collection(LineCollection(seg[:, :, [i, j]], colors=colour, linewidths=1.5))
        ax.plot([center[i]], [center[j]], marker="+", color="black", markersize=8, markeredgewidth=1.2)
        bar = scale_bar_nm(2 * half)
        x0, y0 = center[i] - 0.9 * half, center[j] - 0.9 * half
        ax.plot([x0, x0 + bar], [y0, y0], color="black", linewidth=2)
        ax.text(x0, y0 + 0.04 * half, f"{bar / 1000:g} µm", fontsize=max(6, size_px // 40), va="bottom")
        ax.set_xlim(center[i] - half, center[i] + half)
        ax.set_ylim(center[j] - half, center[j] + half)
        ax.set_aspect("equal")
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi)
        out.append(buffer.getvalue())
    return tuple(out)


def render_views(
    fragments: Sequence[navis.TreeNeuron], point_nm, radius_nm: float, size_px: int = 256
) -> tuple[bytes, bytes, bytes]:
    """PNG bytes of the xy, xz and yz projections of `fragments` (first blue, second orange)."""
    xy, xz, yz = render_view_set(fragments, point_nm, radius_nm, 3, size_px)
    return xy, xz, yz
