"""`proofpilot datastack ingest`: the proofread neurons' edit histories and the operation bank, as Parquet."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

import click

from proofpilot.cli.options import cave_fetch_options
from proofpilot.core.errors import ConfigError
from proofpilot.datastack.client import ClientSettings
from proofpilot.datastack.ingest import IngestOptions, read_roots_file, write_result
from proofpilot.datastack.ingest import ingest as run_ingest

log = logging.getLogger(__name__)


@click.command("ingest")
@click.option("--datastack", required=True, help="Datastack name, e.g. minnie65_public or fafb_synthetic.")
@click.option(
    "--server-address",
    default=None,
    metavar="URL",
    help="CAVE server (global/info service). Default: caveclient's lookup, else global.daf-apis.com.",
)
@click.option(
    "--version",
    "mat_version",
    type=int,
    default=None,
    help="Materialization version to pin (default: the latest).",
)
@click.option(
    "--timestamp",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d"]),
    default=None,
    help="Pin to a UTC cutoff instead of a version (live query of the table).",
)
@click.option("--table", default=None, help="Proofread-neuron table (default: the datastack's known table).")
@click.option(
    "--roots",
    "roots_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Ingest the root ids in this file (one per line) instead of the table.",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N neurons.")
@click.option(
    "--timeout",
    "read_timeout",
    type=click.FloatRange(min=0.1),
    default=120.0,
    show_default=True,
    help="Read timeout per call, seconds.",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="On-disk response cache (default: $PROOFPILOT_CACHE_DIR or ~/.cache/proofpilot).",
)
@click.option("--no-cache", is_flag=True, help="Neither read nor write the response cache.")
@click.option(
    "--no-details",
    is_flag=True,
    help="Skip operation details: counts and bank rows only (no interface points, splits keep one root).",
)
@click.option(
    "--write-server-cache/--no-write-server-cache",
    default=True,
    show_default=True,
    help="Let caveclient remember the datastack→server mapping under ~/.cloudvolume.",
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
    datastack: str,
    server_address: str | None,
    mat_version: int | None,
    timestamp: datetime | None,
    table: str | None,
    roots_file: Path | None,
    limit: int | None,
    batch_size: int,
    workers: int,
    read_timeout: float,
    retries: int,
    cache_dir: Path | None,
    no_cache: bool,
    no_details: bool,
    write_server_cache: bool,
    out_dir: Path,
    progress: bool,
) -> None:
    """Fetch the edit histories of a datastack's proofread neurons and build the operation bank.

    Reads the proofread-neuron table at a pinned materialization version (or the given root ids), fetches
    each neuron's filtered tabular change log in batches and every operation's details in chunks, and writes
    one row per neuron (errors are rows with status=error and a reason, never 0 edits), one row per operation
    and the neuron-operation membership. The CAVE token comes from PROOFPILOT_CAVE_TOKEN / CAVE_TOKEN or
    caveclient's secret files and is never logged.
    """
    if mat_version is not None and timestamp is not None:
        raise ConfigError("--version and --timestamp are mutually exclusive")
    roots = tuple(read_roots_file(roots_file)) if roots_file is not None else None
    settings = ClientSettings(
        datastack=datastack,
        server_address=server_address,
        version=mat_version,
        timestamp=timestamp,
        write_server_cache=write_server_cache,
        read_timeout_s=read_timeout,
        max_retries=retries,
    )
    options = IngestOptions(
        table=table,
        root_ids=roots,
        limit=limit,
        batch_size=batch_size,
        workers=workers,
        cache_dir=cache_dir,
        use_cache=not no_cache,
        with_details=not no_details,
        progress=progress,
    )
    result = run_ingest(settings, options)
    paths = write_result(result, out_dir)
    s = result.stats
    click.echo(
        f"{s.n_ok} of {s.n_neurons} neurons ok, {s.n_error} errors, {s.n_operations} operations "
        f"({s.n_operations_without_details} without details); version {result.pin.materialization_version}; "
        f"wrote {paths['per_neuron'].parent}"
    )
