"""Bounded reads for CAVE requests: an overall deadline per HTTP attempt and a cap on the response size.

requests' read timeout bounds only the gap between two socket reads, so a server that drips a byte every half
second never times out, and a 300 MB body is held in memory whole before anything can fail. The hardened
adapter therefore sends with ``stream=True`` and reads the body here in chunks of at most `CHUNK` bytes
(`read1`: one socket read each), with the socket timeout shrunk to the time left before each read, then sets
``response._content``. An attempt starts when it is sent, or when urllib3's retry backoff for it ends
(`AttemptClock`), so retries keep their own budget.
"""

from __future__ import annotations

import contextlib
import threading
import time

import requests
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError
from urllib3.util.retry import Retry

CHUNK = 64 * 2**10
DEFAULT_MAX_RESPONSE_BYTES = 64 * 2**20

_attempt = threading.local()


class TransportLimit(requests.RequestException):
    """A bound of ours was hit; the message is the whole reason ("deadline 3 s exceeded")."""


class DeadlineExceeded(TransportLimit, requests.Timeout):
    pass


class ResponseTooLarge(TransportLimit):
    pass


def mark_attempt() -> None:
    """Note that an HTTP attempt starts now (in this thread)."""
    _attempt.started = time.monotonic()


def attempt_started(default: float) -> float:
    return max(getattr(_attempt, "started", default), default)


class AttemptClock(Retry):
    """A urllib3 Retry that marks the start of each retry attempt, after its backoff sleep."""

    def sleep(self, response=None) -> None:  # type: ignore[override]
        super().sleep(response)
        mark_attempt()

    def sleep_for_retry(self, response) -> bool:  # type: ignore[override]
        slept = super().sleep_for_retry(response)
        mark_attempt()
        return slept


def _mib(n: int) -> str:
    return f"{n / 2**20:g} MiB"


def _set_socket_timeout(response: requests.Response, seconds: float) -> None:
    conn = getattr(response.raw, "connection", None)
    sock = getattr(conn, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.settimeout(max(seconds, 0.001))


def read_body(response: requests.Response, deadline: float, deadline_s: float, max_bytes: int) -> None:
    """Read a streamed body into ``response._content`` by `deadline` (time.monotonic) and within `max_bytes`.

    Raises DeadlineExceeded / ResponseTooLarge (or requests' own errors for a broken body) after closing the
    connection, so that nothing past the cap plus one chunk is ever read."""
    try:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise ResponseTooLarge(f"response over {_mib(max_bytes)} ({_mib(int(declared))} declared)")
        chunks: list[bytes] = []
        size = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeadlineExceeded(f"deadline {deadline_s:g} s exceeded")
            _set_socket_timeout(response, remaining)
            try:
                chunk = response.raw.read1(CHUNK, decode_content=True)
            except (ReadTimeoutError, TimeoutError) as exc:
                if time.monotonic() >= deadline:
                    raise DeadlineExceeded(f"deadline {deadline_s:g} s exceeded") from None
                raise requests.ConnectionError(f"read timed out: {exc}") from None
            except ProtocolError as exc:
                raise requests.exceptions.ChunkedEncodingError(exc) from None
            except DecodeError as exc:
                raise requests.exceptions.ContentDecodingError(exc) from None
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise ResponseTooLarge(f"response over {_mib(max_bytes)}")
            chunks.append(chunk)
    except BaseException:
        response.raw.close()
        response.close()
        raise
    response._content = b"".join(chunks)
    response._content_consumed = True
    response.raw.release_conn()
