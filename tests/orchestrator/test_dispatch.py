"""Ray dispatch against local OpenAI-compatible stubs (separate processes): bounded in-flight requests per
endpoint, several endpoints balanced, every item once, a stop request, a dead worker, the baseline path.

Ray starts once for the module (ray.init costs seconds) in a short private temp dir, and is shut down after.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
import ray
from support.ray_fixtures import ray_up  # noqa: F401 - the module's Ray

from proofpilot.agent.baseline import DEFAULT_RULE, BaselineAgent
from proofpilot.agent.prompt import build_request
from proofpilot.agent.records import Verdict
from proofpilot.orchestrator.dispatch import (
    Dispatcher,
    WorkItem,
    split_capacity,
    start_function_workers,
    start_llm_workers,
    stop_workers,
)
from proofpilot.orchestrator.ray_session import RayOptions, ray_session
from proofpilot.tasks.records import DecisionTask
from proofpilot.telemetry.metrics import PrometheusDecisionLogger

REPO = Path(__file__).resolve().parents[2]


def load_stub_module():
    spec = importlib.util.spec_from_file_location("openai_stub", REPO / "bench" / "openai_stub.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


StubServer = load_stub_module().StubServer
pytestmark = pytest.mark.usefixtures("ray_up")


def stub_gauge(stub, name: str) -> float:
    text = urllib.request.urlopen(stub.metrics_url, timeout=5).read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


@pytest.fixture(scope="module")
def stubs():
    with StubServer(delay_s=0.05) as a, StubServer(delay_s=0.05) as b:
        yield a, b


def requests(n: int) -> list[WorkItem]:
    kinds = ("merge", "split")
    return [
        WorkItem(f"{i}:t", build_request(f"{i}:t", kinds[i % 2], {"gap_nm": float(i), "angle_deg": 1.0}))
        for i in range(n)
    ]


class Collector:
    def __init__(self) -> None:
        self.batches: list[list[tuple[WorkItem, Verdict]]] = []

    def __call__(self, batch):
        self.batches.append(batch)

    @property
    def verdicts(self) -> list[tuple[WorkItem, Verdict]]:
        return [pair for batch in self.batches for pair in batch]


def test_split_capacity():
    assert split_capacity(10, 3) == [4, 3, 3]
    assert split_capacity(2, 2) == [1, 1]


def test_two_endpoints_every_item_once_with_bounded_in_flight(stubs):
    a, b = stubs
    slots = start_llm_workers([a.base_url, b.base_url], "stub", concurrency=4, n_actors=2)
    logger = PrometheusDecisionLogger()
    collect = Collector()
    try:
        stats = Dispatcher(slots, collect, logger).run(requests(120), progress=False)
    finally:
        stop_workers(slots)
    ids = Counter(item.task_id for item, _ in collect.verdicts)
    assert len(ids) == 120 and set(ids.values()) == {1}
    assert all(v.valid and v.task_id == item.task_id for item, v in collect.verdicts)
    assert stats.completed == 120 and not stats.interrupted
    # balanced: both endpoints served a fair share
    assert set(stats.per_endpoint) == {a.base_url, b.base_url}
    assert min(stats.per_endpoint.values()) >= 30
    for stub in (a, b):
        peak = stub_gauge(stub, "stub:max_running")
        assert 2 <= peak <= 4  # concurrent (not one call per actor), never above the endpoint's bound
    # the in-flight gauge went back to zero for both endpoints
    text = logger.exposition().decode()
    inflight = [line for line in text.splitlines() if line.startswith("proofpilot_inflight{")]
    assert len(inflight) == 2 and all(line.endswith(" 0.0") for line in inflight)
    # results arrive as they complete, in batches: more than one batch, fewer than one per item is fine
    assert len(collect.batches) > 1


def test_stop_request_returns_early_and_cancels_the_rest(stubs):
    slots = start_llm_workers([stubs[0].base_url], "stub", concurrency=2)
    collect = Collector()
    dispatcher = Dispatcher(slots, lambda batch: (collect(batch), os.kill(os.getpid(), signal.SIGINT)))
    try:
        stats = dispatcher.run(requests(200), progress=False)  # a real SIGINT after the first batch
    finally:
        stop_workers(slots)
    assert stats.interrupted
    assert 1 <= stats.completed == len(collect.verdicts) < 200
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


def test_a_dead_worker_hands_its_tasks_to_the_others(stubs):
    slots = start_llm_workers([stubs[0].base_url], "stub", concurrency=4, n_actors=2)
    collect = Collector()

    def kill_first_worker_once(batch):
        collect(batch)
        if len(collect.batches) == 1:
            ray.kill(slots[0].handle, no_restart=True)

    try:
        stats = Dispatcher(slots, kill_first_worker_once).run(requests(60), progress=False)
    finally:
        stop_workers(slots)
    ids = Counter(item.task_id for item, _ in collect.verdicts)
    assert len(ids) == 60 and set(ids.values()) == {1}
    assert stats.dead_workers == 1 and stats.retried >= 1
    assert not slots[0].alive and slots[1].alive


def baseline_tasks(n: int) -> list[DecisionTask]:
    return [
        DecisionTask(
            task_id=f"{i}:partner", operation_id=i, neuron_root_id=1, neuron_n_edits=n, op_kind="merge",
            role="partner", label="merge", base_root_id=2, candidate_root_id=3, interface_nm=(0.0, 0.0, 0.0),
            features={DEFAULT_RULE.merge.feature: DEFAULT_RULE.merge.threshold * i / 25},  # both sides
        )
        for i in range(n)
    ]  # fmt: skip


def test_baseline_function_workers_need_no_llm():
    agent = BaselineAgent()
    slots = start_function_workers(agent.decide, n_actors=2)
    collect = Collector()
    tasks = baseline_tasks(50)
    try:
        stats = Dispatcher(slots, collect).run([WorkItem(t.task_id, t) for t in tasks], progress=False)
    finally:
        stop_workers(slots)
    assert stats.completed == 50
    got = {v.task_id: v.decision for _, v in collect.verdicts}
    assert got == {t.task_id: agent.decide(t).decision for t in tasks}
    assert set(got.values()) == {"merge", "no_merge"}  # the rule's threshold splits these tasks


def test_ray_session_reuses_a_running_ray():
    with ray_session(RayOptions()) as started:
        assert started is False
    assert ray.is_initialized()
