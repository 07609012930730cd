"""Roles from the operation itself (added_edges + get_roots just before the edit), and the operations the bank
drops (failed, undo/redo, undone), against the embedded server over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from proofpilot.datastack.bank import dropped_operations
from proofpilot.datastack.client import CaveConnection, ClientSettings
from proofpilot.datastack.embedded import geometry
from proofpilot.datastack.embedded.ids import RootKind, root_id
from proofpilot.datastack.embedded.server import start_server
from proofpilot.datastack.ingest import IngestOptions, ingest
from proofpilot.datastack.opdetails import N_META, DetailsChunk, offsets_from_counts
from proofpilot.datastack.roles import CaveRoles
from proofpilot.tasks.build import _operation

FLY = "fafb_synthetic"
NEURONS = tuple(range(300, 340))


@pytest.fixture(scope="module")
def server():
    with start_server(FLY) as srv:
        yield srv


@pytest.fixture(scope="module")
def settings(server):
    return ClientSettings(datastack=FLY, server_address=server.url, write_server_cache=False)


@pytest.fixture(scope="module")
def ingested(settings):
    roots = tuple(root_id(RootKind.NEURON, i) for i in NEURONS)
    return ingest(settings, IngestOptions(root_ids=roots, use_cache=False, progress=False))


@pytest.fixture(scope="module")
def merges(ingested):
    bank = ingested.operations
    return [_operation(row) for row in bank[bank["is_merge"]].itertuples()]


def test_roles_come_from_added_edges_not_the_ascending_before_roots(settings, merges):
    assert len(merges) > 50
    truth = {op.operation_id: geometry.op_fragments(FLY, op.operation_id) for op in merges}
    assert all(list(op.before_root_ids) == sorted(op.before_root_ids) for op in merges)  # ascending, as CAVE
    source_larger = [op for op in merges if truth[op.operation_id]["base"] == max(op.before_root_ids)]
    assert 0.15 < len(source_larger) / len(merges) < 0.6  # the old before_root_ids[0] rule fails on these

    lookup = CaveRoles(CaveConnection(settings).client.chunkedgraph)
    roles = lookup.roles(merges)
    assert lookup.requests == len(merges)  # one get_roots call per merge
    assert set(roles) == {op.operation_id for op in merges}
    for op in merges:
        record = roles[op.operation_id]
        assert record.is_merge
        assert record.base_root_id == truth[op.operation_id]["base"]
        assert record.partner_root_id == truth[op.operation_id]["partner"]
        assert record.after_root_ids == (truth[op.operation_id]["after"],)
    assert any(roles[op.operation_id].base_root_id != op.before_root_ids[0] for op in source_larger)


def test_get_roots_before_and_at_the_operation_time(settings, merges, ingested):
    cg = CaveConnection(settings).client.chunkedgraph
    for op in merges[:20]:
        svs = np.array([op.source_sv, op.sink_sv], dtype=np.uint64)
        fragments = geometry.op_fragments(FLY, op.operation_id)
        before = cg.get_roots(svs, timestamp=datetime.fromtimestamp((op.timestamp_ms - 1) / 1000, UTC))
        at = cg.get_roots(svs, timestamp=datetime.fromtimestamp(op.timestamp_ms / 1000, UTC))
        assert before.tolist() == [fragments["base"], fragments["partner"]]
        assert at.tolist() == [fragments["after"], fragments["after"]]
        assert (
            cg.get_root_id(int(op.sink_sv), timestamp=datetime.fromtimestamp(op.timestamp_ms / 1000, UTC))
            == (fragments["after"])
        )
    splits = ingested.operations[~ingested.operations["is_merge"] & (ingested.operations["n_neurons"] == 1)]
    row = splits.iloc[0]
    ts = int(row["timestamp"].value // 1_000_000)
    svs = np.array([row["source_sv"], row["sink_sv"]], dtype=np.uint64)
    fragments = geometry.op_fragments(FLY, int(row["operation_id"]))
    kept, foreign = fragments["kept"], fragments["foreign"]
    before = cg.get_roots(svs, timestamp=datetime.fromtimestamp((ts - 1) / 1000, UTC)).tolist()
    at = cg.get_roots(svs, timestamp=datetime.fromtimestamp(ts / 1000, UTC)).tolist()
    assert before == [int(row["before_root_ids"][0])] * 2
    assert at == [kept, foreign] and sorted(at) == sorted(row["after_root_ids"])


def test_split_roles_need_no_lookup(settings, ingested):
    bank = ingested.operations
    splits = [_operation(r) for r in bank[~bank["is_merge"]].head(10).itertuples()]
    lookup = CaveRoles(CaveConnection(settings).client.chunkedgraph)
    roles = lookup.roles(splits)
    assert lookup.requests == 0
    for op in splits:
        assert roles[op.operation_id].base_root_id == op.before_root_ids[0]
        assert roles[op.operation_id].partner_root_id is None


def test_undo_redo_rows_and_undone_operations_are_dropped(ingested):
    dropped = ingested.dropped_operations
    assert {"undo", "undone"} <= set(dropped.values())
    assert not ingested.operations["operation_id"].isin(list(dropped)).any()
    assert ingested.membership["operation_id"].isin(list(dropped)).any()  # still counted as edits
    assert ingested.per_neuron["n_edits"].sum() == len(ingested.membership)


def _chunk(rows: list[tuple[int, int, int, int]]) -> DetailsChunk:
    """(op, status, undo_of, redo_of) rows -> a details chunk."""
    meta = np.zeros((len(rows), N_META), dtype=np.int64)
    meta[:, :3] = [r[1:] for r in rows]
    n = len(rows)
    return DetailsChunk(
        np.array([r[0] for r in rows], dtype=np.int64),
        np.zeros((n, 3)),
        np.zeros(0, np.int64),
        offsets_from_counts([0] * n),
        meta,
        {},
        1,
    )


def test_pychunkedgraph_undo_rule():
    rows = [
        (1, 0, 0, 0),  # undone, then redone: kept
        (2, 0, 0, 0),  # undone
        (3, 4, 0, 0),  # write failed
        (4, 0, 1, 0),  # undo of 1
        (5, 0, 2, 0),  # undo of 2
        (6, -1, 0, 0),  # no status: kept
        (7, 0, 0, 1),  # redo of 1
        (8, 2, 6, 0),  # a failed undo does not undo 6
    ]
    assert dropped_operations(_chunk(rows)) == {
        3: "failed",
        8: "failed",
        4: "undo",
        5: "undo",
        7: "redo",
        2: "undone",
    }
