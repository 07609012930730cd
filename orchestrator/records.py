"""Typed records of the orchestrator stage: decision tasks and the run configuration."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

OpKind = Literal["merge", "split"]
# merge op -> "partner" (label merge) and "distractor" (label no_merge);
# split op -> "before_split" (label split) and "clean" (label clean)
TaskRole = Literal["partner", "distractor", "before_split", "clean"]
Label = Literal["merge", "no_merge", "split", "clean"]

# the (positive, negative) task roles of each op type
ROLES_OF_OP: dict[str, tuple[str, str]] = {
    "merge": ("partner", "distractor"),
    "split": ("before_split", "clean"),
}
ROLE_LABEL: dict[str, str] = {
    "partner": "merge",
    "distractor": "no_merge",
    "before_split": "split",
    "clean": "clean",
}


@dataclass(frozen=True)
class DecisionTask:
    """One decision for the agent, built from one ground-truth operation."""

    task_id: str  # f"{operation_id}:{role}", unique within a run
    operation_id: int
    neuron_root_id: int
    neuron_n_edits: int  # the neuron's edit count (for accuracy vs heavy-tail analysis)
    op_kind: OpKind
    role: TaskRole
    label: Label
    base_root_id: int  # the segment being extended (merge) / inspected (split)
    candidate_root_id: int | None  # merge: the candidate fragment; split: None
    interface_nm: tuple[float, float, float]
    features: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)
