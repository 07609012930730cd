"""Geometry of any root id, current or expired, from the chunkedgraph's level-2 graph via pcg_skel.

A precomputed skeleton layer (skeletons.py) holds only the roots someone skeletonised; on real CAVE that
means no historical roots. pcg_skel builds a skeleton of any root id from what CAVE keeps forever (reference
cave-realdata.md 3.2–3.4): ``lvl2_graph`` (chunkedgraph), then ``rep_coord_nm`` of each L2 id (L2 cache), then
TEASAR locally. `PcgSkeletons` does that per root with the user's CAVEclient and hands out navis TreeNeurons
in nm, optionally cropped to a box around a point (a bounded ``lvl2_graph``, so a huge neuron is not read
whole). A root whose geometry cannot be had is left out of `get_many`, its reason in `failures`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from proofpilot.core.errors import DataError
from proofpilot.datastack.client import _run_with_deadline, describe_failure
from proofpilot.datastack.skeletons import to_tree_neuron

if TYPE_CHECKING:
    import navis

log = logging.getLogger(__name__)

PCG_INVALIDATION_NM = 7_500.0  # pcg_skel's TEASAR default, sized for real L2 fragments (~µm apart)
CROP_MARGIN_NM = 1_000.0  # a crop reaches this far past the feature radius (the skeleton's ends stay clear)


class EmptyCrop(DataError):
    """The bounded level-2 graph has no edge: the root only grazes the box (or misses it)."""


@dataclass(frozen=True)
class _Skeleton:
    """What `to_tree_neuron` reads: vertices (n, 3) nm, edges (m, 2) vertex indices, no radii."""

    vertices: np.ndarray
    edges: np.ndarray
    radius: None = None


class PcgSkeletons:
    """Skeletons of root ids built by pcg_skel from the L2 graph and L2 cache of `client`'s datastack.

    `invalidation_d_nm` is TEASAR's invalidation distance (twigs shorter than it are dropped; keep it near
    the spacing of the datastack's L2 nodes). `deadline_s` bounds each root's build (all its HTTP calls and
    the local skeletonisation). Kept skeletons are cached for the object's life."""

    def __init__(
        self,
        client,
        *,
        invalidation_d_nm: float = PCG_INVALIDATION_NM,
        deadline_s: float = 120.0,
    ) -> None:
        self.client = client
        self.invalidation_d_nm = float(invalidation_d_nm)
        self.deadline_s = float(deadline_s)
        self.failures: dict[int, str] = {}  # root id -> one-line reason its geometry could not be had
        self.build_s: dict[int, float] = {}  # root id -> seconds its (uncropped) build took
        self._items: dict[int, navis.TreeNeuron] = {}

    def get_many(self, root_ids: Iterable[int]) -> dict[int, navis.TreeNeuron]:
        """{root id: TreeNeuron in nm} for the roots whose skeleton could be built; the rest in `failures`."""
        out = {}
        for root in dict.fromkeys(int(r) for r in root_ids):
            if root not in self._items and root not in self.failures:
                started = time.perf_counter()
                try:
                    self._items[root] = self._build(root, None)
                except DataError as exc:
                    self.failures[root] = str(exc)
                    log.warning("no geometry for root %d: %s", root, exc)
                    continue
                self.build_s[root] = time.perf_counter() - started
            if root in self._items:
                out[root] = self._items[root]
        return out

    def around(self, root_id: int, center_nm: Sequence[float], half_size_nm: float) -> navis.TreeNeuron:
        """The skeleton of the part of `root_id` within a cube of half side `half_size_nm` around
        `center_nm` (L2 nodes whose chunk meets the box, as the bounded ``lvl2_graph`` returns them);
        DataError if it cannot be built."""
        center = np.asarray(center_nm, dtype=np.float64).reshape(3)
        return self._build(int(root_id), (center - half_size_nm, center + half_size_nm))

    def _build(self, root: int, box_nm: tuple[np.ndarray, np.ndarray] | None) -> navis.TreeNeuron:
        try:
            skeleton = _run_with_deadline(
                lambda: self._pcg_skeleton(root, box_nm), self.deadline_s, f"skeleton of root {root}"
            )
        except DataError:
            raise
        except Exception as exc:  # HTTP errors, pcg_skel/meshparty failures on odd graphs
            raise DataError(f"skeleton of root {root} via pcg_skel failed: {describe_failure(exc)}") from None
        return to_tree_neuron(skeleton, root)

    def _pcg_skeleton(self, root: int, box_nm: tuple[np.ndarray, np.ndarray] | None) -> _Skeleton:
        # lazy: pcg_skel imports meshparty, trimesh and scikit-learn (seconds)
        import pcg_skel

        level2_graph = None
        if box_nm is not None:
            resolution = np.asarray(self.client.chunkedgraph.base_resolution, dtype=np.float64)
            bounds = np.stack([np.floor(box_nm[0] / resolution), np.ceil(box_nm[1] / resolution)], axis=1)
            level2_graph = self.client.chunkedgraph.level2_chunk_graph(root, bounds=bounds.astype(np.int64))
            if len(level2_graph) == 0:
                raise EmptyCrop(f"root {root} has no level-2 edges within the box")
        with np.errstate(invalid="ignore"):  # meshparty multiplies NaN distances of unreachable nodes
            sk = pcg_skel.pcg_skeleton(
                root,
                self.client,
                invalidation_d=self.invalidation_d_nm,
                level2_graph=None if level2_graph is None else np.asarray(level2_graph, dtype=np.int64),
                require_complete=True,
            )
        return _Skeleton(np.asarray(sk.vertices, dtype=np.float64), np.asarray(sk.edges, dtype=np.int64))


class CroppedPcg:
    """A skeleton source of the parts of roots within one box: `PcgSkeletons.around` for every root asked,
    around one point (a task's interface). A root that only grazes the box (no level-2 edge inside) is
    given whole, as a skeleton layer would give it. Roots whose geometry cannot be built are absent from
    `get_many`, their reason in `failures`; built skeletons are kept for the object's life."""

    def __init__(self, pcg: PcgSkeletons, center_nm: Sequence[float], half_size_nm: float) -> None:
        self.pcg = pcg
        self.center_nm = tuple(float(c) for c in center_nm)
        self.half_size_nm = float(half_size_nm)
        self.failures: dict[int, str] = {}
        self._items: dict[int, navis.TreeNeuron] = {}

    def get_many(self, root_ids: Iterable[int]) -> dict[int, navis.TreeNeuron]:
        out = {}
        for root in dict.fromkeys(int(r) for r in root_ids):
            if root not in self._items and root not in self.failures:
                try:
                    self._items[root] = self._crop_or_whole(root)
                except DataError as exc:
                    self.failures[root] = str(exc)
                    log.warning("no geometry for root %d near %s: %s", root, self.center_nm, exc)
                    continue
            if root in self._items:
                out[root] = self._items[root]
        return out

    def _crop_or_whole(self, root: int) -> navis.TreeNeuron:
        try:
            return self.pcg.around(root, self.center_nm, self.half_size_nm)
        except EmptyCrop:
            whole = self.pcg.get_many([root])
            if root not in whole:
                raise DataError(self.pcg.failures.get(root, f"no skeleton of root {root}")) from None
            return whole[root]
