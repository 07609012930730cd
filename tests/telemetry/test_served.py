"""What served a run (telemetry/served.py): the label in cost.json and the report; a CPU run is a rehearsal
whose $ figures are left unpriced, never priced as H100 hours."""

from __future__ import annotations

import json

import pytest
from support.eval_runs import correct_rows, hand_rows, make_cost, make_run

from proofpilot.cli.main import main
from proofpilot.core.errors import ConfigError
from proofpilot.telemetry.cost import read_cost_json
from proofpilot.telemetry.projection import EditsProjection
from proofpilot.telemetry.served import served_by

PROJECTION = EditsProjection("fafb_synthetic", 2.0e6, (1.5e6, 2.6e6), 8.0e5, (6.0e5, 1.0e6))


def test_device_rules():
    tiny = served_by("tinyqwen", "auto", 2, 1)
    assert (tiny.device, tiny.device_source, tiny.rehearsal, tiny.priced) == ("cpu", "assumed", True, False)
    assert "rehearsal" in tiny.label and "not priced" in tiny.label
    big = served_by("Qwen/Qwen2.5-32B-Instruct", "auto", 2, 3)
    assert (big.device, big.device_source, big.rehearsal, big.priced) == ("gpu", "assumed", False, True)
    assert "3 endpoint(s) of 2 GPU(s)" in big.label and "not verified" in big.label
    declared = served_by("Qwen/Qwen2.5-32B-Instruct", "gpu", 2, 1)
    assert declared.device_source == "declared" and "not verified" not in declared.label
    cpu = served_by("Qwen/Qwen2.5-32B-Instruct", "cpu", 2, 1)  # a big model on a CPU is still no H100 cost
    assert cpu.rehearsal and not cpu.priced and cpu.gpus_per_endpoint == 0
    assert served_by("/x/.cache/tiny-qwen2", "gpu", 1, 1).rehearsal  # the tiny test model on any device
    with pytest.raises(ConfigError, match="--served-on must be one of"):
        served_by("m", "tpu", 1, 1)


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    rows = hand_rows()
    llm = make_run(root / "llm", rows)
    make_cost(llm, rows, gpus=1, projection=PROJECTION, served=served_by("tinyqwen", "cpu", 1, 1))
    base = make_run(root / "base", correct_rows(rows), agent="baseline")
    return llm, base


def test_rehearsal_cost_json_is_labelled_and_unpriced(rehearsal):
    llm, _ = rehearsal
    data = json.loads((llm / "cost.json").read_text())
    assert data["served_by"]["device"] == "cpu" and data["served_by"]["rehearsal"] is True
    proj = data["projection"]
    assert proj["usd"] is None and proj["usd_per_gpu_hour"] is None and proj["usd_ci"] == [None, None]
    assert proj["usd_basis"].startswith("not priced: a rehearsal on CPU (tinyqwen)")
    assert proj["node_hours"] > 0  # node-hours of this machine are still shown, labelled
    assert any("rehearsal" in note for note in data["notes"])
    back = read_cost_json(llm)
    assert back.served_by == served_by("tinyqwen", "cpu", 1, 1)


def test_gpu_run_is_priced_and_old_files_read(tmp_path):
    rows = hand_rows()
    run = make_run(tmp_path / "gpu", rows)
    make_cost(run, rows, projection=PROJECTION, served=served_by("Qwen/Qwen2.5-32B", "gpu", 2, 1))
    data = json.loads((run / "cost.json").read_text())
    assert data["projection"]["usd"] > 0 and data["served_by"]["device"] == "gpu"
    del data["served_by"]  # a cost.json written before the field existed
    (run / "cost.json").write_text(json.dumps(data))
    assert read_cost_json(run).served_by is None


def test_rehearsal_report_says_so_and_prices_nothing(rehearsal):
    llm, base = rehearsal
    assert main(["report", str(llm), "--compare", str(base), "--bootstrap", "200"]) == 0
    text = (llm / "report.html").read_text()
    assert 'id="served-by"' in text and "a rehearsal, not an H100 cost" in text
    assert "$ basis</b>: not priced" in text and "$2.50" not in text and "$nan" not in text
