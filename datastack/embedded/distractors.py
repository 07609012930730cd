"""The embedded datastack's distractor of each merge, from its generator's geometry (ground truth).

Not a CAVE API and not what the pilot uses (that is `tasks.distractors.SegmentationDistractors`, reading the
served segmentation): kept for tests and benches that compare the cutout's pick with the generator's own
neighbour of the merge.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from proofpilot.datastack.embedded.geometry import op_fragments
from proofpilot.datastack.embedded.profiles import get_profile
from proofpilot.datastack.records import Operation


@dataclass(frozen=True)
class EmbeddedDistractors:
    """The embedded datastack's distractor of each merge (geometry.op_fragments' ``distractor`` role)."""

    profile_name: str

    def __post_init__(self) -> None:
        get_profile(self.profile_name)  # ConfigError for an unknown profile

    def distractor_root(self, operation: Operation, partner_root_id: int | None = None) -> int | None:
        return op_fragments(self.profile_name, operation.operation_id).get("distractor")

    def prefetch(self, operations: Iterable[Operation]) -> None:
        """Nothing to fetch ahead: the answer is computed from the operation id."""
