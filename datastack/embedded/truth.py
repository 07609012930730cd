"""Per-neuron and membership frames straight from the embedded generator's ground truth (no HTTP).

The embedded datastack's generator holds the calibrated counts of every neuron; its change logs list each
neuron's own operations plus the splits it shares with its pair partner (neurons 2k and 2k+1), with operation
ids laid out by `proofpilot.datastack.embedded.ids`. These frames follow the same column contracts as an
ingestion (`proofpilot.datastack.records`), so the statistics can be checked against, and benchmarked on, the
whole table without a server. Which of a neuron's own operations are the merges does not matter to any
statistic here; the first n_merges own slots are marked as merges.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from proofpilot.datastack.embedded import ids
from proofpilot.datastack.embedded.generator import population
from proofpilot.datastack.records import MEMBERSHIP_COLUMNS, PER_NEURON_COLUMNS


def per_neuron_frame(profile: str) -> pd.DataFrame:
    """Every neuron of the profile as an ok row (PER_NEURON_COLUMNS)."""
    pop = population(profile)
    frame = pd.DataFrame(
        {
            "root_id": pop.root_ids,
            "status": "ok",
            "reason": "",
            "n_edits": pop.n_edits,
            "n_merges": pop.n_merges,
            "n_splits": pop.n_splits,
        }
    )
    return frame.astype(PER_NEURON_COLUMNS)


def _ranges(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(owner position, offset within owner) for counts[i] consecutive items per owner i."""
    owner = np.repeat(np.arange(len(counts)), counts)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return owner, np.arange(len(owner)) - starts


def membership_frame(profile: str, neuron_index: np.ndarray | None = None) -> pd.DataFrame:
    """(root_id, operation_id, is_merge) rows of the given neurons' logs (all neurons if None)."""
    pop = population(profile)
    idx = (
        np.arange(pop.profile.n_neurons) if neuron_index is None else np.asarray(neuron_index, dtype=np.int64)
    )
    pair, side = np.divmod(idx, 2)
    own = pop.n_own[idx]
    owner, slot = _ranges(own)
    own_ops = 1 + pair[owner] * ids.OPS_PER_PAIR + side[owner] * ids.OWN_OPS_CAP + slot
    own_merge = slot < pop.n_merges[idx][owner]
    shared = pop.n_shared[idx]
    s_owner, s_slot = _ranges(shared)
    shared_ops = 1 + pair[s_owner] * ids.OPS_PER_PAIR + 2 * ids.OWN_OPS_CAP + s_slot
    roots = pop.root_ids[idx]
    frame = pd.DataFrame(
        {
            "root_id": np.concatenate([roots[owner], roots[s_owner]]),
            "operation_id": np.concatenate([own_ops, shared_ops]),
            "is_merge": np.concatenate([own_merge, np.zeros(len(shared_ops), dtype=bool)]),
        }
    )
    return frame.astype(MEMBERSHIP_COLUMNS)


def unique_operations(profile: str) -> int:
    """Distinct operations in the whole table (the deduplicated total a census measures)."""
    return population(profile).total_operations()
