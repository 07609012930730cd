"""Deterministic generator of the embedded datastack: per-neuron edit counts and change logs, from the profile
seed.

Nothing for the whole table is stored on disk. `Population` holds the per-neuron counts (a few arrays, drawn
in well under a second even for the 139,255-neuron fly table); a neuron's change log is generated on demand
from `(seed, neuron index)` and its pair's shared splits from `(seed, pair index)`, so the two logs that
contain a shared split agree on it. Identifiers follow `ids.py` exactly.

Calibration: counts are lognormal with a reshaped upper tail (and optionally a soft ceiling), rescaled so that
the population mean is the profile's target, then nudged by ±1 on seed-chosen neurons so that the total is
exactly round(N · target mean); merge counts are Binomial(n, p_i) with p_i ~ Beta around the target share,
nudged the same way to hit the pooled share exactly. Per-neuron counts include the splits a neuron shares with
its pair partner (they are in both logs, as in CAVE).

Undo/redo: about UNDO_SHARE of a neuron's own operations are later undone, half of those redone. No rows are
added for this: the undo is a later own row of the opposite kind (an undo of a merge is a split in the log,
`is_merge` false) and the redo a later row of the undone op's kind, so per-neuron row counts and merge shares
(what the seed counted and the profiles calibrate) are exactly those drawn above. The rows stay edits in the
per-neuron counts; the operation bank drops undo/redo rows and ops left undone (datastack/bank.py)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from proofpilot.datastack.embedded import ids
from proofpilot.datastack.embedded.ids import RootKind
from proofpilot.datastack.embedded.profiles import Profile, get_profile

# independent random streams below the profile seed
_STREAM_COUNTS, _STREAM_NEURON, _STREAM_PAIR, _STREAM_TABLE, _STREAM_UNDO = 1, 2, 3, 4, 6
UNDO_SHARE = 0.015  # share of own operations that are later undone (half of them redone)
_AFTER_BASE = ids.root_id(RootKind.AFTER, 0)
_PARTNER_BASE = ids.root_id(RootKind.PARTNER, 0)
_PARTNER_LOW_BASE = ids.root_id(RootKind.PARTNER_LOW, 0)
_FOREIGN_BASE = ids.root_id(RootKind.FOREIGN, 0)
_SHARED_BASE = ids.root_id(RootKind.SHARED_BEFORE, 0)


def iso_to_ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp() * 1000)


@dataclass(frozen=True)
class Population:
    """Per-neuron counts of one profile (index = neuron index = table order)."""

    profile: Profile
    n_edits: np.ndarray  # int64, includes shared splits
    n_merges: np.ndarray  # int64
    n_shared: np.ndarray  # int64, splits this neuron shares with its pair partner (in both logs)
    n_own: np.ndarray  # int64, n_edits - n_shared: operations only this neuron's log has

    @property
    def n_splits(self) -> np.ndarray:
        return self.n_edits - self.n_merges

    @property
    def root_ids(self) -> np.ndarray:
        return ids.root_id(RootKind.NEURON, 0) + np.arange(self.profile.n_neurons, dtype=np.int64)

    def frame(self) -> pd.DataFrame:
        """Ground truth per neuron: neuron_index, root_id, n_edits, n_merges, n_splits, n_shared."""
        return pd.DataFrame(
            {
                "neuron_index": np.arange(self.profile.n_neurons, dtype=np.int64),
                "root_id": self.root_ids,
                "n_edits": self.n_edits,
                "n_merges": self.n_merges,
                "n_splits": self.n_splits,
                "n_shared": self.n_shared,
            }
        )

    def total_operations(self) -> int:
        """Distinct operations (shared splits counted once)."""
        return int(self.n_edits.sum() - self.n_shared[0::2].sum())


def _nudge_to_total(
    values: np.ndarray,
    target: int,
    low: np.ndarray,
    high: np.ndarray,
    weights: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Add or remove one unit at a time on seed-chosen entries (prob. ∝ weights) until sum == target."""
    values = values.copy()
    while (diff := target - int(values.sum())) != 0:
        room = (values < high) if diff > 0 else (values > low)
        w = np.where(room, weights, 0.0)
        if w.sum() <= 0:
            raise ValueError("cannot reach the calibration target within the bounds")
        picks = rng.choice(len(values), size=min(abs(diff), int(room.sum())), replace=False, p=w / w.sum())
        values[picks] += 1 if diff > 0 else -1
    return values


def _draw_counts(profile: Profile, rng: np.random.Generator) -> np.ndarray:
    m = profile.counts
    x = np.exp(np.log(m.median) + m.sigma * rng.standard_normal(profile.n_neurons))
    if np.isfinite(m.tail_knee):
        knee = m.tail_knee
        x = np.where(x > knee, knee * (x / knee) ** m.tail_power, x)
    if np.isfinite(m.ceiling_knee):
        ceiling = m.ceiling_knee
        x = np.where(x > ceiling, ceiling * (x / ceiling) ** m.ceiling_power, x)
    if m.zero_share:
        x[rng.random(profile.n_neurons) < m.zero_share] = 0.0
    cap = min(m.max_edits, ids.OWN_OPS_CAP)

    def mean_at(f: float) -> float:
        return float(np.clip(np.rint(f * x), m.min_edits, cap).mean())

    lo, hi = 0.05, 20.0
    for _ in range(60):  # bisection on the scale factor
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if mean_at(mid) < m.target_mean else (lo, mid)
    counts = np.clip(np.rint(hi * x), m.min_edits, cap).astype(np.int64)
    target = round(m.target_mean * profile.n_neurons)
    nonzero = (counts > 0).astype(float)  # keep true zero-edit neurons at zero
    return _nudge_to_total(
        counts,
        target,
        np.maximum(m.min_edits, 1) * nonzero,
        np.full_like(counts, cap),
        counts.astype(float) * nonzero,
        rng,
    )


def _draw_merges(profile: Profile, n: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    mm = profile.merges
    share = rng.beta(
        mm.target_share * mm.concentration, (1 - mm.target_share) * mm.concentration, size=len(n)
    )
    merges = rng.binomial(n, share).astype(np.int64)
    target = round(mm.target_share * int(n.sum()))
    return _nudge_to_total(merges, target, np.zeros_like(n), n, n.astype(float) + 1e-9, rng)


def _draw_shared(profile: Profile, splits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n_pairs = profile.n_neurons // 2
    smaller = np.minimum(splits[0 : 2 * n_pairs : 2], splits[1 : 2 * n_pairs : 2])
    per_pair = np.minimum(rng.binomial(smaller, profile.shared_split_probability), ids.SHARED_OPS_CAP)
    shared = np.zeros(profile.n_neurons, dtype=np.int64)
    shared[0 : 2 * n_pairs : 2] = per_pair
    shared[1 : 2 * n_pairs : 2] = per_pair
    return shared


@functools.cache
def population(profile_name: str) -> Population:
    """The calibrated per-neuron counts of a profile (cached per process)."""
    profile = get_profile(profile_name)
    rng = np.random.default_rng([profile.seed, _STREAM_COUNTS])
    n = _draw_counts(profile, rng)
    merges = _draw_merges(profile, n, rng)
    shared = _draw_shared(profile, n - merges, rng)
    return Population(profile=profile, n_edits=n, n_merges=merges, n_shared=shared, n_own=n - shared)


def counts_frame(profile_name: str) -> pd.DataFrame:
    """Ground-truth per-neuron counts of a profile (see Population.frame)."""
    return population(profile_name).frame()


def total_operations(profile_name: str) -> int:
    """Distinct operations of a profile (shared splits counted once)."""
    return population(profile_name).total_operations()


@dataclass(frozen=True)
class NeuronLog:
    """One neuron's filtered change log in time order (arrays of equal length)."""

    neuron_index: int
    operation_id: np.ndarray  # int64
    timestamp_ms: np.ndarray  # int64, strictly increasing
    is_merge: np.ndarray  # bool
    is_shared: np.ndarray  # bool
    user: np.ndarray  # int64 index into the profile's user pool
    before_root: np.ndarray  # int64: previous state of the neuron (SHARED_BEFORE for a shared split)
    partner_root: np.ndarray  # int64: ids.partner_root(op) for merges, 0 otherwise
    after_root: np.ndarray  # int64: the neuron's root after the op (kept side of a split)
    id_order: np.ndarray  # argsort of operation_id
    undo_of: np.ndarray  # int64: the operation this row undoes, 0 if it is no undo
    redo_of: np.ndarray  # int64: the operation this row redoes, 0 if it is no redo

    def __len__(self) -> int:
        return len(self.operation_id)

    def rows_of(self, operation_ids: np.ndarray) -> np.ndarray:
        """Row of each operation id in this log; KeyError if one is not in it."""
        wanted = np.asarray(operation_ids, dtype=np.int64)
        sorted_ids = self.operation_id[self.id_order]
        pos = np.minimum(np.searchsorted(sorted_ids, wanted), max(len(self) - 1, 0))
        if len(self) == 0 or not np.array_equal(sorted_ids[pos], wanted):
            raise KeyError(f"operations not in neuron {self.neuron_index}'s log")
        return self.id_order[pos]

    def row_of(self, operation_id: int) -> int:
        return int(self.rows_of(np.array([operation_id]))[0])


def _strictly_increasing(sorted_ts: np.ndarray, step: int) -> np.ndarray:
    """Make sorted timestamps strictly increasing by at least `step` (parity kept for even steps)."""
    bump = step * np.arange(len(sorted_ts), dtype=np.int64)
    return np.maximum.accumulate(sorted_ts - bump) + bump


def _undo_marks(
    rng: np.random.Generator, op: np.ndarray, is_merge: np.ndarray, is_shared: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(undo_of, redo_of) per row: an own row undone by the next free own row of the opposite kind, and for
    half of them redone by the next free own row of its own kind after that."""
    undo_of = np.zeros(len(op), dtype=np.int64)
    redo_of = np.zeros(len(op), dtype=np.int64)
    free = ~is_shared
    for a in np.flatnonzero((rng.random(len(op)) < UNDO_SHARE) & free).tolist():
        if not free[a]:
            continue
        later = np.flatnonzero(free[a + 1 :] & (is_merge[a + 1 :] != is_merge[a]))
        if not len(later):
            continue
        u = a + 1 + int(later[0])
        free[a] = free[u] = False
        undo_of[u] = op[a]
        later = np.flatnonzero(free[u + 1 :] & (is_merge[u + 1 :] == is_merge[a]))
        if rng.random() < 0.5 and len(later):
            r = u + 1 + int(later[0])
            free[r] = False
            redo_of[r] = op[a]
    return undo_of, redo_of


class Generator:
    """Change logs, operation details and the proofread table of one profile, generated on demand."""

    def __init__(self, profile_name: str, log_cache_size: int = 4096):
        self.profile = get_profile(profile_name)
        self.population = population(profile_name)
        self.t0_ms = iso_to_ms(self.profile.edits_start)
        self.t1_ms = iso_to_ms(self.profile.materialization_timestamp) - 3_600_000
        self._neuron_log = functools.lru_cache(maxsize=log_cache_size)(self._build_log)

    # ---- identifiers ---------------------------------------------------------------------------------
    @property
    def n_neurons(self) -> int:
        return self.profile.n_neurons

    def neuron_of_root(self, root: int) -> int | None:
        """Neuron index of a proofread (NEURON-kind) root id, None otherwise."""
        try:
            kind, payload = ids.decode_root(root)
        except ValueError:
            return None
        return payload if kind is RootKind.NEURON and payload < self.n_neurons else None

    def operation_exists(self, operation_id: int) -> bool:
        if operation_id < 1:
            return False
        pair, slot = ids.split_op_id(operation_id)
        if 2 * pair >= self.n_neurons:
            return False
        pop = self.population
        if slot < ids.OWN_OPS_CAP:
            return slot < pop.n_own[2 * pair]
        if slot < 2 * ids.OWN_OPS_CAP:
            return 2 * pair + 1 < self.n_neurons and slot - ids.OWN_OPS_CAP < pop.n_own[2 * pair + 1]
        return slot - 2 * ids.OWN_OPS_CAP < pop.n_shared[2 * pair]

    # ---- change logs ---------------------------------------------------------------------------------
    def neuron_log(self, neuron_index: int) -> NeuronLog:
        if not 0 <= neuron_index < self.n_neurons:
            raise IndexError(neuron_index)
        return self._neuron_log(neuron_index)

    def _user_draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return (self.profile.n_users * rng.random(n) ** 2).astype(np.int64)  # a few users do most edits

    def _shared_ops(self, pair: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(operation ids, odd timestamps, users) of the splits pair `pair` shares."""
        s = int(self.population.n_shared[2 * pair])
        if s == 0:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty
        rng = np.random.default_rng([self.profile.seed, _STREAM_PAIR, pair])
        span = (self.t1_ms - self.t0_ms) // 2
        ts = np.sort(self.t0_ms + 2 * rng.integers(0, span, size=s)) | 1
        ts = _strictly_increasing(ts, 2)
        op = ids.op_id(pair, 2 * ids.OWN_OPS_CAP) + np.arange(s, dtype=np.int64)
        return op, ts, self._user_draw(rng, s)

    def _build_log(self, i: int) -> NeuronLog:
        pop = self.population
        pair, side = divmod(i, 2)
        own, merges = int(pop.n_own[i]), int(pop.n_merges[i])
        rng = np.random.default_rng([self.profile.seed, _STREAM_NEURON, i])
        span = (self.t1_ms - self.t0_ms) // 2
        own_ts = _strictly_increasing(np.sort(self.t0_ms + 2 * rng.integers(0, span, size=own)) & ~1, 2)
        own_merge = np.zeros(own, dtype=bool)
        own_merge[rng.permutation(own)[:merges]] = True
        own_op = ids.op_id(pair, side * ids.OWN_OPS_CAP) + np.arange(own, dtype=np.int64)
        own_user = self._user_draw(rng, own)
        sh_op, sh_ts, sh_user = self._shared_ops(pair)

        op = np.concatenate([own_op, sh_op])
        ts = np.concatenate([own_ts, sh_ts])
        order = np.argsort(ts, kind="stable")
        op, ts = op[order], ts[order]
        is_merge = np.concatenate([own_merge, np.zeros(len(sh_op), dtype=bool)])[order]
        is_shared = np.concatenate([np.zeros(own, dtype=bool), np.ones(len(sh_op), dtype=bool)])[order]
        user = np.concatenate([own_user, sh_user])[order]

        after = np.where(is_shared & (side == 1), _FOREIGN_BASE + op, _AFTER_BASE + op)
        if len(after):
            after[-1] = ids.root_id(RootKind.NEURON, i)
        previous = np.concatenate([[ids.root_id(RootKind.INITIAL, i)], after[:-1]]).astype(np.int64)
        before = np.where(is_shared, _SHARED_BASE + op, previous)
        partner = np.where(is_merge, np.where(ids.low_partner(op), _PARTNER_LOW_BASE, _PARTNER_BASE) + op, 0)
        undo_of, redo_of = _undo_marks(
            np.random.default_rng([self.profile.seed, _STREAM_UNDO, i]), op, is_merge, is_shared
        )
        return NeuronLog(
            i, op, ts, is_merge, is_shared, user, before, partner, after, np.argsort(op), undo_of, redo_of
        )

    def user_name(self, user: int) -> str:
        return f"proofreader_{user:04d}"

    def user_affiliation(self, user: int) -> str:
        aff = self.profile.user_affiliations
        return aff[user % len(aff)]

    def user_id(self, user: int) -> str:
        return str(1000 + user)

    def change_log_frame(self, neuron_index: int) -> pd.DataFrame:
        """The neuron's tabular change log as caveclient returns it, filtered=True (columns: docs/cave.md
        "Change-log columns")."""
        log = self.neuron_log(neuron_index)
        return pd.DataFrame(
            {
                "operation_id": log.operation_id,
                "timestamp": log.timestamp_ms,
                "user_id": [self.user_id(u) for u in log.user.tolist()],
                "before_root_ids": self.before_lists(log),
                "after_root_ids": [[a] for a in log.after_root.tolist()],
                "is_merge": log.is_merge,
                "user_name": [self.user_name(u) for u in log.user.tolist()],
                "user_affiliation": [self.user_affiliation(u) for u in log.user.tolist()],
            }
        )

    @staticmethod
    def before_lists(log: NeuronLog) -> list[list[int]]:
        """before_root_ids per row, ascending as in real CAVE (PyChunkedGraph writes them np.unique'd)."""
        return [
            sorted((b, p)) if p else [b]
            for b, p in zip(log.before_root.tolist(), log.partner_root.tolist(), strict=True)
        ]

    def split_roots(self, operation_id: int) -> tuple[int, int]:
        """Both new roots of a split: (kept side, other side); for a shared split (neuron 2k's, 2k+1's)."""
        _, slot = ids.split_op_id(operation_id)
        owners = ids.op_owner(operation_id)
        first = self.neuron_log(owners[0])
        kept = int(first.after_root[first.row_of(operation_id)])
        if slot < 2 * ids.OWN_OPS_CAP:
            return kept, ids.root_id(RootKind.FOREIGN, operation_id)
        second = self.neuron_log(owners[1])
        return kept, int(second.after_root[second.row_of(operation_id)])

    def latest_timestamp_ms(self, neuron_index: int) -> int:
        log = self.neuron_log(neuron_index)
        return int(log.timestamp_ms[-1]) if len(log) else self.t0_ms

    @staticmethod
    def ms_to_datetime(ms: int) -> datetime:
        return datetime.fromtimestamp(ms / 1000, UTC)


@functools.cache
def get_generator(profile_name: str) -> Generator:
    """The process-wide generator of a profile (its log cache is shared by every caller)."""
    return Generator(profile_name)
