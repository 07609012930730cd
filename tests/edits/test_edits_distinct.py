"""Distinct operations by 1/m weights, on the embedded datastack (shared splits sit in two neurons' logs).

m comes from the server through datastack.multiplicity (split children → latest roots → proofread table →
those neurons' logs); the generator's ground truth is used only to check the answers.
"""

from __future__ import annotations

import json

import caveclient
import numpy as np
import pandas as pd
import pytest

from proofpilot.datastack.client import CaveConnection, ClientSettings
from proofpilot.datastack.embedded import ids
from proofpilot.datastack.embedded.generator import population
from proofpilot.datastack.embedded.server import start_server
from proofpilot.datastack.embedded.truth import membership_frame, unique_operations
from proofpilot.datastack.ingest import Ingestion, IngestOptions
from proofpilot.datastack.multiplicity import lookup_multiplicity
from proofpilot.edits import analyze, write_edits
from proofpilot.edits.cost import DISTINCT, SEEDS_WAY
from proofpilot.edits.distinct import distinct_statistics
from proofpilot.edits.summary import read_summary

FLY = "fafb_synthetic"


@pytest.fixture(scope="module")
def server():
    with start_server(FLY) as srv:
        yield srv


def _lookup(server, roots: list[int], table: list[int]):
    settings = ClientSettings(FLY, server_address=server.url, write_server_cache=False, backoff_factor=0.01)
    ingestion = Ingestion(CaveConnection(settings), IngestOptions(progress=False, use_cache=False))
    try:
        result = ingestion.run("", roots)
        return result, lookup_multiplicity(ingestion, ingestion.rows, result.operations, table)
    finally:
        ingestion.close()


def test_census_of_a_table_gives_the_true_distinct_count_and_m(server):
    """The table = the first 400 neurons (200 pairs): the census projection is the distinct count exactly."""
    n = 400
    roots = population(FLY).root_ids[:n].tolist()
    result, mult = _lookup(server, roots, roots)
    truth = membership_frame(FLY, np.arange(n))
    true_distinct = truth["operation_id"].nunique()
    true_merges = int(population(FLY).n_merges[:n].sum())  # shared operations are splits
    assert len(truth) > true_distinct  # shared splits: per-neuron sums over-count here

    expected_m = {int(op): sum(o < n for o in ids.op_owner(int(op))) for op in mult.frame["operation_id"]}
    assert dict(zip(mult.frame["operation_id"].tolist(), mult.frame["m"].tolist(), strict=True)) == expected_m
    assert mult.n_candidates == 0  # every neuron sharing an operation is in this table

    got = distinct_statistics(
        np.asarray(roots), result.membership, mult.frame, n, 200, np.random.default_rng(0)
    ).stats
    assert abs(got.ops.value - true_distinct) < 1e-6 and got.ops.ci == (got.ops.value, got.ops.value)
    assert abs(got.merges.value - true_merges) < 1e-6
    assert abs(got.splits.value - (true_distinct - true_merges)) < 1e-6
    assert got.shared_rows == int(truth["operation_id"].duplicated(keep=False).sum())


def test_candidates_outside_the_sample_are_found_through_split_children(server):
    """Even neurons only: their pair partners hold the shared splits and are reached through the lineage."""
    table = population(FLY).root_ids[:400].tolist()
    _, mult = _lookup(server, table[::2], table)
    table_m = {int(op): len(ids.op_owner(int(op))) for op in mult.frame["operation_id"]}
    assert dict(zip(mult.frame["operation_id"].tolist(), mult.frame["m"].tolist(), strict=True)) == table_m
    assert mult.n_candidates > 0 and max(table_m.values()) == 2


def test_sample_projection_uses_distinct_operations_and_covers_the_truth(server, tmp_path):
    client = caveclient.CAVEclient(FLY, server_address=server.url, auth_token="t", write_server_cache=False)
    result = analyze(client, sample_sizes=(200,), seed=1, n_bootstrap=1000, resamples=0)
    stats = result.summary.samples[0]
    truth = unique_operations(FLY)
    d = stats.distinct
    assert d is not None and d.ops.ci[0] <= truth <= d.ops.ci[1]
    assert d.shared_rows > 0 and d.sample_weight < d.sample_rows

    cost = result.summary.cost
    assert cost.primary.counts_basis == DISTINCT
    assert (cost.primary.merges.value, cost.primary.splits.value) == (d.merges.value, d.splits.value)
    assert cost.per_neuron_sums.counts_basis == SEEDS_WAY
    assert cost.per_neuron_sums.splits.value == stats.projected_splits.value > d.splits.value

    out = tmp_path / "out"
    write_edits(result, out, figures=False)
    data = json.loads((out / "summary.json").read_text())
    assert data["samples"][0]["distinct"]["ops"] == d.ops.value
    assert data["cost"]["per_neuron_sums"]["counts_basis"] == SEEDS_WAY
    assert read_summary(out).cost.counts_basis == DISTINCT
    for sample in data["samples"]:  # a file written before the distinct counts still reads
        del sample["distinct"]
    del data["cost"]["per_neuron_sums"]
    (out / "summary.json").write_text(json.dumps(data))
    assert read_summary(out).cost.merges.value == d.merges.value


def test_weights_without_sharing_reduce_to_per_neuron_sums():
    membership = pd.DataFrame(
        {
            "root_id": [1, 1, 2, 3, 3, 3],
            "operation_id": [10, 11, 12, 13, 14, 15],
            "is_merge": [True] * 3 + [False] * 3,
        }
    )
    m = pd.DataFrame({"operation_id": [10, 11, 12, 13, 14, 15], "m": [1] * 6})
    got = distinct_statistics(np.array([1, 2, 3, 4]), membership, m, 40, 200, np.random.default_rng(0)).stats
    assert got.ops.value == pytest.approx(40 * 6 / 4) and got.merges.value == pytest.approx(40 * 3 / 4)
    halves = m.assign(m=[2, 2, 1, 1, 1, 1])
    roots = np.array([1, 2, 3, 4])
    got = distinct_statistics(roots, membership, halves, 4, 50, np.random.default_rng(0)).stats
    assert got.ops.value == pytest.approx(5.0) and got.merges.value == pytest.approx(2.0)
