"""Hardened requests sessions for caveclient: a default timeout, an overall deadline and a size cap per
attempt, urllib3 retries with backoff on 429/5xx, and observers told of every request (telemetry)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from proofpilot.datastack.transport import (
    DEFAULT_MAX_RESPONSE_BYTES,
    AttemptClock,
    attempt_started,
    mark_attempt,
    read_body,
)

if TYPE_CHECKING:
    from proofpilot.datastack.client import ClientSettings

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_API_VERSION = re.compile(r"v\d+")
RequestObserver = Callable[[str, str], None]
_observers: list[RequestObserver] = []
TimedRequestObserver = Callable[[str, str, float], None]
_timed_observers: list[TimedRequestObserver] = []


def add_request_observer(observer: RequestObserver) -> None:
    """Call `observer(endpoint, status)` after every CAVE request (status: HTTP code, or "error")."""
    _observers.append(observer)


def remove_request_observer(observer: RequestObserver) -> None:
    if observer in _observers:
        _observers.remove(observer)


def add_timed_request_observer(observer: TimedRequestObserver) -> None:
    """Call `observer(endpoint, status, seconds)` after every CAVE request (its wall time, body included)."""
    _timed_observers.append(observer)


def remove_timed_request_observer(observer: TimedRequestObserver) -> None:
    if observer in _timed_observers:
        _timed_observers.remove(observer)


def is_local(server_address: str | None) -> bool:
    """A server on this machine (an embedded datastack): caveclient must not remember it under ~/.cloudvolume,
    where it would outlive the server and redirect later lookups of that datastack name."""
    host = urlsplit(server_address or "").hostname or ""
    return host == "localhost" or host.startswith("127.") or host == "::1"


def endpoint_name(url: str) -> str:
    """A bounded label for a CAVE URL: the route's last word that is not an id or a version."""
    path = urlsplit(url).path.split("/")
    parts = [p for p in path if p and not p.isdigit() and not _API_VERSION.fullmatch(p)]
    return parts[-1] if parts else "root"


class TimeoutRetryAdapter(HTTPAdapter):
    """An HTTPAdapter with a default timeout for every request that sets none, an overall deadline per attempt
    and a body size cap (transport.read_body); it reports each request to the observers (telemetry)."""

    def __init__(
        self,
        timeout: tuple[float, float],
        retry: Retry,
        pool_maxsize: int = 10,
        deadline_s: float | None = None,
        max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self._timeout = timeout
        self._deadline_s = timeout[1] if deadline_s is None else deadline_s
        self._max_bytes = max_bytes
        super().__init__(max_retries=retry, pool_maxsize=pool_maxsize)

    def send(self, request, stream=False, timeout=None, **kwargs):  # type: ignore[override]
        status = "error"
        started = time.monotonic()
        mark_attempt()
        try:
            timeout = self._timeout if timeout is None else timeout
            response = super().send(request, stream=True, timeout=timeout, **kwargs)
            deadline = attempt_started(started) + self._deadline_s
            read_body(response, deadline, self._deadline_s, self._max_bytes)
            status = str(response.status_code)
            return response
        finally:
            for observer in list(_observers):
                observer(endpoint_name(request.url), status)
            for timed in list(_timed_observers):
                timed(endpoint_name(request.url), status, time.monotonic() - started)


def make_retry(settings: ClientSettings) -> Retry:
    return AttemptClock(
        total=settings.max_retries,
        backoff_factor=settings.backoff_factor,
        backoff_max=settings.backoff_max_s,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "POST"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )


def harden_session(session: requests.Session, settings: ClientSettings) -> None:
    """Mount the timeout + retry adapter on one caveclient subclient session."""
    adapter = TimeoutRetryAdapter(
        (settings.connect_timeout_s, settings.read_timeout_s),
        make_retry(settings),
        deadline_s=settings.deadline_s,
        max_bytes=settings.max_response_bytes,
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
