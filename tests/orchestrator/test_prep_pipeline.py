"""Task preparation on Ray (orchestrator.prep) pipelined with the dispatch: batches complete in any order,
the prefetch stays bounded, a render failure is an error verdict with its reason and a task without geometry
is left undecided with its reason (never lost), and an interrupted session's prepared-but-unsent tasks are
neither lost nor decided twice on resume.

The agent is the rule-based baseline on Ray function workers (no LLM: the preparation is what is tested);
skeletons come from tests/support/prep_sources.py, the views from the real renderer."""

from __future__ import annotations

import dataclasses
import functools
import os
import signal
import threading
from collections import Counter

import pytest
import ray
from support import prep_sources
from support.prep_sources import Gate, LineSkeletons, counted, gated, make_tasks, render_unless_west
from support.ray_fixtures import ray_up  # noqa: F401 - the module's Ray

from proofpilot.agent.baseline import BaselineAgent
from proofpilot.orchestrator.dispatch import Dispatcher, start_function_workers, stop_workers
from proofpilot.orchestrator.prep import PrepFeed, PrepOptions
from proofpilot.orchestrator.stats import NoOpDecisionLogger
from proofpilot.orchestrator.store import RunStore, read_verdicts
from proofpilot.orchestrator.task_sizes import read_task_sizes
from proofpilot.pilot.session import PilotSession, SessionSpec, baseline_payload
from proofpilot.telemetry.metrics import PrometheusDecisionLogger

ray.cloudpickle.register_pickle_by_value(prep_sources)  # tests/ is not on the Ray workers' import path
pytestmark = pytest.mark.usefixtures("ray_up")


def dispatch(feed: PrepFeed, on_verdicts, decide=None, capacity: int = 64):
    slots = start_function_workers(decide or BaselineAgent().decide, capacity=capacity)
    try:
        return Dispatcher(slots, on_verdicts, max_batch=capacity).run([], feed=feed, progress=False)
    finally:
        stop_workers(slots)


def test_batches_complete_in_any_order_and_every_task_is_decided_once():
    gate = Gate.remote()
    tasks = make_tasks({11: 4, 22: 4, 33: 4})  # one batch per neuron; neuron 11's is sent first
    neuron = {t.task_id: t.neuron_root_id for t in tasks}
    source = LineSkeletons(held={11}, gate=gate)
    feed = PrepFeed(tasks, source, baseline_payload, PrepOptions(batch_size=4, prefetch=12))
    seen: list[str] = []

    def on_verdicts(batch):
        assert all(v.valid for _, v in batch)
        seen.extend(item.task_id for item, _ in batch)
        if sum(neuron[t] != 11 for t in seen) == 8:
            gate.open.remote()  # neuron 11's skeleton load returns only after the later batches are decided

    stats = dispatch(feed, on_verdicts)
    assert Counter(seen) == Counter(t.task_id for t in tasks) and stats.completed == 12
    assert {neuron[t] for t in seen[:8]} == {22, 33} and {neuron[t] for t in seen[8:]} == {11}
    assert feed.stats.batches == 3 and feed.stats.prepared == 12 and feed.exhausted


def test_preparation_stays_within_the_prefetch_bound():
    prefetch, capacity = 8, 2
    counter, gate = prep_sources.Counter.remote(), Gate.remote()
    tasks = make_tasks({n: 4 for n in range(1, 26)})  # 100 tasks, 25 batches
    payload = functools.partial(counted, counter)  # counts every task prepared, in the Ray task
    feed = PrepFeed(tasks, LineSkeletons(), payload, PrepOptions(batch_size=4, prefetch=prefetch))
    # the decisions are held until a prefetch's worth of tasks was prepared (an unbounded feed would be
    # preparing all 100 by then); then the gate opens
    opener = threading.Thread(
        target=lambda: (ray.get(counter.at_least.remote(prefetch), timeout=120), gate.open.remote()),
        daemon=True,
    )
    opener.start()
    ahead: list[int] = []
    decided = 0

    def on_verdicts(batch):
        nonlocal decided
        decided += len(batch)
        ahead.append(ray.get(counter.value.remote()) - decided)

    decide = functools.partial(gated, gate, BaselineAgent().decide)
    stats = dispatch(feed, on_verdicts, decide, capacity=capacity)
    opener.join()
    assert stats.completed == decided == 100
    assert max(ahead) <= prefetch + capacity  # never more prepared than the prefetch and the workers hold
    assert feed.stats.max_ahead <= prefetch


def test_a_render_failure_is_an_error_verdict_and_a_task_without_geometry_stays_undecided(tmp_path):
    tasks = make_tasks({11: 3, 22: 3}, west={"3:before_split"})
    tasks[0] = dataclasses.replace(tasks[0], candidate_root_id=999)  # a merge whose candidate has no skeleton
    source = LineSkeletons(missing={999})
    prep = PrepOptions(views=3, view_px=64, batch_size=2, prefetch=4, renderer=render_unless_west)
    logger = PrometheusDecisionLogger()
    with RunStore.open(tmp_path / "run", {"test": 1}, resume=False) as store:
        session = PilotSession(store, logger, tasks, "baseline", skeletons=source)
        outcome = session.run(SessionSpec(agent="baseline", progress=False, prep=prep))
    rows = {r["task_id"]: r for r in read_verdicts(tmp_path / "run")}
    # the task without geometry is not decided but named with its reason (a resume asks it again)
    assert session.without_geometry == {tasks[0].task_id: "no skeleton in the test layer for root 999"}
    assert sorted(rows) == sorted(t.task_id for t in tasks[1:]) and outcome.completed == 5
    render = rows.pop("3:before_split")
    assert render["outcome"] == "error" and render["error_reason"] == "render_failed"
    assert "west of the origin" in render["error_detail"]
    assert all(r["valid"] and r["error_detail"] is None for r in rows.values())
    assert outcome.outcomes["error"] == 1
    sizes = read_task_sizes(tmp_path / "run")  # stored with the verdicts, the failed render's too
    assert set(sizes) == set(rows) | {"3:before_split"}
    assert all(s.cable_near_um > 0 and s.nodes_near > 0 and s.fragment_nodes >= s.nodes_near
               for s in sizes.values())  # fmt: skip
    text = logger.exposition().decode()
    count = {
        line.split('"')[1]: float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("proofpilot_stage_seconds_count{")
    }
    # every task's skeleton load; features and views of all but the one without geometry; no LLM asked
    assert count == {"geometry": 6.0, "features": 5.0, "render": 5.0, "llm": 0.0}
    llm_errors = [x for x in text.splitlines() if x.startswith("proofpilot_llm_errors_total{")]
    assert all(x.endswith(" 0.0") for x in llm_errors)  # a failed preparation is not an LLM error


def test_an_interrupted_session_resumes_without_losing_or_repeating_a_prepared_task(tmp_path):
    tasks = make_tasks({n: 4 for n in range(1, 11)})  # 40 tasks
    run_dir = tmp_path / "run"

    def session(interrupt: bool):
        with RunStore.open(run_dir, {"test": 2}, resume=run_dir.exists()) as store:
            todo = [t for t in tasks if t.task_id not in store.done_task_ids]
            pilot = PilotSession(store, NoOpDecisionLogger(), todo, "baseline")
            feed = PrepFeed(todo, LineSkeletons(), baseline_payload, PrepOptions(batch_size=4, prefetch=16))

            def on_verdicts(batch):
                pilot.on_verdicts(batch)
                if interrupt:
                    os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C after the first hand-over

            return dispatch(feed, on_verdicts, capacity=2), feed.stats

    first, prepared = session(interrupt=True)
    assert first.interrupted and 1 <= first.completed < prepared.prepared  # prepared, not sent, at the stop
    second, _ = session(interrupt=False)
    ids = Counter(v["task_id"] for v in read_verdicts(run_dir))
    assert set(ids) == {t.task_id for t in tasks} and set(ids.values()) == {1}
    assert first.completed + second.completed == 40 and not second.interrupted
