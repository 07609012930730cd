"""The run store: append-only verdicts, manifest and config hash, resume, torn lines, full disk."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

from proofpilot.core.errors import ConfigError, DataError
from proofpilot.orchestrator.store import (
    LLM_ERRORS_NAME,
    MANIFEST_NAME,
    VERDICTS_NAME,
    RunStore,
    config_hash,
    read_llm_errors,
    read_verdicts,
    scan_verdicts,
)

CONFIG = {"datastack": "fafb_synthetic", "neurons": 10, "seed": 0, "agent": "llm", "model": "m"}


def records(ids, pad: int = 0):
    return [{"task_id": f"{i}:partner", "decision": "merge", "pad": "x" * pad} for i in ids]


def snapshot(run_dir):
    return {p.name: p.read_bytes() for p in sorted(run_dir.iterdir()) if p.is_file()}


def test_new_run_appends_lines_and_resume_skips_them(tmp_path):
    run = tmp_path / "run"
    with RunStore.open(run, CONFIG, resume=False) as store:
        assert store.append(records(range(3))) == 3
        assert store.append(records([3])) == 1
        assert store.session == 1
    lines = (run / VERDICTS_NAME).read_text().splitlines()
    assert [json.loads(line)["task_id"] for line in lines] == [f"{i}:partner" for i in range(4)]
    manifest = json.loads((run / MANIFEST_NAME).read_text())
    assert manifest["config"] == CONFIG and manifest["config_hash"] == config_hash(CONFIG)

    with RunStore.open(run, dict(CONFIG), resume=True) as store:
        assert store.done_task_ids == {f"{i}:partner" for i in range(4)}
        assert store.session == 2
        store.append(records([4]))
    assert len(read_verdicts(run)) == 5


def test_a_task_is_stored_once(tmp_path):
    with RunStore.open(tmp_path / "run", CONFIG, resume=False) as store:
        store.append(records([1, 2]))
        assert store.append(records([2, 3])) == 1
    ids = [r["task_id"] for r in read_verdicts(tmp_path / "run")]
    assert sorted(ids) == ["1:partner", "2:partner", "3:partner"]


def test_existing_run_without_resume_is_refused_untouched(tmp_path):
    run = tmp_path / "run"
    with RunStore.open(run, CONFIG, resume=False) as store:
        store.append(records(range(2)))
    before = snapshot(run)
    with pytest.raises(ConfigError, match="already holds a run; pass --resume"):
        RunStore.open(run, CONFIG, resume=False)
    assert snapshot(run) == before


def test_resume_with_a_different_config_is_refused_untouched(tmp_path):
    run = tmp_path / "run"
    with RunStore.open(run, CONFIG, resume=False) as store:
        store.append(records(range(2)))
    before = snapshot(run)
    with pytest.raises(ConfigError, match=r"different config \(neurons 10 -> 20\)") as err:
        RunStore.open(run, {**CONFIG, "neurons": 20}, resume=True)
    assert "\n" not in str(err.value)
    assert snapshot(run) == before


def test_resume_of_a_dir_without_a_run(tmp_path):
    with pytest.raises(DataError, match="holds no run"):
        RunStore.open(tmp_path / "nothing", CONFIG, resume=True)
    assert not (tmp_path / "nothing").exists()


def test_torn_last_line_is_cut_on_resume(tmp_path):
    run = tmp_path / "run"
    with RunStore.open(run, CONFIG, resume=False) as store:
        store.append(records(range(3)))
    good = (run / VERDICTS_NAME).read_bytes()
    with open(run / VERDICTS_NAME, "ab") as fh:  # what a SIGKILL mid-write leaves
        fh.write(b'{"task_id":"3:partner","decis')
    assert read_verdicts(run) == [json.loads(line) for line in good.splitlines()]  # readers skip it
    with RunStore.open(run, CONFIG, resume=True) as store:
        assert store.done_task_ids == {"0:partner", "1:partner", "2:partner"}
        assert (run / VERDICTS_NAME).read_bytes() == good
        store.append(records([3]))
    scan = scan_verdicts(run / VERDICTS_NAME)
    assert scan.torn_bytes == 0 and [r["task_id"] for r in scan.records][-1] == "3:partner"


def test_transport_failures_are_kept_apart_from_the_decisions(tmp_path):
    """llm_errors.jsonl: a task may fail many times and still be decided once; it is created on the first
    failure only, and a torn last line (a crash mid-write) is cut on resume, as for the verdicts."""
    run = tmp_path / "run"
    failure = {"task_id": "1:partner", "reason": "connection", "attempts": 3}
    with RunStore.open(run, CONFIG, resume=False) as store:
        store.append(records([0]))
        assert not (run / LLM_ERRORS_NAME).exists()
        assert store.append_llm_errors([failure, {**failure, "reason": "timeout"}]) == 2
        assert store.done_task_ids == {"0:partner"} and store.n_llm_errors == 2
        with pytest.raises(DataError, match="string task_id"):
            store.append_llm_errors([{"reason": "timeout"}])
    good = (run / LLM_ERRORS_NAME).read_bytes()
    with open(run / LLM_ERRORS_NAME, "ab") as fh:
        fh.write(b'{"task_id":"1:partner","rea')
    assert [e["reason"] for e in read_llm_errors(run)] == ["connection", "timeout"]
    with RunStore.open(run, CONFIG, resume=True) as store:
        assert (run / LLM_ERRORS_NAME).read_bytes() == good
        store.append_llm_errors([failure])
        store.append(records([1]))
    assert [e["reason"] for e in read_llm_errors(run)] == ["connection", "timeout", "connection"]
    assert [r["task_id"] for r in read_verdicts(run)] == ["0:partner", "1:partner"]


def test_damaged_middle_line_is_an_error_and_left_alone(tmp_path):
    run = tmp_path / "run"
    with RunStore.open(run, CONFIG, resume=False) as store:
        store.append(records(range(3)))
    path = run / VERDICTS_NAME
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + b"garbage\n" + lines[2])
    before = snapshot(run)
    with pytest.raises(DataError, match=r"verdicts.jsonl:2: not a verdict line"):
        RunStore.open(run, CONFIG, resume=True)
    assert snapshot(run) == before


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [("valid", "yes", "valid is 'yes', not true/false"), ("session", 1.5, "session is 1.5, not an integer"),
     ("neuron_root_id", True, "neuron_root_id is True, not an integer"),
     ("confidence", [0.5], "confidence is [0.5], not a number")],
)  # fmt: skip
def test_a_verdict_field_of_the_wrong_type_is_named_with_its_line(field, value, says, tmp_path):
    run = tmp_path / "run"
    with RunStore.open(run, CONFIG, resume=False) as store:
        store.append([{**r, "valid": True, "session": 1, "confidence": None} for r in records(range(3))])
    path = run / VERDICTS_NAME
    lines = path.read_bytes().splitlines(keepends=True)
    bad = json.dumps({**json.loads(lines[1]), field: value}).encode() + b"\n"
    path.write_bytes(lines[0] + bad + lines[2])
    before = snapshot(run)
    with pytest.raises(DataError, match=rf"verdicts.jsonl:2: {re.escape(says)}; the run store is damaged"):
        RunStore.open(run, CONFIG, resume=True)
    with pytest.raises(DataError, match=r"verdicts.jsonl:2: "):
        read_verdicts(run)
    assert snapshot(run) == before


def test_one_writer_at_a_time(tmp_path):
    run = tmp_path / "run"
    with RunStore.open(run, CONFIG, resume=False), pytest.raises(DataError, match="in use by another pilot"):
        RunStore.open(run, CONFIG, resume=True)


def test_non_json_values_are_refused_before_writing(tmp_path):
    with RunStore.open(tmp_path / "run", CONFIG, resume=False) as store:
        store.append(records([1]))
        with pytest.raises(DataError, match="not storable as JSON"):
            store.append([{"task_id": "2:partner", "confidence": float("nan")}])
        assert len(store) == 1
    assert len(read_verdicts(tmp_path / "run")) == 1


# -- a full disk: a real ENOSPC (a 64 KiB tmpfs in a private mount namespace) or EFBIG (RLIMIT_FSIZE) -------
FILL_SCRIPT = textwrap.dedent(
    """
    import json, resource, signal, sys
    from proofpilot.orchestrator.store import RunStore, StoreFullError, scan_verdicts
    run_dir, limit = sys.argv[1], int(sys.argv[2])
    if limit:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    store = RunStore.open(run_dir, {"k": 1}, resume=False)
    stored, error = 0, None
    try:
        for batch in range(10_000):
            stored += store.append([{"task_id": f"{batch}:{i}", "pad": "x" * 300} for i in range(7)])
    except StoreFullError as exc:
        error = str(exc)
    store.close()
    scan = scan_verdicts(store.path)
    print(json.dumps({"stored": stored, "in_store": len(store), "on_disk": len(scan.records),
                      "torn": scan.torn_bytes, "error": error}))
    """
)


def _fill(mode: str, tmp_path) -> dict:
    script = tmp_path / "fill.py"
    script.write_text(FILL_SCRIPT)
    if mode == "rlimit":
        cmd = [sys.executable, str(script), str(tmp_path / "run"), str(64 * 1024)]
    else:
        mount = tmp_path / "disk"
        mount.mkdir()
        shell = (f"mount -t tmpfs -o size=64k tmpfs {mount} && "
                 f"{sys.executable} {script} {mount}/run 0")  # fmt: skip
        cmd = ["unshare", "-rm", "sh", "-c", shell]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _tmpfs_available() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=4k tmpfs /mnt"],
                           capture_output=True)  # fmt: skip
    return probe.returncode == 0


@pytest.mark.parametrize("mode", ["tmpfs", "rlimit"])
def test_full_disk_stops_with_one_line_and_keeps_every_stored_verdict(mode, tmp_path):
    if mode == "tmpfs" and not _tmpfs_available():
        pytest.skip("no unprivileged mount namespace here (unshare -rm)")
    result = _fill(mode, tmp_path)
    assert result["error"] is not None and "\n" not in result["error"]
    assert ("disk full" in result["error"]) and "--resume" in result["error"]
    assert result["stored"] > 0
    # the batch that hit the limit was cut off again: exactly the acknowledged verdicts are on disk
    assert result["torn"] == 0
    assert result["on_disk"] == result["stored"] == result["in_store"]
