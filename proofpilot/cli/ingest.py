"""`proofpilot datastack ingest`: the proofread neurons' edit histories and the operation bank, as Parquet."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from proofpilot.cli.options import cave_fetch_options, data_source_options, open_source
from proofpilot.datastack.ingest import ingest as run_ingest
from proofpilot.datastack.ingest import read_roots_file, write_result
from proofpilot.datastack.source import DataSource

log = logging.getLogger(__name__)


@click.command("ingest")
@data_source_options
@click.option(
    "--roots",
    "roots_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Ingest the root ids in this file (one per line) instead of the table.",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N neurons.")
@click.option(
    "--no-details",
    is_flag=True,
    help="Skip operation details: counts and bank rows only (no interface points, splits keep one root).",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder: per_neuron/operations/membership.parquet, pin.json, summary.json.",
)
@cave_fetch_options
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress bars.")
def ingest_command(
    source: DataSource,
    roots_file: Path | None,
    limit: int | None,
    batch_size: int,
    workers: int,
    no_details: bool,
    out_dir: Path,
    progress: bool,
) -> None:
    """Fetch the edit histories of a datastack's proofread neurons and build the operation bank.

    Reads the proofread-neuron table at a pinned materialization version (or the given root ids), fetches
    each neuron's filtered tabular change log in batches and every operation's details in chunks, and writes
    one row per neuron (errors are rows with status=error and a reason, never 0 edits), one row per operation
    and the neuron-operation membership. The CAVE token comes from PROOFPILOT_CAVE_TOKEN / CAVE_TOKEN or
    caveclient's secret files and is never logged. An embedded profile (minnie65_synthetic, fafb_synthetic) is
    served in-process unless --server-address is given.
    """
    roots = tuple(read_roots_file(roots_file)) if roots_file is not None else None
    fetch = dict(root_ids=roots, limit=limit, batch_size=batch_size, workers=workers,
                 with_details=not no_details, progress=progress)  # fmt: skip
    source.ingest_options(**fetch)  # bad options fail before a server is started
    with open_source(source) as resolved:
        result = run_ingest(resolved.client_settings(), resolved.ingest_options(**fetch))
    paths = write_result(result, out_dir)
    s = result.stats
    click.echo(
        f"{s.n_ok} of {s.n_neurons} neurons ok, {s.n_error} errors, {s.n_operations} operations "
        f"({s.n_operations_without_details} without details); version {result.pin.materialization_version}; "
        f"wrote {paths['per_neuron'].parent}"
    )
