"""Distractor sources: for a merge operation, a segment near its interface that is not part of the neuron.

Real CAVE would pick a nearby segment from the segmentation around the interface (ConnectomeBench takes the
roots of a 512-nm EM window at the edit's timestamp). The embedded datastack's own source
(`proofpilot.datastack.embedded.distractors`) is handed in by the code that starts its server.
"""

from __future__ import annotations

from typing import Protocol

from proofpilot.datastack.records import Operation


class DistractorSource(Protocol):
    """Picks, for a merge operation, a segment near its interface that is not part of the neuron."""

    def distractor_root(self, operation: Operation) -> int | None:
        """A root id near `operation.interface_nm` at the time of the operation, or None if there is none."""
