"""`proofpilot datastack ...`: serve the embedded datastack; other datastack commands (ingest) load lazily."""

from __future__ import annotations

import importlib
import logging
import signal
import threading

import click

from proofpilot.datastack.embedded.faults import FaultConfig
from proofpilot.datastack.embedded.profiles import PROFILES, get_profile

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
) -> None:
    """Run the embedded CAVE server in the foreground until Ctrl-C.

    caveclient talks to it unchanged: CAVEclient(PROFILE, server_address=URL, auth_token="any").
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
    click.echo("stopped")
