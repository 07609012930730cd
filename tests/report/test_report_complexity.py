"""Edit complexity vs compute: the slope of seconds per decision on log2(the neuron's edits), with a CI."""

from __future__ import annotations

import numpy as np
import pandas as pd

from proofpilot.report.complexity import complexity_section, fit


def _rows(slope: float, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    neurons = rng.integers(1, 400, size=60)
    rows = []
    for root, edits in enumerate(neurons, start=1):
        for _ in range(5):
            rows.append({"neuron_root_id": root, "neuron_n_edits": int(edits), "heavy_tail": edits > 380,
                         "latency_s": 1.0 + slope * np.log2(edits) + rng.normal(0, 0.3),
                         "prompt_tokens": 900.0, "completion_tokens": 40.0})  # fmt: skip
    return pd.DataFrame(rows)


def test_slope_ci_holds_the_true_slope_and_excludes_zero():
    f = fit(_rows(0.5), "latency_s", "s per decision")
    assert f.slope_ci[0] <= 0.5 <= f.slope_ci[1]
    assert f.slope_ci[0] > 0
    assert f.heavy_ratio is not None and f.heavy_ratio > 1
    assert f.decisions == 300 and f.neurons == 60


def test_no_relation_gives_a_ci_around_zero_and_the_section_renders():
    rows = _rows(0.0)
    f = fit(rows, "latency_s", "s per decision")
    assert f.slope_ci[0] <= 0 <= f.slope_ci[1]
    html = complexity_section(rows)
    assert 'id="complexity"' in html and "latency_s" in html
    assert complexity_section(rows.drop(columns=["neuron_n_edits"])) == ""
