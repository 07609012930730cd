"""Scrape vLLM's /metrics over a run window: a snapshot at the start, one every `interval_s` in a background
thread, and one at the end; saved with the run as JSON.

Names are vLLM 0.32's (docs/serving.md "Metrics"). Each snapshot keeps the handful of series the cost
accounting needs (queue gauges, request and token counters, summed over labels); the first and last snapshot
keep every `vllm:` counter, so the window's counter deltas can be reported in full.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from prometheus_client.parser import text_string_to_metric_families

from proofpilot.core.atomic import write_text_atomic
from proofpilot.core.errors import DataError

log = logging.getLogger(__name__)

# snapshot field -> vLLM sample name (without prefix); values are summed over all label sets
KEY_SERIES: dict[str, str] = {
    "running": "num_requests_running",
    "waiting": "num_requests_waiting",
    "kv_cache_usage": "kv_cache_usage_perc",
    "requests": "request_success_total",
    "prompt_tokens": "prompt_tokens_total",
    "generation_tokens": "generation_tokens_total",
    "inference_seconds": "request_inference_time_seconds_sum",
    "e2e_seconds": "e2e_request_latency_seconds_sum",
}
_COUNTER_SUFFIXES = ("_total", "_sum", "_count")


def metrics_url_for(llm_url: str) -> str:
    """The /metrics URL of an OpenAI-compatible base URL such as http://gpu-node:8000/v1."""
    parts = urlsplit(llm_url)
    if not parts.scheme or not parts.netloc:
        raise DataError(f"not an http(s) URL: {llm_url!r}")
    return urlunsplit((parts.scheme, parts.netloc, "/metrics", "", ""))


def _render(name: str, labels: dict[str, str]) -> str:
    if not labels:
        return name
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def parse_metrics(text: str, prefix: str = "vllm:") -> dict[str, float]:
    """Every sample whose name starts with `prefix`, keyed `name{label="v",...}` (labels sorted)."""
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith(prefix) and not sample.name.endswith("_created"):
                samples[_render(sample.name, sample.labels)] = float(sample.value)
    return samples


def _sum_series(samples: dict[str, float], name: str) -> float:
    return sum(v for k, v in samples.items() if k == name or k.startswith(name + "{"))


@dataclass(frozen=True)
class Snapshot:
    """Key vLLM series at one moment; `t` is seconds since the window started (monotonic clock)."""

    t: float
    running: float
    waiting: float
    kv_cache_usage: float
    requests: float
    prompt_tokens: float
    generation_tokens: float
    inference_seconds: float
    e2e_seconds: float

    @property
    def queue_nonempty(self) -> bool:
        return self.running > 0 or self.waiting > 0


def _snapshot(t: float, samples: dict[str, float], prefix: str) -> Snapshot:
    return Snapshot(t=t, **{f: _sum_series(samples, prefix + n) for f, n in KEY_SERIES.items()})


def _delta(v0: float, v1: float) -> float:
    """Counter increase, Prometheus-style: a drop means the server restarted and counted from zero."""
    return v1 - v0 if v1 >= v0 else v1


@dataclass(frozen=True)
class Interval:
    """What one endpoint did between two consecutive snapshots."""

    seconds: float
    busy: bool  # queue non-empty at the interval's start (left-endpoint rule: unbiased busy time)
    requests: float
    prompt_tokens: float
    generation_tokens: float


@dataclass(frozen=True)
class EndpointWindow:
    """The scraped window of one vLLM endpoint (one serving node)."""

    metrics_url: str
    started_at: str
    snapshots: tuple[Snapshot, ...]
    counter_deltas: dict[str, float]
    scrape_errors: int = 0
    end_scraped: bool = True

    def intervals(self) -> list[Interval]:
        out = []
        for a, b in zip(self.snapshots, self.snapshots[1:], strict=False):
            out.append(
                Interval(
                    seconds=b.t - a.t,
                    busy=a.queue_nonempty,
                    requests=_delta(a.requests, b.requests),
                    prompt_tokens=_delta(a.prompt_tokens, b.prompt_tokens),
                    generation_tokens=_delta(a.generation_tokens, b.generation_tokens),
                )
            )
        return out

    @property
    def duration_s(self) -> float:
        return self.snapshots[-1].t - self.snapshots[0].t if self.snapshots else 0.0

    @property
    def busy_fraction(self) -> float:
        """Fraction of snapshots with a non-empty queue (num_requests_running > 0 or waiting > 0)."""
        return sum(s.queue_nonempty for s in self.snapshots) / len(self.snapshots) if self.snapshots else 0.0

    @property
    def saturated_fraction(self) -> float:
        """Fraction of snapshots with requests waiting (the server was at capacity)."""
        return sum(s.waiting > 0 for s in self.snapshots) / len(self.snapshots) if self.snapshots else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["busy_fraction"] = self.busy_fraction
        d["saturated_fraction"] = self.saturated_fraction
        d["duration_s"] = self.duration_s
        return d

    @classmethod
    def from_dict(cls, d: dict) -> EndpointWindow:
        return cls(
            metrics_url=d["metrics_url"],
            started_at=d["started_at"],
            snapshots=tuple(Snapshot(**s) for s in d["snapshots"]),
            counter_deltas=dict(d["counter_deltas"]),
            scrape_errors=int(d.get("scrape_errors", 0)),
            end_scraped=bool(d.get("end_scraped", True)),
        )


@dataclass(frozen=True)
class ScrapeWindow:
    """All endpoints' windows of one run."""

    interval_s: float
    endpoints: tuple[EndpointWindow, ...]

    def to_dict(self) -> dict:
        return {"interval_s": self.interval_s, "endpoints": [e.to_dict() for e in self.endpoints]}

    @classmethod
    def from_dict(cls, d: dict) -> ScrapeWindow:
        return cls(
            interval_s=d["interval_s"], endpoints=tuple(EndpointWindow.from_dict(e) for e in d["endpoints"])
        )

    def save(self, path: Path) -> Path:
        path = Path(path)
        write_text_atomic(path, json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, path: Path) -> ScrapeWindow:
        return cls.from_dict(json.loads(Path(path).read_text()))


@dataclass
class _EndpointState:
    url: str
    start_samples: dict[str, float]
    snapshots: list[Snapshot] = field(default_factory=list)
    errors: int = 0


class VllmScraper:
    """Background scraper of one or more vLLM /metrics endpoints. `start()`, run the load, `stop()` -> window.

    `on_snapshot(busy_node_seconds, completed_requests)` is called after every periodic scrape with the totals
    so far over all endpoints (e.g. to set the live node-seconds-per-decision gauge).
    """

    def __init__(
        self,
        metrics_urls: list[str],
        interval_s: float = 1.0,
        timeout_s: float = 5.0,
        prefix: str = "vllm:",
        on_snapshot: Callable[[float, float], None] | None = None,
    ):
        if not metrics_urls:
            raise DataError("no vLLM metrics URL to scrape")
        if interval_s <= 0:
            raise DataError(f"scrape interval must be positive, got {interval_s}")
        self.metrics_urls = list(metrics_urls)
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.prefix = prefix
        self.on_snapshot = on_snapshot
        self._states: list[_EndpointState] = []
        self._t0 = 0.0
        self._started_at = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _fetch(self, url: str) -> dict[str, float]:
        with urllib.request.urlopen(url, timeout=self.timeout_s) as resp:
            return parse_metrics(resp.read().decode("utf-8", "replace"), self.prefix)

    def start(self) -> VllmScraper:
        """First snapshot of every endpoint (a failure here is an error), then the periodic thread."""
        self._t0 = time.monotonic()
        self._started_at = datetime.now(UTC).isoformat(timespec="seconds")
        for url in self.metrics_urls:
            try:
                samples = self._fetch(url)
            except (OSError, urllib.error.URLError, ValueError) as exc:
                raise DataError(f"cannot read vLLM metrics at {url}: {exc}") from None
            if not any(k.startswith(self.prefix + "request_success_total") for k in samples):
                raise DataError(
                    f"{url} serves no {self.prefix}request_success_total: not a vLLM /metrics page?"
                )
            state = _EndpointState(url=url, start_samples=samples)
            state.snapshots.append(_snapshot(time.monotonic() - self._t0, samples, self.prefix))
            self._states.append(state)
        self._thread = threading.Thread(target=self._loop, name="vllm-scrape", daemon=True)
        self._thread.start()
        return self

    def _scrape_once(self, final: bool = False) -> list[dict[str, float] | None]:
        results: list[dict[str, float] | None] = []
        for state in self._states:
            try:
                samples = self._fetch(state.url)
            except (OSError, urllib.error.URLError, ValueError) as exc:
                state.errors += 1
                log.warning("scrape of %s failed%s: %s", state.url, " (final)" if final else "", exc)
                results.append(None)
                continue
            with self._lock:
                state.snapshots.append(_snapshot(time.monotonic() - self._t0, samples, self.prefix))
            results.append(samples)
        return results

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._scrape_once()
            if self.on_snapshot is not None:
                busy, done = self.totals()
                try:
                    self.on_snapshot(busy, done)
                except Exception:  # a broken callback must not stop the scrape
                    log.exception("on_snapshot callback failed")

    def totals(self) -> tuple[float, float]:
        """(busy node-seconds, completed requests) so far, summed over endpoints."""
        busy = done = 0.0
        with self._lock:
            for state in self._states:
                snaps = state.snapshots
                for a, b in itertools.pairwise(snaps):
                    busy += (b.t - a.t) if a.queue_nonempty else 0.0
                    done += _delta(a.requests, b.requests)
        return busy, done

    def stop(self) -> ScrapeWindow:
        """Stop the thread, take the final snapshot, return the window (a failed final scrape is noted)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_s * max(1, len(self._states)) + self.interval_s + 1)
        finals = self._scrape_once(final=True)
        endpoints = []
        for state, end in zip(self._states, finals, strict=True):
            deltas = {}
            if end is not None:
                for key, v1 in end.items():
                    base = key.split("{", 1)[0]
                    if base.endswith(_COUNTER_SUFFIXES):
                        deltas[key] = _delta(state.start_samples.get(key, 0.0), v1)
            endpoints.append(
                EndpointWindow(
                    metrics_url=state.url,
                    started_at=self._started_at,
                    snapshots=tuple(state.snapshots),
                    counter_deltas=deltas,
                    scrape_errors=state.errors,
                    end_scraped=end is not None,
                )
            )
        return ScrapeWindow(interval_s=self.interval_s, endpoints=tuple(endpoints))
