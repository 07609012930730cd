"""report: one self-contained report.html from a run, its cost.json and two real `edits` output folders.

The run is written by the pilot's writers (tests/support/eval_runs.py), cost.json by telemetry.cost, the edits
folders by the real edits stage on the embedded mouse-like and fly-like datastacks.
"""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser

import pytest
from support.eval_runs import correct_rows, edits_outputs, hand_failures, hand_rows, make_cost, make_run

from proofpilot.cli.main import main
from proofpilot.core.vocab import OP_KINDS
from proofpilot.edits.summary import read_summary
from proofpilot.report.build import build_report, gather
from proofpilot.telemetry.cost import read_cost_json
from proofpilot.telemetry.projection import EditsProjection

PNG = b"\x89PNG\r\n\x1a\n"


class Page(HTMLParser):
    """Tags, attributes and table text of a page."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.tables: dict[str, list[str]] = {}
        self._table: str | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self._table = dict(attrs).get("id", "")
            self.tables[self._table] = []

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._table is not None and data.strip():
            self.tables[self._table].append(data.strip())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    rows = hand_rows()
    llm = make_run(root / "llm", rows, failures=hand_failures())
    projection = EditsProjection("fafb_synthetic", 2.0e6, (1.5e6, 2.6e6), 8.0e5, (6.0e5, 1.0e6))
    make_cost(llm, rows, gpus=2, projection=projection)
    base = make_run(root / "base", correct_rows(rows), agent="baseline")
    return llm, base


def test_report_is_self_contained_and_complete(runs):
    llm, base = runs
    mouse, fly = edits_outputs()
    result = build_report(llm, (mouse, fly), (base,), n_bootstrap=300)
    assert result.path == llm / "report.html" and result.path.stat().st_size == result.n_bytes
    text = result.path.read_text()
    page = Page(text)
    tags = [t for t, _ in page.tags]
    assert "script" not in tags and "link" not in tags and "iframe" not in tags
    csp = [
        a["content"] for t, a in page.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"
    ]
    assert csp and "default-src 'none'" in csp[0] and "img-src data:" in csp[0]
    images = [a["src"] for t, a in page.tags if t == "img"]
    # 4 own plots (accuracy, cost per edit, full dataset, latency) + the 3 figures of each edits folder
    assert len(images) == result.n_images == 4 + 3 + 3
    for src in images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG)
    assert not [a for _, a in page.tags for k, v in a.items() if k in ("src", "href") and "://" in (v or "")]
    tables = ("accuracy-table", "comparison-table", "reliability-table", "confusion-table", "cost-table",
              "full-dataset-cost-table", "latency-table", "edit-bins-table", "heavy-tail-table")  # fmt: skip
    for table in tables:
        assert page.tables.get(table), table
    acc = " ".join(page.tables["accuracy-table"])
    assert "66.7" in acc and "50.0" in acc and "60.0" in acc  # merge, split, all of the hand count
    reliability = " ".join(page.tables["reliability-table"])
    assert "transport errors / request" in reliability and "timeouts / request" in reliability
    assert "14.3" in reliability and "20.0" in reliability and "16.7" in reliability  # transport, per request
    assert "2 LLM transport failures (their tasks asked again)" in text  # provenance of the run
    full = " ".join(page.tables["full-dataset-cost-table"])
    assert "mouse-like" in full and "fly-like" in full and "the pilot's own sample" in full
    assert "Latency per decision (a latency, not a cost)" in text
    assert "$ basis" in text and "per GPU-hour" in text and "node-hours" in text and "GPU-hours" in text
    assert "materialization 783" in text and "pp-verdict-1" in text  # provenance: data pin, prompt version
    assert (llm / "eval" / "eval.json").exists()


def test_full_dataset_cost_is_measured_cost_times_projected_counts(runs):
    llm, _ = runs
    mouse, fly = edits_outputs()
    inputs, _ = gather(llm, (fly, mouse), (), n_bootstrap=200)
    cost = read_cost_json(llm / "cost.json")
    t_merge, t_split = (cost.per_op[op].node_s_per_edit for op in OP_KINDS)
    kinds = [row.kind for row in inputs.dataset_costs]
    assert kinds[0].startswith("mouse-like") and kinds[1].startswith(
        "fly-like"
    )  # mouse first, as given or not
    for row, folder in zip(inputs.dataset_costs[:2], (mouse, fly), strict=True):
        summary = read_summary(folder / "summary.json").cost
        merges, splits = summary.merges.value, summary.splits.value
        node_h = (merges * t_merge + splits * t_split) / 3600
        assert row.measured.node_hours == pytest.approx(node_h)
        assert row.measured.gpu_hours == pytest.approx(2 * node_h)
        assert row.measured.usd == pytest.approx(2 * node_h * row.measured.usd_per_gpu_hour)
        lo, hi = row.measured.node_hours_ci
        assert lo < node_h < hi
        seed_h = (merges * 2.0 + splits * 2.5) / 3600
        assert row.seed.node_hours == pytest.approx(seed_h)
    own = inputs.dataset_costs[2]
    assert own.source.startswith("the pilot's own sample") and own.measured.merges == 2.0e6


def test_baseline_only_run_reports_no_measured_cost(runs, tmp_path):
    _, base = runs
    mouse, _ = edits_outputs()
    out = tmp_path / "b.html"
    build_report(base, (mouse,), out_path=out, n_bootstrap=200)
    text = out.read_text()
    assert "This run has no cost.json" in text
    page = Page(text)
    assert "mouse-like" in " ".join(page.tables["full-dataset-cost-table"])
    assert "no LLM calls" in " ".join(page.tables["reliability-table"])


def test_cli_prints_the_path_and_bad_input_is_one_line(runs, tmp_path, capsys):
    llm, _ = runs
    mouse, _ = edits_outputs()
    out = tmp_path / "r.html"
    assert main(["report", str(llm), "--edits", str(mouse), "--out", str(out), "--bootstrap", "200"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    before = out.read_bytes()
    (tmp_path / "no_summary").mkdir()
    (tmp_path / "no_run").mkdir()
    cases = {
        "does not exist": ["report", str(tmp_path / "missing"), "--out", str(out)],
        "holds no run": ["report", str(tmp_path / "no_run"), "--out", str(out)],
        "holds no summary.json": [
            "report",
            str(llm),
            "--edits",
            str(tmp_path / "no_summary"),
            "--out",
            str(out),
        ],
        "no such directory": ["report", str(llm), "--edits", str(tmp_path / "nope"), "--out", str(out)],
    }
    for expected, args in cases.items():
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("proofpilot: error: ") and err.count("\n") == 1 and expected in err, err
    assert out.read_bytes() == before  # a failed report leaves the earlier one as it was


def test_neurons_without_a_change_log_are_named_in_the_summary(runs, tmp_path):
    """A run that started with unreadable change logs says so at the top; a complete one does not."""
    import shutil

    from proofpilot.orchestrator.store import MANIFEST_NAME

    _, base = runs
    run = tmp_path / "run"
    shutil.copytree(base, run)
    manifest = json.loads((run / MANIFEST_NAME).read_text())
    manifest["neuron_root_ids"] = [1, 2, 3, 4]
    manifest["neurons_without_log"] = [{"root_id": 4, "reason": "HTTP 400 from /segment/…"}]
    (run / MANIFEST_NAME).write_text(json.dumps(manifest))
    build_report(run, (), out_path=tmp_path / "w.html", n_bootstrap=100)
    warned = (tmp_path / "w.html").read_text()
    assert "1 of 4 sampled neurons had no readable change log" in warned
    build_report(base, (), out_path=tmp_path / "c.html", n_bootstrap=100)
    clean = (tmp_path / "c.html").read_text()
    assert "no readable change log" not in clean
