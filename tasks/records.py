"""Typed records of the tasks stage: one decision task per (operation, role)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from proofpilot.core.vocab import ROLE_LABEL, ROLES_OF_OP, Label, OpKind, TaskRole

__all__ = ["ROLES_OF_OP", "ROLE_LABEL", "DecisionTask", "Label", "OpKind", "TaskRole"]


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
