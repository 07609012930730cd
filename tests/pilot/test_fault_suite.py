"""The fault suite: faults injected into real pilot runs. Each test says what it injects, checks that the run
survived, and that nothing was lost: every task of the run (tasks.jsonl) has exactly one line in
verdicts.jsonl, and the bytes stored before the fault are still the first bytes of the store afterwards.

1. CAVE errors on 5 % of the embedded server's data calls while a pilot ingests (and, harder, change logs
   that can never be fetched: those neurons are reported, not counted as 0 edits).
2. The real vLLM CPU server restarted while a pilot dispatches to it; an endpoint in a longer outage (the
   session stops after its outage wait, the resume asks exactly the undecided tasks). The dispatch-level
   re-queue and backoff: tests/orchestrator/test_dispatch_outage.py.
3. Malformed model output from an OpenAI-compatible endpoint for a known share of the requests.
4. SIGKILL mid-run then --resume:
   tests/pilot/test_pilot_e2e.py::test_ctrl_c_then_sigkill_then_resume_stores_every_task_once
   (and a torn last line: tests/orchestrator/test_store.py::test_torn_last_line_is_cut_on_resume).
5. A full disk for the run store: a file-size limit (RLIMIT_FSIZE, EFBIG) put on the running pilot, which
   works wherever the tests run; the tmpfs variant (ENOSPC) is
   tests/pilot/test_pilot_e2e.py::test_full_disk_stops_the_pilot_and_keeps_the_verdicts, and the store-level
   one tests/orchestrator/test_store.py.
6. Bad CLI input to every subcommand: tests/cli/test_cli_bad_input.py.

The injectors and the bookkeeping are shared with bench/faults.py, which prints the suite's figures.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import shutil
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from proofpilot.agent.records import TRANSPORT_REASONS
from proofpilot.datastack.embedded.faults import FaultConfig
from proofpilot.datastack.embedded.generator import population
from proofpilot.datastack.embedded.server import start_server
from proofpilot.orchestrator.store import (
    LLM_ERRORS_NAME,
    MANIFEST_NAME,
    VERDICTS_NAME,
    read_llm_errors,
    read_verdicts,
)
from proofpilot.pilot.run import PilotConfig, run_pilot
from proofpilot.telemetry.metrics import PrometheusDecisionLogger

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("bench_faults", REPO / "bench" / "faults.py")
faults = importlib.util.module_from_spec(_spec)
sys.modules["bench_faults"] = faults  # dataclasses look their module up while the class is made
_spec.loader.exec_module(faults)

FLY = faults.FLY
SMALL_RUN = list(faults.SMALL_RUN)  # 20 fly-like neurons, 2 operations each: 80 tasks
DECISIONS = {"merge": {"merge", "no_merge"}, "split": {"split", "clean"}}


@pytest.fixture(scope="module")
def ray_tmp():
    path = tempfile.mkdtemp(prefix="ppf-", dir="/tmp")  # short: unix socket paths are limited
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def cave():
    """One embedded fly-like server; each test sets its faults and takes them off again."""
    with start_server(FLY) as server:
        yield server


@pytest.fixture(scope="module")
def slow_stub():
    with faults.StubServer(delay_s=0.2) as stub:  # ~10 answers/s at concurrency 2: faults land mid-run
        yield stub


def assert_every_task_once(run_dir: Path):
    book = faults.ledger(run_dir)
    assert book.expected > 0
    assert book.lost == 0, f"{book.lost} of {book.expected} tasks have no verdict"
    assert book.duplicated == 0, f"{book.duplicated} verdicts stored twice"
    assert book.foreign == 0, f"{book.foreign} verdicts of tasks the run does not have"
    return book


def stored_bytes(run_dir: Path) -> bytes:
    return faults.complete_lines(run_dir / VERDICTS_NAME)


def by_task(run_dir: Path) -> dict[str, dict]:
    return {v["task_id"]: v for v in read_verdicts(run_dir)}


# -- 1. CAVE errors ------------------------------------------------------------------------------------------
def test_cave_errors_on_5_percent_of_calls_are_retried_and_change_nothing(cave, tmp_path, ray_tmp):
    """Injected: HTTP 500 on 5 % of the data calls (proofread table, change logs, operation details,
    skeleton files), redrawn per attempt. The product retries them (urllib3 on the CAVE calls, cloud-files on
    the skeletons), so the run must equal a fault-free run of the same options: same neurons and edit
    counts, same tasks, same decisions; nothing silently degraded to 0 edits or missing features."""
    args = [*SMALL_RUN, "--agent", "baseline", "--server-address", cave.url]
    cave.set_faults(None)
    clean = faults.run_pilot_cli([*args, "--run-dir", str(tmp_path / "clean")], ray_tmp)
    assert clean.returncode == 0, clean.stderr[-2000:]
    cave.set_faults(FaultConfig(error_rate=0.05, seed=3))
    try:
        faulty = faults.run_pilot_cli([*args, "--run-dir", str(tmp_path / "faulty")], ray_tmp)
        injected = cave.faults_injected
    finally:
        cave.set_faults(None)

    assert injected.get("error", 0) >= 1, "no fault was injected"
    assert faulty.returncode == 0, faulty.stderr[-2000:]
    book = assert_every_task_once(tmp_path / "faulty")
    assert book.expected == faults.ledger(tmp_path / "clean").expected == 80
    per = pd.read_parquet(tmp_path / "faulty" / "ingest" / "per_neuron.parquet")
    assert (per["status"] == "ok").all(), per[per["status"] != "ok"]
    truth = population(FLY).frame().set_index("root_id").loc[per["root_id"]]
    assert per["n_edits"].tolist() == truth["n_edits"].tolist()
    tasks = {name: (tmp_path / name / "tasks.jsonl").read_bytes() for name in ("clean", "faulty")}
    assert tasks["faulty"] == tasks["clean"]
    decided = {name: {k: (v["decision"], v["confidence"]) for k, v in by_task(tmp_path / name).items()}
               for name in ("clean", "faulty")}  # fmt: skip
    assert decided["faulty"] == decided["clean"]


# HTTP 400 is not retried and sticky faults repeat: some neurons' change logs can never be read
UNFETCHABLE = FaultConfig(**faults.UNFETCHABLE)


@pytest.fixture(scope="module")
def unfetchable_run(cave, tmp_path_factory, ray_tmp):
    run_dir = tmp_path_factory.mktemp("unfetchable") / "run"
    cave.set_faults(UNFETCHABLE)
    try:
        proc = faults.run_pilot_cli([*SMALL_RUN, "--agent", "baseline", "--server-address", cave.url,
                                     "--run-dir", str(run_dir)], ray_tmp)  # fmt: skip
    finally:
        cave.set_faults(None)
    return run_dir, proc


def test_neurons_whose_change_log_fails_are_reported_not_counted_as_zero_edits(unfetchable_run):
    """Injected: sticky HTTP 400 on 60 % of the change-log calls (batches are bisected down to single roots,
    so only a few neurons fail). Those neurons are error rows with the reason, the run says so on stderr, and
    the run's tasks are those of the other neurons, each with exactly one verdict."""
    run_dir, proc = unfetchable_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    per = pd.read_parquet(run_dir / "ingest" / "per_neuron.parquet")
    failed = per[per["status"] == "error"]
    assert 0 < len(failed) < len(per) == 20, "the fault seed no longer hits some (not all) neurons"
    assert failed["reason"].str.startswith("HTTP 400").all()
    assert failed[["n_edits", "n_merges", "n_splits"]].isna().all().all()  # unknown, not 0
    assert f"{len(failed)} of 20 sampled neurons have no change log" in proc.stderr
    assert f"{len(failed)} of 20 sampled neurons had no readable change log" in proc.stdout  # the summary
    recorded = json.loads((run_dir / MANIFEST_NAME).read_text())["neurons_without_log"]
    assert recorded == failed[["root_id", "reason"]].astype({"root_id": int}).to_dict("records")
    tasks = [json.loads(line) for line in (run_dir / "tasks.jsonl").read_text().splitlines()]
    assert not {t["neuron_root_id"] for t in tasks} & set(failed["root_id"])
    manifest = json.loads((run_dir / MANIFEST_NAME).read_text())
    assert set(manifest["neuron_root_ids"]) == set(per["root_id"])  # the sample, failed neurons included
    assert_every_task_once(run_dir)


def test_a_run_with_unfetched_neurons_resumes_once_cave_recovers(unfetchable_run, cave, tmp_path, ray_tmp):
    """The same run resumed with CAVE healthy again: the run's stored task list stays authoritative (the
    recovered neurons' tasks are not added to it), so the resume succeeds and changes nothing stored."""
    run_dir = tmp_path / "run"
    shutil.copytree(unfetchable_run[0], run_dir)
    before = {name: (run_dir / name).read_bytes() for name in ("tasks.jsonl", VERDICTS_NAME)}
    proc = faults.run_pilot_cli([*SMALL_RUN, "--agent", "baseline", "--server-address", cave.url,
                                 "--run-dir", str(run_dir), "--resume"], ray_tmp)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "(0 new this session" in proc.stdout
    assert {name: (run_dir / name).read_bytes() for name in before} == before
    assert_every_task_once(run_dir)


# -- 2. the LLM server restarted mid-run ---------------------------------------------------------------------
@pytest.mark.vllm
def test_llm_server_restarted_mid_run_loses_no_task(vllm_server, tmp_path, ray_tmp):
    """Injected: the real vLLM server is stopped and started again (same port) once the pilot has stored
    3 verdicts. The requests that hit the restart fail in transport after the client's retries: each failure
    is stored in llm_errors.jsonl with its reason, not as a verdict; their tasks wait until the server answers
    its health probe and are asked again, so the run completes with a model answer for every task, once.
    --resume afterwards asks nothing and rewrites nothing."""
    run_dir = tmp_path / "run"
    store = run_dir / VERDICTS_NAME
    # --scrape-interval 0.2: the run serves for a few seconds only, and cost.json needs the scrape to see the
    # queue busy at least once (at 1 s it saw an empty queue at every snapshot in one CI run)
    args = [*SMALL_RUN, "--llm-url", vllm_server.base_url, "--model", vllm_server.model,
            "--gpus-per-endpoint", "1", "--concurrency", "4", "--timeout", "30", "--scrape-interval", "0.2",
            "--run-dir", str(run_dir)]  # fmt: skip
    # 10 neurons, 40 tasks: the restart still lands mid-run (after 3 verdicts, 4 in flight), and the run and
    # its resume each build half the tasks of SMALL_RUN (distractor cutouts dominate a session's start)
    args[args.index("--neurons") + 1] = "10"
    old_pid = vllm_server.pid
    with faults.stopped_on_exit(faults.start_pilot_cli(args, ray_tmp)) as proc:
        faults.wait_for_verdicts(store, 3, proc)
        before = stored_bytes(run_dir)
        vllm_server.restart()
        out, err = proc.communicate(timeout=600)
    assert vllm_server.is_running() and vllm_server.pid != old_pid

    assert proc.returncode == 0, err[-2000:]
    book = assert_every_task_once(run_dir)
    assert re.search(rf"\b{book.expected} of {book.expected} tasks have verdicts", out), out
    assert stored_bytes(run_dir).startswith(before)
    errors = read_llm_errors(run_dir)
    assert errors, "the restart hit no request"
    assert all(e["reason"] in TRANSPORT_REASONS and e["attempts"] >= 1 for e in errors), Counter(
        e["reason"] for e in errors
    )
    assert f"LLM transport failures: {len(errors)}" in out
    verdicts = by_task(run_dir)
    assert {e["task_id"] for e in errors} <= set(verdicts)  # asked again, and decided
    # every task ends with a model answer (valid, or invalid after the re-asks); no transport error is final
    assert all(v["answers"] >= 1 and v["outcome"] in ("correct", "incorrect", "invalid")
               for v in verdicts.values()), Counter(v["error_reason"] for v in verdicts.values())  # fmt: skip
    valid = [v for v in verdicts.values() if v["valid"]]
    assert valid
    assert all(v["decision"] in DECISIONS[v["op_kind"]] and 0 <= v["confidence"] <= 1 for v in valid)
    session = json.loads((run_dir / MANIFEST_NAME).read_text())["sessions"][-1]
    assert session["ended"] == "done" and session["llm_errors"] == len(errors) and session["undecided"] == 0
    # a cost figure even when the LLM idles while tasks are prepared (the scrape may never see its queue
    # busy; then the client-exact busy time is used, and cost.json says so)
    cost = json.loads((run_dir / "cost.json").read_text())
    assert cost["throughput"]["decisions"] == len(verdicts)  # decisions only, not the failed requests

    stored = {name: (run_dir / name).read_bytes() for name in (VERDICTS_NAME, LLM_ERRORS_NAME)}
    resumed = faults.run_pilot_cli([*args, "--resume"], ray_tmp)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "(0 new this session" in resumed.stdout
    assert {name: (run_dir / name).read_bytes() for name in stored} == stored


class OutageLLM(faults.FakeLLM):
    """An endpoint in an outage until `down` is unset: HTTP 500 to every chat request (short retry-after),
    while GET /v1/models still lists the model (the API server is up, its engine is not)."""

    down = True

    def answer(self, task_id: str, body: dict) -> tuple[int, dict[str, str], bytes]:
        return super().answer(f"{'err500' if self.down else 'good'}-{task_id}", body)


def _exported(text: str, metric: str) -> dict[str, float]:
    pattern = rf"^{metric}\{{(.*)\}} (\S+)$"
    return {m.group(1): float(m.group(2)) for m in re.finditer(pattern, text, re.M)}


def test_tasks_that_hit_an_llm_outage_are_asked_again_once_it_is_back(tmp_path, ray_tmp):
    """Injected: an endpoint that answers HTTP 500 to every chat request. The first session, with a 2 s outage
    wait, stops cleanly with every task undecided: 0 verdicts, every failure in llm_errors.jsonl and in
    Prometheus by reason, the manifest saying why. With the server back, --resume asks exactly those tasks:
    each is stored once, with a valid answer."""
    run_dir = tmp_path / "run"
    logger = PrometheusDecisionLogger()
    with OutageLLM() as llm:
        config = PilotConfig(source=FLY, run_dir=run_dir, neurons=5, max_ops_per_neuron=1,
                             llm_urls=(llm.base_url,), model="fake", gpus_per_endpoint=1, concurrency=8,
                             metrics_port=0, progress=False, ray_temp_dir=ray_tmp,
                             outage_wait_s=2.0)  # fmt: skip
        first = run_pilot(config, logger)
        requests_in_outage = llm.calls.total()
        tasks = {json.loads(line)["task_id"] for line in (run_dir / "tasks.jsonl").read_text().splitlines()}

        assert first.unavailable and first.ended == "llm_unavailable" and not first.interrupted
        assert first.n_stored == 0 and first.undecided == first.n_tasks == len(tasks) > 0
        assert read_verdicts(run_dir) == []
        errors = read_llm_errors(run_dir)
        assert errors and {e["reason"] for e in errors} == {"server_error"}
        assert first.llm_errors == len(errors)
        assert {e["task_id"] for e in errors} <= tasks
        # each failure is one ask after the client's 2 retries; the round in flight at the stop was cancelled
        assert {e["attempts"] for e in errors} == {3} and 3 * len(errors) <= requests_in_outage
        session = json.loads((run_dir / MANIFEST_NAME).read_text())["sessions"][-1]
        assert session["ended"] == "llm_unavailable" and session["undecided"] == len(tasks)
        assert session["llm_errors"] == len(errors)
        text = logger.exposition().decode()
        assert _exported(text, "proofpilot_llm_errors_total")['reason="server_error"'] == len(errors)
        assert sum(_exported(text, "proofpilot_decisions_total").values()) == 0  # failures are no decisions

        llm.down = False
        second = run_pilot(dataclasses.replace(config, resume=True))
        asked_again = {key.removeprefix("good-") for key in llm.calls if key.startswith("good-")}
    assert second.complete and second.ended == "done" and second.n_new == len(tasks)
    assert asked_again == tasks  # exactly the tasks without a verdict
    assert_every_task_once(run_dir)
    assert all(v["valid"] for v in by_task(run_dir).values()), "outage errors were never asked again"
    assert read_llm_errors(run_dir) == errors  # the resumed session hit no outage


def test_an_llm_outage_longer_than_the_wait_ends_the_cli_with_one_line(tmp_path, ray_tmp):
    """The same outage through the CLI: exit 75 (try again later), one error line that says how many tasks
    are undecided and to rerun with --resume, no traceback."""
    run_dir = tmp_path / "run"
    with OutageLLM() as llm:
        proc = faults.run_pilot_cli(["--datastack", FLY, "--neurons", "2", "--max-ops-per-neuron", "1",
                                     "--metrics-port", "0", "--no-progress", "--llm-url", llm.base_url,
                                     "--model", "fake", "--gpus-per-endpoint", "1", "--outage-wait", "1",
                                     "--run-dir", str(run_dir)], ray_tmp)  # fmt: skip
    assert proc.returncode == 75, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert [line for line in lines if line.startswith("proofpilot: error:")] == [lines[-1]], proc.stderr
    n_tasks = faults.ledger(run_dir).expected
    assert f"{n_tasks} of {n_tasks} tasks are undecided" in lines[-1] and "--resume" in lines[-1]
    assert read_verdicts(run_dir) == [] and read_llm_errors(run_dir)


class PoisonLLM(faults.FakeLLM):
    """Serves, but answers HTTP 500 to every request of the first task it is asked (until `healed`)."""

    poison: str | None = None
    healed = False

    def answer(self, task_id: str, body: dict) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.poison = self.poison or task_id
            failing = task_id == self.poison and not self.healed
        return super().answer(f"{'err500' if failing else 'good'}-{task_id}", body)


def test_a_task_whose_own_request_keeps_failing_is_set_aside_and_resumed(tmp_path, ray_tmp):
    """Injected: one task's request always fails (HTTP 500) while the server decides the others. The pilot
    decides the rest and sets that task aside after --max-task-failures instead of asking it until the outage
    wait: exit 75, one line naming it; --resume asks exactly it once the server is healed."""
    run_dir = tmp_path / "run"
    # --views 0: no vision probe before the run, so the first request the server sees is a task's
    args = ["--datastack", FLY, "--neurons", "6", "--max-ops-per-neuron", "1", "--metrics-port", "0",
            "--no-progress", "--model", "fake", "--gpus-per-endpoint", "1", "--concurrency", "4",
            "--views", "0", "--run-dir", str(run_dir)]  # fmt: skip
    with PoisonLLM() as llm:
        first = faults.run_pilot_cli([*args, "--llm-url", llm.base_url, "--max-task-failures", "2",
                                      "--outage-wait", "120"], ray_tmp)  # fmt: skip
        poison = llm.poison
        assert first.returncode == 75, first.stderr[-2000:]
        assert "Traceback" not in first.stderr
        lines = first.stderr.strip().splitlines()
        assert [line for line in lines if line.startswith("proofpilot: error:")] == [lines[-1]], first.stderr
        book = faults.ledger(run_dir)
        assert "1 task(s) failed 2 times in transport" in lines[-1] and poison in lines[-1]
        assert f"1 of {book.expected} tasks are undecided" in lines[-1] and "--resume" in lines[-1]
        assert book.lost == 1 and book.duplicated == 0 and poison not in by_task(run_dir)
        assert [e["task_id"] for e in read_llm_errors(run_dir)] == [poison, poison]
        session = json.loads((run_dir / MANIFEST_NAME).read_text())["sessions"][-1]
        assert session["ended"] == "tasks_set_aside" and session["set_aside"] == [poison]

        llm.healed = True
        resumed = faults.run_pilot_cli([*args, "--llm-url", llm.base_url, "--resume"], ray_tmp)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "(1 new this session" in resumed.stdout
    assert_every_task_once(run_dir)
    assert by_task(run_dir)[poison]["valid"]


# -- 3. malformed model output -------------------------------------------------------------------------------
def test_malformed_model_output_is_counted_per_reason_and_the_run_completes(tmp_path, ray_tmp):
    """Injected (bench/faults.py behaviour_of, fixed per task id): 25 % of tasks get broken JSON on the first
    answer and a valid one on the re-ask; 15 % get one malformed kind on every answer (broken JSON,
    off-schema JSON, an answer cut at max_tokens, an empty answer, a 200 whose body is not JSON). The first
    end valid after 2 answers, the second invalid after 3 with the kind's reason; per-reason counts in the
    store and in Prometheus agree with what was injected."""
    run_dir = tmp_path / "run"
    logger = PrometheusDecisionLogger()
    with faults.MalformedLLM() as llm:
        config = PilotConfig(source=FLY, run_dir=run_dir, neurons=20, max_ops_per_neuron=2,
                             llm_urls=(llm.base_url,), model="fake", gpus_per_endpoint=1, concurrency=8,
                             metrics_port=0, progress=False, ray_temp_dir=ray_tmp)  # fmt: skip
        result = run_pilot(config, logger)
        calls = dict(llm.calls)

    assert result.complete and not result.interrupted
    assert_every_task_once(run_dir)
    plan = {task_id: faults.behaviour_of(task_id) for task_id in by_task(run_dir)}
    assert {"good", "flaky"} <= set(plan.values()) and set(plan.values()) & set(faults.MALFORMED_KINDS)
    for task_id, verdict in by_task(run_dir).items():
        behaviour = plan[task_id]
        assert calls[f"{behaviour}-{task_id}"] == verdict["answers"] == verdict["attempts"]
        if behaviour in ("good", "flaky"):
            assert verdict["valid"] and verdict["answers"] == (1 if behaviour == "good" else 2), verdict
        else:
            assert not verdict["valid"] and verdict["outcome"] == "invalid" and verdict["answers"] == 3
            assert verdict["error_reason"] == faults.MALFORMED_KINDS[behaviour]
    expected = Counter(faults.MALFORMED_KINDS[b] for b in plan.values() if b in faults.MALFORMED_KINDS)
    assert Counter(v["error_reason"] for v in read_verdicts(run_dir) if v["error_reason"]) == expected
    assert result.outcomes.get("invalid", 0) == expected.total()
    text = logger.exposition().decode()
    pattern = r'^proofpilot_llm_errors_total\{reason="([^"]+)"\} (\S+)$'
    exported = {m.group(1): float(m.group(2)) for m in re.finditer(pattern, text, re.M) if float(m.group(2))}
    assert exported == {reason: float(n) for reason, n in expected.items()}


# -- 5. a full disk ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DiskFullRun:
    run_dir: Path
    args: list[str]
    returncode: int
    stderr: str
    at_limit: bytes  # the store when the limit was set
    stopped: bytes  # the store when the pilot had stopped
    files: list[str]  # the run dir's files then


@pytest.fixture(scope="module")
def disk_full_run(slow_stub, tmp_path_factory, ray_tmp) -> DiskFullRun:
    """Injected: once the store holds 3 verdicts, a file-size limit about 2 verdicts above the store's size
    (RLIMIT_FSIZE on the running pilot; SIGXFSZ ignored, so a write past it fails with EFBIG, as on a full
    disk). Works without root or mount namespaces; the tmpfs variant is in test_pilot_e2e.py."""
    run_dir = tmp_path_factory.mktemp("disk-full") / "run"
    store = run_dir / VERDICTS_NAME
    args = [*SMALL_RUN, "--llm-url", slow_stub.base_url, "--model", "stub", "--gpus-per-endpoint", "1",
            "--concurrency", "2", "--scrape-interval", "0.1", "--run-dir", str(run_dir)]  # fmt: skip
    with faults.stopped_on_exit(faults.start_pilot_cli(args, ray_tmp, faults.ignore_sigxfsz)) as proc:
        faults.wait_for_verdicts(store, 3, proc)
        at_limit = stored_bytes(run_dir)
        faults.limit_file_size(proc.pid, len(at_limit) + 1000)  # room for about 2 more verdicts
        _, err = proc.communicate(timeout=600)
    files = sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file())
    return DiskFullRun(run_dir, args, proc.returncode, err, at_limit, store.read_bytes(), files)


def test_full_disk_stops_the_pilot_with_one_line_and_keeps_every_stored_verdict(disk_full_run):
    run = disk_full_run
    assert run.returncode == 2, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("proofpilot: error:")]
    assert errors == [run.stderr.strip().splitlines()[-1]], run.stderr[-2000:]
    assert "disk full" in errors[0] and "--resume" in errors[0]
    assert run.stopped.endswith(b"\n") and run.stopped.startswith(run.at_limit)  # no torn line, no rewrite
    stored = [json.loads(line) for line in run.stopped.splitlines()]  # each line parses
    assert f"the {len(stored)} verdicts stored before are intact" in errors[0]
    assert len({v["task_id"] for v in stored}) == len(stored)
    assert len(run.at_limit.splitlines()) <= len(stored) < faults.ledger(run.run_dir).expected
    # the window and cost.json are written after the store failed, on the same full disk (cost.json only
    # when the 0.1 s scrape saw the stub busy, as it usually does): no partial temporary file stays behind
    assert not [name for name in run.files if name.endswith(".tmp")], run.files


def test_resume_after_a_full_disk_completes_every_task_once(disk_full_run, ray_tmp):
    """With the limit gone (a new process), --resume finishes the run; the bytes stored before stay."""
    run = disk_full_run
    resumed = faults.run_pilot_cli([*run.args, "--resume", "--concurrency", "16"], ray_tmp)  # same identity
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_every_task_once(run.run_dir)
    assert (run.run_dir / VERDICTS_NAME).read_bytes().startswith(run.stopped)
