"""Click options shared by the commands that read CAVE data (`datastack ingest`, `edits`, `pilot`).

`data_source_options` declares the data-source flags once and hands the command one `source: DataSource`
parameter; `open_source(source)` yields the source to read, with an embedded server started (and its URL
printed) when the datastack is an embedded profile and no --server-address is given.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import click

from proofpilot.core.errors import ConfigError
from proofpilot.datastack.source import DataSource

log = logging.getLogger(__name__)

TIMESTAMP_FORMATS = ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d"]
_SOURCE_PARAMS = (
    "datastack", "server_address", "embedded", "mat_version", "timestamp", "table", "cache_dir", "no_cache",
    "write_server_cache", "retries", "read_timeout",
)  # fmt: skip


def _source_flags(pin: bool, fetch: bool, timeout_flag: str | None) -> list[Callable]:
    flags = [
        click.option("--datastack", required=True,
                     help="Datastack, e.g. minnie65_public, flywire_fafb_public, or an embedded profile "
                     "(minnie65_synthetic, fafb_synthetic: served in-process when no --server-address)."),
        click.option("--server-address", default=None, metavar="URL",
                     help="CAVE server (global/info service). Default: an embedded server for an embedded "
                     "profile, else caveclient's lookup (global.daf-apis.com)."),
        click.option("--embedded", is_flag=True, hidden=True,
                     help="Kept for old scripts: an embedded profile is served without it."),
        click.option("--table", default=None,
                     help="Proofread-neuron table (default: the datastack's known table)."),
    ]  # fmt: skip
    if pin:
        flags += [
            click.option("--version", "mat_version", type=int, default=None,
                         help="Materialization version to pin (default: the latest)."),
            click.option("--timestamp", type=click.DateTime(TIMESTAMP_FORMATS), default=None,
                         help="Pin to a UTC cutoff instead of a version (live query of the table)."),
        ]  # fmt: skip
    if fetch:
        flags += [
            click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                         help="Response cache (default: $PROOFPILOT_CACHE_DIR or ~/.cache/proofpilot); "
                         "reruns reuse it."),
            click.option("--no-cache", is_flag=True, help="Neither read nor write the response cache."),
            click.option("--write-server-cache/--no-write-server-cache", default=True, show_default=True,
                         help="Let caveclient remember the datastack->server mapping under ~/.cloudvolume."),
            click.option("--retries", type=click.IntRange(0, 20), default=3, show_default=True,
                         help="Retries per call on 429/5xx, dropped connections, timeouts (with backoff)."),
        ]  # fmt: skip
    if timeout_flag:
        flags.append(
            click.option(timeout_flag, "read_timeout", type=click.FloatRange(min=0.1), default=120.0,
                         show_default=True, help="CAVE read timeout per call, seconds.")
        )  # fmt: skip
    return flags


def source_from_options(
    datastack: str,
    server_address: str | None = None,
    embedded: bool = False,
    mat_version: int | None = None,
    timestamp: datetime | None = None,
    table: str | None = None,
    cache_dir: Path | None = None,
    no_cache: bool = False,
    write_server_cache: bool = True,
    retries: int = 3,
    read_timeout: float = 120.0,
) -> DataSource:
    """The `DataSource` the flags describe (flag names in the errors: this is the command line)."""
    if embedded:
        # lazy: the library loads pandas/caveclient/ray; keep `proofpilot --help` fast
        from proofpilot.datastack.embedded.profiles import get_profile

        if server_address:
            raise ConfigError("--embedded and --server-address are mutually exclusive")
        get_profile(datastack)  # ConfigError naming the profiles
    if mat_version is not None and timestamp is not None:
        raise ConfigError("--version and --timestamp are mutually exclusive")
    return DataSource(
        datastack=datastack, server_address=server_address, version=mat_version, timestamp=timestamp,
        table=table, cache_dir=cache_dir, use_cache=not no_cache, write_server_cache=write_server_cache,
        retries=retries, read_timeout_s=read_timeout,
    )  # fmt: skip


def data_source_options(
    command: Callable | None = None,
    *,
    pin: bool = True,
    fetch: bool = True,
    timeout_flag: str | None = "--timeout",
) -> Callable:
    """Add the data-source flags and pass the command one `source: DataSource` instead of them.

    --datastack, --server-address, --table (and the hidden, compatible --embedded) always; `pin`:
    --version, --timestamp; `fetch`: --cache-dir, --no-cache, --[no-]write-server-cache, --retries;
    `timeout_flag`: the read-timeout flag's name (None: none)."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(**kwargs):
            given = {name: kwargs.pop(name) for name in _SOURCE_PARAMS if name in kwargs}
            return fn(source=source_from_options(**given), **kwargs)

        for option in reversed(_source_flags(pin, fetch, timeout_flag)):
            wrapper = option(wrapper)
        return wrapper

    return decorate if command is None else decorate(command)


@contextlib.contextmanager
def open_source(source: DataSource) -> Iterator[DataSource]:
    """The source to read for the block; an embedded server is started for an embedded profile without a
    server address, and its URL printed."""
    # lazy: the library loads pandas/caveclient/ray; keep `proofpilot --help` fast
    from proofpilot.pilot.serve import served

    with served(source) as resolved:
        if resolved.server_address != source.server_address:
            click.echo(f"embedded CAVE server for {source.datastack} at {resolved.server_address}")
        yield resolved


def cave_fetch_options(command: Callable) -> Callable:
    """Add --batch-size and --workers (parameters batch_size, workers)."""
    options = [
        click.option("--batch-size", type=click.IntRange(1, 1000), default=50, show_default=True,
                     help="Root ids per change-log call."),
        click.option("--workers", type=click.IntRange(1, 32), default=2, show_default=True,
                     help="Concurrent requests (one client each)."),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command
