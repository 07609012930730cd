"""Ingestion and the operation bank against the embedded server (real caveclient over HTTP), checked exactly
against the generator's ground-truth population."""

from __future__ import annotations

import json
import math
import re
import time

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from proofpilot.cli.ingest import ingest_command
from proofpilot.core.errors import DataError
from proofpilot.datastack.client import CaveConnection, ClientSettings
from proofpilot.datastack.embedded.faults import FaultConfig
from proofpilot.datastack.embedded.generator import get_generator, population
from proofpilot.datastack.embedded.server import start_server
from proofpilot.datastack.ingest import Ingestion, IngestOptions, ingest
from proofpilot.datastack.records import MEMBERSHIP_COLUMNS, OPERATION_COLUMNS, PER_NEURON_COLUMNS, DataPin

MOUSE = "minnie65_synthetic"


def settings(url: str, **kw) -> ClientSettings:
    kw.setdefault("backoff_factor", 0.01)
    return ClientSettings(MOUSE, server_address=url, write_server_cache=False, **kw)


def truth_for(roots: np.ndarray) -> pd.DataFrame:
    frame = population(MOUSE).frame().set_index("root_id")
    return frame.loc[roots]


def assert_contract(result) -> None:
    for frame, columns in (
        (result.per_neuron, PER_NEURON_COLUMNS),
        (result.operations, OPERATION_COLUMNS),
        (result.membership, MEMBERSHIP_COLUMNS),
    ):
        assert list(frame.columns) == list(columns)
        for name, dtype in columns.items():
            if dtype == "object":
                assert all(isinstance(v, list) for v in frame[name].head(50)), name
            else:
                assert frame[name].dtype == dtype, (name, frame[name].dtype)


def expected_drops(profile: str, n: int) -> dict[int, str]:
    """Undo/redo rows and ops left undone in the first n neurons' logs, from the generator's marks."""
    gen = get_generator(profile)
    out: dict[int, str] = {}
    undone: set[int] = set()
    for i in range(n):
        log = gen.neuron_log(i)
        for op, undo, redo in zip(
            log.operation_id.tolist(), log.undo_of.tolist(), log.redo_of.tolist(), strict=True
        ):
            if undo or redo:
                out[op] = "undo" if undo else "redo"
                (undone.add(undo) if undo else undone.discard(redo))
    return out | dict.fromkeys(undone, "undone")


@pytest.fixture(scope="module")
def server():
    with start_server(MOUSE) as srv:
        yield srv


def test_shared_split_is_one_bank_row_and_counts_for_both_neurons(server, tmp_path):
    pop = population(MOUSE)
    n = 60
    assert pop.n_shared[:n].sum() > 0  # the first 30 pairs do share splits
    result = ingest(settings(server.url), IngestOptions(limit=n, cache_dir=tmp_path, progress=False))
    assert_contract(result)
    per = result.per_neuron
    truth = truth_for(per["root_id"].to_numpy())
    assert (per["status"] == "ok").all()
    assert per["n_edits"].tolist() == truth["n_edits"].tolist()
    assert per["n_merges"].tolist() == truth["n_merges"].tolist()
    assert per["n_splits"].tolist() == truth["n_splits"].tolist()

    bank = result.operations
    assert bank["operation_id"].is_unique
    dropped = expected_drops(MOUSE, n)
    assert dropped  # some of these logs have undo/redo rows
    assert result.dropped_operations == dropped
    assert len(bank) == int(pop.n_edits[:n].sum() - pop.n_shared[:n:2].sum()) - len(dropped)
    assert not bank["operation_id"].isin(list(dropped)).any()
    assert result.stats.n_undo_redo == sum(r in ("undo", "redo") for r in dropped.values())
    assert result.stats.n_undone == sum(r == "undone" for r in dropped.values()) > 0
    assert result.stats.n_operations_failed == 0
    assert len(result.membership) == int(pop.n_edits[:n].sum())
    shared = bank[bank["n_neurons"] == 2]
    assert len(shared) == int(pop.n_shared[:n:2].sum())
    assert not shared["is_merge"].any()
    gen = get_generator(MOUSE)
    for row in shared.head(20).itertuples():
        a, b = sorted(row.neuron_root_ids)
        assert b - a == 1 and (a - int(pop.root_ids[0])) % 2 == 0  # the two neurons of one pair
        assert row.after_root_ids == list(gen.split_roots(row.operation_id))
        members = result.membership[result.membership["operation_id"] == row.operation_id]
        assert sorted(members["root_id"]) == [a, b]
    splits = bank[~bank["is_merge"]]
    assert (splits["after_root_ids"].map(len) == 2).all()
    assert (bank.loc[bank["is_merge"], "after_root_ids"].map(len) == 1).all()
    assert not bank[["interface_x_nm", "interface_y_nm", "interface_z_nm"]].isna().any().any()


# the first 400 neurons of the mouse-like table (pairs kept whole), not all 2,314: the same paths (table
# query, one change log per call, details chunks, the cache) at a sixth of the operations
TABLE_PREFIX = 400


@pytest.mark.slow
def test_mouse_table_with_5_percent_errors_then_rerun_fills_exactly_those(tmp_path):
    """Sticky 5 % error rate on change logs (one root per call: ~5 % of neurons fail) and on details."""
    pop, n = population(MOUSE), TABLE_PREFIX
    faults = FaultConfig(
        error_rate=0.05, sticky=True, seed=11, routes=("tabular_change_log_many", "operation_details")
    )
    with start_server(MOUSE, faults=faults) as srv:
        first = ingest(
            settings(srv.url, max_retries=1),
            IngestOptions(limit=n, batch_size=1, workers=1, cache_dir=tmp_path, progress=False),
        )
        per = first.per_neuron
        assert len(per) == n and per["root_id"].tolist() == pop.root_ids[:n].tolist()
        failed = per[per["status"] == "error"]
        assert 0.02 * len(per) < len(failed) < 0.09 * len(per)
        assert failed["n_edits"].isna().all() and failed["n_merges"].isna().all()
        assert failed["reason"].str.startswith("HTTP 500").all()
        ok = per[per["status"] == "ok"]
        truth = truth_for(ok["root_id"].to_numpy())
        assert ok["n_edits"].tolist() == truth["n_edits"].tolist()
        assert (ok["reason"] == "").all()
        assert not first.membership["root_id"].isin(failed["root_id"]).any()
        assert first.stats.n_error == len(failed) and first.stats.n_operations_without_details == 0

        srv.set_faults(None)
        srv.reset_counts()
        second = ingest(
            settings(srv.url), IngestOptions(limit=n, workers=1, cache_dir=tmp_path, progress=False)
        )
        counts = srv.request_counts

    per2 = second.per_neuron
    assert (per2["status"] == "ok").all()
    assert per2["n_edits"].tolist() == pop.n_edits[:n].tolist()
    assert per2["n_merges"].tolist() == pop.n_merges[:n].tolist()
    assert second.stats.n_from_cache == len(per) - len(failed)
    # only the failed neurons were asked for, and only the operations not seen before
    assert counts["tabular_change_log_many"] == math.ceil(len(failed) / 50)
    seen = np.concatenate([first.operations["operation_id"], list(first.dropped_operations)])
    new_ops = np.setdiff1d(
        np.concatenate([second.operations["operation_id"], list(second.dropped_operations)]), seen
    )
    assert counts["operation_details"] == math.ceil(len(new_ops) / 500)
    assert counts.get("query", 0) == 0  # the proofread table came from the cache too
    bank = second.operations
    assert second.dropped_operations == expected_drops(MOUSE, n)
    distinct = int(pop.n_edits[:n].sum() - pop.n_shared[:n:2].sum())  # Population.total_operations, first n
    assert len(bank) == distinct - len(second.dropped_operations)
    assert int((bank["n_neurons"] == 2).sum()) == int(pop.n_shared[:n:2].sum())
    assert not bank["interface_x_nm"].isna().any()


def test_without_details_counts_and_bank_rows_need_no_details_calls(server, tmp_path):
    server.reset_counts()
    result = ingest(
        settings(server.url), IngestOptions(limit=6, with_details=False, cache_dir=tmp_path, progress=False)
    )
    assert server.request_counts.get("operation_details", 0) == 0
    truth = truth_for(result.per_neuron["root_id"].to_numpy())
    assert result.per_neuron["n_edits"].tolist() == truth["n_edits"].tolist()
    assert result.operations["interface_x_nm"].isna().all()
    assert result.stats.n_operations_without_details == len(result.operations) > 0


def test_lost_server_aborts_with_one_line_and_keeps_what_was_fetched(tmp_path):
    roots = population(MOUSE).root_ids[:400].tolist()
    with start_server(MOUSE) as srv:
        conn = CaveConnection(settings(srv.url))
        run = Ingestion(conn, IngestOptions(cache_dir=tmp_path, workers=1, progress=False))
        run.run("proofreading_status_and_strategy", roots[:100])  # cached
        for sub in (conn.client.info, conn.client.materialize, conn.client.chunkedgraph):
            sub.session.close()  # drop kept-alive connections: a stopped server still answers on them
    started = time.monotonic()
    with pytest.raises(DataError, match="lost the CAVE server") as err:
        run.run("proofreading_status_and_strategy", roots)
    assert time.monotonic() - started < 20
    assert "\n" not in str(err.value)
    assert len(run.cache.get_changelogs(roots)) == 100
    run.close()


def test_cli_writes_parquet_and_pin(server, tmp_path):
    out = tmp_path / "out"
    roots = population(MOUSE).root_ids[[5, 3, 5, 8]].tolist()  # a repeat is ingested once
    roots_file = tmp_path / "roots.txt"
    roots_file.write_text("# some neurons\n" + "\n".join(map(str, roots)) + "\n")
    result = CliRunner().invoke(
        ingest_command,
        [
            "--datastack",
            MOUSE,
            "--server-address",
            server.url,
            "--roots",
            str(roots_file),
            "--cache-dir",
            str(tmp_path / "c"),
            "--no-write-server-cache",
            "--no-progress",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    per = pd.read_parquet(out / "per_neuron.parquet")
    assert per["root_id"].tolist() == [roots[0], roots[1], roots[3]]
    assert per["n_edits"].tolist() == truth_for(per["root_id"].to_numpy())["n_edits"].tolist()
    ops = pd.read_parquet(out / "operations.parquet")
    membership = pd.read_parquet(out / "membership.parquet")
    assert len(membership) == per["n_edits"].sum() and ops["operation_id"].is_unique
    pin = DataPin(**json.loads((out / "pin.json").read_text()))
    assert pin.datastack == MOUSE and pin.table == ""  # the roots came from a file, not a table
    assert pin.materialization_version is not None


def test_cli_on_an_embedded_name_starts_the_server(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing but --out is written
    out = tmp_path / "D"
    result = CliRunner().invoke(
        ingest_command, ["--datastack", MOUSE, "--limit", "5", "--no-progress", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    url = re.search(rf"embedded CAVE server for {MOUSE} at (http://127\.0\.0\.1:\d+)", result.output)
    assert url, result.output
    pin = DataPin(**json.loads((out / "pin.json").read_text()))
    assert pin.server_address.rstrip("/") == url.group(1) and pin.datastack == MOUSE
    per = pd.read_parquet(out / "per_neuron.parquet")
    assert len(per) == 5 and (per["status"] == "ok").all()
    assert per["n_edits"].tolist() == truth_for(per["root_id"].to_numpy())["n_edits"].tolist()
    assert {p.name for p in tmp_path.iterdir()} == {"D"}
