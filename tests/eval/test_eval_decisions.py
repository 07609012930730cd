"""eval: verdicts scored against ground truth, per op type and agent, with cluster-bootstrap CIs by neuron.

Run directories are written by the pilot's own writers (tests/support/eval_runs.py). The hand-made run has
known TP / FP / TN / FN; the bootstrap tests show that the intervals come from resampling neurons, not rows.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from support.eval_runs import Failure, Row, correct_rows, hand_failures, hand_rows, make_run

from proofpilot.cli.main import main
from proofpilot.core.errors import ConfigError, DataError
from proofpilot.eval.decisions import evaluate, read_eval, write_eval
from proofpilot.eval.stats import (
    RULE_OF_THREE,
    quantile_estimate,
    ratio_estimate,
    resample_weights,
)


@pytest.fixture
def hand_run(tmp_path):
    return make_run(tmp_path / "llm", hand_rows(), failures=hand_failures())


def test_metrics_match_a_hand_count(hand_run, tmp_path):
    report, _ = evaluate([hand_run], n_bootstrap=500)
    merge, split, pooled = (report.group("llm", op) for op in ("merge", "split", "all"))
    assert merge.confusion == {"tp": 2, "fp": 1, "tn": 2, "fn": 1, "no_answer_pos": 0, "no_answer_neg": 0}
    assert split.confusion == {"tp": 1, "fp": 1, "tn": 1, "fn": 1, "no_answer_pos": 1, "no_answer_neg": 1}
    assert split.outcomes == {"correct": 2, "incorrect": 0, "invalid": 1, "error": 1}
    m, s = merge.metrics, split.metrics
    for name in ("accuracy", "precision", "recall", "specificity", "f1"):
        assert m[name].value == pytest.approx(2 / 3), name
    assert s["accuracy"].value == pytest.approx(0.5)
    assert s["precision"].value == pytest.approx(0.5) and s["recall"].value == pytest.approx(0.5)
    assert s["answered_accuracy"].value == pytest.approx(1.0)
    assert s["invalid_rate"].value == s["error_rate"].value == pytest.approx(0.25)  # per task
    assert s["no_answer_rate"].value == pytest.approx(0.5)
    # per LLM request (a decision or a transport failure that was asked again): llm_errors.jsonl joined
    assert s["transport_error_rate"].value == s["timeout_rate"].value == pytest.approx(1 / 5)
    assert m["transport_error_rate"].value == pytest.approx(1 / 7) and m["timeout_rate"].value == 0
    assert pooled.metrics["transport_error_rate"].value == pytest.approx(2 / 12)
    assert pooled.metrics["timeout_rate"].value == pytest.approx(1 / 12)
    assert m["error_rate"].value == 0 and m["invalid_rate"].value == 0
    assert (merge.n_operations, split.n_operations) == (3, 2)
    assert m["calls_per_edit"].value == pytest.approx(2.0)
    assert s["calls_per_edit"].value == pytest.approx(2.5)
    # HTTP attempts: the decisions' (6 merge, 6 split) and the failed requests' (3 each)
    assert m["attempts_per_edit"].value == pytest.approx(9 / 3) and s["attempts_per_edit"].value == 9 / 2
    assert pooled.metrics["accuracy"].value == pytest.approx(0.6)
    assert (pooled.n_tasks, pooled.n_neurons) == (10, 3)
    # latency of the decisions (not of the failed requests): inverted-CDF median of the ten, and their mean
    assert pooled.metrics["latency_p50_s"].value == pytest.approx(0.8)
    assert pooled.metrics["latency_mean_s"].value == pytest.approx(10.5 / 10)
    # every interval brackets its point
    for g in report.groups:
        for name, est in g.metrics.items():
            if est.ci is not None:
                assert est.ci[0] - 1e-12 <= est.value <= est.ci[1] + 1e-12, (g.op, name)


def test_runs_from_before_the_outage_retry_and_failures_of_undecided_tasks(tmp_path):
    """A stored transport verdict (how runs were written before transport failures were asked again) is
    a task error and a failed request; failures of a task without a verdict are reported, not rated."""
    rows = hand_rows()
    legacy = [Row(r.neuron, r.n_edits, r.op_id, r.role, None, "timeout", 60.0, answers=0, attempts=3)
              if r.error_reason == "context_length" else r for r in rows]  # fmt: skip
    report, _ = evaluate([make_run(tmp_path / "old", legacy)], n_bootstrap=200)
    s = report.group("llm", "split").metrics
    assert s["error_rate"].value == s["timeout_rate"].value == s["transport_error_rate"].value == 0.25
    incomplete = make_run(tmp_path / "new", rows[:-1], failures=(Failure(rows[-1], "connection"),))
    report, _ = evaluate([incomplete], n_bootstrap=200)
    assert report.group("llm", "all").metrics["transport_error_rate"].value == 0
    assert any("1 of 1 LLM transport failures are of tasks without a verdict" in n for n in report.notes)


def test_heavy_tail_and_edit_bins(hand_run):
    report, rows = evaluate([hand_run], n_bootstrap=500)
    assert report.heavy_tail_threshold_edits == pytest.approx(np.percentile([2, 5, 40], 95))
    bins = {b.bin: b for b in report.bins if b.op == "all" and b.scheme == "heavy_tail"}
    tail = next(b for label, b in bins.items() if label.startswith("heavy tail"))
    assert (tail.n_neurons, tail.n_tasks, tail.accuracy.value) == (1, 4, pytest.approx(0.75))
    assert bins["other neurons"].accuracy.value == pytest.approx(0.5)
    contrast = next(c for c in report.contrasts if c.kind == "heavy_tail" and c.op == "all")
    assert contrast.difference.value == pytest.approx(0.25)
    quartiles = [b.bin for b in report.bins if b.op == "all" and b.scheme == "quartile"]
    assert quartiles == ["Q1: 2–3 edits", "Q2: 4–5 edits", "Q4: 23–40 edits"]
    assert set(rows.loc[rows["heavy_tail"], "neuron_n_edits"]) == {40}


def test_written_outputs_recompute(hand_run, tmp_path):
    report, rows = evaluate([hand_run], n_bootstrap=300, seed=7)
    json_path, rows_path = write_eval(report, rows, tmp_path / "eval")
    data = json.loads(json_path.read_text())
    assert data["schema"] == "proofpilot.eval/1" and "counts as wrong" in data["convention"]
    assert data["bootstrap"]["seed"] == 7 and data["bootstrap"]["n_clusters"] == 3
    table = pd.read_parquet(rows_path)
    assert len(table) == 10 and table["task_id"].is_unique
    for g in data["groups"]:
        sub = table if g["op"] == "all" else table[table["op_kind"] == g["op"]]
        assert g["metrics"]["accuracy"]["value"] == pytest.approx(sub["correct"].mean())
        assert g["metrics"]["no_answer_rate"]["value"] == pytest.approx(1 - sub["answered"].mean())
    # the CI recomputed from the rows with the recipe in eval.json
    neurons = np.sort(table["neuron_root_id"].unique())
    rng = np.random.default_rng(data["bootstrap"]["seed"])
    w = rng.multinomial(
        len(neurons), np.full(len(neurons), 1 / len(neurons)), size=data["bootstrap"]["n_bootstrap"]
    )
    idx = np.searchsorted(neurons, table["neuron_root_id"])
    correct = np.bincount(idx, weights=table["correct"].astype(float), minlength=len(neurons))
    total = np.bincount(idx, minlength=len(neurons)).astype(float)
    boot = (w @ correct) / (w @ total)
    pooled = next(g for g in data["groups"] if g["op"] == "all")
    assert pooled["metrics"]["accuracy"]["ci"] == pytest.approx(list(np.quantile(boot, [0.025, 0.975])))


def test_eval_json_reads_back_as_the_record_written(hand_run, tmp_path):
    report, rows = evaluate([hand_run], n_bootstrap=200, seed=3)
    json_path, _ = write_eval(report, rows, tmp_path / "eval")
    back = read_eval(json_path)
    assert back == report
    assert back.group("llm", "merge").metrics["accuracy"] == report.group("llm", "merge").metrics["accuracy"]
    assert read_eval(tmp_path / "eval") == report


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d["groups"][1]["metrics"]["accuracy"].pop("value"), "groups[1].metrics.accuracy.value"),
        (lambda d: d["runs"][0].update(n_verdicts="ten"), "runs[0].n_verdicts"),
        (lambda d: d.update(contrasts=[{"kind": "agents"}]), "contrasts[0].op"),
        (lambda d: d.pop("heavy_tail_threshold_edits"), "heavy_tail_threshold_edits"),
    ],
)
def test_malformed_eval_json_names_the_field(hand_run, tmp_path, edit, field):
    report, rows = evaluate([hand_run], n_bootstrap=100, seed=3)
    json_path, _ = write_eval(report, rows, tmp_path / "eval")
    data = json.loads(json_path.read_text())
    edit(data)
    json_path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"eval\.json: ") as err:
        read_eval(json_path)
    assert f"field {field}" in str(err.value) and "\n" not in str(err.value)


def _heterogeneous_rows(copies: int) -> list[Row]:
    """12 neurons, each all right or all wrong (strong within-neuron correlation); every task `copies`
    times."""
    rows = []
    for i in range(12):
        neuron, right = 864691130000001000 + i, i % 3 != 0
        for k in range(copies):
            op = 1000 * i + k
            rows.append(Row(neuron, 10 + i, op, "partner", "merge" if right else "no_merge"))
            rows.append(Row(neuron, 10 + i, op, "distractor", "no_merge" if right else "merge"))
            rows.append(Row(neuron, 10 + i, op + 500, "before_split", "split" if right else "clean"))
            rows.append(Row(neuron, 10 + i, op + 500, "clean", "clean" if right else "split"))
    return rows


def test_ci_comes_from_resampling_neurons(tmp_path):
    once, _ = evaluate([make_run(tmp_path / "once", _heterogeneous_rows(1))], n_bootstrap=2000)
    twice, rows2 = evaluate([make_run(tmp_path / "twice", _heterogeneous_rows(2))], n_bootstrap=2000)
    a1, a2 = once.group("llm", "all").metrics["accuracy"], twice.group("llm", "all").metrics["accuracy"]
    assert twice.group("llm", "all").n_tasks == 2 * once.group("llm", "all").n_tasks
    assert a1.value == a2.value == pytest.approx(8 / 12)
    assert a1.ci == a2.ci  # duplicating every row of each neuron changes nothing: neurons are resampled
    # resampling rows instead (every row its own cluster) would shrink the interval
    n = len(rows2)
    w_rows = resample_weights(n, 2000, np.random.default_rng(0))
    row_level = ratio_estimate(rows2["correct"].to_numpy(float), np.ones(n), w_rows, 0.95)
    cluster_width = a2.ci[1] - a2.ci[0]
    assert row_level.ci[1] - row_level.ci[0] < 0.6 * cluster_width
    # and the cluster interval matches the binomial spread of 12 independent neurons (not 96 rows)
    assert cluster_width == pytest.approx(2 * 1.96 * math.sqrt(8 / 12 * 4 / 12 / 12), rel=0.25)


def test_agents_compared_on_the_same_neuron_draws(hand_run, tmp_path):
    base = make_run(tmp_path / "base", correct_rows(hand_rows()), agent="baseline")
    report, _ = evaluate([hand_run, base], n_bootstrap=1000)
    assert report.agents == ("llm", "baseline")
    assert report.group("baseline", "all").metrics["accuracy"].value == 1.0
    # 100 % correct: the percentile bootstrap would say [1, 1]; the bound counts each neuron as one trial
    est = report.group("baseline", "all").metrics["accuracy"]
    assert est.method == RULE_OF_THREE and est.ci == pytest.approx((0.05 ** (1 / 3), 1.0))
    diff = next(c for c in report.contrasts if c.kind == "agents" and c.op == "all")
    assert diff.paired and diff.difference.value == pytest.approx(0.6 - 1.0)
    assert diff.difference.ci[0] <= -0.4 <= diff.difference.ci[1] <= 0
    assert report.group("baseline", "merge").metrics["calls_per_edit"].value == 0.0


def test_quantile_estimate_weights_rows_by_draws():
    values = np.array([1.0, 2.0, 3.0, 10.0, 20.0, 30.0])
    cluster = np.array([0, 0, 0, 1, 1, 1])
    weights = np.array([[2.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    est = quantile_estimate(values, cluster, weights, 0.5, 0.95)
    assert est.value == 3.0
    assert est.ci == pytest.approx(tuple(np.quantile([2.0, 20.0, 3.0], [0.025, 0.975])))


def test_bad_input_is_one_line(tmp_path, capsys):
    with pytest.raises(DataError, match="does not exist"):
        evaluate([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no run"):
        evaluate([tmp_path / "empty"])
    run = make_run(tmp_path / "r", hand_rows())
    with pytest.raises(ConfigError, match="bootstrap"):
        evaluate([run], n_bootstrap=10)
    with pytest.raises(DataError, match="same agent"):
        evaluate([run, run])
    (run / "verdicts.jsonl").write_text("")
    with pytest.raises(DataError, match="no verdicts"):
        evaluate([run])
    for args in (["eval", str(tmp_path / "nope")], ["eval", str(tmp_path / "empty")], ["eval", str(run)]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.startswith("proofpilot: error: ") and err.count("\n") == 1, err


def test_cli_writes_eval_and_prints_ci(hand_run, tmp_path, capsys):
    base = make_run(tmp_path / "base", correct_rows(hand_rows()), agent="baseline")
    assert main(["eval", str(hand_run), "--compare", str(base), "--bootstrap", "200"]) == 0
    out = capsys.readouterr().out
    assert "llm merge" in out.replace("  ", " ") and "accuracy 0.667 [" in out
    assert "accuracy llm − baseline (all): -0.400 [" in out
    assert (hand_run / "eval" / "eval.json").exists() and (hand_run / "eval" / "eval_rows.parquet").exists()


def test_one_sided_tasks_are_flagged(hand_run, tmp_path):
    # a datastack without a distractor source: merge operations give only their true-partner task
    rows = [r for r in hand_rows() if r.role != "distractor"]
    assert {r.role for r in rows} == {"partner", "before_split", "clean"}
    report, _ = evaluate([make_run(tmp_path / "partners-only", rows)], n_bootstrap=200)
    flagged = [n for n in report.notes if "measures only one side" in n]
    assert len(flagged) == 1 and "every merge task is a 'partner' task" in flagged[0]
    assert "always answers 'merge'" in flagged[0]
    both, _ = evaluate([hand_run], n_bootstrap=200)
    assert not [n for n in both.notes if "measures only one side" in n]
