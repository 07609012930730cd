"""The command line: a thin shell that maps flags to library calls (`proofpilot --help`)."""

from proofpilot.cli.main import main

__all__ = ["main"]
