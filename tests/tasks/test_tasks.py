"""Decision tasks from the operation bank of the embedded datastack, ingested over HTTP as for real CAVE."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter, defaultdict

import numpy as np
import pytest

from proofpilot.core.errors import ConfigError, DataError
from proofpilot.core.vocab import ROLE_LABEL
from proofpilot.datastack.client import CaveConnection, ClientSettings
from proofpilot.datastack.embedded import geometry
from proofpilot.datastack.embedded.distractors import EmbeddedDistractors
from proofpilot.datastack.embedded.ids import RootKind, root_id
from proofpilot.datastack.embedded.server import start_server
from proofpilot.datastack.ingest import IngestOptions, ingest
from proofpilot.datastack.records import Operation
from proofpilot.datastack.roles import CaveRoles
from proofpilot.datastack.skeletons import skeleton_layer_url
from proofpilot.tasks.build import TaskOptions, allocate, build_tasks, tasks_from_ingest
from proofpilot.tasks.features import MERGE_FEATURES, SPLIT_FEATURES
from proofpilot.tasks.prepare import SkeletonCache, add_features

FLY = "fafb_synthetic"
NEURONS = tuple(range(200, 224))  # twelve whole pairs: shared splits keep both owners


@pytest.fixture(scope="module")
def server():
    with start_server(FLY) as srv:
        yield srv


@pytest.fixture(scope="module")
def ingested(server):
    settings = ClientSettings(datastack=FLY, server_address=server.url, write_server_cache=False)
    roots = tuple(root_id(RootKind.NEURON, i) for i in NEURONS)
    return ingest(settings, IngestOptions(root_ids=roots, use_cache=False, progress=False))


@pytest.fixture(scope="module")
def distractors():
    return EmbeddedDistractors(FLY)


@pytest.fixture(scope="module")
def roles(server):
    settings = ClientSettings(datastack=FLY, server_address=server.url, write_server_cache=False)
    return CaveRoles(CaveConnection(settings).client.chunkedgraph)


@pytest.fixture(scope="module")
def all_tasks(ingested, distractors, roles):
    return tasks_from_ingest(ingested, distractors, TaskOptions(seed=0), roles=roles)


def test_every_operation_gives_its_two_tasks_with_labels_from_roles(ingested, all_tasks):
    per_neuron = ingested.per_neuron.set_index("root_id")
    by_op = defaultdict(dict)
    for task in all_tasks:
        assert task.label == ROLE_LABEL[task.role]
        assert task.task_id == f"{task.operation_id}:{task.role}"
        assert task.neuron_n_edits == per_neuron.loc[task.neuron_root_id, "n_edits"]
        by_op[task.operation_id][task.role] = task
    assert len({t.task_id for t in all_tasks}) == len(all_tasks)
    # every operation of the chosen neurons, once (a shared split too), but those the ingestion dropped
    assert ingested.dropped_operations  # these neurons' logs have undo/redo rows
    assert set(by_op) == set(ingested.membership["operation_id"]) - set(ingested.dropped_operations)
    for op, roles in by_op.items():
        truth = geometry.op_fragments(FLY, op)
        if "partner" in roles:
            assert set(roles) == {"partner", "distractor"}
            assert {t.base_root_id for t in roles.values()} == {truth["base"]}
            assert roles["partner"].candidate_root_id == truth["partner"]
            assert roles["distractor"].candidate_root_id == truth["distractor"]
        else:
            assert set(roles) == {"before_split", "clean"}
            assert roles["before_split"].base_root_id == truth["before_split"]
            assert roles["clean"].base_root_id == truth["clean"] == roles["clean"].neuron_root_id
            assert all(t.candidate_root_id is None for t in roles.values())


def test_a_shared_split_belongs_to_the_lower_neuron(ingested, all_tasks):
    bank = ingested.operations
    shared = bank[bank["n_neurons"] == 2]
    assert len(shared) > 0, "the chosen pairs share no split; pick other neurons"
    owner = {t.operation_id: t.neuron_root_id for t in all_tasks}
    for op, neurons in zip(shared["operation_id"], shared["neuron_root_ids"], strict=True):
        assert owner[op] == min(neurons)


def test_the_same_seed_gives_the_same_tasks_and_another_seed_other_ones(ingested, distractors, roles):
    def build(seed):
        return tasks_from_ingest(
            ingested, distractors, TaskOptions(seed=seed, max_ops_per_neuron=3), roles=roles
        )

    first, again, other = build(5), build(5), build(6)
    assert first == again
    assert {t.operation_id for t in first} != {t.operation_id for t in other}


def test_k_caps_each_neuron_and_keeps_both_types(ingested, all_tasks, distractors, roles):
    k = 3
    owned: dict[int, Counter] = defaultdict(Counter)  # op kinds each neuron owns (without a cap)
    for task in all_tasks:
        if task.role in ("partner", "before_split"):
            owned[task.neuron_root_id][task.op_kind] += 1
    capped = tasks_from_ingest(ingested, distractors, TaskOptions(seed=1, max_ops_per_neuron=k), roles=roles)
    picked: dict[int, Counter] = defaultdict(Counter)
    for task in capped:
        if task.role in ("partner", "before_split"):
            picked[task.neuron_root_id][task.op_kind] += 1
    checked_mixed = 0
    for neuron, kinds in owned.items():
        assert dict(picked[neuron]) == {t: n for t, n in allocate(dict(kinds), k).items() if n}
        assert sum(picked[neuron].values()) == min(k, sum(kinds.values()))
        if len(kinds) == 2 and sum(kinds.values()) > k:
            assert set(picked[neuron]) == {"merge", "split"}
            checked_mixed += 1
    assert checked_mixed > 0


@pytest.mark.parametrize(
    ("counts", "k", "expected"),
    [
        ({"merge": 7, "split": 3}, 5, {"merge": 4, "split": 1}),  # 3.5 / 1.5: the tie goes to "merge"
        (
            {"merge": 9, "split": 1},
            2,
            {"merge": 1, "split": 1},
        ),  # proportional gives 2 / 0; each type gets one
        ({"merge": 9, "split": 1}, 1, {"merge": 1, "split": 0}),
        ({"merge": 0, "split": 5}, 3, {"merge": 0, "split": 3}),
        ({"merge": 2, "split": 1}, 10, {"merge": 2, "split": 1}),
        ({"merge": 60, "split": 40}, 10, {"merge": 6, "split": 4}),
    ],
)
def test_allocate_is_proportional_and_keeps_every_type(counts, k, expected):
    assert allocate(counts, k) == expected


def test_a_neurons_sample_does_not_depend_on_the_other_chosen_neurons(ingested, distractors, roles):
    alone = root_id(RootKind.NEURON, NEURONS[2])
    others = (root_id(RootKind.NEURON, NEURONS[6]), root_id(RootKind.NEURON, NEURONS[8]))

    def ops_of(neurons):
        tasks = tasks_from_ingest(
            ingested,
            distractors,
            TaskOptions(seed=2, max_ops_per_neuron=2, neuron_root_ids=neurons),
            roles=roles,
        )
        return {t.operation_id for t in tasks if t.neuron_root_id == alone}

    assert ops_of((alone,)) == ops_of((*others, alone))


def test_operation_and_kind_filters(ingested, distractors, roles):
    merges = tasks_from_ingest(ingested, distractors, TaskOptions(op_kinds=("merge",)), roles=roles)
    assert merges and {t.op_kind for t in merges} == {"merge"}
    wanted = tuple(sorted({t.operation_id for t in merges})[:3])
    picked = tasks_from_ingest(ingested, distractors, TaskOptions(operation_ids=wanted), roles=roles)
    assert {t.operation_id for t in picked} == set(wanted) and len(picked) == 2 * len(wanted)


def test_an_operation_without_interface_point_gives_no_task(ingested, distractors, all_tasks, roles):
    bank = ingested.operations.copy()
    op = all_tasks[0].operation_id
    bank.loc[bank["operation_id"] == op, "interface_x_nm"] = math.nan
    dropped = ingested.dropped_operations
    tasks = build_tasks(
        bank, ingested.membership, ingested.per_neuron, distractors, roles=roles, excluded=dropped
    )
    assert op not in {t.operation_id for t in tasks}
    assert len(tasks) == len(all_tasks) - 2


def test_bad_input_gives_one_line_errors(ingested, distractors, roles):
    def one_line(err):
        assert "\n" not in str(err.value)

    with pytest.raises(DataError) as err:
        build_tasks(
            ingested.operations.iloc[:0], ingested.membership, ingested.per_neuron, distractors, roles=roles
        )
    one_line(err)
    with pytest.raises(DataError, match="operation 999999999 is not in the operation bank") as err:
        tasks_from_ingest(ingested, distractors, TaskOptions(operation_ids=(999_999_999,)), roles=roles)
    one_line(err)
    with pytest.raises(DataError, match="not in the ingested neurons"):
        tasks_from_ingest(ingested, distractors, TaskOptions(neuron_root_ids=(123,)), roles=roles)
    failed = ingested.per_neuron.copy()
    failed.loc[0, "status"] = "error"
    with pytest.raises(DataError, match="ingestion error"):
        build_tasks(
            ingested.operations,
            ingested.membership,
            failed,
            distractors,
            TaskOptions(neuron_root_ids=(int(failed.loc[0, "root_id"]),)),
            roles=roles,
        )
    with pytest.raises(DataError, match="different ingestions"):
        build_tasks(
            ingested.operations.iloc[1:],
            ingested.membership,
            ingested.per_neuron,
            distractors,
            roles=roles,
            excluded=ingested.dropped_operations,
        )
    with pytest.raises(DataError, match="lacks column"):
        build_tasks(
            ingested.operations.drop(columns=["interface_x_nm"]),
            ingested.membership,
            ingested.per_neuron,
            distractors,
            roles=roles,
        )
    with pytest.raises(ConfigError):
        TaskOptions(max_ops_per_neuron=0)
    with pytest.raises(ConfigError):
        TaskOptions(op_kinds=("merge", "typo"))
    with pytest.raises(ConfigError):
        EmbeddedDistractors("no_such_datastack")
    unknown_op = Operation(10**9, True, 0, (1, 2), (3,), (0.0, 0.0, 0.0), (4,))
    with pytest.raises(DataError, match="does not exist"):
        distractors.distractor_root(unknown_op)
    with pytest.raises(DataError, match="empty task list"):
        add_features([], SkeletonCache("precomputed://http://127.0.0.1:9/x"))


def test_features_come_from_skeletons_loaded_once_per_run(server, all_tasks):
    sample = [t for t in all_tasks if t.operation_id in {t.operation_id for t in all_tasks[:12]}]
    cache = SkeletonCache(skeleton_layer_url(FLY, server_url=server.url))
    with_features = add_features(sample, cache, batch_roots=4)
    distinct = {r for t in sample for r in (t.base_root_id, t.candidate_root_id) if r is not None}
    assert cache.loads == len(distinct)
    assert [dataclasses.replace(t, features={}) for t in with_features] == sample
    for task in with_features:
        assert list(task.features) == list(MERGE_FEATURES if task.op_kind == "merge" else SPLIT_FEATURES)
        if task.role == "partner":
            assert task.features["gap_nm"] < 10.0  # the partner was cut a few nm from the interface point
        if task.role == "before_split":
            assert task.features["dist_nm"] < 30.0 and task.features["side_branches"] >= 1
    add_features(sample, cache)
    assert cache.loads == len(distinct)  # everything came from the cache
    assert np.isfinite([t.features["cable_a_um"] for t in with_features if t.op_kind == "merge"]).all()
