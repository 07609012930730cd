"""The notebook API and the embedded profile served by itself.

`proofpilot.edits.analyze` on a user's own CAVEclient returns the summary record and the DataFrames and
writes nothing; the docstring examples of the entry points run here (under tests/conftest.py's private HOME);
`proofpilot edits --datastack fafb_synthetic ...` starts the embedded server with no other flag; importing a
stage package stays light.
"""

from __future__ import annotations

import doctest
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import caveclient
import pandas as pd
import pytest

from proofpilot.cli.main import main
from proofpilot.datastack.embedded.generator import population
from proofpilot.datastack.embedded.server import start_server
from proofpilot.edits import EditsResult, EditSummary, analyze, write_edits

STAGES = ("datastack", "edits", "tasks", "agent", "orchestrator", "telemetry", "eval", "report")
MOUSE = "minnie65_synthetic"


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def test_docstring_examples_run():
    import proofpilot.edits.analysis as module

    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_analyze_on_own_client_returns_records_and_writes_nothing(tmp_path, monkeypatch, test_home):
    monkeypatch.chdir(tmp_path)
    before_home, before_cwd = _files(test_home), _files(tmp_path)
    with start_server(MOUSE) as server:
        client = caveclient.CAVEclient(
            MOUSE, server_address=server.url, auth_token="t", write_server_cache=False
        )
        result = analyze(client, sample_sizes=(20, 40), seed=3, resamples=0)
        assert client.version is None  # the user's client is not re-pinned
    assert _files(tmp_path) == before_cwd
    new_in_home = _files(test_home) - before_home
    assert not [p for p in new_in_home if ".cloudvolume" not in p.parts], new_in_home  # caveclient's own

    assert isinstance(result, EditsResult) and isinstance(result.summary, EditSummary)
    assert [s.n for s in result.summary.samples] == [20, 40]
    assert result.summary.out_dir is None and result.summary.files == ()
    assert result.summary.population["n_neurons"] == len(population(MOUSE).root_ids)
    per = result.per_neuron
    assert isinstance(per, pd.DataFrame) and {"in_n20", "in_n40"} <= set(per.columns)
    assert per["in_n20"].sum() == 20 and per["in_n40"].sum() == 40
    ok = per[per["in_n40"] & (per["status"] == "ok")]
    assert result.summary.samples[1].mean_edits.value == pytest.approx(ok["n_edits"].mean())
    assert len(result.membership) == per["n_edits"].sum() and result.operations["operation_id"].is_unique

    summary = write_edits(result, tmp_path / "out", figures=False)
    written = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert written["samples"][1]["mean_edits"] == pytest.approx(ok["n_edits"].mean())
    assert summary.out_dir == tmp_path / "out" and (tmp_path / "out" / "per_neuron.parquet").exists()


def test_edits_on_an_embedded_name_needs_no_other_flag(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "D"
    assert main(["edits", "--datastack", "fafb_synthetic", "--sample-sizes", "100", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    match = re.search(r"embedded CAVE server for fafb_synthetic at (http://127\.0\.0\.1:\d+)", text)
    assert match, text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pin"]["server_address"].rstrip("/") == match.group(1)
    assert summary["samples"][0]["n"] == 100 and "fafb_synthetic n100" in text


def test_stage_packages_import_light_and_export_their_api():
    code = (
        "import importlib, sys\n"
        f"mods = [importlib.import_module('proofpilot.' + s) for s in {STAGES!r}]\n"
        "heavy = [m for m in ('pandas', 'caveclient', 'ray', 'matplotlib') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert all(m.__all__ for m in mods)\n"
        "for m in mods:\n"
        "    for name in m.__all__:\n"
        "        getattr(m, name)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-2000:]
