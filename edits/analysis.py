"""The edit-distribution analysis, end to end: `run_edits(config) -> EditSummary`.

1. Read the proofread-neuron table at the pinned version (through the datastack layer's ingestion, cached). 2.
Draw the samples (edits_sampling) and fetch change logs for the sampled neurons only (all with --full); a
resumed run takes what the cache already has. 3. Statistics, CIs, projection and deduplication per sample
(edits_stats), cost (edits_cost). 4. Write per_neuron / operations / membership.parquet first (nothing fetched
is lost if a later step fails), then figures/*.png, summary.json and summary.md.

`analyse` is steps 3-4 on DataFrames, so tests and the bench can feed it without a server.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from proofpilot.core.errors import DataError
from proofpilot.datastack.records import DataPin
from proofpilot.edits.cost import dedup_cost, sample_cost, sensitivity
from proofpilot.edits.markdown import render
from proofpilot.edits.records import CostReport, EditsConfig, EditSummary
from proofpilot.edits.sampling import Sample, draw_samples, population_root_ids, union_root_ids
from proofpilot.edits.stats import SampleResult, sample_statistics
from proofpilot.edits.summary import summary_dict, write_json

log = logging.getLogger(__name__)


def prepare_out_dir(out_dir: Path) -> Path:
    try:
        (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create output folder {out_dir}: {exc.strerror or exc}") from None
    return out_dir


def write_parquet(frame: pd.DataFrame, path: Path, pin: dict) -> Path:
    """Parquet with the data pin in the file's metadata, written atomically."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[b"proofpilot.pin"] = json.dumps(pin).encode()
    tmp = path.with_suffix(path.suffix + ".tmp")
    pq.write_table(table.replace_schema_metadata(meta), tmp)
    os.replace(tmp, path)
    return path


def _rows_for(per_neuron: pd.DataFrame, roots: np.ndarray) -> pd.DataFrame:
    indexed = per_neuron.drop_duplicates("root_id").set_index("root_id")
    missing = np.setdiff1d(roots, indexed.index.to_numpy())
    if len(missing):
        raise DataError(
            f"the ingestion returned no row for {len(missing)} sampled neurons (e.g. {missing[0]})"
        )
    return indexed.loc[roots].reset_index()


def _sample_columns(per_neuron: pd.DataFrame, samples: list[Sample]) -> pd.DataFrame:
    out = per_neuron.copy()
    for s in samples:
        out[f"in_{s.label}"] = out["root_id"].isin(s.root_ids)
    return out


def analyse(
    per_neuron: pd.DataFrame,
    membership: pd.DataFrame,
    operations: pd.DataFrame | None,
    pin: DataPin | dict,
    population: np.ndarray,
    samples: list[Sample],
    config: EditsConfig,
    n_table_rows: int | None = None,
) -> EditSummary:
    """Statistics, cost, figures and summary files for already-ingested rows (see module docstring)."""
    out_dir = prepare_out_dir(Path(config.out_dir))
    pin_dict = pin.to_dict() if isinstance(pin, DataPin) else dict(pin)
    files = [
        write_parquet(_sample_columns(per_neuron, samples), out_dir / "per_neuron.parquet", pin_dict),
        write_parquet(membership, out_dir / "membership.parquet", pin_dict),
    ]
    if operations is not None:
        files.append(write_parquet(operations, out_dir / "operations.parquet", pin_dict))

    n_pop = len(population)
    results: list[SampleResult] = []
    for sample in samples:
        rows = _rows_for(per_neuron, sample.root_ids)
        sample_membership = membership[membership["root_id"].isin(sample.root_ids)]
        log.info("sample %s: %d neurons", sample.label, sample.n)
        results.append(
            sample_statistics(
                sample.label,
                rows,
                sample_membership,
                n_pop,
                config.n_bootstrap,
                sample.bootstrap_rng(),
                config.ci_level,
            )
        )

    primary = results[-1]  # the census if there is one, else the largest sample
    per_sample = tuple(sample_cost(r.stats.label, r.intervals, config.cost) for r in results)
    cost = CostReport(
        basis=config.cost,
        primary=per_sample[-1],
        deduplicated=dedup_cost(primary.stats.label, primary.stats.dedup, config.cost),
        per_sample=per_sample,
        sensitivity=sensitivity(primary.intervals, config.cost),
    )
    summary = EditSummary(
        datastack=config.datastack,
        version=pin_dict.get("materialization_version"),
        pin=pin_dict,
        population={
            "table": pin_dict.get("table"),
            "n_neurons": n_pop,
            "n_table_rows": n_table_rows if n_table_rows is not None else n_pop,
            "n_duplicate_roots": (n_table_rows - n_pop) if n_table_rows is not None else 0,
        },
        samples=tuple(r.stats for r in results),
        cost=cost,
        config=config,
        out_dir=out_dir,
        files=tuple(files),
    )
    if config.figures:
        from proofpilot.edits.figures import dataset_view, load_dataset, make_figures

        views = [dataset_view(summary_dict(summary), _sample_columns(per_neuron, samples))]
        views += [load_dataset(Path(d)) for d in config.compare_dirs]
        summary = replace(summary, files=summary.files + tuple(make_figures(views, out_dir / "figures")))
    data = summary_dict(summary)
    data["files"] += ["summary.json", "summary.md"]
    write_json(data, out_dir / "summary.json")
    md = out_dir / "summary.md"
    md.write_text(render(data))
    return replace(summary, files=(*summary.files, out_dir / "summary.json", md))


def run_edits(config: EditsConfig) -> EditSummary:
    """Fetch (sampled neurons only, cached) and analyse one datastack's proofread neurons."""
    from proofpilot.datastack.client import CaveConnection, ClientSettings
    from proofpilot.datastack.ingest import Ingestion, IngestOptions, resolve_table

    prepare_out_dir(Path(config.out_dir))
    table = resolve_table(config.datastack, config.table)
    settings = ClientSettings(
        datastack=config.datastack,
        server_address=config.server_address,
        version=config.version,
        timestamp=config.timestamp,
        auth_token=config.auth_token,
        write_server_cache=config.write_server_cache,
        max_retries=config.retries,
    )
    options = IngestOptions(
        table=table,
        cache_dir=config.cache_dir,
        use_cache=config.use_cache,
        workers=config.workers,
        batch_size=config.batch_size,
        progress=config.progress,
    )
    ingestion = Ingestion(CaveConnection(settings), options)
    try:
        table_rows = ingestion.table_roots(table)
        population = population_root_ids(table_rows)
        samples = draw_samples(population, config.sample_sizes, config.seed, config.nested, config.full)
        needed = union_root_ids(samples)
        log.info("%d proofread neurons; fetching the logs of %d sampled ones", len(population), len(needed))
        result = ingestion.run(table, needed.tolist())
    finally:
        ingestion.close()
    return analyse(
        result.per_neuron,
        result.membership,
        result.operations,
        result.pin,
        population,
        samples,
        config,
        n_table_rows=len(table_rows),
    )
