"""A real Prometheus (Debian's /usr/bin/prometheus) for tests, and helpers to query it.

`run_prometheus(targets, workdir)` writes a temporary config (scrape_interval 1 s), starts
`prometheus --config.file --storage.tsdb.path --web.listen-address=127.0.0.1:PORT`, waits on `/-/ready`,
and stops it on exit. `evaluate_dashboard_queries(prom_url, exprs)` runs each expression through
`/api/v1/query` and returns the number of series each gave, so the end-to-end pilot test can reuse it
for the vLLM-side queries. Waiting is polling with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from proofpilot.telemetry.promql import expand

PROMETHEUS_BIN = shutil.which("prometheus") or "/usr/bin/prometheus"
T = TypeVar("T")


def prometheus_available() -> bool:
    return Path(PROMETHEUS_BIN).exists()


requires_prometheus = pytest.mark.skipif(
    not prometheus_available(), reason="Debian's prometheus is not installed (make deps installs it)"
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def poll(fn: Callable[[], T | None], timeout_s: float, what: str, every_s: float = 0.1) -> T:
    """Call `fn` until it returns something truthy; raise AssertionError naming `what` at the deadline."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while True:
        try:
            value = fn()
            if value:
                return value
        except (OSError, ValueError, KeyError) as exc:
            last_error = exc
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout_s:.0f} s waiting for {what} (last error: {last_error})"
            )
        time.sleep(every_s)  # polling interval, not a timing assumption


def _get_json(url: str, timeout_s: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:
        return json.loads(resp.read())


def query(prom_url: str, expr: str, at: float | None = None) -> list[dict[str, Any]]:
    """Instant query through /api/v1/query (now, or at Unix time `at`); the result vector."""
    params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
    url = f"{prom_url}/api/v1/query?" + urllib.parse.urlencode(params)
    try:
        body = _get_json(url)
    except urllib.error.HTTPError as exc:  # 400 = bad PromQL: say which expression
        raise AssertionError(f"Prometheus rejected {expr!r}: {exc.read().decode(errors='replace')}") from None
    if body.get("status") != "success":
        raise AssertionError(f"query {expr!r} failed: {body}")
    return body["data"]["result"]


def evaluate_dashboard_queries(
    prom_url: str, exprs: Iterable[str], rate_interval: str = "1m", at: float | None = None
) -> dict[str, int]:
    """{dashboard expression: number of series it returns now (or at `at`)}; `$__rate_interval` becomes
    `rate_interval`."""
    return {expr: len(query(prom_url, expand(expr, rate_interval), at)) for expr in exprs}


def last_up(prom_url: str, job: str, lookback: str = "10m") -> float | None:
    """Unix time of the last successful scrape of `job` (None if it was never up). After a target has stopped,
    instant queries at this time still see its series (they are stale afterwards)."""
    rows = query(prom_url, f'max_over_time(timestamp(up{{job="{job}"}} == 1)[{lookback}:1s])')
    return float(rows[0]["value"][1]) if rows else None


@dataclass
class PrometheusServer:
    url: str
    process: subprocess.Popen
    log_path: Path

    def targets_up(self) -> dict[str, str]:
        """{scrape URL: health} of the active targets."""
        data = _get_json(f"{self.url}/api/v1/targets")["data"]["activeTargets"]
        return {t["scrapeUrl"]: t["health"] for t in data}

    def wait_targets_up(self, timeout_s: float = 30.0) -> None:
        poll(lambda: (h := self.targets_up()) and all(v == "up" for v in h.values()), timeout_s, "targets up")

    def log_tail(self, n: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])


def _config(targets: dict[str, list[str]], scrape_interval: str) -> str:
    jobs = "".join(
        f"  - job_name: {job}\n    static_configs:\n      - targets: {json.dumps(hosts)}\n"
        for job, hosts in targets.items()
    )
    return (
        f"global:\n  scrape_interval: {scrape_interval}\n  evaluation_interval: {scrape_interval}\n"
        f"scrape_configs:\n{jobs}"
    )


@contextlib.contextmanager
def run_prometheus(
    targets: dict[str, list[str]], workdir: Path, scrape_interval: str = "1s", ready_timeout_s: float = 60.0,
    config_text: str | None = None,
) -> Iterator[PrometheusServer]:
    """Start Prometheus scraping {job: ["127.0.0.1:PORT", ...]} (or with `config_text` as its whole config,
    relative paths in it taken from `workdir`); yields once /-/ready answers 200."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(config_text if config_text is not None else _config(targets, scrape_interval))
    port = free_port()
    log_path = workdir / "prometheus.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                PROMETHEUS_BIN,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    server = PrometheusServer(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)
    try:

        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"prometheus exited with {process.returncode}:\n{server.log_tail()}")
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as resp:
                return resp.status == 200

        poll(ready, ready_timeout_s, "prometheus /-/ready")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[Callable[..., PrometheusServer]]:
    """`start({job: [host:port, ...]}, scrape_interval="1s")` -> a ready PrometheusServer (stopped after).

    Loaded through `pytest_plugins` in tests/conftest.py; skips (with the reason) without the binary.
    """
    with contextlib.ExitStack() as stack:
        started = 0

        def start(targets: dict[str, list[str]], scrape_interval: str = "1s") -> PrometheusServer:
            nonlocal started
            if not prometheus_available():
                pytest.skip("Debian's prometheus is not installed (make deps installs it)")
            started += 1
            return stack.enter_context(
                run_prometheus(targets, tmp_path / f"prometheus-{started}", scrape_interval)
            )

        yield start
