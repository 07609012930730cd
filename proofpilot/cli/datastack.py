"""`proofpilot datastack ...`: serve the embedded datastack; other datastack commands (ingest) load lazily."""

from __future__ import annotations

import importlib
import logging
import signal
import threading

import click

from proofpilot.cli.options import data_source_options, open_source
from proofpilot.datastack.embedded.faults import FaultConfig
from proofpilot.datastack.embedded.profiles import PROFILES, get_profile
from proofpilot.datastack.source import DataSource

logger = logging.getLogger(__name__)


# sub-commands owned by other modules of the stage: name -> "module:attribute", imported on first use
_LAZY_COMMANDS = {"ingest": "proofpilot.cli.ingest:ingest_command"}


class _DatastackGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        lazy = [name for name in _LAZY_COMMANDS if self._load(name) is not None]
        return sorted({*super().list_commands(ctx), *lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, cmd_name) or self._load(cmd_name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        if name not in _LAZY_COMMANDS:
            return None
        module_name, attr = _LAZY_COMMANDS[name].split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                return None  # not built yet
            raise
        return getattr(module, attr)


@click.group(cls=_DatastackGroup)
def datastack() -> None:
    """CAVE data: ingest edit histories, or serve the embedded synthetic datastack (a local CAVE server)."""


@datastack.command()
@click.option(
    "--profile",
    "profile_name",
    default="minnie65_synthetic",
    show_default=True,
    help=f"Embedded profile to serve (its datastack name): {', '.join(sorted(PROFILES))}.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="TCP port (0 = pick a free one and print it).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind. Keep the loopback default unless you know why not.",
)
@click.option(
    "--error-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of data requests answered with an HTTP 500.",
)
@click.option(
    "--latency",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    help="Seconds added to every data request.",
)
@click.option(
    "--timeout-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of data requests held for --timeout-hold seconds, then answered 504.",
)
@click.option(
    "--timeout-hold",
    type=click.FloatRange(0, 600),
    default=30.0,
    show_default=True,
    help="How long a 'timed out' request is held.",
)
@click.option(
    "--malformed-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of data requests answered 200 with a body that is not valid JSON/Arrow.",
)
@click.option(
    "--wrong-type-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help='Share of data requests answered 200 with valid JSON of the wrong type ("hello").',
)
@click.option("--fault-seed", type=int, default=0, show_default=True, help="Seed of the fault draws.")
@click.option(
    "--error-status",
    type=click.IntRange(400, 599),
    default=500,
    show_default=True,
    help="HTTP status of the --error-rate answers (e.g. 404).",
)
@click.option(
    "--fault-route",
    "fault_routes",
    multiple=True,
    metavar="NAME",
    help="Apply the faults to this route only (repeatable; route names as in the request counts).",
)
@click.option("--no-l2cache", is_flag=True, help="Serve a datastack without an L2 cache.")
def serve(
    profile_name: str,
    port: int,
    host: str,
    error_rate: float,
    latency: float,
    timeout_rate: float,
    timeout_hold: float,
    malformed_rate: float,
    wrong_type_rate: float,
    fault_seed: int,
    error_status: int,
    fault_routes: tuple[str, ...],
    no_l2cache: bool,
) -> None:
    """Run the embedded CAVE server in the foreground until Ctrl-C.

    caveclient talks to it unchanged: CAVEclient(PROFILE, server_address=URL, auth_token="any").
    Requests per route: GET URL/proofpilot/request_counts, and printed when it stops.
    """
    # lazy: the library loads pandas/caveclient/ray; keep `proofpilot --help` fast
    from proofpilot.datastack.embedded.server import start_server

    profile = get_profile(profile_name)
    faults = FaultConfig(
        error_rate=error_rate,
        latency_s=latency,
        timeout_rate=timeout_rate,
        timeout_hold_s=timeout_hold,
        malformed_rate=malformed_rate,
        wrong_type_rate=wrong_type_rate,
        seed=fault_seed,
        error_status=error_status,
        routes=fault_routes or None,
        no_l2cache=no_l2cache,
    )
    if host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning("binding the embedded server to non-loopback address %s", host)
    server = start_server(profile.name, host=host, port=port, faults=faults)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        click.echo(f"embedded datastack {profile.name} ({profile.imitates}) serving at {server.url}")
        click.echo(
            f"  CAVEclient({profile.name!r}, server_address={server.url!r}, auth_token='any', "
            "write_server_cache=False)"
        )
        click.echo("press Ctrl-C to stop")
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.stop()
    counts = ", ".join(f"{name} {n}" for name, n in sorted(server.request_counts.items())) or "none"
    click.echo(f"stopped; requests per route: {counts}")


@datastack.command("check")
@data_source_options(pin=False, fetch=False, timeout_flag=None)
def check(source: DataSource) -> None:
    """Check that a datastack offers what a pilot reads (token accepted, chunkedgraph and its version, L2
    cache for its table, a graphene segmentation); one line naming what is missing, exit 1. Fetches no
    edit history; every request has a deadline. run_pilot.sh runs it before it starts vLLM."""
    # lazy: the library loads pandas/caveclient; keep `proofpilot --help` fast
    from proofpilot.datastack.launch import check_datastack
    from proofpilot.pilot.serve import with_embedded_defaults

    with open_source(source) as resolved:
        report = check_datastack(with_embedded_defaults(resolved).client_settings())
    versions = ", ".join(f"{k} {v}" for k, v in sorted(report.server_versions.items()))
    click.echo(
        f"datastack {report.datastack} on {report.server_address}: ready ({versions}; L2 cache for "
        f"{report.pcg_table}; segmentation {report.segmentation_source})"
    )
