"""Identifier layout of the embedded datastack (shared by the generator, the geometry and the server).

Neurons are numbered 0..N-1 in table order. Neurons 2k and 2k+1 form pair k, which owns operation ids
``1 + k*OPS_PER_PAIR + j``: neuron 2k's own operations use j in [0, OWN_OPS_CAP), neuron 2k+1's use
j in [OWN_OPS_CAP, 2*OWN_OPS_CAP), and splits shared by the two neurons use
j in [2*OWN_OPS_CAP, OPS_PER_PAIR).

Root ids look like real minnie ids (18 digits, 864691…): ``ROOT_BASE + kind*KIND_STRIDE + payload``. Merge
partners are PARTNER or PARTNER_LOW (kind -1) by a hash of the operation id (`partner_kind`), so that in the
ascending ``before_root_ids`` of a merge the neuron's side is the first id for some merges and the second for
others, as with real CAVE where that order carries no role.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

OPS_PER_PAIR = 16384
OWN_OPS_CAP = 8000
SHARED_OPS_CAP = OPS_PER_PAIR - 2 * OWN_OPS_CAP  # 384

ROOT_BASE = 864691130000000000
KIND_STRIDE = 2_000_000_000


class RootKind(IntEnum):
    """What a root id stands for; the payload is a neuron index or an operation id."""

    NEURON = 0  # final proofread root of neuron `payload`
    AFTER = 1  # the neuron's root right after operation `payload` (kept side of a split)
    PARTNER = 2  # the fragment a merge `payload` joined onto the neuron
    FOREIGN = 3  # the branch split `payload` cut off (for a shared split: the other neuron's side)
    DISTRACTOR = 4  # a segment near operation `payload` that is not part of the neuron
    INITIAL = 5  # neuron `payload`'s root before its first operation
    SHARED_BEFORE = 6  # the single root a shared split `payload` cut in two
    PARTNER_LOW = -1  # a merge partner minted below ROOT_BASE, so that it sorts before the neuron's side


def op_id(pair: int, slot: int) -> int:
    if not 0 <= slot < OPS_PER_PAIR:
        raise ValueError(f"slot {slot} out of range")
    return 1 + pair * OPS_PER_PAIR + slot


def split_op_id(operation_id: int) -> tuple[int, int]:
    """operation id -> (pair, slot)."""
    pair, slot = divmod(operation_id - 1, OPS_PER_PAIR)
    return pair, slot


def op_owner(operation_id: int) -> tuple[int, ...]:
    """Neuron indices whose filtered change logs contain the operation."""
    pair, slot = split_op_id(operation_id)
    if slot < OWN_OPS_CAP:
        return (2 * pair,)
    if slot < 2 * OWN_OPS_CAP:
        return (2 * pair + 1,)
    return (2 * pair, 2 * pair + 1)


def root_id(kind: RootKind, payload: int) -> int:
    if not 0 <= payload < KIND_STRIDE:
        raise ValueError(f"payload {payload} out of range")
    return ROOT_BASE + int(kind) * KIND_STRIDE + payload


def decode_root(root: int) -> tuple[RootKind, int]:
    """root id -> (kind, payload); ValueError for ids outside the layout."""
    offset = int(root) - ROOT_BASE
    kind, payload = divmod(offset, KIND_STRIDE)
    if kind not in RootKind._value2member_map_:  # divmod floors: offsets in [-KIND_STRIDE, 0) are kind -1
        raise ValueError(f"{root} is not a root id of the embedded datastack")
    return RootKind(kind), payload


def low_partner(operation_ids):
    """Whether each merge's partner is minted as PARTNER_LOW (about a third of merges; numpy array or int)."""
    op = np.asarray(operation_ids, dtype=np.uint64)
    mixed = (op * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)  # Fibonacci hash, wraps mod 2**64
    return mixed % np.uint64(3) == 0


def partner_root(operation_id: int) -> int:
    """The root a merge `operation_id` joined onto the neuron."""
    kind = RootKind.PARTNER_LOW if bool(low_partner(operation_id)) else RootKind.PARTNER
    return root_id(kind, int(operation_id))
