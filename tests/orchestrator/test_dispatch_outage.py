"""LLM outages during dispatch (no vLLM): a transport failure is not a decision; its task is queued again and
sent once its endpoint answers a health probe (capped exponential backoff); the healthy endpoints keep
working; when no endpoint answers for the outage wait the dispatch stops cleanly with the tasks undecided.

The endpoints are tests/support/fake_llm.py's OpenAI-compatible server on 127.0.0.1, switched down and up by
the server itself (after a given number of health probes), so no test waits on the clock.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections import Counter

import pytest
from support.fake_llm import FakeLLM

from proofpilot.agent.prompt import build_request
from proofpilot.orchestrator.dispatch import (
    Dispatcher,
    WorkItem,
    start_llm_workers,
    stop_workers,
)
from proofpilot.orchestrator.outage import Backoff, EndpointHealth, TaskStrikes, models_probe
from proofpilot.orchestrator.ray_session import RayOptions, ray_session

CAPACITY = 4  # requests in flight per endpoint
CLIENT = {"timeout_s": 10.0, "max_retries": 2}  # 3 HTTP attempts per failed round


class SwitchedLLM(FakeLLM):
    """Down (chat: HTTP 500 with a 10 ms retry-after; GET /v1/models: 503) or up (valid verdicts). A down
    server comes back at its `probes_until_back`-th health probe (None: never). Logs every request."""

    def __init__(self, down: bool, probes_until_back: int | None = None) -> None:
        super().__init__()
        self.down = down
        self.probes_until_back = probes_until_back
        self.probes: list[float] = []  # times of the health probes
        self.chats: list[tuple[float, str, bool]] = []  # (time, task id, answered while down)

    def answer(self, task_id: str, body: dict) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            down = self.down
            self.chats.append((time.monotonic(), task_id, down))
        return super().answer(f"{'err500' if down else 'good'}-{task_id}", body)

    def probe(self) -> bool:
        with self._lock:
            self.probes.append(time.monotonic())
            if self.down and self.probes_until_back is not None:
                self.down = len(self.probes) < self.probes_until_back
            return not self.down

    def _handler_class(self):
        base, fake = super()._handler_class(), self

        class Handler(base):
            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/models" and not fake.probe():
                    self._send(503, {}, b'{"error": {"message": "engine is down", "code": 503}}')
                    return
                super().do_GET()

        return Handler


@pytest.fixture(scope="module")
def ray_up():
    temp_dir = tempfile.mkdtemp(prefix="ppo-", dir="/tmp")  # short: unix socket paths are limited
    try:
        with ray_session(RayOptions(num_cpus=2, temp_dir=temp_dir)):
            yield
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)


def items(n: int) -> list[WorkItem]:
    kinds = ("merge", "split")
    return [
        WorkItem(f"{i}:t", build_request(f"{i}:t", kinds[i % 2], {"gap_nm": float(i), "angle_deg": 1.0}))
        for i in range(n)
    ]


class PoisonLLM(SwitchedLLM):
    """Up, but HTTP 500 to every request of the tasks in `poison` (their own requests fail)."""

    def __init__(self, poison: set[str]) -> None:
        super().__init__(down=False)
        self.poison = poison

    def answer(self, task_id: str, body: dict) -> tuple[int, dict[str, str], bytes]:
        if task_id in self.poison:
            with self._lock:
                self.chats.append((time.monotonic(), task_id, True))
            return FakeLLM.answer(self, f"err500-{task_id}", body)
        return super().answer(task_id, body)


def dispatch(urls: list[str], work: list[WorkItem], outage_wait_s: float = 300.0, max_task_failures: int = 5):
    """Run the dispatcher; (stats, decisions, failures) with each as (task id, verdict)."""
    decided, failed = [], []
    slots = start_llm_workers(urls, "fake", CAPACITY, CLIENT)
    try:
        health = EndpointHealth(urls, outage_wait_s, probe=models_probe)
        dispatcher = Dispatcher(
            slots,
            lambda batch: decided.extend((i.task_id, v) for i, v in batch),
            on_failures=lambda batch: failed.extend((i.task_id, v) for i, v in batch),
            health=health,
            max_task_failures=max_task_failures,
        )
        stats = dispatcher.run(work, progress=False)
    finally:
        stop_workers(slots)
    return stats, decided, failed


# -- the health state without Ray ----------------------------------------------------------------------------
def test_backoff_doubles_up_to_its_cap():
    assert [Backoff(0.5, 2.0, 3.0).delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_task_strikes_count_only_failures_with_decisions_in_between():
    strikes = TaskStrikes(3)
    assert not strikes.failed("a", 0)  # its first failure
    assert not strikes.failed("a", 0)  # nothing decided since: an outage, not this task
    assert not strikes.failed("a", 0)
    assert not strikes.failed("a", 4)  # others decided since its last failure: 2
    assert not strikes.failed("b", 4)
    assert strikes.failed("a", 5)  # 3: set aside
    assert not strikes.failed("b", 4) and strikes.failed("b", 6) is False  # b: 1, 1, 2
    with pytest.raises(ValueError):
        TaskStrikes(0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_session_gives_up_only_when_every_endpoint_has_failed_for_the_outage_wait():
    clock = Clock()
    never_back = threading.Event()  # the probe blocks nothing: it says "down" at once
    health = EndpointHealth(["a", "b"], 60.0, probe=lambda e: never_back.is_set(), clock=clock)
    try:
        health.failed("a", "connection")
        assert not health.available("a") and health.available("b") and health.any_available()
        clock.now += 61
        assert not health.gave_up()  # b still serves
        health.failed("b", "timeout")
        assert not health.any_available()
        assert health.silent_for() == pytest.approx(61.0) and health.gave_up()
        health.answered("b")  # a decision: b is up, and the silence starts over
        assert health.available("b") and health.silent_for() is None
        health.failed("b", "server_error")
        clock.now += 59
        assert not health.gave_up()
        clock.now += 1
        assert health.gave_up()
    finally:
        health.close()


def test_a_failing_endpoint_is_probed_with_growing_waits_until_it_answers():
    backoff = Backoff(initial_s=0.02, factor=2.0, max_s=1.0)
    calls: list[float] = []
    back = threading.Event()

    def probe(endpoint: str) -> bool:
        calls.append(time.monotonic())
        if len(calls) == 3:
            back.set()
        return len(calls) >= 3

    health = EndpointHealth(["a"], 60.0, probe=probe, backoff=backoff)
    try:
        failed_at = time.monotonic()
        health.failed("a", "connection")
        health.failed("a", "connection")  # the same round: one watcher, one backoff step
        assert back.wait(30), "the endpoint was never probed three times"
        deadline = time.monotonic() + 30
        while not health.available("a") and time.monotonic() < deadline:
            health.wait(0.1)
        assert health.available("a") and len(calls) == 3
        # lower bounds only: each probe came after its wait (0.02 s, then 0.04 s, then 0.08 s)
        waits = [calls[0] - failed_at, calls[1] - calls[0], calls[2] - calls[1]]
        assert all(w >= backoff.delay(n) for n, w in enumerate(waits, start=1)), waits
    finally:
        health.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("probe ")], "a watcher outlived close()"


# -- the dispatcher, through Ray, against switched endpoints -------------------------------------------------
def test_an_endpoint_that_is_down_gets_no_new_tasks_while_the_healthy_one_decides_them_all(ray_up):
    with SwitchedLLM(down=False) as healthy, SwitchedLLM(down=True) as dead:
        stats, decided, failed = dispatch([healthy.base_url, dead.base_url], items(40))
        dead_chats = len(dead.chats)

    assert not stats.unavailable and not stats.interrupted
    assert sorted(t for t, _ in decided) == sorted(i.task_id for i in items(40))  # each task once
    assert all(v.valid and v.endpoint == healthy.base_url for _, v in decided)
    # the dead endpoint saw one round of requests (its first micro-batch), each retried by the client, then
    # nothing: its tasks went to the healthy endpoint while its health probe kept failing
    assert 1 <= len(failed) <= CAPACITY and stats.transport_failures == len(failed)
    assert {v.error_reason for _, v in failed} == {"server_error"}
    assert dead_chats == 3 * len(failed)


def test_tasks_hit_by_an_outage_are_sent_again_only_after_the_endpoint_answers_its_probe(ray_up):
    with SwitchedLLM(down=True, probes_until_back=2) as llm:
        stats, decided, failed = dispatch([llm.base_url], items(12))
        chats, probes = list(llm.chats), list(llm.probes)

    assert not stats.unavailable
    assert Counter(t for t, _ in decided) == Counter(i.task_id for i in items(12))
    assert all(v.valid for _, v in decided)
    assert stats.completed == 12 and stats.transport_failures == len(failed) >= 1
    # one failed round (no task was sent again before the endpoint answered), three attempts each
    assert len({t for t, _ in failed}) == len(failed) <= CAPACITY
    assert sum(down for _, _, down in chats) == 3 * len(failed)
    # probed twice with a growing wait; the first answered chat only after the probe that said "up"
    backoff = Backoff()
    last_failure = max(t for t, _, down in chats if down)
    assert len(probes) == 2
    assert probes[0] - last_failure >= backoff.delay(1) and probes[1] - probes[0] >= backoff.delay(2)
    assert min(t for t, _, down in chats if not down) >= probes[1]


def test_a_task_that_fails_on_its_own_is_set_aside_while_the_others_are_decided(ray_up):
    work = items(24)
    poison = work[0].task_id
    # a broken implementation would re-ask the task until the outage wait (60 s) ends the session instead
    with PoisonLLM({poison}) as llm:
        stats, decided, failed = dispatch([llm.base_url], work, outage_wait_s=60.0, max_task_failures=3)
        poison_chats = [t for _, t, _ in llm.chats if t == poison]

    assert not stats.unavailable and not stats.interrupted
    assert stats.set_aside == [poison]
    assert sorted(t for t, _ in decided) == sorted(i.task_id for i in work[1:])  # the others, once each
    assert [t for t, _ in failed] == [poison] * 3 and stats.transport_failures == 3
    assert len(poison_chats) == 3 * 3  # three asks, each with the client's two retries


def test_dispatch_stops_cleanly_when_no_endpoint_answers_for_the_outage_wait(ray_up):
    with SwitchedLLM(down=True) as llm:
        started = time.monotonic()
        stats, decided, failed = dispatch([llm.base_url], items(6), outage_wait_s=1.0)
        elapsed = time.monotonic() - started

    assert stats.unavailable and not stats.interrupted
    assert decided == [] and stats.completed == 0
    assert failed and {v.error_reason for _, v in failed} == {"server_error"}
    assert elapsed >= 1.0


@pytest.mark.parametrize(
    ("status", "up"), [(200, True), (401, True), (404, True), (429, False), (503, False)]
)
def test_the_health_probe_takes_any_answer_but_5xx_and_429_as_up(status, up):
    """A server that wants an API key answers 401 to an anonymous probe: it is up. 5xx/429: not yet."""
    import http.server

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(status)
            self.end_headers()

        def log_message(self, *_):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert models_probe(f"http://127.0.0.1:{server.server_address[1]}/v1") is up
    finally:
        server.shutdown()
        server.server_close()


def test_the_health_probe_of_a_closed_port_is_down():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert models_probe(f"http://127.0.0.1:{port}/v1", timeout_s=2.0) is False
