"""The Ray session of a pilot: start a local Ray or join a cluster (`--ray-address`); stop what it started.

- Local: `ray.init()` sized to the machine, no dashboard, worker logs not forwarded, usage stats off, a short
  temp dir outside $HOME (unix socket paths are limited to ~107 bytes) that only this user can enter (0700;
  Ray makes every dir it creates 0777, so its root is a subdir `r` of that one).
  Every listener of the instance (GCS, raylet, workers, the dashboard agent, the autoscaler monitor's and the
  agent's metrics) binds 127.0.0.1: Ray binds loopback only when the node's IP is loopback, and `ray.init`
  swaps a given 127.0.0.1 for the machine's reachable address unless clusters are off
  (`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`), so they are off while this process starts it. Ray's token file
  (token auth is on by default in 2.60) is written under umask 077 and kept at 0600.
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
from pathlib import Path
from typing import Any

import ray
from ray._private import ray_constants

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


LOOPBACK = "127.0.0.1"
_CLUSTER_ENV = ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR  # RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER


def private_dir(path: str) -> str:
    """Create `path` (mode 0700) or check an existing one is this user's and closed to others."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    info = os.stat(path)
    if info.st_uid != os.getuid():
        raise ConfigError(f"the Ray temp dir {path} belongs to another user; set PROOFPILOT_RAY_TMPDIR")
    if info.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def token_path() -> Path:
    """Where Ray keeps its auth token: $RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token."""
    return Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")


def _keep_private(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_uid == os.getuid() and path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)


@contextlib.contextmanager
def _loopback_private_start() -> Iterator[None]:
    """While a local Ray starts: node IP stays loopback (in this process and the ones it spawns), files are
    created closed to others (the token, the session dir, the object store)."""
    saved_env, saved_flag = os.environ.get(_CLUSTER_ENV), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[_CLUSTER_ENV] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    saved_umask = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(saved_umask)
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(_CLUSTER_ENV, None)
        else:
            os.environ[_CLUSTER_ENV] = saved_env


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
        temp_dir = private_dir(options.temp_dir or default_temp_dir())
        kwargs.update(
            num_cpus=options.num_cpus or os.cpu_count() or 1,
            include_dashboard=False,
            _node_ip_address=LOOPBACK,
            _temp_dir=os.path.join(temp_dir, "r"),
        )
    started = time.perf_counter()
    try:
        with contextlib.nullcontext() if options.address else _loopback_private_start():
            ray.init(**kwargs)
    except ConnectionError as exc:
        raise DataError(f"cannot reach the Ray cluster at {options.address}: {exc}".splitlines()[0]) from None
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(f"cannot start Ray: {exc}".splitlines()[0]) from None
    if not options.address:
        _keep_private(token_path())
    log.info("Ray up in %.1f s (%s)", time.perf_counter() - started, options.address or "local")
    try:
        yield True
    finally:
        ray.shutdown()
