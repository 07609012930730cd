"""Task features from pcg_skel geometry of historical roots: a root without geometry drops only its task."""

from __future__ import annotations

from collections import Counter

import caveclient
import numpy as np
import pytest

from proofpilot.core.errors import DataError
from proofpilot.core.vocab import ROLE_LABEL
from proofpilot.datastack.embedded import geometry, l2
from proofpilot.datastack.embedded.server import start_server
from proofpilot.datastack.geometry import PcgSkeletons
from proofpilot.datastack.skeletons import skeleton_layer_url
from proofpilot.tasks.features import MERGE_FEATURES
from proofpilot.tasks.prepare import SkeletonCache, add_features
from proofpilot.tasks.records import DecisionTask

MOUSE = "minnie65_synthetic"
MERGE_OP = 2
NO_SUCH_ROOT = 864691139999999999


@pytest.fixture(scope="module")
def server():
    with start_server(MOUSE) as srv:
        yield srv


def _merge_task(op: int, role: str, base: int, candidate: int) -> DecisionTask:
    point = geometry.op_points_nm(MOUSE, 0, np.array([op]), np.array([True]))[0]
    return DecisionTask(
        task_id=f"{op}:{role}",
        operation_id=op,
        neuron_root_id=geometry.op_fragments(MOUSE, op)["neuron"],
        neuron_n_edits=1,
        op_kind="merge",
        role=role,
        label=ROLE_LABEL[role],
        base_root_id=base,
        candidate_root_id=candidate,
        interface_nm=tuple(float(c) for c in point),
    )


def test_a_task_whose_root_has_no_geometry_is_dropped_and_counted(server):
    client = caveclient.CAVEclient(
        MOUSE, server_address=server.url, auth_token="test-token", write_server_cache=False
    )
    roots = geometry.op_fragments(MOUSE, MERGE_OP)
    tasks = [
        _merge_task(MERGE_OP, "partner", roots["base"], roots["partner"]),
        _merge_task(MERGE_OP, "distractor", roots["base"], NO_SUCH_ROOT),
        _merge_task(MERGE_OP + 1, "distractor", roots["partner"], roots["distractor"]),
    ]
    server.reset_counts()
    cache = SkeletonCache(PcgSkeletons(client, invalidation_d_nm=l2.L2_SPAN_NM))
    dropped: Counter[str] = Counter()
    done = add_features(tasks, cache, dropped=dropped)
    assert [t.task_id for t in done] == [tasks[0].task_id, tasks[2].task_id]
    for task in done:
        assert list(task.features) == list(MERGE_FEATURES)
    assert done[0].features["gap_nm"] < 10.0  # the partner was cut a few nm from the interface point
    assert sum(dropped.values()) == 1
    (reason,) = dropped
    assert "HTTP 400" in reason and "<id>" in reason
    assert NO_SUCH_ROOT in cache.failures and cache.loads == 3
    counts = server.request_counts
    assert counts["lvl2_graph"] == 4 and counts["l2cache_attributes"] == 3
    with pytest.raises(DataError, match="none of the 1 tasks"):
        add_features([tasks[1]], cache)


def test_a_root_missing_from_the_precomputed_layer_drops_only_its_task(server):
    roots = geometry.op_fragments(MOUSE, MERGE_OP)
    tasks = [
        _merge_task(MERGE_OP, "partner", roots["base"], roots["partner"]),
        _merge_task(MERGE_OP, "distractor", roots["base"], NO_SUCH_ROOT),
    ]
    cache = SkeletonCache(skeleton_layer_url(MOUSE, server_url=server.url))
    dropped: Counter[str] = Counter()
    done = add_features(tasks, cache, dropped=dropped)
    assert [t.task_id for t in done] == [tasks[0].task_id]
    assert list(dropped.values()) == [1] and "no skeleton in" in next(iter(dropped))
    assert cache.loads == 2 and set(cache.failures) == {NO_SUCH_ROOT}
