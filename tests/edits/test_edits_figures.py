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
from proofpilot.edits.figure1_resamples import draw_differences
from proofpilot.edits.figures import DPI, load_dataset
from proofpilot.edits.records import EditsConfig
from proofpilot.edits.resamples import DEFAULT_R, resample_sets
from proofpilot.edits.sampling import draw_samples, population_root_ids, union_root_ids


def run(profile: str, out, sizes, compare=(), full=False, resamples=0):
    per = per_neuron_frame(profile)
    population = population_root_ids(per["root_id"].to_numpy())
    config = EditsConfig(
        source=DataSource(profile), out_dir=out, sample_sizes=sizes, full=full, compare_dirs=compare,
        resamples=resamples,
    )  # fmt: skip
    samples = draw_samples(population, sizes, 0, full=full)
    sets = resample_sets(population, config.sample_sizes, config.seed, resamples)
    needed = union_root_ids(samples + [s for group in sets for s in group])
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
    rows = per[per["root_id"].isin(needed)]
    return analyse(rows, membership, None, pin, population, samples, config, resamples=sets)


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


def test_figure1_and_summary_md_from_r_resamples(tmp_path):
    assert EditsConfig(source=DataSource("x"), sample_sizes=(10,)).resamples == DEFAULT_R == 10
    fly = run("fafb_synthetic", tmp_path / "fly", (100, 500), resamples=DEFAULT_R)
    summary = json.loads((fly.out_dir / "summary.json").read_text())
    assert summary["resamples"]["r"] == 10
    assert len(summary["resamples"]["spread"]["100"]["mean_edits"]["values"]) == 10
    md = (fly.out_dir / "summary.md").read_text()
    assert "Figure 1 from R = 10 independent resamples per sample size" in md
    assert "over 10 independent resamples per size" in md
    label = draw_differences(None, summary["resamples"], "mean_edits", 1.0)
    diff = next(d for d in summary["resamples"]["differences"] if d["statistic"] == "mean_edits")
    assert f"n = 500 − 100: {diff['difference']:+.3g} [{diff['difference_ci'][0]:+.3g}," in label
    assert "difference, mean of R = 10 (95 % CI)" in label
    assert draw_differences(None, None, "mean_edits", 1.0) == ""
    plain = run("fafb_synthetic", tmp_path / "plain", (100,))
    assert (
        "R = 0 independent resamples per sample size (none drawn)"
        in (plain.out_dir / "summary.md").read_text()
    )
