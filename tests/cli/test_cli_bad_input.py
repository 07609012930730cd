"""Bad input to every `proofpilot` subcommand, through the installed console script in a subprocess.

Each case must give exactly one line on stderr (``proofpilot: error: ...`` naming the problem), no traceback
and a non-zero exit; a case that points at an existing run also checks that nothing in it changed. Servers
(the embedded CAVE datastack, a fake OpenAI endpoint) run in this process on 127.0.0.1; "unreachable" means
a loopback port nothing listens on, so no case ever leaves the machine.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.eval_runs import hand_rows, make_run
from support.fake_llm import FakeLLM

from proofpilot.datastack.embedded.server import start_server
from proofpilot.orchestrator.store import RunStore
from proofpilot.pilot.run import PilotConfig

PROOFPILOT = Path(sys.executable).with_name("proofpilot")  # the console script of this venv
MOUSE = "minnie65_synthetic"  # 2,314 proofread neurons
SCRUBBED_ENV = ("PROOFPILOT_LLM_URL", "PROOFPILOT_LLM_MODEL", "PROOFPILOT_CAVE_TOKEN", "CAVE_TOKEN")


@dataclass(frozen=True)
class World:
    """What the cases point at: live servers, a dead port, files and run dirs."""

    cave: str  # embedded CAVE server (mouse-like profile)
    llm: str  # fake OpenAI endpoint serving the model "fake"
    dead: str  # http://127.0.0.1:PORT with nothing listening
    tmp: Path
    stored: Path  # a pilot run dir (fafb, 20 neurons, 2 ops, model "stub") holding 3 verdicts
    eval_run: Path  # a complete small run (eval_runs.make_run)


def _dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # the socket is closed: connections are refused


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad-input")
    stored = tmp / "stored-run"
    config = PilotConfig(source="fafb_synthetic", run_dir=stored, neurons=20, max_ops_per_neuron=2,
                         llm_urls=("http://127.0.0.1:1/v1",), model="stub")  # fmt: skip
    with RunStore.open(stored, config.identity(), resume=False) as store:
        store.append([{"task_id": f"{i}:partner", "decision": "merge"} for i in range(3)])
    (tmp / "empty-dir").mkdir()
    (tmp / "empty-tasks").write_text("")
    task = '{"task_id": "a", "op_kind": "merge", "features": {"gap_um": 0.5}}\n'
    (tmp / "one-task").write_text(task)
    (tmp / "broken-tasks").write_text(task + "not json\n")
    (tmp / "roots").write_text("864691130000002249\n86469113000000x249\n")
    eval_run = make_run(tmp / "eval-run", hand_rows())
    with start_server(MOUSE) as cave, FakeLLM() as llm:
        yield World(cave.url, llm.base_url, _dead_url(), tmp, stored, eval_run)


def _snapshot(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


def run_proofpilot(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    return subprocess.run(
        [str(PROOFPILOT), *args], capture_output=True, text=True, timeout=180, env={**base, **(env or {})}
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, expected: str) -> str:
    err = proc.stderr.strip()
    assert proc.returncode != 0, f"exit 0; stdout: {proc.stdout[-500:]}"
    assert "Traceback" not in err, err[-3000:]
    assert len(err.splitlines()) == 1, f"{len(err.splitlines())} lines on stderr:\n{err[-3000:]}"
    assert err.startswith("proofpilot: error:"), err
    assert expected.lower() in err.lower(), err
    return err


# command templates: {cave} {llm} {dead} {tmp} {stored} {eval_run} {cave_port} {mouse} come from the World
INGEST = "datastack ingest --no-cache --no-write-server-cache --no-progress --out {tmp}/ingest-out "
EDITS = "edits --no-cache --no-write-server-cache --no-progress --no-figures --out {tmp}/edits-out "
PILOT = "pilot --metrics-port 0 --no-progress "
NEW_PILOT = PILOT + "--run-dir {tmp}/pilot-run "  # no case may leave this dir behind
FAFB_20 = "--datastack fafb_synthetic --neurons 20 --max-ops-per-neuron 2 "
STORED = PILOT + FAFB_20 + "--model stub --run-dir {stored} "  # the options the stored run was made with
DECIDE = "agent decide --llm-url {llm} --model fake --out {tmp}/agent-out.jsonl "
REPORT = "report {eval_run} --out {tmp}/report.html "
AT_CAVE = "--server-address {cave} "

# (case id, command template, a fragment the one line must contain)
CASES = [
    # -- top level ----------------------------------------------------------------------------------------
    ("unknown-subcommand", "frobnicate", "no such command"),
    ("pilot-without-options", "pilot", "missing option '--datastack'"),
    # -- datastack serve ----------------------------------------------------------------------------------
    ("serve-bad-profile", "datastack serve --profile nope", "unknown embedded profile 'nope'"),
    ("serve-negative-latency", "datastack serve --latency -1", "--latency"),
    ("serve-error-rate-over-1", "datastack serve --error-rate 1.5", "--error-rate"),
    ("serve-fault-rates-over-1", "datastack serve --error-rate 0.6 --timeout-rate 0.6", "must not exceed 1"),
    ("serve-port-in-use", "datastack serve --port {cave_port}", "address already in use"),
    # -- datastack ingest ---------------------------------------------------------------------------------
    ("ingest-unknown-datastack", INGEST + AT_CAVE + "--datastack nope --table t", "unknown datastack 'nope'"),
    ("ingest-unknown-datastack-default-options",
     "datastack ingest --no-cache --out {tmp}/ingest-out " + AT_CAVE + "--datastack nope --table t",
     "unknown datastack 'nope'"),
    ("ingest-datastack-without-table", INGEST + AT_CAVE + "--datastack nope", "--table"),
    ("ingest-unknown-table", INGEST + AT_CAVE + "--datastack {mouse} --table nope", "unknown table 'nope'"),
    ("ingest-unreachable-server", INGEST + "--datastack {mouse} --server-address {dead}", "cannot reach"),
    ("ingest-malformed-root-id", INGEST + AT_CAVE + "--datastack {mouse} --roots {tmp}/roots",
     "malformed root id '86469113000000x249'"),
    ("ingest-negative-timeout", INGEST + AT_CAVE + "--datastack {mouse} --timeout -1", "--timeout"),
    ("ingest-unknown-version", INGEST + AT_CAVE + "--datastack {mouse} --version 999999",
     "version 999999 is not available"),
    # -- edits --------------------------------------------------------------------------------------------
    ("edits-unknown-profile", EDITS + "--datastack nope --embedded --sample-sizes 10",
     "unknown embedded profile 'nope'"),
    ("edits-unknown-datastack", EDITS + AT_CAVE + "--datastack nope --table t --sample-sizes 10",
     "unknown datastack 'nope'"),
    ("edits-unknown-table", EDITS + AT_CAVE + "--datastack {mouse} --table nope --sample-sizes 10",
     "unknown table 'nope'"),
    ("edits-unreachable-server", EDITS + "--datastack {mouse} --server-address {dead} --sample-sizes 10",
     "cannot reach"),
    ("edits-sample-larger-than-table", EDITS + AT_CAVE + "--datastack {mouse} --sample-sizes 5000",
     "sample size 5000 is larger than the proofread table (2,314 neurons)"),
    ("edits-negative-sample-size", EDITS + AT_CAVE + "--datastack {mouse} --sample-sizes -5",
     "sample sizes must be at least"),
    ("edits-negative-t-merge", EDITS + AT_CAVE + "--datastack {mouse} --sample-sizes 10 --t-merge -2",
     "--t-merge"),
    ("edits-negative-t-split", EDITS + AT_CAVE + "--datastack {mouse} --sample-sizes 10 --t-split -2.5",
     "--t-split"),
    ("edits-too-few-bootstrap-draws",
     EDITS + AT_CAVE + "--datastack {mouse} --sample-sizes 10 --bootstrap 10", "--bootstrap"),
    ("edits-embedded-default-options-sample-too-large",
     "edits --datastack {mouse} --embedded --sample-sizes 5000 --no-cache --no-figures --out {tmp}/edits-out",
     "sample size 5000 is larger than the proofread table"),
    ("edits-embedded-and-server-address",
     EDITS + AT_CAVE + "--datastack {mouse} --embedded --sample-sizes 10", "mutually exclusive"),
    # -- agent --------------------------------------------------------------------------------------------
    ("agent-check-unreachable-url", "agent check --llm-url {dead}/v1 --model fake", "unreachable"),
    ("agent-check-unknown-model", "agent check --llm-url {llm} --model nope", "model 'nope' is not served"),
    ("agent-check-not-http", "agent check --llm-url ftp://127.0.0.1/v1 --model fake", "http://"),
    ("agent-decide-empty-task-list", DECIDE + "--tasks {tmp}/empty-tasks", "empty task list"),
    ("agent-decide-malformed-task-file", DECIDE + "--tasks {tmp}/broken-tasks", "broken-tasks:2: not JSON"),
    ("agent-decide-negative-timeout", DECIDE + "--tasks {tmp}/one-task --timeout -1", "timeout must be > 0"),
    ("agent-decide-unreachable-url",
     "agent decide --llm-url {dead}/v1 --model fake --tasks {tmp}/one-task --out {tmp}/agent-out.jsonl",
     "unreachable"),
    # -- pilot --------------------------------------------------------------------------------------------
    ("pilot-unknown-datastack",
     NEW_PILOT + AT_CAVE + "--datastack nope --table t --neurons 5 --agent baseline",
     "unknown datastack 'nope'"),
    ("pilot-datastack-without-table", NEW_PILOT + AT_CAVE + "--datastack nope --neurons 5 --agent baseline",
     "--table"),
    ("pilot-unknown-table",
     NEW_PILOT + AT_CAVE + "--datastack {mouse} --table nope --neurons 5 --agent baseline",
     "unknown table 'nope'"),
    ("datastack-check-unknown-datastack", "datastack check " + AT_CAVE + "--datastack nope",
     "unknown datastack 'nope'"),
    ("datastack-check-unreachable-server", "datastack check --datastack {mouse} --server-address {dead}",
     "cannot reach"),
    ("pilot-unreachable-server",
     NEW_PILOT + "--datastack {mouse} --server-address {dead} --neurons 5 --agent baseline", "cannot reach"),
    ("pilot-neurons-larger-than-table", NEW_PILOT + "--datastack {mouse} --neurons 5000 --agent baseline",
     "larger than the proofread table (2,314 neurons)"),
    ("pilot-zero-neurons", NEW_PILOT + "--datastack {mouse} --neurons 0 --agent baseline", "--neurons"),
    ("pilot-zero-ops-per-neuron",
     NEW_PILOT + "--datastack {mouse} --neurons 5 --max-ops-per-neuron 0 --agent baseline",
     "--max-ops-per-neuron"),
    ("pilot-negative-timeout", NEW_PILOT + "--datastack {mouse} --neurons 5 --llm-url {llm} --model fake "
     "--timeout -5", "timeout must be positive"),
    ("pilot-negative-scrape-interval", NEW_PILOT + "--datastack {mouse} --neurons 5 --llm-url {llm} "
     "--model fake --scrape-interval -1", "scrape interval"),
    ("pilot-zero-outage-wait", NEW_PILOT + "--datastack {mouse} --neurons 5 --llm-url {llm} --model fake "
     "--outage-wait 0", "--outage-wait"),
    ("pilot-zero-max-task-failures", NEW_PILOT + "--datastack {mouse} --neurons 5 --llm-url {llm} "
     "--model fake --max-task-failures 0", "--max-task-failures"),
    ("pilot-negative-gpu-price", NEW_PILOT + "--datastack {mouse} --neurons 5 --llm-url {llm} --model fake "
     "--usd-per-gpu-hour -1", "--usd-per-gpu-hour"),
    ("pilot-view-px-too-small", NEW_PILOT + "--datastack {mouse} --neurons 5 --llm-url {llm} --model fake "
     "--views 3 --view-px 50", "--view-px must be 112–1024, got 50"),
    ("pilot-view-px-too-large", NEW_PILOT + "--datastack {mouse} --neurons 5 --llm-url {llm} --model fake "
     "--view-px 5000", "--view-px must be 112–1024, got 5000"),
    ("pilot-too-many-views", NEW_PILOT + "--datastack {mouse} --neurons 5 --llm-url {llm} --model fake "
     "--views 7", "--views must be 0–6, got 7"),
    ("pilot-views-for-the-baseline", NEW_PILOT + "--datastack {mouse} --neurons 5 --agent baseline --views 3",
     "needs the llm agent"),
    ("pilot-llm-agent-without-url", NEW_PILOT + "--datastack {mouse} --neurons 5 --model fake", "--llm-url"),
    ("pilot-url-not-http",
     NEW_PILOT + "--datastack {mouse} --neurons 5 --llm-url 127.0.0.1:8000/v1 --model fake",
     "not an http(s) URL"),
    ("pilot-same-url-twice", NEW_PILOT + "--datastack {mouse} --neurons 5 --llm-url {llm},{llm} --model fake",
     "same endpoint twice"),
    ("pilot-unreachable-llm-url",
     NEW_PILOT + "--datastack {mouse} --neurons 5 --llm-url {dead}/v1 --model fake", "unreachable"),
    ("pilot-unknown-model", NEW_PILOT + "--datastack {mouse} --neurons 5 --llm-url {llm} --model nope",
     "model 'nope' is not served"),
    ("pilot-unknown-agent", NEW_PILOT + "--datastack {mouse} --neurons 5 --agent gpt", "--agent"),
    ("pilot-unknown-device", NEW_PILOT + "--datastack {mouse} --neurons 5 --llm-url {llm} --model fake "
     "--served-on tpu", "--served-on"),
    ("export-prompts-not-a-run", "export-prompts {tmp} --out {tmp}/p.jsonl", "cannot read"),
    ("pilot-metrics-port-out-of-range",
     NEW_PILOT + "--datastack {mouse} --neurons 5 --agent baseline --metrics-port 70000", "--metrics-port"),
    ("pilot-resume-without-a-run",
     PILOT + "--datastack {mouse} --neurons 5 --agent baseline --resume --run-dir {tmp}/empty-dir",
     "holds no run"),
    # the stored run: resumed with another config, reused without --resume, resumed with no LLM
    ("pilot-resume-with-another-config", STORED + "--llm-url {llm} --resume --seed 1",
     "different config (seed 0 -> 1)"),
    ("pilot-existing-run-without-resume", STORED + "--llm-url {llm}", "already holds a run"),
    ("pilot-resume-with-unreachable-llm", STORED + "--llm-url {dead}/v1 --resume", "unreachable"),
    # -- eval ---------------------------------------------------------------------------------------------
    ("eval-missing-run-dir", "eval {tmp}/no-such-run", "does not exist"),
    ("eval-dir-without-a-run", "eval {tmp}/empty-dir", "holds no run"),
    ("eval-zero-bootstrap-draws", "eval {eval_run} --bootstrap 0 --out {tmp}/eval-out", "--bootstrap"),
    ("eval-ci-level-out-of-range", "eval {eval_run} --ci-level 1.5 --out {tmp}/eval-out", "--ci-level"),
    ("eval-compare-dir-without-a-run", "eval {eval_run} --compare {tmp}/empty-dir --out {tmp}/eval-out",
     "holds no run"),
    # -- report -------------------------------------------------------------------------------------------
    ("report-missing-run-dir", "report {tmp}/no-such-run", "does not exist"),
    ("report-edits-dir-without-summary", REPORT + "--edits {tmp}/empty-dir", "holds no summary.json"),
    ("report-missing-edits-dir", REPORT + "--edits {tmp}/no-such-edits", "no such directory"),
    ("report-compare-dir-without-a-run", REPORT + "--compare {tmp}/empty-dir", "holds no run"),
    # -- demo ---------------------------------------------------------------------------------------------
    ("demo-zero-neurons", "demo --neurons 0 --out {tmp}/demo-out", "--neurons"),
]  # fmt: skip


def command_line(template: str, w: World) -> list[str]:
    fields = {**vars(w), "cave_port": w.cave.rsplit(":", 1)[1], "mouse": MOUSE}
    return shlex.split(template.format(**fields))


@pytest.mark.parametrize(("template", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_nonzero(world, template, expected):
    before = _snapshot(world.stored)
    proc = run_proofpilot(command_line(template, world))
    assert_one_line_error(proc, expected)
    assert _snapshot(world.stored) == before  # a refused resume never touches the stored verdicts
    assert not (world.tmp / "pilot-run").exists()  # a refused pilot leaves no half-made run dir behind


def test_demo_without_the_vllm_setup_is_one_line(world):
    proc = run_proofpilot(["demo", "--out", str(world.tmp / "demo-out")],
                          env={"PROOFPILOT_VLLM_VENV": str(world.tmp / "no-venv")})  # fmt: skip
    assert_one_line_error(proc, "make setup")
