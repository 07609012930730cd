"""Click options shared by every command that fetches from CAVE (ingest, edits)."""

from __future__ import annotations

from collections.abc import Callable

import click


def cave_fetch_options(command: Callable) -> Callable:
    """Add --batch-size, --workers and --retries (parameters batch_size, workers, retries)."""
    options = [
        click.option("--batch-size", type=click.IntRange(1, 1000), default=50, show_default=True,
                     help="Root ids per change-log call."),
        click.option("--workers", type=click.IntRange(1, 32), default=2, show_default=True,
                     help="Concurrent requests (one client each)."),
        click.option("--retries", type=click.IntRange(0, 20), default=3, show_default=True,
                     help="Retries per call on 429/5xx, dropped connections, timeouts (with backoff)."),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command
