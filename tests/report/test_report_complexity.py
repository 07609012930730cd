"""Edit complexity vs compute: per-decision node-s (cost.json's attribution reproduced) and tokens regressed
on the edit's size (task_sizes.jsonl), with neuron-cluster bootstrap CIs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from proofpilot.orchestrator.task_sizes import TaskSizeLog, read_task_sizes
from proofpilot.report.complexity import complexity_frame, complexity_section, fit, fits
from proofpilot.tasks.size import TaskSize
from proofpilot.telemetry.attribution import Attribution

NODE_S = 0.8  # the run's measured node-s per decision (cost.json's throughput figure)
TOKEN_SHARE = Attribution("token_share", "constructed", 0)


def _run(tokens_per_um: float, seed: int = 0) -> tuple[pd.DataFrame, dict[str, TaskSize]]:
    """Eval-like rows of 60 neurons × 5 decisions whose prompt grows by `tokens_per_um` per µm of cable
    near the interface, and their size records."""
    rng = np.random.default_rng(seed)
    rows, sizes = [], {}
    for root in range(1, 61):
        edits = int(rng.integers(1, 400))
        for k in range(5):
            task_id = f"{root * 10 + k}:partner"
            cable = float(rng.uniform(5, 60))
            prompt = round(900 + tokens_per_um * cable + rng.normal(0, 20))
            rows.append({"task_id": task_id, "run_dir": "r", "neuron_root_id": root, "neuron_n_edits": edits,
                         "heavy_tail": edits > 380, "answers": 1, "prompt_tokens": prompt,
                         "completion_tokens": 40, "latency_s": 1.0})  # fmt: skip
            sizes[task_id] = TaskSize(task_id, root * 10 + k, root, "merge", 5000.0, cable, int(cable / 2))
    return pd.DataFrame(rows), sizes


def test_node_s_slope_on_cable_recovers_the_constructed_slope():
    rows, sizes = _run(tokens_per_um=8.0)
    frame = complexity_frame(rows, sizes, NODE_S, TOKEN_SHARE)
    # token share: node_s_i = NODE_S × tokens_i / mean(tokens), so d node_s / d cable = NODE_S × 8 / mean
    assert abs(frame["node_s"].mean() - NODE_S) < 1e-12
    true_slope = NODE_S * 8.0 / frame["tokens"].mean()
    f = fit(frame, "node_s", "node-s per decision")
    assert f is not None and f.decisions == 300 and f.neurons == 60
    assert f.slope_ci[0] <= true_slope <= f.slope_ci[1] and f.slope_ci[0] > 0
    assert abs(f.slope - true_slope) < 0.1 * true_slope
    tokens = fit(frame, "tokens", "tokens", "cable_near_um")
    assert tokens.slope_ci[0] <= 8.0 <= tokens.slope_ci[1]


def test_regression_attribution_weights_prompt_and_completion_tokens():
    rows, sizes = _run(tokens_per_um=8.0)
    rows["completion_tokens"] = np.arange(len(rows)) % 7 + 30
    att = Attribution("regression", "constructed", 10, s_per_prompt_token=1e-4, s_per_completion_token=2e-2)
    frame = complexity_frame(rows, sizes, NODE_S, att)
    w = 1e-4 * frame["prompt_tokens"] + 2e-2 * frame["completion_tokens"]
    assert np.allclose(frame["node_s"], NODE_S * w / w.mean())


def test_no_relation_gives_a_ci_around_zero_and_the_section_renders(tmp_path):
    rows, sizes = _run(tokens_per_um=0.0)
    frame = complexity_frame(rows, sizes, NODE_S, TOKEN_SHARE)
    f = fit(frame, "node_s", "node-s per decision")
    assert f.slope_ci[0] <= 0 <= f.slope_ci[1]
    assert {(f.response, f.measure) for f in fits(frame)} >= {("node_s", "cable_near_um"),
                                                              ("tokens", "nodes_near")}  # fmt: skip
    log = TaskSizeLog(tmp_path)
    log.append(list(sizes.values()))
    log.close()
    assert read_task_sizes(tmp_path) == sizes
    html = complexity_section(rows.assign(run_dir=str(tmp_path)), tmp_path, None)
    assert 'id="complexity"' in html and "cable_near_um" in html and "no cost.json" in html
    assert "[µm of cable" in html  # units in the headers and cells


def test_a_torn_last_size_line_is_cut_before_the_next_append(tmp_path):
    _, sizes = _run(tokens_per_um=1.0)
    first, second = list(sizes.values())[:2]
    log = TaskSizeLog(tmp_path)
    log.append([first])
    log.close()
    with open(tmp_path / "task_sizes.jsonl", "ab") as fh:
        fh.write(b'{"task_id": "torn')
    log = TaskSizeLog(tmp_path)
    log.append([second])
    log.close()
    assert read_task_sizes(tmp_path) == {first.task_id: first, second.task_id: second}
