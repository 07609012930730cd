"""Fault injection for the embedded CAVE server: errors, added latency, held requests (timeouts), malformed
bodies, bodies dripped a byte at a time, oversized bodies, error bodies that echo the request's token (as
some proxies do), and well-formed JSON of the wrong type (`"hello"` where an object or a list belongs).

Decisions are deterministic given the seed: a request's fault is a hash of (seed, route, request content,
attempt number of that same request), so a run with one client sees the same faults every time, and retries of
a failed request draw again (unless `sticky`, where a request fails the same way on every attempt). Faults
apply to the data routes (change logs, operation details, lineage, queries, ...) and to the bootstrap/info
routes only when `include_bootstrap` is set; `routes` narrows them to the named routes."""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from proofpilot.core.errors import ConfigError

FaultKind = Literal["none", "error", "timeout", "malformed", "wrong_type"]
WRONG_TYPE_BODY = b'"hello"'  # valid JSON, a string: what a confused proxy or server might send


@dataclass(frozen=True)
class FaultConfig:
    error_rate: float = 0.0  # share of requests answered with `error_status`
    latency_s: float = 0.0  # added to every affected request
    timeout_rate: float = 0.0  # share of requests held for `timeout_hold_s`, then answered 504
    malformed_rate: float = 0.0  # share answered 200 with a body that is not valid JSON / Arrow
    wrong_type_rate: float = 0.0  # share answered 200 with valid JSON of the wrong type (WRONG_TYPE_BODY)
    seed: int = 0
    routes: tuple[str, ...] | None = None  # route names (EmbeddedServer.ROUTE_NAMES); None = every data route
    error_status: int = 500  # 500 is not retried by caveclient; 502/503/504 are (urllib3 status_forcelist)
    timeout_hold_s: float = (
        30.0  # how long a "timeout" request is held (bounded; the server thread then ends)
    )
    sticky: bool = False  # the same request gets the same fault on every attempt
    include_bootstrap: bool = False  # also apply to /info, version and metadata routes
    echo_token: bool = False  # error bodies quote the request's Authorization header and token
    drip_s: float = 0.0  # > 0: every affected answer's body is sent one byte per `drip_s` seconds
    oversize_bytes: int = 0  # > 0: every affected answer is a 200 body of this many bytes, no Content-Length
    no_l2cache: bool = False  # a datastack without an L2 cache: table_mapping omits its table, the rest 404s

    def __post_init__(self) -> None:
        for name in ("error_rate", "timeout_rate", "malformed_rate", "wrong_type_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must lie in [0, 1], got {value}")
        if self.error_rate + self.timeout_rate + self.malformed_rate + self.wrong_type_rate > 1.0:
            raise ConfigError("the fault rates (error + timeout + malformed + wrong type) must not exceed 1")
        if self.latency_s < 0 or not 0 <= self.timeout_hold_s <= 600:
            raise ConfigError("latency_s must be >= 0 and timeout_hold_s within [0, 600] s")
        if self.drip_s < 0 or self.oversize_bytes < 0:
            raise ConfigError("drip_s and oversize_bytes must be >= 0")
        if not 400 <= self.error_status <= 599:
            raise ConfigError(f"error_status must be an HTTP error status, got {self.error_status}")

    @property
    def active(self) -> bool:
        return bool(
            self.error_rate
            or self.latency_s
            or self.timeout_rate
            or self.malformed_rate
            or self.drip_s
            or self.oversize_bytes
            or self.wrong_type_rate
        )


@dataclass(frozen=True)
class FaultDecision:
    kind: FaultKind
    latency_s: float
    drip_s: float = 0.0  # send the body a byte at a time, this many seconds apart
    oversize_bytes: int = 0  # answer with this many bytes instead


NO_FAULT = FaultDecision("none", 0.0)


class FaultInjector:
    """Draws the fault of each request from a FaultConfig."""

    def __init__(self, config: FaultConfig | None = None):
        self.config = config or FaultConfig()
        self._attempts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.injected: Counter[str] = Counter()  # fault kind -> how many were injected

    def decide(self, route: str, request_key: bytes, bootstrap: bool) -> FaultDecision:
        cfg = self.config
        if not cfg.active or (bootstrap and not cfg.include_bootstrap):
            return NO_FAULT
        if cfg.routes is not None and route not in cfg.routes:
            return NO_FAULT
        digest = hashlib.blake2b(
            request_key, digest_size=16, key=f"{cfg.seed}|{route}".encode()[:64]
        ).hexdigest()
        with self._lock:
            attempt = 0 if cfg.sticky else self._attempts[digest]
            self._attempts[digest] += 1
        u = int(hashlib.blake2b(f"{digest}|{attempt}".encode(), digest_size=8).hexdigest(), 16) / 2**64
        kind: FaultKind = "none"
        if u < cfg.error_rate:
            kind = "error"
        elif u < cfg.error_rate + cfg.timeout_rate:
            kind = "timeout"
        elif u < cfg.error_rate + cfg.timeout_rate + cfg.malformed_rate:
            kind = "malformed"
        elif u < cfg.error_rate + cfg.timeout_rate + cfg.malformed_rate + cfg.wrong_type_rate:
            kind = "wrong_type"
        with self._lock:
            if kind != "none":
                self.injected[kind] += 1
            if cfg.drip_s:
                self.injected["drip"] += 1
            if cfg.oversize_bytes:
                self.injected["oversize"] += 1
        return FaultDecision(kind, cfg.latency_s, cfg.drip_s, cfg.oversize_bytes)
