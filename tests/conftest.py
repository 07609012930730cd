"""Test isolation: a private HOME and a loopback-only socket guard, set up before any project import; Ctrl-C
delivered as in a terminal.

caveclient, cloud-volume, navis/matplotlib, Ray and vLLM write under $HOME at import or start time
(docs/cave.md "HOME side effects"), so HOME and the per-library overrides point into a temp dir
before those libraries are imported. Any connect() to a non-loopback address raises.
"""

from __future__ import annotations

import os
import signal
import socket
import tempfile
from pathlib import Path

_REAL_HOME = os.environ.get("HOME", "")
_TEST_HOME = tempfile.mkdtemp(prefix="proofpilot-test-home-")
os.environ.update(
    HOME=_TEST_HOME,
    CLOUD_VOLUME_DIR=os.path.join(_TEST_HOME, ".cloudvolume"),
    CLOUD_FILES_LOCK_DIR=os.path.join(_TEST_HOME, ".cloudfiles-locks"),
    MPLCONFIGDIR=os.path.join(_TEST_HOME, ".mpl"),
    XDG_CACHE_HOME=os.path.join(_TEST_HOME, ".cache"),
    VLLM_CACHE_ROOT=os.path.join(_TEST_HOME, ".cache", "vllm"),
    RAY_USAGE_STATS_ENABLED="0",
    NO_PROXY="127.0.0.1,localhost",
    no_proxy="127.0.0.1,localhost",
    HF_HUB_OFFLINE="1",
    TRANSFORMERS_OFFLINE="1",
)
for _var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
    os.environ.pop(_var, None)

# A shell without job control starts a background job (`cmd &` in a script) with SIGINT ignored, and every
# child process inherits that; the Ctrl-C tests need SIGINT handled as in a terminal (a Python handler is
# reset to the default in exec'd children, so they get Python's KeyboardInterrupt again).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

_LOOPBACK_NAMES = {"localhost", "::1", "0:0:0:0:0:0:0:1"}
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_loopback(host: object) -> bool:
    if not isinstance(host, str):
        return False
    return host in _LOOPBACK_NAMES or host.startswith("127.")


def _check(sock: socket.socket, address: object) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0] if isinstance(address, tuple) else address
        if not _is_loopback(host):
            raise RuntimeError(f"non-loopback connect blocked in tests: {address!r}")


def _guarded_connect(sock: socket.socket, address: object):
    _check(sock, address)
    return _real_connect(sock, address)


def _guarded_connect_ex(sock: socket.socket, address: object):
    _check(sock, address)
    return _real_connect_ex(sock, address)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]

import pytest  # noqa: E402

# real vLLM CPU server; real Prometheus
pytest_plugins = ["support.vllm_fixtures", "support.prometheus_fixtures"]


@pytest.fixture(scope="session")
def test_home() -> Path:
    """The private HOME every test runs under."""
    return Path(_TEST_HOME)


@pytest.fixture(scope="session")
def real_home() -> Path | None:
    """The user's real HOME (only for asserting that nothing was written there)."""
    return Path(_REAL_HOME) if _REAL_HOME else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`--dist loadgroup`), keep every test of the shared vLLM server on one worker, so
    the run starts that server once; elsewhere the group marker does nothing."""
    for item in items:
        if item.get_closest_marker("vllm") is not None:
            item.add_marker(pytest.mark.xdist_group("vllm"))
        elif item.get_closest_marker("vllm_vl") is not None:  # the vision server: its own worker, once
            item.add_marker(pytest.mark.xdist_group("vllm_vl"))
