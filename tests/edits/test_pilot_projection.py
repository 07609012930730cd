"""The pilot's own-sample projection counts distinct operations: on the embedded fly-like datastack a shared
split sits in two proofread neurons' logs; the projection weighs it 1/2 per log (edits/distinct.py), so the
projected operations are N x mean of sum(1/m), below the per-neuron sums N x mean edits."""

from __future__ import annotations

import numpy as np
import pytest

from proofpilot.datastack.client import CaveConnection, ClientSettings
from proofpilot.datastack.embedded.generator import population
from proofpilot.datastack.embedded.server import start_server
from proofpilot.datastack.ingest import Ingestion, IngestOptions
from proofpilot.datastack.multiplicity import lookup_multiplicity
from proofpilot.edits.cost import DISTINCT, PER_NEURON_SUMS
from proofpilot.pilot.inputs import PilotSample, edits_projection

FLY = "fafb_synthetic"
TABLE, SAMPLED = 400, 40  # the first 400 neurons as the table (pairs share splits), 40 of them sampled


@pytest.fixture(scope="module")
def sample():
    table = population(FLY).root_ids[:TABLE].tolist()
    roots = table[:SAMPLED]
    with start_server(FLY) as server:
        settings = ClientSettings(
            FLY, server_address=server.url, write_server_cache=False, backoff_factor=0.01
        )
        ingestion = Ingestion(CaveConnection(settings), IngestOptions(progress=False, use_cache=False))
        try:
            result = ingestion.run("", roots)
            mult = lookup_multiplicity(ingestion, ingestion.rows, result.operations, table)
        finally:
            ingestion.close()
    return PilotSample(result, TABLE, tuple(roots), mult.frame)


def test_a_split_in_two_logs_projects_distinct_operations_not_sums(sample):
    projection = edits_projection(sample, FLY, seed=0)
    assert projection.counts_basis == DISTINCT
    rows = sample.ingest.membership.merge(sample.multiplicity, on="operation_id")
    assert (rows["m"] == 2).any()  # a split in two sampled neurons' logs: the case at issue
    expected = TABLE / SAMPLED * (1 / rows["m"]).sum()
    assert projection.merges + projection.splits == pytest.approx(expected)
    sums = TABLE / SAMPLED * len(sample.ingest.membership)
    assert projection.merges + projection.splits < sums
    lo, hi = projection.splits_ci
    assert lo <= projection.splits <= hi


def test_without_multiplicities_the_projection_says_per_neuron_sums(sample):
    plain = PilotSample(sample.ingest, sample.population, sample.root_ids)
    projection = edits_projection(plain, FLY, seed=0)
    assert projection.counts_basis == PER_NEURON_SUMS
    assert projection.merges + projection.splits == pytest.approx(
        TABLE / SAMPLED * len(sample.ingest.membership)
    )
    assert np.isfinite(projection.merges_ci).all()
