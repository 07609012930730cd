"""A run whose run.json is gone: --resume rebuilds it from what the run stored and continues; a plain rerun
says so (never 'holds no run' one way and 'already holds a run' the other). A stored verdict for a task that
is not in the run is refused by resume, as eval refuses it."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import replace

import pytest

from proofpilot.core.errors import ConfigError, DataError
from proofpilot.orchestrator.store import MANIFEST_NAME, VERDICTS_NAME, read_manifest, read_verdicts
from proofpilot.pilot.run import TASKS_NAME, PilotConfig, run_pilot


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One small baseline run (3 neurons), copied by each test."""
    ray_tmp = tempfile.mkdtemp(prefix="ppm-", dir="/tmp")  # short: unix socket paths are limited
    run_dir = tmp_path_factory.mktemp("base") / "run"
    config = PilotConfig(source="fafb_synthetic", run_dir=run_dir, neurons=3, max_ops_per_neuron=2,
                         agent="baseline", metrics_port=0, progress=False, ray_temp_dir=ray_tmp)  # fmt: skip
    try:
        result = run_pilot(config)
        assert result.complete and result.n_tasks > 0
        yield config, result
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.fixture
def run_copy(finished_run, tmp_path):
    config, result = finished_run
    shutil.copytree(config.run_dir, tmp_path / "run")
    return replace(config, run_dir=tmp_path / "run"), result


def test_resume_rebuilds_a_lost_manifest_and_a_plain_rerun_says_so(run_copy):
    config, first = run_copy
    before = (config.run_dir / VERDICTS_NAME).read_bytes()
    pin = read_manifest(config.run_dir)["pin"]
    (config.run_dir / MANIFEST_NAME).unlink()

    with pytest.raises(ConfigError, match=r"run\.json is gone; pass --resume") as plain:
        run_pilot(config)
    assert "\n" not in str(plain.value) and not (config.run_dir / MANIFEST_NAME).exists()

    again = run_pilot(replace(config, resume=True))
    assert again.complete and again.n_new == 0 and again.n_tasks == first.n_tasks
    assert (config.run_dir / VERDICTS_NAME).read_bytes() == before  # nothing decided twice
    manifest = read_manifest(config.run_dir)
    assert manifest["rebuilt"] and manifest["pin"] == pin and manifest["n_tasks"] == first.n_tasks
    assert manifest["config"] == config.identity()

    with pytest.raises(ConfigError, match="already holds a run; pass --resume"):
        run_pilot(config)  # a normal run dir again


def test_a_lost_manifest_and_task_list_is_one_answer_both_ways(run_copy):
    config, _ = run_copy
    (config.run_dir / MANIFEST_NAME).unlink()
    (config.run_dir / TASKS_NAME).unlink()
    answers = set()
    for resume in (False, True):
        with pytest.raises(DataError, match=r"run\.json is gone, and tasks\.jsonl too") as caught:
            run_pilot(replace(config, resume=resume))
        answers.add(str(caught.value))
    assert len(answers) == 1 and "\n" not in answers.pop()


def test_resume_with_verdicts_of_another_agent_is_refused(run_copy):
    config, _ = run_copy
    (config.run_dir / MANIFEST_NAME).unlink()
    with pytest.raises(ConfigError, match="agent 'baseline', not 'llm'"):
        run_pilot(replace(config, resume=True, agent="llm", llm_urls=("http://127.0.0.1:9/v1",), model="m"))


def test_resume_refuses_a_verdict_for_a_task_not_in_the_run(run_copy):
    config, _ = run_copy
    stray = {**read_verdicts(config.run_dir)[0], "task_id": "999999999:partner", "operation_id": 999999999}
    with open(config.run_dir / VERDICTS_NAME, "a") as fh:
        fh.write(json.dumps(stray) + "\n")
    with pytest.raises(DataError, match=r"1 verdicts are for tasks not in tasks\.jsonl") as caught:
        run_pilot(replace(config, resume=True))
    assert "999999999:partner" in str(caught.value)
    assert len(read_manifest(config.run_dir)["sessions"]) == 1  # refused before the store was opened
