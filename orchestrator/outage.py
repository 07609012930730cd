"""LLM endpoint outages during dispatch: which endpoints may be sent to, when a failing one is probed, and
when the session gives up.

A transport failure (connection refused, timeout, HTTP 5xx or 429, after the client's own retries) marks its
endpoint *down*: nothing new is sent to it. A watcher thread then probes it (GET `<base URL>/models`, the
OpenAI route every server here answers once it can serve) after a backoff that doubles with every failed
probe and every failed round since the endpoint last answered (`Backoff`, capped), waiting on a condition,
not spinning. When the probe answers, the endpoint is *up* again and the dispatcher re-sends; a decision
from it resets the backoff. Healthy endpoints keep working meanwhile.

The bound: when every endpoint has failed since the last decision and no decision has come for
`outage_wait_s`, `gave_up()` is true and the session stops cleanly (its undecided tasks stay for `--resume`).

A task whose own request keeps failing while the server decides other tasks (a prompt that crashes the
engine, say) is not an outage: `TaskStrikes` counts its failures with decisions of other tasks in between,
and after `max_task_failures` the dispatcher sets it aside for the session instead of asking it forever.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import requests

log = logging.getLogger(__name__)

DEFAULT_OUTAGE_WAIT_S = 300.0
DEFAULT_MAX_TASK_FAILURES = 5
PROBE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Backoff:
    """Waits before probing a failing endpoint: initial_s × factor^(n−1) for the n-th wait, at most max_s."""

    initial_s: float = 0.5
    factor: float = 2.0
    max_s: float = 10.0

    def delay(self, n: int) -> float:
        return min(self.max_s, self.initial_s * self.factor ** max(0, n - 1))


def models_probe(base_url: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """True when the OpenAI-compatible endpoint answers GET /models (any status but 5xx and 429: a server that
    wants an API key answers 401, and is up)."""
    try:
        response = requests.get(f"{base_url.rstrip('/')}/models", timeout=timeout_s)
    except requests.RequestException:
        return False
    return response.status_code < 500 and response.status_code != 429


class TaskStrikes:
    """Transport failures of each task that are its own: the first, and every later one with decisions of
    other tasks in between (failures during an outage, with nothing decided, do not add up)."""

    def __init__(self, max_task_failures: int = DEFAULT_MAX_TASK_FAILURES) -> None:
        if max_task_failures < 1:
            raise ValueError("max_task_failures must be at least 1")
        self.max_task_failures = max_task_failures
        self._strikes: dict[str, int] = {}
        self._decided_at_last: dict[str, int] = {}

    def failed(self, task_id: str, decided_so_far: int) -> bool:
        """Count a failure of `task_id` (`decided_so_far`: decisions of the session until now); True when the
        task has reached the limit and should be set aside."""
        last = self._decided_at_last.get(task_id)
        if last is None or decided_so_far > last:
            self._strikes[task_id] = self._strikes.get(task_id, 0) + 1
        self._decided_at_last[task_id] = decided_so_far
        return self._strikes[task_id] >= self.max_task_failures


@dataclass
class _Endpoint:
    down: bool = False  # nothing new is sent while down
    failing: bool = False  # a transport failure since its last decision
    waits: int = 0  # backoff waits since its last decision (failed rounds + failed probes)
    watcher: threading.Thread | None = None


class EndpointHealth:
    """Thread-safe outage state of a session's endpoints (see the module docstring).

    `probe(endpoint) -> bool` asks whether an endpoint answers again (None: it is taken as back after the
    backoff, e.g. for a local function worker); `clock` is the time base of `outage_wait_s`.
    """

    def __init__(
        self,
        endpoints: Iterable[str],
        outage_wait_s: float = DEFAULT_OUTAGE_WAIT_S,
        probe: Callable[[str], bool] | None = models_probe,
        backoff: Backoff = Backoff(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.outage_wait_s = outage_wait_s
        self.backoff = backoff
        self._probe = probe
        self._clock = clock
        self._cond = threading.Condition()
        self._state = {endpoint: _Endpoint() for endpoint in endpoints}
        self._last_answer = clock()
        self._closed = False

    # -- what the dispatcher asks ----------------------------------------------------------------------------
    def available(self, endpoint: str) -> bool:
        with self._cond:
            return not self._state[endpoint].down

    def any_available(self) -> bool:
        with self._cond:
            return any(not s.down for s in self._state.values())

    def silent_for(self) -> float | None:
        """Seconds since the last decision while every endpoint is failing; None while any is not."""
        with self._cond:
            if not all(s.failing for s in self._state.values()):
                return None
            return self._clock() - self._last_answer

    def gave_up(self) -> bool:
        silent = self.silent_for()
        return silent is not None and silent >= self.outage_wait_s

    def wait(self, timeout_s: float, endpoints: Iterable[str] | None = None) -> None:
        """Block until one of `endpoints` (default: all) is up (or `timeout_s` passes, or `close()`)."""
        states = [self._state[e] for e in endpoints] if endpoints is not None else list(self._state.values())
        with self._cond:
            self._cond.wait_for(lambda: self._closed or any(not s.down for s in states), timeout_s)

    # -- what the dispatcher reports -------------------------------------------------------------------------
    def answered(self, endpoint: str) -> None:
        """A decision came back from `endpoint`: it serves, so it is up and its backoff starts over."""
        with self._cond:
            state = self._state[endpoint]
            if state.down:
                log.warning("LLM endpoint %s answers again", endpoint)
            state.down = state.failing = False
            state.waits = 0
            self._last_answer = self._clock()
            self._cond.notify_all()

    def failed(self, endpoint: str, reason: str) -> None:
        """A transport failure from `endpoint`: mark it down (once per round) and have it probed."""
        with self._cond:
            state = self._state[endpoint]
            state.failing = True
            if state.down or self._closed:
                return
            state.down = True
            state.waits += 1
            log.warning(
                "LLM endpoint %s failed (%s); its tasks wait until it answers again (next probe in %.1f s)",
                endpoint, reason, self.backoff.delay(state.waits),
            )  # fmt: skip
            if state.watcher is None:
                state.watcher = threading.Thread(
                    target=self._watch, args=(endpoint,), name=f"probe {endpoint}", daemon=True
                )
                state.watcher.start()

    def close(self) -> None:
        """Stop every watcher (they exit at their next wake-up, which `close` triggers at once)."""
        with self._cond:
            self._closed = True
            watchers = [s.watcher for s in self._state.values() if s.watcher is not None]
            self._cond.notify_all()
        for watcher in watchers:
            watcher.join(timeout=PROBE_TIMEOUT_S + 1)

    # -- the watcher ---------------------------------------------------------------------------------------
    def _watch(self, endpoint: str) -> None:
        state = self._state[endpoint]
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda: self._closed or not state.down, timeout=self.backoff.delay(state.waits)
                )
                if self._closed or not state.down:
                    state.watcher = None
                    return
            back = self._probe is None or self._probe(endpoint)
            with self._cond:
                if back and state.down:
                    log.info("LLM endpoint %s answers its health probe; asking it again", endpoint)
                    state.down = False
                    self._cond.notify_all()
                elif not back:
                    state.waits += 1
