"""What a pilot needs before dispatch: the datastack server, the neuron sample, its ingestion, the decision
tasks with features, and the [edits] projection of the whole table from the same sample.

The N neurons are a seeded random sample of the proofread table (`eval.edits_sampling.draw_samples`, the
same draw `proofpilot edits --sample-sizes N --seed S` makes), so the projection to the table is honest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from proofpilot.core.errors import DataError
from proofpilot.datastack.client import CaveConnection
from proofpilot.datastack.geometry import PCG_INVALIDATION_NM, PcgSkeletons
from proofpilot.datastack.ingest import Ingestion, IngestResult, resolve_table, write_result
from proofpilot.datastack.roles import CaveRoles
from proofpilot.datastack.source import DataSource
from proofpilot.edits.analysis import operation_multiplicity
from proofpilot.edits.cost import DISTINCT, PER_NEURON_SUMS
from proofpilot.edits.sampling import draw_samples, population_root_ids
from proofpilot.edits.stats import sample_statistics
from proofpilot.tasks.build import TaskOptions, tasks_from_ingest
from proofpilot.tasks.distractors import CutoutOptions, SegmentationDistractors
from proofpilot.tasks.records import DecisionTask
from proofpilot.telemetry.projection import EditsProjection

log = logging.getLogger(__name__)

N_BOOTSTRAP = 1000
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class PilotSample:
    """The neurons of a pilot and their ingested edit histories."""

    ingest: IngestResult
    population: int  # distinct neurons in the proofread table
    root_ids: tuple[int, ...]  # the sampled neurons, ascending
    multiplicity: pd.DataFrame | None = None  # (operation_id, m): proofread neurons whose logs hold it


def ingest_sample(source: DataSource, neurons: int, seed: int, progress: bool) -> PilotSample:
    """Draw `neurons` neurons at random (seeded) from the proofread table and ingest their histories.

    A sample larger than the table is a ConfigError before any change log is fetched."""

    table = resolve_table(source.datastack, source.table)
    conn = CaveConnection(source.client_settings())
    run = Ingestion(conn, source.ingest_options(progress=progress))
    try:
        population = population_root_ids(run.table_roots(table))
        sample = draw_samples(population, (neurons,), seed)[0]
        result = run.run(table, [int(r) for r in sample.root_ids])
        multiplicity = operation_multiplicity(run, result.operations, population)
    finally:
        run.close()
    n_ok = int((result.per_neuron["status"] == "ok").sum())
    if n_ok == 0:
        raise DataError(f"none of the {neurons} sampled neurons' change logs could be fetched")
    if n_ok < neurons:
        log.warning(
            "%d of %d sampled neurons have no change log (errors); their tasks are missing",
            neurons - n_ok,
            neurons,
        )
    return PilotSample(result, len(population), tuple(int(r) for r in sample.root_ids), multiplicity)


def neurons_without_log(sample: PilotSample) -> list[dict[str, object]]:
    """The sampled neurons whose change log could not be fetched, with the reason (for run.json)."""
    rows = sample.ingest.per_neuron
    failed = rows[rows["status"] != "ok"]
    pairs = zip(failed["root_id"], failed["reason"], strict=True)
    return [{"root_id": int(root), "reason": str(why)} for root, why in pairs]


def cutout_options(server_address: str | None) -> CutoutOptions:
    """Distractor cutouts from a remote datastack are prefetched, several at once (hides the round trips);
    from one on this machine (127.0.0.1, localhost), one at a time: there is no latency to hide and the
    server shares the builder's CPUs (bench/cutouts.py measures both)."""
    host = urlsplit(server_address).hostname if server_address else None
    if host in LOCAL_HOSTS:
        return CutoutOptions(parallel=1, prefetch_ahead=0)
    return CutoutOptions()


def build_tasks(
    sample: PilotSample, data: DataSource, seed: int, max_ops_per_neuron: int | None
) -> list[DecisionTask]:
    """The sample's tasks; merge roles come from the datastack (one get_roots call per sampled merge),
    distractors from its segmentation at the time of each edit."""
    conn = CaveConnection(data.client_settings())
    distractors = SegmentationDistractors.from_client(conn.client, cutout_options(data.server_address))
    try:
        tasks = tasks_from_ingest(
            sample.ingest,
            distractors,
            TaskOptions(seed=seed, max_ops_per_neuron=max_ops_per_neuron),
            roles=CaveRoles(conn.client.chunkedgraph),
        )
    finally:
        distractors.close()
    if distractors.skipped:
        reasons = ", ".join(f"{why}: {n}" for why, n in sorted(distractors.skipped.items()))
        log.warning("merges without a distractor from the segmentation: %s", reasons)
    if not tasks:
        raise DataError("the sampled neurons give no decision tasks (no operations with an interface point)")
    return tasks


def geometry_source(
    source: DataSource, skeleton_layer: str | None, invalidation_d_nm: float = PCG_INVALIDATION_NM
) -> str | PcgSkeletons:
    """Where task geometry comes from: a precomputed skeleton layer when one is named, else pcg_skel on the
    datastack's level-2 graph and L2 cache (any root id, expired ones included), one hardened connection."""
    if skeleton_layer:
        return skeleton_layer
    conn = CaveConnection(source.client_settings())
    return PcgSkeletons(conn.client, invalidation_d_nm=invalidation_d_nm)


def task_row(task: DecisionTask) -> dict:
    """A task's identity and ground truth, without features (the run's tasks.jsonl)."""
    row = task.to_dict()
    row.pop("features", None)
    row["interface_nm"] = list(task.interface_nm)
    return row


def edits_projection(sample: PilotSample, datastack: str, seed: int) -> EditsProjection | None:
    """Projected merges and splits of the whole table from the sample, 95 % bootstrap CIs with
    finite-population correction (the edits stage's): distinct operations (each logged operation weighs 1/m,
    edits/distinct.py) where the sample's multiplicities were looked up, else per-neuron sums (labelled so);
    None if it cannot be estimated."""

    try:
        result = sample_statistics(
            "pilot",
            sample.ingest.per_neuron,
            sample.ingest.membership,
            sample.population,
            N_BOOTSTRAP,
            np.random.default_rng(seed),
            multiplicity=sample.multiplicity,
        )
    except DataError as exc:
        log.warning("no full-dataset projection: %s", exc)
        return None
    distinct = result.stats.distinct
    merges, splits = result.stats.projected_merges, result.stats.projected_splits
    basis = PER_NEURON_SUMS
    if distinct is not None and distinct.merges.ci is not None and distinct.splits.ci is not None:
        merges, splits, basis = distinct.merges, distinct.splits, DISTINCT
    if merges.value is None or splits.value is None or merges.ci is None or splits.ci is None:
        return None
    level = result.stats.ci_level
    return EditsProjection(datastack, merges.value, merges.ci, splits.value, splits.ci, level, basis)


def write_ingest(sample: PilotSample, out_dir: Path) -> None:
    """The sample's per-neuron rows, operation bank and membership as Parquet (for eval and the report)."""

    write_result(sample.ingest, out_dir)
