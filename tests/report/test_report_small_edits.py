"""`proofpilot edits --sample-sizes 4` writes count intervals inside their support and flags the small
sample; `proofpilot report` takes that folder and shows the flag. A bad --out is one line, before any work."""

from __future__ import annotations

import json

import pytest
from support.eval_runs import ci_lows, hand_rows, make_run

from proofpilot.cli.main import main

FLY = "fafb_synthetic"  # heavy-tailed: at n = 4 bootstrap-t's lower end went to -11.9 edits per neuron


@pytest.fixture(scope="module")
def small_edits(tmp_path_factory):
    root = tmp_path_factory.mktemp("small")
    out = root / "edits"
    code = main(["edits", "--datastack", FLY, "--embedded", "--sample-sizes", "4", "--out", str(out),
                 "--cache-dir", str(root / "cache"), "--no-write-server-cache", "--no-progress"])  # fmt: skip
    assert code == 0
    return out


def test_small_sample_count_intervals_stay_non_negative_and_are_flagged(small_edits):
    summary = json.loads((small_edits / "summary.json").read_text())
    lows = dict(ci_lows(summary))
    assert ".samples[0].mean_edits_ci" in lows and ".cost.usd_ci" in lows  # the walk reached them
    assert {path: low for path, low in lows.items() if low < 0} == {}
    (sample,) = summary["samples"]
    assert sample["n_ok"] == 4 and sample["small_sample"] is True
    assert "small sample" in sample["small_sample_note"]
    assert summary["sampling"]["small_sample_n"] == 30
    assert "small sample: 4 neurons" in (small_edits / "summary.md").read_text()


def test_report_takes_a_small_sample_edits_folder(small_edits, tmp_path, capsys):
    run = make_run(tmp_path / "run", hand_rows())
    out = tmp_path / "r.html"
    code = main(["report", str(run), "--edits", str(small_edits), "--out", str(out), "--bootstrap", "200"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "small sample: 4 neurons" in out.read_text()


@pytest.mark.parametrize("where", ["file/x.html", "file/sub/x.html", "folder"])
def test_report_out_under_a_file_is_one_line_before_any_work(where, tmp_path, capsys):
    run = make_run(tmp_path / "run", hand_rows())
    (tmp_path / "file").write_text("not a folder")
    (tmp_path / "folder").mkdir()
    code = main(["report", str(run), "--out", str(tmp_path / where), "--bootstrap", "200"])
    err = capsys.readouterr().err
    assert code != 0 and err.startswith("proofpilot: error: ") and err.count("\n") == 1, err
    assert ("is a directory" if where == "folder" else f"{tmp_path / 'file'} is not a directory") in err
    assert not (run / "eval").exists()  # nothing was scored or written
