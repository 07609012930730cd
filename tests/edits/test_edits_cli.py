"""`proofpilot edits` end to end over HTTP (real caveclient against the embedded server), plus bad input.

One run on small samples of the mouse-like table with a sticky 20 % error rate on change logs: error neurons
are reported, never 0 edits; every number in summary.json is recomputed from per_neuron.parquet; a rerun with
the faults off fetches only the failed neurons (the rest comes from the cache).
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from proofpilot.cli.main import main
from proofpilot.datastack.embedded.faults import FaultConfig
from proofpilot.datastack.embedded.generator import population
from proofpilot.datastack.embedded.server import start_server

MOUSE = "minnie65_synthetic"
SAMPLE_KEYS = {
    "n",
    "n_errors",
    "mean_edits",
    "mean_edits_ci",
    "median_edits",
    "merge_share",
    "merge_share_ci",
    "p95",
    "tail_share",
    "projected_total",
    "projected_total_ci",
    "projected_merges",
    "projected_splits",
}


def run_cli(url: str, out, cache, *extra: str) -> int:
    return main(
        [
            "edits",
            "--datastack",
            MOUSE,
            "--server-address",
            url,
            "--out",
            str(out),
            "--cache-dir",
            str(cache),
            "--no-write-server-cache",
            "--no-progress",
            "--retries",
            "0",
            "--resamples",  # Figure 1's resamples: tests/edits/test_edits_figures.py
            "0",
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def server():
    with start_server(MOUSE) as srv:
        yield srv


def test_edits_end_to_end_with_errors_then_resume(server, tmp_path, capsys, caplog):
    out, cache = tmp_path / "out", tmp_path / "cache"
    server.set_faults(FaultConfig(error_rate=0.1, sticky=True, seed=5, routes=("tabular_change_log_many",)))
    try:  # one root per call so that a sticky error fails exactly one neuron
        assert (
            run_cli(server.url, out, cache, "--sample-sizes", "40", "80", "--seed", "7", "--batch-size", "1")
            == 0
        )
    finally:
        server.set_faults(None)
    assert "projected total" in capsys.readouterr().out

    for name in (
        "per_neuron.parquet",
        "operations.parquet",
        "membership.parquet",
        "summary.json",
        "summary.md",
        "figures/figure1_sample_size_validation.png",
        "figures/figure2_distributions.png",
        "figures/figure3_cost.png",
    ):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    assert {"datastack", "version", "population", "samples", "cost", "pin", "units"} <= set(summary)
    assert summary["version"] == summary["pin"]["materialization_version"] == 1412
    assert {"node_hours", "gpu_hours", "usd", "basis"} <= set(summary["cost"])
    assert summary["population"]["n_neurons"] == population(MOUSE).profile.n_neurons

    per = pd.read_parquet(out / "per_neuron.parquet")
    truth = population(MOUSE).frame().set_index("root_id")
    n_errors_total = 0
    for sample in summary["samples"]:
        assert set(sample) >= SAMPLE_KEYS
        rows = per[per[f"in_{sample['label']}"]]
        assert len(rows) == sample["n"] == int(sample["label"][1:])
        errors = rows[rows["status"] == "error"]
        ok = rows[rows["status"] == "ok"]
        n_errors_total += len(errors)
        assert sample["n_errors"] == len(errors) and sample["n_ok"] == len(ok)
        assert errors["n_edits"].isna().all()  # never 0 edits
        assert ok["n_edits"].tolist() == truth.loc[ok["root_id"], "n_edits"].tolist()
        # every number recomputable from the rows
        edits = ok["n_edits"].astype(float)
        assert sample["mean_edits"] == pytest.approx(edits.mean())
        assert sample["median_edits"] == pytest.approx(edits.median())
        assert sample["merge_share"] == pytest.approx(ok["n_merges"].sum() / edits.sum())
        assert sample["projected_total"] == pytest.approx(edits.mean() * summary["population"]["n_neurons"])
        lo, hi = sample["mean_edits_ci"]
        assert lo < sample["mean_edits"] < hi
    assert n_errors_total > 0
    cost = summary["cost"]
    assert cost["gpu_hours"] == pytest.approx(2 * cost["node_hours"])
    assert cost["usd"] == pytest.approx(2.0 * cost["gpu_hours"])
    md = (out / "summary.md").read_text()
    assert "counted twice" in md and "Table 1" in md and "never counted as 0 edits" in md

    # resume: faults off, only the failed neurons are fetched (sampled ones, and those outside the sample
    # whose logs the distinct-operation lookup could not fetch); the table comes from the cache
    failed = per.loc[per["status"] == "error", "root_id"]
    lookup_failed = [
        int(m.group(1))
        for r in caplog.records
        if (m := re.match(r"(\d+) of \d+ neurons sharing sampled operations: no log", r.getMessage()))
    ]
    server.reset_counts()
    assert run_cli(server.url, out, cache, "--sample-sizes", "40", "80", "--seed", "7", "--no-figures") == 0
    counts = server.request_counts
    assert counts.get("query", 0) == 0
    expected = math.ceil(len(failed) / 50) + math.ceil(sum(lookup_failed) / 50)
    assert counts["tabular_change_log_many"] == expected
    again = json.loads((out / "summary.json").read_text())
    assert all(s["n_errors"] == 0 for s in again["samples"])
    per2 = pd.read_parquet(out / "per_neuron.parquet")
    assert np.array_equal(per2.loc[per2["in_n40"], "root_id"], per.loc[per["in_n40"], "root_id"])


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--sample-sizes", "5000"], "sample size 5000 is larger than the proofread table (2,314 neurons)"),
        (["--sample-sizes", "10", "--table", "no_such_table"], "unknown table 'no_such_table'"),
        (["--sample-sizes", "10", "--t-merge", "-1"], "--t-merge must be a non-negative number"),
        (["--sample-sizes", "10", "--t-split", "-0.5"], "--t-split must be a non-negative number"),
        (["--sample-sizes", "10", "--bootstrap", "10"], "--bootstrap must be at least 1000"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(server, tmp_path, capsys, extra, message):
    code = run_cli(server.url, tmp_path / "out", tmp_path / "cache", *extra)
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert message in err


def test_unknown_embedded_profile_is_one_line(tmp_path, capsys):
    code = main(
        ["edits", "--datastack", "nope", "--embedded", "--sample-sizes", "10", "--out", str(tmp_path)]
    )
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "unknown embedded profile" in err


@pytest.fixture(scope="module")
def small_summary(server, tmp_path_factory):
    """(EditSummary, output folder) of one small run without figures."""
    from proofpilot.datastack.source import DataSource
    from proofpilot.edits.analysis import run_edits
    from proofpilot.edits.records import EditsConfig

    root = tmp_path_factory.mktemp("edits-small")
    source = DataSource(MOUSE, server_address=server.url, cache_dir=root / "cache", write_server_cache=False)
    config = EditsConfig(
        source=source,
        out_dir=root / "out",
        sample_sizes=(20, 30),
        progress=False,
        figures=False,
        resamples=0,
    )
    return run_edits(config), root / "out"


def test_summary_json_reads_back_as_the_record_of_the_summary(small_summary):
    from proofpilot.edits.summary import SummaryRecord, read_summary

    summary, out = small_summary
    record = read_summary(out / "summary.json")
    assert record == SummaryRecord.of(summary)
    assert record.cost.merges.ci is not None and record.samples[-1].mean_edits.value > 0
    assert read_summary(out) == record  # the folder names its summary.json


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["samples"][1].pop("n_ok"), "missing field samples[1].n_ok"),
        (lambda d: d["samples"][0].update(gini="high"), "field samples[0].gini.value must be a number"),
        (lambda d: d["cost"].update(merges_ci=[1.0]), "field cost.merges.ci must have 2 items"),
        (lambda d: d["cost"]["basis"].update(t_merge_s=-1.0), "cost.basis: --t-merge must be"),
        (lambda d: d.pop("population"), "missing field population"),
    ],
)
def test_malformed_summary_json_names_the_field(small_summary, tmp_path, edit, message):
    from proofpilot.core.errors import DataError
    from proofpilot.edits.summary import read_summary

    data = json.loads((small_summary[1] / "summary.json").read_text())
    edit(data)
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError) as err:
        read_summary(path)
    assert f"summary.json: {message}" in str(err.value) and "\n" not in str(err.value)
