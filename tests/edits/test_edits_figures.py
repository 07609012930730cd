"""Figures and summary files from `analyse` on ground-truth rows (no HTTP), two datasets side by side."""

from __future__ import annotations

import json

import matplotlib.image as mpimg
import numpy as np
import pytest

from proofpilot.core.errors import DataError
from proofpilot.datastack.embedded.profiles import get_profile
from proofpilot.datastack.embedded.truth import membership_frame, per_neuron_frame
from proofpilot.datastack.source import DataSource
from proofpilot.edits.analysis import analyse
from proofpilot.edits.figures import DPI, load_dataset
from proofpilot.edits.records import EditsConfig
from proofpilot.edits.sampling import draw_samples, population_root_ids, union_root_ids


def run(profile: str, out, sizes, compare=(), full=False):
    per = per_neuron_frame(profile)
    population = population_root_ids(per["root_id"].to_numpy())
    config = EditsConfig(
        source=DataSource(profile), out_dir=out, sample_sizes=sizes, full=full, compare_dirs=compare
    )
    samples = draw_samples(population, sizes, 0, full=full)
    needed = union_root_ids(samples)
    p = get_profile(profile)
    pin = {
        "datastack": profile,
        "server_address": "ground truth",
        "table": p.proofread_table,
        "materialization_version": p.materialization_version,
        "timestamp": p.materialization_timestamp,
        "caveclient_version": "-",
        "server_versions": {},
    }
    membership = membership_frame(profile, np.searchsorted(population, needed))
    return analyse(per[per["root_id"].isin(needed)], membership, None, pin, population, samples, config)


def test_figures_and_summary_for_two_datasets(tmp_path):
    mouse = run("minnie65_synthetic", tmp_path / "mouse", (60, 120))
    fly = run("fafb_synthetic", tmp_path / "fly", (100, 300), compare=(mouse.out_dir,))
    pngs = sorted((fly.out_dir / "figures").glob("*.png"))
    assert [p.name for p in pngs] == [
        "figure1_sample_size_validation.png",
        "figure2_distributions.png",
        "figure3_cost.png",
    ]
    for png in pngs:
        height, width = mpimg.imread(png).shape[:2]
        assert width >= 10 * DPI  # at least 10 inches wide at 150 dpi: legible at the saved size
        assert height >= 4 * DPI  # two datasets: two rows of panels
    summary = json.loads((fly.out_dir / "summary.json").read_text())
    assert [s["label"] for s in summary["samples"]] == ["n100", "n300"]
    assert summary["validation"][0]["independent_draws"] is True
    assert {c["n"] for c in summary["seed_comparison"]} == {100}
    assert summary["files"][-2:] == ["summary.json", "summary.md"]
    assert "figures/figure3_cost.png" in summary["files"]
    md = (fly.out_dir / "summary.md").read_text()
    assert "| fafb_synthetic | 100 | 139,255 |" in md
    assert "not estimable" in md  # fly-like samples see no sharing pair: a bound, not a number


def test_census_figures_and_zero_width(tmp_path):
    summary = run("minnie65_synthetic", tmp_path / "full", (50,), full=True)
    full = summary.samples[-1]
    assert full.label == "full" and full.mean_edits.width == 0 and summary.cost.primary.usd.width == 0
    assert full.dedup.unique_ops.value == full.dedup.sample_unique_ops
    assert (summary.out_dir / "figures" / "figure2_distributions.png").exists()


def test_loading_a_missing_comparison_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="cannot read an earlier edits output"):
        load_dataset(tmp_path / "nothing")
