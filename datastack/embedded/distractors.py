"""The embedded datastack's distractor of each merge, from its generator's geometry.

Ground truth of the generator, not a CAVE API: only the code that starts an embedded server hands it to the
task builder (a real datastack needs a distractor source from the segmentation; see docs/architecture.md
"Known exception").
"""

from __future__ import annotations

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

    def distractor_root(self, operation: Operation) -> int | None:
        return op_fragments(self.profile_name, operation.operation_id).get("distractor")
