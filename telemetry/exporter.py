"""The pilot's /metrics HTTP server, and a last scrape before it goes away.

A run that ends between two Prometheus scrapes would lose its final counts: the exporter stops with the run,
so Prometheus's last sample holds the totals of up to one scrape interval earlier. `ExporterHandle` therefore
notes when it is scraped; `wait_for_final_scrape()` waits (on a condition, no polling) for one scrape that
starts after the call, bounded by the scrape interval it has observed. An exporter nobody scrapes returns at
once.

    handle = serve_registry(registry, port=9464)
    ...                               # the run
    handle.wait_for_final_scrape()    # after a normal end, not after Ctrl-C
    handle.shutdown()
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, start_http_server

from proofpilot.core.errors import ConfigError

log = logging.getLogger(__name__)

MAX_FINAL_SCRAPE_WAIT_S = 65.0  # one default Prometheus scrape interval (1 m) plus slack


class ScrapeLog:
    """Thread-safe record of when /metrics was requested (monotonic seconds)."""

    def __init__(self) -> None:
        self._times: list[float] = []
        self._changed = threading.Condition()

    def note(self, at: float | None = None) -> None:
        with self._changed:
            self._times.append(time.monotonic() if at is None else at)
            self._changed.notify_all()

    @property
    def count(self) -> int:
        with self._changed:
            return len(self._times)

    def interval_s(self) -> float | None:
        """Median time between scrapes; None before the second scrape."""
        with self._changed:
            gaps = [b - a for a, b in zip(self._times, self._times[1:], strict=False)]
        return statistics.median(gaps) if gaps else None

    def wait_for_scrape_after(self, since: float, timeout_s: float) -> bool:
        """Block until a scrape at or after `since` (monotonic) is noted, or `timeout_s` passes."""
        with self._changed:
            return self._changed.wait_for(lambda: bool(self._times) and self._times[-1] >= since, timeout_s)


def _counting(app: Callable, scrapes: ScrapeLog) -> Callable:
    """WSGI middleware: note every request for the metrics page before serving it."""

    def counted(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "/") != "/favicon.ico":
            scrapes.note()
        return app(environ, start_response)

    return counted


@dataclass(frozen=True)
class ExporterHandle:
    """A running /metrics HTTP server; `shutdown()` stops it and frees the port."""

    host: str
    port: int
    _server: object
    _thread: threading.Thread
    scrapes: ScrapeLog = field(default_factory=ScrapeLog)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def wait_for_final_scrape(self, max_wait_s: float = MAX_FINAL_SCRAPE_WAIT_S) -> bool:
        """Wait for one scrape that starts now or later, so a scraper holds the final values.

        Bounded by 1.5 × the observed scrape interval + 1 s (and `max_wait_s`); returns False at once when
        the exporter has been scraped fewer than twice (no scraper, or its interval is unknown)."""
        interval = self.scrapes.interval_s()
        if interval is None:
            return False
        timeout = min(max_wait_s, 1.5 * interval + 1.0)
        log.info("waiting up to %.1f s for a final scrape of %s", timeout, self.url)
        scraped = self.scrapes.wait_for_scrape_after(time.monotonic(), timeout)
        if not scraped:
            log.warning("no scrape of %s within %.1f s; final counts may be missed", self.url, timeout)
        return scraped

    def shutdown(self) -> None:
        self._server.shutdown()  # type: ignore[attr-defined]
        self._server.server_close()  # type: ignore[attr-defined]
        self._thread.join(timeout=5)


def serve_registry(registry: CollectorRegistry, port: int = 0, host: str = "127.0.0.1") -> ExporterHandle:
    """Serve `registry` at http://host:port/metrics with prometheus_client's server (port 0: any free)."""
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None
    scrapes = ScrapeLog()
    server.set_app(_counting(server.get_app(), scrapes))
    actual_port = server.server_address[1]
    log.info("metrics exporter on http://%s:%d/metrics", host, actual_port)
    return ExporterHandle(host=host, port=actual_port, _server=server, _thread=thread, scrapes=scrapes)
