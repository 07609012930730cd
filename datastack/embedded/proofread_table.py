"""The proofread-neuron table of each profile, as the materialization service returns it (one row per neuron).

Columns follow the real tables (docs/cave.md "Proofread tables"): minnie65's
`proofreading_status_and_strategy` (status/strategy columns, `valid_id`) and FlyWire's `proofread_neurons`
(`superceded_id`). Positions are in the table's annotation voxel resolution, split into `pt_position_x/_y/_z`
as the server sends them. Row i is neuron i; its `pt_root_id` is the neuron's final root id."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from proofpilot.datastack.embedded import ids
from proofpilot.datastack.embedded.generator import get_generator, iso_to_ms
from proofpilot.datastack.embedded.ids import RootKind
from proofpilot.datastack.embedded.operation_details import SUPERVOXEL_BASE

_STREAM_TABLE = 4
# minnie65 strategy frequencies (tutorial / v1507 note; docs/cave.md "Strategy frequencies")
_AXON_STRATEGIES = ("axon_partially_extended", "axon_fully_extended", "axon_interareal", "none")
_AXON_WEIGHTS = (1750, 267, 124, 41)
_DENDRITE_STRATEGIES = ("dendrite_clean", "dendrite_extended", "none")
_DENDRITE_WEIGHTS = (0.80, 0.17, 0.03)


def _weighted(
    rng: np.random.Generator, names: tuple[str, ...], weights: tuple[float, ...], n: int
) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    return np.asarray(names, dtype=object)[rng.choice(len(names), size=n, p=w / w.sum())]


@functools.cache
def proofread_table(profile_name: str) -> pd.DataFrame:
    """The whole proofread table of a profile (cached per process; ~10 MB for the fly table)."""
    gen = get_generator(profile_name)
    profile, pop = gen.profile, gen.population
    n = profile.n_neurons
    rng = np.random.default_rng([profile.seed, _STREAM_TABLE])
    created_ms = rng.integers(gen.t0_ms, iso_to_ms(profile.materialization_timestamp) - 86_400_000, size=n)
    size_vox = np.asarray(profile.volume_size_nm) / np.asarray(profile.annotation_resolution_nm)
    pos = (rng.uniform(0.05, 0.95, size=(n, 3)) * size_vox).astype(np.int64)
    root = pop.root_ids
    cols: dict[str, object] = {}
    if profile.proofread_table == "proofreading_status_and_strategy":
        cols["id"] = np.sort(rng.choice(np.arange(150_000, 650_000), size=n, replace=False)).astype(np.int64)
        cols["created"] = pd.to_datetime(created_ms, unit="ms", utc=True)
        cols["valid"] = np.ones(n, dtype=bool)
        # valid_id: the root when the status was assessed; for a few neurons an earlier state (edited since)
        stale = (rng.random(n) < 0.04) & (pop.n_edits > 1)
        valid_id = root.copy()
        for i in np.flatnonzero(stale):
            log = gen.neuron_log(int(i))
            valid_id[i] = log.after_root[len(log) - 2]
        cols["valid_id"] = valid_id
        axon = _weighted(rng, _AXON_STRATEGIES, _AXON_WEIGHTS, n)
        dendrite = _weighted(rng, _DENDRITE_STRATEGIES, _DENDRITE_WEIGHTS, n)
        cols["status_dendrite"] = dendrite != "none"
        cols["status_axon"] = axon != "none"
        cols["strategy_dendrite"] = dendrite.astype(str)
        cols["strategy_axon"] = axon.astype(str)
    else:
        cols["id"] = np.arange(1, n + 1, dtype=np.int64)
        cols["created"] = pd.to_datetime(created_ms, unit="ms", utc=True)
        cols["superceded_id"] = pd.array([None] * n, dtype="Int64")
        cols["valid"] = np.ones(n, dtype=bool)
    cols["pt_supervoxel_id"] = SUPERVOXEL_BASE - 8 * ids.KIND_STRIDE + 8 * np.arange(n, dtype=np.int64)
    cols["pt_root_id"] = root
    cols["pt_position_x"], cols["pt_position_y"], cols["pt_position_z"] = pos[:, 0], pos[:, 1], pos[:, 2]
    return pd.DataFrame(cols)


def root_of_supervoxel(profile_name: str, supervoxel: int) -> int | None:
    """Current root of a proofread table's bound supervoxel (None if it is not one)."""
    n = get_generator(profile_name).n_neurons
    offset = supervoxel - (SUPERVOXEL_BASE - 8 * ids.KIND_STRIDE)
    if offset < 0 or offset % 8 or offset // 8 >= n:
        return None
    return ids.root_id(RootKind.NEURON, offset // 8)
