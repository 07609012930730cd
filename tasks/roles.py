"""Role sources: which segment of an operation is the neuron's side (base) and which the partner.

CAVE's ``before_root_ids`` are in ascending id order, so the roles come from the operation itself; the CAVE
lookup is `proofpilot.datastack.roles.CaveRoles`, handed in by the code that holds the connection."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from proofpilot.datastack.records import Operation, OperationRoles


class RoleSource(Protocol):
    """Roles of operations, looked up in one batch."""

    def roles(self, operations: Sequence[Operation]) -> dict[int, OperationRoles]:
        """{operation id: roles} for the operations that have them (a failed lookup is left out)."""
