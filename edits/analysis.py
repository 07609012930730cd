"""The edit-distribution analysis: `analyze(client) -> EditsResult` (writes nothing), `write_edits(result,
out_dir)`, and `run_edits(config) = measure + write` for the command line.

1. Read the proofread-neuron table at the pinned version (through the datastack layer's ingestion; cached
unless the caller asks for no cache, as `analyze` does by default). 2. Draw the samples (edits.sampling) and
fetch change logs for the sampled neurons only (all with `full`); a resumed run takes what the cache already
has. 3. Statistics, CIs, projection and deduplication per sample (edits.stats), cost (edits.cost): `compute`.
4. `write_edits`: per_neuron / operations / membership.parquet first, then figures/*.png, summary.json and
summary.md.

`analyse` is steps 3-4 on DataFrames, so tests and the bench can feed it without a server.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from proofpilot.core.errors import DataError
from proofpilot.core.parquet import write_parquet
from proofpilot.datastack.client import CaveConnection
from proofpilot.datastack.ingest import Ingestion, resolve_table
from proofpilot.datastack.multiplicity import lookup_multiplicity
from proofpilot.datastack.records import DataPin
from proofpilot.datastack.source import DataSource
from proofpilot.edits.cost import DISTINCT, SEEDS_WAY, dedup_cost, sample_cost, sensitivity
from proofpilot.edits.hierarchical import fit_samples
from proofpilot.edits.markdown import render
from proofpilot.edits.reconcile import reconciliation_dict
from proofpilot.edits.records import CostBasis, CostReport, EditsConfig, EditsResult, EditSummary
from proofpilot.edits.resamples import DEFAULT_R, resample_sets, resample_validation
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


def compute(
    per_neuron: pd.DataFrame,
    membership: pd.DataFrame,
    operations: pd.DataFrame | None,
    pin: DataPin | dict,
    population: np.ndarray,
    samples: list[Sample],
    config: EditsConfig,
    n_table_rows: int | None = None,
    multiplicity: pd.DataFrame | None = None,
    resamples: list[list[Sample]] | None = None,
) -> EditsResult:
    """Statistics and cost of already-ingested rows, in memory (step 3 of the module docstring);
    `multiplicity` (operation_id, m) adds the distinct-operation counts, the primary cost's basis."""
    pin_dict = pin.to_dict() if isinstance(pin, DataPin) else dict(pin)
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
                multiplicity,
            )
        )
    summary = EditSummary(
        datastack=config.datastack,
        version=pin_dict.get("materialization_version"),
        pin=pin_dict,
        population=_population(pin_dict, n_pop, n_table_rows),
        samples=tuple(r.stats for r in results),
        cost=cost_report(results, config.cost),
        config=config,
        model=fit_samples(per_neuron, samples, n_pop, config) if config.model else (),
        resamples=resample_validation(per_neuron, resamples, n_pop, config.ci_level) if resamples else None,
    )
    return EditsResult(summary, _sample_columns(per_neuron, samples), operations, membership)


def _population(pin: dict, n_pop: int, n_table_rows: int | None) -> dict:
    return {
        "table": pin.get("table"),
        "n_neurons": n_pop,
        "n_table_rows": n_table_rows if n_table_rows is not None else n_pop,
        "n_duplicate_roots": (n_table_rows - n_pop) if n_table_rows is not None else 0,
    }


def cost_report(results: list[SampleResult], basis: CostBasis) -> CostReport:
    """Primary cost: the largest sample (or the census) on distinct operations where the multiplicities are
    known, with its per-neuron-sum cost (the seed's way) beside it; else on per-neuron sums."""
    primary = results[-1]  # the census if there is one, else the largest sample
    per_sample = tuple(sample_cost(r.stats.label, r.intervals, basis) for r in results)
    seeds_way = replace(per_sample[-1], counts_basis=SEEDS_WAY)
    distinct = (
        None
        if primary.distinct is None
        else sample_cost(primary.stats.label, primary.distinct.intervals, basis, DISTINCT)
    )
    return CostReport(
        basis=basis,
        primary=distinct or per_sample[-1],
        deduplicated=dedup_cost(primary.stats.label, primary.stats.dedup, basis),
        per_sample=per_sample,
        sensitivity=sensitivity(primary.intervals, basis),
        per_neuron_sums=seeds_way if distinct is not None else None,
    )


def write_edits(
    result: EditsResult,
    out_dir: str | os.PathLike,
    *,
    figures: bool = True,
    compare_dirs: Sequence[Path] = (),
) -> EditSummary:
    """Write a result: per_neuron / membership / operations.parquet (the data pin in each file's metadata),
    figures/*.png (with the `compare_dirs` outputs drawn next to it), summary.json and summary.md."""
    out = prepare_out_dir(Path(out_dir))
    summary = replace(result.summary, out_dir=out, files=())
    pin = summary.pin
    files = [
        write_parquet(result.per_neuron, out / "per_neuron.parquet", pin),
        write_parquet(result.membership, out / "membership.parquet", pin),
    ]
    if result.operations is not None:
        files.append(write_parquet(result.operations, out / "operations.parquet", pin))
    summary = replace(summary, files=tuple(files))
    if figures:
        # lazy: figures import matplotlib; --no-figures never loads it
        from proofpilot.edits.figures import dataset_view, load_dataset, make_figures

        views = [dataset_view(summary_dict(summary), result.per_neuron)]
        views += [load_dataset(Path(d)) for d in compare_dirs]
        summary = replace(summary, files=summary.files + tuple(make_figures(views, out / "figures")))
    data = summary_dict(summary)
    data["files"] += ["summary.json", "summary.md"]
    data["reconciliation"] = reconciliation_dict(data)
    write_json(data, out / "summary.json")
    md = out / "summary.md"
    md.write_text(render(data))
    return replace(summary, files=(*summary.files, out / "summary.json", md))


def analyse(
    per_neuron: pd.DataFrame,
    membership: pd.DataFrame,
    operations: pd.DataFrame | None,
    pin: DataPin | dict,
    population: np.ndarray,
    samples: list[Sample],
    config: EditsConfig,
    n_table_rows: int | None = None,
    resamples: list[list[Sample]] | None = None,
) -> EditSummary:
    """`compute` then `write_edits` into `config.out_dir` (steps 3-4 of the module docstring); `resamples`:
    the R independent sample sets of the sample-size validation (`resample_sets`)."""
    if config.out_dir is None:
        raise DataError("no output folder to write the edit analysis to")
    prepare_out_dir(config.out_dir)
    result = compute(
        per_neuron, membership, operations, pin, population, samples, config, n_table_rows,
        resamples=resamples,
    )  # fmt: skip
    return write_edits(result, config.out_dir, figures=config.figures, compare_dirs=config.compare_dirs)


def measure(config: EditsConfig) -> EditsResult:
    """Fetch the sampled neurons' change logs from `config.source` (cached per the source) and compute."""

    source = config.source
    table = resolve_table(source.datastack, source.table)
    options = source.ingest_options(
        workers=config.workers, batch_size=config.batch_size, progress=config.progress
    )
    ingestion = Ingestion(CaveConnection(source.client_settings()), options)
    try:
        table_rows = ingestion.table_roots(table)
        population = population_root_ids(table_rows)
        samples = draw_samples(population, config.sample_sizes, config.seed, config.nested, config.full)
        sets = resample_sets(population, config.sample_sizes, config.seed, config.resamples)
        needed = union_root_ids(samples + [s for group in sets for s in group])
        log.info("%d proofread neurons; fetching the logs of %d sampled ones", len(population), len(needed))
        fetched = ingestion.run(table, needed.tolist())
        multiplicity = operation_multiplicity(ingestion, fetched.operations, population)
    finally:
        ingestion.close()
    return compute(
        fetched.per_neuron,
        fetched.membership,
        fetched.operations,
        fetched.pin,
        population,
        samples,
        config,
        n_table_rows=len(table_rows),
        multiplicity=multiplicity,
        resamples=sets,
    )


def operation_multiplicity(
    ingestion: Ingestion, operations: pd.DataFrame | None, table_roots: np.ndarray
) -> pd.DataFrame | None:
    """m per sampled operation (datastack.multiplicity); None (per-neuron sums only) where not to be had."""
    if ingestion.rows is None or operations is None or "after_root_ids" not in operations:
        return None
    try:
        return lookup_multiplicity(ingestion, ingestion.rows, operations, table_roots.tolist()).frame
    except DataError as exc:
        log.warning("no distinct-operation counts (the cost falls back to per-neuron sums): %s", exc)
        return None


def run_edits(config: EditsConfig) -> EditSummary:
    """Fetch (sampled neurons only, cached) and analyse one datastack's proofread neurons; write the files."""
    if config.out_dir is None:
        raise DataError("no output folder to write the edit analysis to")
    prepare_out_dir(config.out_dir)  # a bad folder fails before anything is fetched
    result = measure(config)
    return write_edits(result, config.out_dir, figures=config.figures, compare_dirs=config.compare_dirs)


def analyze(
    client,
    *,
    table: str | None = None,
    sample_sizes: tuple[int, ...] = (100, 500),
    seed: int = 0,
    full: bool = False,
    nested: bool = False,
    n_bootstrap: int = 1000,
    ci_level: float = 0.95,
    cost: CostBasis | None = None,
    workers: int = 2,
    batch_size: int = 50,
    retries: int = 3,
    cache_dir: Path | None = None,
    progress: bool = False,
    resamples: int = DEFAULT_R,
) -> EditsResult:
    """Edit statistics of a sample of proofread neurons, read through your own `caveclient.CAVEclient`.

    Pinned to the client's materialization version (the latest when it has none); the client itself is
    not changed. Writes nothing (no response cache unless `cache_dir` is given); `write_edits(result,
    out_dir)` writes the files `proofpilot edits` writes.

    >>> import caveclient
    >>> from proofpilot.datastack.embedded.server import start_server
    >>> from proofpilot.edits import analyze
    >>> with start_server("minnie65_synthetic") as server:
    ...     client = caveclient.CAVEclient(
    ...         "minnie65_synthetic", server_address=server.url, auth_token="local", write_server_cache=False
    ...     )
    ...     result = analyze(client, sample_sizes=(20,), resamples=0)  # 0: no Figure 1 resamples
    >>> sample = result.summary.samples[0]
    >>> sample.n, sample.n_ok, result.summary.population["n_neurons"]
    (20, 20, 2314)
    >>> int(result.per_neuron["in_n20"].sum()), result.summary.out_dir is None
    (20, True)
    """
    source = DataSource.from_client(
        client, table=table, cache_dir=cache_dir, use_cache=cache_dir is not None, retries=retries
    )
    config = EditsConfig(
        source=source, sample_sizes=tuple(sample_sizes), full=full, nested=nested, seed=seed,
        n_bootstrap=n_bootstrap, ci_level=ci_level, cost=cost or CostBasis(), workers=workers,
        batch_size=batch_size, progress=progress, figures=False, resamples=resamples,
    )  # fmt: skip
    return measure(config)
