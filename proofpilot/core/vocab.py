"""The shared vocabulary of every stage: operation kinds, decision roles and labels, agents.

>>> ROLES_OF_OP["merge"]
('partner', 'distractor')
>>> ROLE_LABEL["distractor"]
'no_merge'
"""

from __future__ import annotations

from typing import Literal

OpKind = Literal["merge", "split"]
OP_KINDS: tuple[OpKind, ...] = ("merge", "split")

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
OP_OF_ROLE: dict[str, str] = {role: op for op, roles in ROLES_OF_OP.items() for role in roles}

Agent = Literal["llm", "baseline"]
AGENTS: tuple[Agent, ...] = ("llm", "baseline")
