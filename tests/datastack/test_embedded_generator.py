"""The embedded datastack's generator: determinism, calibration to the seed's statistics, log and
id consistency.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from proofpilot.core.errors import ConfigError
from proofpilot.datastack.embedded import geometry, ids
from proofpilot.datastack.embedded.encoding import TabularLogEncoder
from proofpilot.datastack.embedded.generator import Generator, get_generator, population
from proofpilot.datastack.embedded.ids import RootKind
from proofpilot.datastack.embedded.operation_details import operation_details
from proofpilot.datastack.embedded.profiles import PROFILES, get_profile
from proofpilot.datastack.embedded.proofread_table import proofread_table

MOUSE, FLY = "minnie65_synthetic", "fafb_synthetic"


def _top5_share(counts: np.ndarray) -> float:
    c = np.sort(counts)
    return c[-int(np.ceil(0.05 * len(c))) :].sum() / c.sum()


def test_unknown_profile_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown embedded profile"):
        get_profile("minnie65_public")


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_population_and_logs_are_deterministic(name):
    first, again = population(name), population.__wrapped__(name)  # cached vs freshly drawn
    for field in ("n_edits", "n_merges", "n_shared"):
        np.testing.assert_array_equal(getattr(first, field), getattr(again, field))
    a, b = Generator(name), Generator(name)
    for i in (0, 1, 17, a.n_neurons - 1):
        pd.testing.assert_frame_equal(a.change_log_frame(i), b.change_log_frame(i))


def test_mouse_population_matches_the_seed_statistics():
    pop = population(MOUSE)
    n = pop.n_edits
    assert len(n) == 2314
    assert abs(n.mean() / 421.75 - 1) < 0.005
    assert abs(pop.n_merges.sum() / n.sum() - 0.471) < 0.003
    assert 240 <= n.std(ddof=1) <= 310
    assert 320 <= np.median(n) <= 370
    assert 900 <= np.percentile(n, 95) <= 1030
    assert 0.10 <= _top5_share(n) <= 0.15
    assert n.max() <= ids.OWN_OPS_CAP


def test_fly_population_matches_the_seed_statistics():
    # targets: the seed's n=100 and n=500 fly samples pooled (1,784 + 9,512 edits over 600 neurons, 1,282 +
    # 7,028 merges; pooled sd 36.2), see profiles.py
    pop = population(FLY)
    n = pop.n_edits
    share = pop.n_merges.sum() / n.sum()
    assert len(n) == 139_255
    assert 17.84 < n.mean() < 19.02 and abs(n.mean() - 11_296 / 600) < 0.01
    assert 0.719 < share < 0.739 and abs(share - 8_310 / 11_296) < 0.001
    assert abs(n.std(ddof=1) - 36.2) <= 1.0
    assert np.median(n) == 8
    assert 58 <= np.percentile(n, 95) <= 64
    assert 0.36 <= _top5_share(n) <= 0.37
    assert 0.01 <= (n == 0).mean() <= 0.03
    assert 100 <= n.max() < 1000


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_counts_frame_agrees_with_the_logs(name):
    pop, gen = population(name), get_generator(name)
    frame = pop.frame()
    assert list(frame.columns) == ["neuron_index", "root_id", "n_edits", "n_merges", "n_splits", "n_shared"]
    sample = [*range(40), gen.n_neurons - 1]
    op_ids: set[int] = set()
    for i in sample:
        log = gen.change_log_frame(i)
        row = frame.iloc[i]
        assert len(log) == row.n_edits and log.is_merge.sum() == row.n_merges
        assert row.root_id == ids.root_id(RootKind.NEURON, i)
        op_ids.update(log.operation_id.tolist())
    block = frame.iloc[:40]
    assert len(op_ids) == block.n_edits.sum() + frame.iloc[-1].n_edits - block.n_shared.iloc[0::2].sum()
    assert pop.total_operations() == frame.n_edits.sum() - frame.n_shared.iloc[0::2].sum()


def test_shared_splits_are_in_both_logs_with_the_same_timestamp():
    gen, pop = get_generator(FLY), population(FLY)
    pair = int(np.flatnonzero(pop.n_shared[0::2] > 0)[0])
    a, b = gen.change_log_frame(2 * pair), gen.change_log_frame(2 * pair + 1)
    common = a.merge(b, on="operation_id", suffixes=("_a", "_b"))
    assert len(common) == pop.n_shared[2 * pair] > 0
    assert (common.timestamp_a == common.timestamp_b).all()
    assert not common.is_merge_a.any()
    assert all(ids.op_owner(op) == (2 * pair, 2 * pair + 1) for op in common.operation_id)
    assert (common.before_root_ids_a == common.before_root_ids_b).all()  # the one object that was cut in two
    assert all(x != y for x, y in zip(common.after_root_ids_a, common.after_root_ids_b, strict=True))


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_root_chain_follows_the_id_layout(name):
    gen = get_generator(name)
    for i in range(0, 30):
        log = gen.neuron_log(i)
        if len(log) == 0:
            continue
        assert np.all(np.diff(log.timestamp_ms) > 0)
        state = ids.root_id(RootKind.INITIAL, i)
        for row in range(len(log)):
            op = int(log.operation_id[row])
            assert i in ids.op_owner(op)
            before = [int(log.before_root[row])] + (
                [int(log.partner_root[row])] if log.partner_root[row] else []
            )
            if log.is_shared[row]:
                assert before == [ids.root_id(RootKind.SHARED_BEFORE, op)]
            elif log.is_merge[row]:
                assert before == [state, ids.partner_root(op)]
                assert ids.decode_root(before[1]) in ((RootKind.PARTNER, op), (RootKind.PARTNER_LOW, op))
            else:
                assert before == [state]
            state = int(log.after_root[row])
        assert state == ids.root_id(RootKind.NEURON, i)


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_tabular_json_equals_pandas_to_json(name):
    gen = get_generator(name)
    enc = TabularLogEncoder(gen)
    zero = (
        int(np.flatnonzero(population(name).n_edits == 0)[0]) if (population(name).n_edits == 0).any() else 0
    )
    for i in (0, 1, 2, 5, zero):
        assert enc.inner_json(i) == gen.change_log_frame(i).to_json()
    assert enc.inner_json(0, 3) == gen.change_log_frame(0).iloc[:3].to_json()


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_operation_details_centre_on_the_interface_point(name):
    gen = get_generator(name)
    res = np.asarray(gen.profile.segmentation_resolution_nm)
    log = gen.neuron_log(3)
    ops = log.operation_id[:60].tolist()
    details = operation_details(gen, [*ops, ids.op_id(10**6, 0)])  # an unknown id is left out, as CAVE does
    assert set(details) == {str(o) for o in ops}
    points = geometry.op_points_nm(name, 3, np.asarray(ops), log.is_merge[:60])
    for op, point, is_merge, after in zip(ops, points, log.is_merge, log.after_root, strict=False):
        d = details[str(op)]
        mid = (np.mean(d["source_coords"], axis=0) + np.mean(d["sink_coords"], axis=0)) / 2 * res
        np.testing.assert_allclose(mid, point, atol=0.01)
        assert ("added_edges" in d) == bool(is_merge) and ("removed_edges" in d) != bool(is_merge)
        assert d["roots"] == ([int(after)] if is_merge else [int(after), ids.root_id(RootKind.FOREIGN, op)])
        assert d["operation_status"] == 0 and isinstance(d["user"], str)
    assert json.loads(json.dumps(details)) == details


def test_shared_split_details_list_both_sides():
    gen, pop = get_generator(MOUSE), population(MOUSE)
    pair = int(np.flatnonzero(pop.n_shared[0::2] > 0)[0])
    op = ids.op_id(pair, 2 * ids.OWN_OPS_CAP)
    d = operation_details(gen, [op])[str(op)]
    side_a = gen.neuron_log(2 * pair).after_root[gen.neuron_log(2 * pair).row_of(op)]
    side_b = gen.neuron_log(2 * pair + 1).after_root[gen.neuron_log(2 * pair + 1).row_of(op)]
    assert d["roots"] == [int(side_a), int(side_b)]


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_proofread_table_columns(name):
    df = proofread_table(name)
    profile = get_profile(name)
    assert len(df) == profile.n_neurons and df.id.is_unique
    np.testing.assert_array_equal(df.pt_root_id.to_numpy(), population(name).root_ids)
    assert {"id", "created", "valid", "pt_supervoxel_id", "pt_root_id", "pt_position_x"} <= set(df.columns)
    if name == MOUSE:
        assert {"valid_id", "status_dendrite", "status_axon", "strategy_dendrite", "strategy_axon"} <= set(
            df.columns
        )
        assert set(df.strategy_axon) <= {
            "none",
            "axon_partially_extended",
            "axon_fully_extended",
            "axon_interareal",
        }
    else:
        assert "superceded_id" in df.columns and df.superceded_id.isna().all()
