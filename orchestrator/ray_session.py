"""The Ray session of a pilot: start a local Ray or join a cluster (`--ray-address`); stop what it started.

- Local: `ray.init()` sized to the machine, no dashboard, worker logs not forwarded, usage stats off, a short
  temp dir outside $HOME (unix socket paths are limited to ~107 bytes).
- A cluster: the address is checked first (a TCP connect), since `ray.init` retries an address nobody answers
  at for minutes; the cluster is left running.
- An already running Ray (in this process) is reused and left running.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import ray

from proofpilot.core.errors import ConfigError, DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RayOptions:
    """How to reach Ray: `address=None` starts a local instance for this run."""

    address: str | None = None
    num_cpus: int | None = None  # local only; None = the machine's cores
    temp_dir: str | None = None  # local only; None = $PROOFPILOT_RAY_TMPDIR or pp-ray-<uid> in the temp dir


def default_temp_dir() -> str:
    """A short path (unix socket paths are limited to ~107 bytes) that is not under $HOME."""
    return os.environ.get("PROOFPILOT_RAY_TMPDIR") or os.path.join(
        tempfile.gettempdir(), f"pp-ray-{os.getuid()}"
    )


def check_ray_address(address: str, timeout_s: float = 10.0) -> None:
    """Fail fast, in one line, on a cluster address nobody answers at (`ray.init` retries it for minutes)."""
    if address == "auto" or "://" in address:
        return  # found by Ray itself / the Ray Client protocol
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--ray-address must be HOST:PORT (the head's GCS port) or 'auto', got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise DataError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def ray_session(options: RayOptions = RayOptions()) -> Iterator[bool]:
    """Make sure Ray is up for the block; yields True if this block started it (and will shut it down)."""
    if ray.is_initialized():
        yield False
        return
    kwargs: dict[str, Any] = {
        "log_to_driver": False,
        "configure_logging": True,
        "logging_level": logging.WARNING,
    }
    if options.address:
        check_ray_address(options.address)
        kwargs["address"] = options.address
    else:
        # Ray 2.60 turns token auth on for a new local instance (token in ~/.ray/auth_token) and says so
        # with a warning on every start; keep the auth, drop the warning
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a pilot sends nothing home
        # Ray runs workers at niceness 15; the actors are the pilot's request path, and at 15 any other busy
        # process on the node (vLLM's own API server, on a small node) starves them and the server's queue
        os.environ.setdefault("RAY_worker_niceness", "0")
        temp_dir = options.temp_dir or default_temp_dir()
        os.makedirs(temp_dir, exist_ok=True)
        kwargs.update(
            num_cpus=options.num_cpus or os.cpu_count() or 1,
            include_dashboard=False,
            _temp_dir=temp_dir,
        )
    started = time.perf_counter()
    try:
        ray.init(**kwargs)
    except ConnectionError as exc:
        raise DataError(f"cannot reach the Ray cluster at {options.address}: {exc}".splitlines()[0]) from None
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(f"cannot start Ray: {exc}".splitlines()[0]) from None
    log.info("Ray up in %.1f s (%s)", time.perf_counter() - started, options.address or "local")
    try:
        yield True
    finally:
        ray.shutdown()
