"""The `proofpilot` command: a thin shell over the library functions of each stage.

Each stage owns its click commands in its own `cli` module; they are imported lazily so that
`proofpilot --help` stays fast and a missing optional stage never breaks the others.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from proofpilot.core.errors import ProofpilotError
from proofpilot.core.redact import install_log_filter, redact

# command name -> "module:attribute" of a click command or group
_COMMANDS: dict[str, str] = {
    "datastack": "proofpilot.cli.datastack:datastack",
    "edits": "proofpilot.cli.edits:edits",
    "agent": "proofpilot.cli.agent:agent",
    "pilot": "proofpilot.cli.pilot:pilot",
    "capacity": "proofpilot.cli.capacity:capacity",
    "export-prompts": "proofpilot.cli.replay:export_prompts",
    "eval": "proofpilot.cli.eval:eval_cmd",
    "report": "proofpilot.cli.report:report",
    "demo": "proofpilot.cli.demo:demo",
}


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in _COMMANDS if self._load(name) is not None)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        if name not in _COMMANDS:
            return None
        target = _COMMANDS[name]
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                return None  # stage not built yet
            raise
        return getattr(module, attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.version_option(package_name="proofpilot")
def cli(verbose: int) -> None:
    """proofpilot: measure what AI proofreading of a connectome would cost.

    Reads CAVE edit histories (real CAVE or the embedded datastack), turns each merge and split
    into decisions for an agent served by vLLM, dispatches them with Ray, times every decision
    with Prometheus, scores the agent against the human proofreaders and checks the cost model.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_filter()  # last line of defence: no secret reaches a log handler, whatever the source


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors become one line on stderr and a non-zero exit."""
    try:
        cli.main(args=argv, prog_name="proofpilot", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("proofpilot: interrupted", err=True)
        return 130
    except click.ClickException as exc:
        click.echo(redact(f"proofpilot: error: {exc.format_message()}"), err=True)
        return exc.exit_code
    except ProofpilotError as exc:
        click.echo(redact(f"proofpilot: error: {exc}"), err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("proofpilot: interrupted", err=True)
        return 130
    except Exception as exc:  # last resort: still one line, details only in debug logs
        logging.getLogger("proofpilot").debug("unhandled error", exc_info=True)
        click.echo(redact(f"proofpilot: error: {type(exc).__name__}: {exc}".splitlines()[0]), err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
