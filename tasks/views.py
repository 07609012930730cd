"""Rendered views for a vision model: three 2-D projections (xy, xz, yz) of the fragments around the point.

Each view is a square PNG of `size_px` pixels showing the cube of half-size R around the interface point (nm),
the skeleton edges inside it drawn as lines (base / segment blue, candidate orange, as in ConnectomeBench) and
a small black cross at the point. matplotlib's Agg canvas is used directly (no pyplot state, no display).
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
MIN_SIZE_PX, MAX_SIZE_PX = 28, 2048


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


def render_views(
    fragments: Sequence[navis.TreeNeuron], point_nm, radius_nm: float, size_px: int = 256
) -> tuple[bytes, bytes, bytes]:
    """PNG bytes of the xy, xz and yz projections of `fragments` (first blue, second orange)."""
    # lazy: matplotlib takes seconds to import; only drawing needs it
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    # lazy: matplotlib takes seconds to import; only drawing needs it
    from matplotlib.collections import LineCollection

    # lazy: matplotlib takes seconds to import; only drawing needs it
    from matplotlib.figure import Figure

    if not fragments or len(fragments) > len(COLOURS):
        raise DataError(f"views need 1 or {len(COLOURS)} fragments, got {len(fragments)}")
    if not MIN_SIZE_PX <= size_px <= MAX_SIZE_PX:
        raise DataError(f"view size must be {MIN_SIZE_PX}–{MAX_SIZE_PX} px, got {size_px}")
    center = np.asarray(point_nm, dtype=np.float64)
    if center.shape != (3,) or not np.isfinite(center).all() or not radius_nm > 0:
        raise DataError(
            f"views need a finite 3-D point and a positive radius, got {point_nm!r}, {radius_nm!r}"
        )
    segments = [_segments(f, center, radius_nm) for f in fragments]
    dpi = 100
    fig = Figure(figsize=(size_px / dpi, size_px / dpi), dpi=dpi, facecolor="white")
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    out = []
    for i, j in PROJECTIONS.values():
        ax.clear()
        ax.set_axis_off()
        for colour, seg in zip(COLOURS, segments, strict=False):
            if len(seg):
                ax.add_collection(LineCollection(seg[:, :, [i, j]], colors=colour, linewidths=1.5))
        ax.plot([center[i]], [center[j]], marker="+", color="black", markersize=8, markeredgewidth=1.2)
        ax.set_xlim(center[i] - radius_nm, center[i] + radius_nm)
        ax.set_ylim(center[j] - radius_nm, center[j] + radius_nm)
        ax.set_aspect("equal")
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi)
        out.append(buffer.getvalue())
    return out[0], out[1], out[2]
