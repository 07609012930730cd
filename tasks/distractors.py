"""Distractor sources: for a merge operation, a segment near its interface that is not part of the neuron.

`SegmentationDistractors` is the one source for real and embedded datastacks. It reads the segmentation as it
was just before the edit, as ConnectomeBench2 does (docs: reference cave-realdata.md 4.3, 4.7, 7):

1. a cutout of BOX_NM around the interface point with cloud-volume graphene, ``agglomerate=True`` at
   ``timestamp = (op_ts_ms - 1) // 1000`` (cloud-volume rounds timestamps up to whole seconds, so this integer
   is the last whole second at or before op time - 1 ms: the before roots are still there);
2. the true partner's voxels (``before_root_ids[1]``, the builder's partner) dilated by DILATE_VOXELS;
3. the roots inside that neighbourhood minus the before and after roots and 0, dropping dust (fewer than
   MIN_VOXELS voxels in the cutout);
4. the one with the largest contact (voxels in the neighbourhood; ties: the lower root id).

An operation whose cutout fails (outside the volume, server error, past the deadline) or shows no such segment
gives None, and its reason is counted in `skipped` (and kept per operation in `reasons`); the run goes on.

Each cutout is one or more round trips to the datastack, so a task builder that knows its merges calls
`prefetch(operations)` first: their cutouts are then downloaded `CutoutOptions.parallel` at a time, at most
`prefetch_ahead` ahead of the one being asked for (the memory they hold stays bounded), in that order.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from proofpilot.datastack.records import Operation

if TYPE_CHECKING:
    from caveclient import CAVEclient

log = logging.getLogger(__name__)

BOX_NM = 512.0
DILATE_VOXELS = 3
MIN_VOXELS = 20
DEADLINE_S = 60.0


class DistractorSource(Protocol):
    """Picks, for a merge operation, a segment near its interface that is not part of the neuron."""

    def distractor_root(self, operation: Operation, partner_root_id: int | None = None) -> int | None:
        """A root id near `operation.interface_nm` at the time of the operation, touching the true partner
        (`partner_root_id`, from the operation's roles), or None if there is none."""

    def prefetch(self, operations: Iterable[Operation]) -> None:
        """The operations `distractor_root` will be asked for, in that order (a source that reads nothing
        over the network may ignore it)."""


class CutoutError(Exception):
    """A cutout that could not be read; its message is the counted reason."""


@dataclass(frozen=True)
class CutoutOptions:
    box_nm: float = BOX_NM
    dilate_voxels: int = DILATE_VOXELS
    min_voxels: int = MIN_VOXELS
    deadline_s: float = DEADLINE_S
    parallel: int = 4  # cutouts downloading at once
    prefetch_ahead: int = 16  # cutouts started (or held) ahead of the one asked for


def before_timestamp_s(op_ts_ms: int) -> int:
    """The integer Unix second to hand cloud-volume for the state just before an edit at `op_ts_ms`."""
    return (int(op_ts_ms) - 1) // 1000


def pick_distractor(
    roots: np.ndarray, partner: int, exclude: set[int], options: CutoutOptions
) -> tuple[int | None, str]:
    """(root, "") of the segment with most contact with the partner's dilated mask, or (None, reason)."""
    from scipy import ndimage

    roots = np.asarray(roots, dtype=np.uint64)
    mask = roots == np.uint64(partner)
    if not mask.any():
        return None, "partner not in the cutout"
    near = ndimage.binary_dilation(mask, structure=np.ones((3, 3, 3), bool), iterations=options.dilate_voxels)
    ids, sizes = np.unique(roots, return_counts=True)
    size = dict(zip(ids.tolist(), sizes.tolist(), strict=True))
    touching, contact = np.unique(roots[near & ~mask], return_counts=True)
    candidates = [
        (int(c), int(r))
        for r, c in zip(touching.tolist(), contact.tolist(), strict=True)
        if r != 0 and r not in exclude and size[r] >= options.min_voxels
    ]
    if not candidates:
        return None, "no segment touches the partner"
    return min(candidates, key=lambda item: (-item[0], item[1]))[1], ""


class SegmentationDistractors:
    """The distractor of a merge from a watershed cutout at op time - 1 ms (module docstring)."""

    def __init__(
        self, segmentation_source: str, token: str | None, options: CutoutOptions | None = None
    ) -> None:
        self.source = segmentation_source
        self.options = options or CutoutOptions()
        self._token = token
        self._local = threading.local()  # one CloudVolume per download thread
        workers = max(1, self.options.parallel)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cutout")
        self._queue: deque[Operation] = deque()
        self._pending: dict[int, Future] = {}
        self.skipped: Counter[str] = Counter()
        self.reasons: dict[int, str] = {}

    @classmethod
    def from_client(cls, client: CAVEclient, options: CutoutOptions | None = None) -> SegmentationDistractors:
        """From a CAVEclient: its datastack's segmentation source and its token."""
        return cls(client.info.segmentation_source(), client.auth.token, options)

    def _volume(self):
        cv = getattr(self._local, "cv", None)
        if cv is None:
            from cloudvolume import CloudVolume

            secrets = {"token": self._token} if self._token else None
            cv = self._local.cv = CloudVolume(
                self.source,
                secrets=secrets,
                use_https=True,
                agglomerate=True,
                progress=False,
                fill_missing=True,
                bounded=True,
                mip=0,
                cache=False,
            )
        return cv

    def prefetch(self, operations: Iterable[Operation]) -> None:
        """The merges that `distractor_root` will be asked for, in that order: their cutouts start now,
        `prefetch_ahead` at a time (module docstring)."""
        self._queue.extend(op for op in operations if op.is_merge and len(op.before_root_ids) >= 2)
        self._top_up()

    def _top_up(self) -> None:
        while self._queue and len(self._pending) < self.options.prefetch_ahead:
            op = self._queue.popleft()
            if op.operation_id not in self._pending:
                self._pending[op.operation_id] = self._pool.submit(self._download, op)

    def cutout(self, operation: Operation) -> np.ndarray:
        """Root ids (uint64, x-y-z) of the box around the interface point at op time - 1 ms; CutoutError."""
        future = self._pending.pop(operation.operation_id, None)
        if future is None:
            future = self._pool.submit(self._download, operation)
        self._top_up()
        try:
            return future.result(timeout=self.options.deadline_s)
        except FutureTimeout:
            raise CutoutError("cutout timed out") from None

    def _download(self, operation: Operation) -> np.ndarray:
        from cloudvolume.exceptions import OutOfBoundsError

        try:
            cv = self._volume()
            res = np.asarray(cv.resolution, dtype=np.float64)
            size = np.maximum(np.rint(self.options.box_nm / res).astype(int), 1)
            img = cv.download_point(
                operation.interface_nm,
                size=tuple(int(s) for s in size),
                coord_resolution=[1, 1, 1],
                agglomerate=True,
                timestamp=before_timestamp_s(operation.timestamp_ms),
            )
        except OutOfBoundsError:
            raise CutoutError("cutout outside the volume") from None
        except Exception as exc:  # cloud-volume/requests raise many types; one counted reason each
            raise CutoutError(f"cutout failed: {type(exc).__name__}") from None
        return np.asarray(img)[..., 0] if np.asarray(img).ndim == 4 else np.asarray(img)

    def distractor_root(self, operation: Operation, partner_root_id: int | None = None) -> int | None:
        if not operation.is_merge or len(operation.before_root_ids) < 2:
            return None
        try:
            roots = self.cutout(operation)
        except CutoutError as exc:
            return self._skip(operation, str(exc))
        exclude = set(operation.before_root_ids) | set(operation.after_root_ids)
        partner = operation.before_root_ids[1] if partner_root_id is None else int(partner_root_id)
        root, why = pick_distractor(roots, partner, exclude, self.options)
        return root if root is not None else self._skip(operation, why)

    def _skip(self, operation: Operation, reason: str) -> None:
        self.skipped[reason] += 1
        self.reasons[operation.operation_id] = reason
        log.debug("operation %d: no distractor (%s)", operation.operation_id, reason)
        return None

    def close(self) -> None:
        self._queue.clear()
        self._pending.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)
