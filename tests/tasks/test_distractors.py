"""Merge distractors from the segmentation at the time of the edit: cloud-volume graphene cutouts of the
embedded server's watershed, mapped to roots with roots_binary at op time - 1 ms."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from proofpilot.datastack.client import CaveConnection, ClientSettings
from proofpilot.datastack.embedded.distractors import EmbeddedDistractors
from proofpilot.datastack.embedded.ids import RootKind, root_id
from proofpilot.datastack.embedded.server import start_server
from proofpilot.datastack.ingest import IngestOptions, ingest
from proofpilot.datastack.roles import CaveRoles
from proofpilot.tasks.build import TaskOptions, tasks_from_ingest
from proofpilot.tasks.distractors import (
    CutoutOptions,
    SegmentationDistractors,
    before_timestamp_s,
    pick_distractor,
)

FLY = "fafb_synthetic"
NEURONS = tuple(range(300, 308))


@pytest.fixture(scope="module")
def server():
    with start_server(FLY) as srv:
        yield srv


@pytest.fixture(scope="module")
def settings(server):
    return ClientSettings(
        datastack=FLY, server_address=server.url, auth_token="abc123", write_server_cache=False
    )


@pytest.fixture(scope="module")
def ingested(settings):
    roots = tuple(root_id(RootKind.NEURON, i) for i in NEURONS)
    return ingest(settings, IngestOptions(root_ids=roots, use_cache=False, progress=False))


@pytest.fixture(scope="module")
def source(settings):
    src = SegmentationDistractors.from_client(CaveConnection(settings).client)
    yield src
    src.close()


@pytest.fixture(scope="module")
def merge_tasks(server, ingested, source, settings):
    roles = CaveRoles(CaveConnection(settings).client.chunkedgraph)
    server.reset_counts()
    tasks = tasks_from_ingest(
        ingested, source, TaskOptions(seed=0, max_ops_per_neuron=3, op_kinds=("merge",)), roles=roles
    )
    return tasks, server.request_counts


def test_merges_get_negatives_through_the_cutout_path(ingested, merge_tasks, source):
    tasks, counts = merge_tasks
    partners = {t.operation_id: t for t in tasks if t.role == "partner"}
    negatives = {t.operation_id: t for t in tasks if t.role == "distractor"}
    assert len(partners) >= 10
    assert len(negatives) >= 0.8 * len(partners), source.skipped
    bank = ingested.operations.set_index("operation_id")
    truth = EmbeddedDistractors(FLY)
    same = 0
    for op, task in negatives.items():
        row = bank.loc[op]
        assert task.base_root_id == partners[op].base_root_id
        assert task.candidate_root_id not in {*row["before_root_ids"], *row["after_root_ids"]}
        same += task.candidate_root_id == truth.distractor_root(_operation(row, op))
    # the generator's own neighbour touches the partner at the point; other merges' fragments may touch more
    assert same >= 0.7 * len(negatives)
    assert counts.get("watershed", 0) >= len(partners) and counts.get("roots_binary", 0) >= len(partners)
    assert counts.get("segmentation_info", 0) >= 1


def _operation(row, op):
    from proofpilot.datastack.records import Operation

    return Operation(op, True, 0, tuple(row["before_root_ids"]), (), (0.0, 0.0, 0.0), ())


def test_the_cutout_shows_the_before_roots_just_before_the_edit(ingested, source):
    bank = ingested.operations
    row = bank[bank["is_merge"]].iloc[0]
    from proofpilot.tasks.build import _operation as to_operation

    op = to_operation(row)
    before = source.cutout(op)
    labels = set(np.unique(before).tolist())
    assert set(op.before_root_ids) <= labels and not set(op.after_root_ids) & labels
    after = source.cutout(dataclasses.replace(op, timestamp_ms=op.timestamp_ms + 2000))
    assert set(op.after_root_ids) <= set(np.unique(after).tolist())  # the partner has joined the neuron
    assert not set(op.before_root_ids) & set(np.unique(after).tolist())


def test_a_cutout_outside_the_volume_is_a_counted_skip(ingested, source):
    from proofpilot.tasks.build import _operation as to_operation

    row = ingested.operations[ingested.operations["is_merge"]].iloc[0]
    outside = dataclasses.replace(to_operation(row), interface_nm=(-5e6, 1e3, 1e3))
    before = source.skipped["cutout outside the volume"]
    assert source.distractor_root(outside) is None
    assert source.reasons[outside.operation_id] == "cutout outside the volume"
    assert source.skipped["cutout outside the volume"] == before + 1


def test_a_server_that_is_gone_is_a_counted_skip_not_an_abort(ingested):
    from proofpilot.tasks.build import _operation as to_operation

    row = ingested.operations[ingested.operations["is_merge"]].iloc[0]
    dead = SegmentationDistractors("graphene://http://127.0.0.1:9/segmentation/table/x", "abc123")
    try:
        assert dead.distractor_root(to_operation(row)) is None
        (reason,) = dead.skipped
        assert reason.startswith("cutout failed")
    finally:
        dead.close()


def test_pick_is_the_largest_contact_without_dust_or_the_pair():
    roots = np.zeros((20, 20, 5), dtype=np.uint64)
    roots[:10] = 1  # base
    roots[10:12, :, :] = 2  # partner
    roots[12:, :10, :] = 3  # touches the partner on half its face
    roots[12:, 10:19, :] = 4  # touches it on a bit less
    roots[12:, 19, 0] = 5  # dust: 8 voxels
    opts = CutoutOptions(dilate_voxels=1, min_voxels=10)
    assert pick_distractor(roots, 2, {1, 2}, opts) == (3, "")
    assert pick_distractor(roots, 2, {1, 2, 3}, opts) == (4, "")
    assert pick_distractor(roots, 2, {1, 2, 3, 4}, opts) == (None, "no segment touches the partner")
    assert pick_distractor(roots, 7, {1}, opts) == (None, "partner not in the cutout")


def test_the_before_timestamp_stays_before_the_edit_after_cloud_volumes_rounding():
    for op_ms in (5_000, 5_001, 5_999, 1_600_000_000_123):
        t = before_timestamp_s(op_ms)
        assert t * 1000 <= op_ms - 1 < (t + 1) * 1000


def test_prefetched_cutouts_give_the_same_tasks_as_one_at_a_time(ingested, merge_tasks, settings):
    """`prefetch` only changes when the cutouts are downloaded (several at once, ahead of use), not what
    they give: a source that fetches one at a time builds the same tasks, and a prefetch window of 2 holds at
    most 2 cutouts ahead of the one asked for."""
    roles = CaveRoles(CaveConnection(settings).client.chunkedgraph)
    options = TaskOptions(seed=0, max_ops_per_neuron=3, op_kinds=("merge",))
    serial = SegmentationDistractors.from_client(
        CaveConnection(settings).client, CutoutOptions(parallel=1, prefetch_ahead=0)
    )
    narrow = SegmentationDistractors.from_client(
        CaveConnection(settings).client, CutoutOptions(parallel=2, prefetch_ahead=2)
    )
    held = []
    asked = narrow.distractor_root

    def distractor_root(op, partner=None):
        held.append(len(narrow._pending))
        return asked(op, partner)

    narrow.distractor_root = distractor_root
    try:
        one_at_a_time = tasks_from_ingest(ingested, serial, options, roles=roles)
        windowed = tasks_from_ingest(ingested, narrow, options, roles=roles)
    finally:
        serial.close()
        narrow.close()
    prefetched, _ = merge_tasks  # the module's source: the default window
    assert one_at_a_time == windowed == prefetched
    assert held and max(held) <= 2 and held[0] == 2  # the window was full before the first was asked for
    assert serial.skipped == narrow.skipped


@pytest.mark.parametrize(
    ("address", "one_at_a_time"),
    [("http://127.0.0.1:8123", True), ("http://localhost:80", True), ("https://global.daf-apis.com", False),
     (None, False)],
)
def test_the_pilot_prefetches_cutouts_only_from_a_remote_datastack(address, one_at_a_time):
    from proofpilot.pilot.inputs import cutout_options

    options = cutout_options(address)
    assert (options.parallel == 1 and options.prefetch_ahead == 0) == one_at_a_time
    assert one_at_a_time or (options.parallel > 1 and options.prefetch_ahead >= options.parallel)
