"""`build_report`: one self-contained report.html for a pilot run (plots inline as base64 PNG, no external
resources), from the run's verdicts (scored by `decisions`), its cost.json and any `edits` output folders.

    build_report(run_dir, edits_dirs=[mouse_edits, fly_edits], compare_dirs=[baseline_run]) -> ReportResult

The full-dataset table multiplies each edits folder's projected merges and splits (summary.json, with CIs)
by the run's measured node-seconds per edit (cost.json, with CIs) through `telemetry.projection.project_cost`,
with the seed's 2.0 / 2.5 s placeholders on the same counts beside it.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from proofpilot.core.errors import ConfigError, DataError
from proofpilot.core.vocab import OP_KINDS
from proofpilot.edits.reference import species_of
from proofpilot.edits.summary import SUMMARY_NAME, SummaryRecord, read_summary
from proofpilot.eval.decisions import EvalReport, evaluate, write_eval
from proofpilot.orchestrator.run_records import RunManifest, read_run
from proofpilot.report.capacity import KneeScale, knee_scale, read_run_capacity
from proofpilot.telemetry.capacity import CapacityReport
from proofpilot.telemetry.cost import COST_NAME, CostReport, read_cost_json
from proofpilot.telemetry.projection import (
    DEFAULT_USD_BASIS,
    DEFAULT_USD_PER_GPU_HOUR,
    SEED_T_MERGE_S,
    SEED_T_SPLIT_S,
    CostProjection,
    EditsProjection,
    MeasuredPerEdit,
    project_cost,
)
from proofpilot.telemetry.served import rehearsal_basis

log = logging.getLogger(__name__)

FIGURE_NAMES = ("figure1_sample_size_validation.png", "figure2_distributions.png", "figure3_cost.png")
SPECIES_LABEL = {"mouse": "mouse-like (MICrONS minnie65)", "fly": "fly-like (FlyWire FAFB)"}
REPORT_NAME = "report.html"


@dataclass(frozen=True)
class EditsInput:
    """One `proofpilot edits` output folder: summary.json and its three figures (PNG bytes)."""

    path: Path
    summary: SummaryRecord
    figures: tuple[tuple[str, bytes], ...]
    kind: str  # "mouse-like (...)", "fly-like (...)" or the datastack name


@dataclass(frozen=True)
class DatasetCost:
    """A row of the full-dataset table: measured cost (None without cost.json), the seed's placeholders."""

    dataset: str
    kind: str
    source: str  # which sample the projected counts come from
    measured: CostProjection | None
    seed: CostProjection
    counts: EditsProjection | None = None  # the projected edit counts both are priced on


@dataclass(frozen=True)
class ReportInputs:
    run_dir: Path
    manifest: RunManifest
    evaluation: EvalReport
    rows: pd.DataFrame
    cost: CostReport | None
    edits: tuple[EditsInput, ...]
    dataset_costs: tuple[DatasetCost, ...]
    notes: tuple[str, ...]
    capacity: CapacityReport | None = None  # capacity.json of the run, if swept
    knee: KneeScale | None = None


@dataclass(frozen=True)
class ReportResult:
    path: Path
    n_bytes: int
    n_images: int
    seconds: float
    eval_json: Path


def load_edits(path: Path) -> EditsInput:
    """An edits output folder; DataError (one line) if it is missing or has no (valid) summary.json."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"--edits {path}: no such directory")
    if not (path / SUMMARY_NAME).exists():
        raise DataError(f"--edits {path} holds no {SUMMARY_NAME} (not a `proofpilot edits` output folder)")
    summary = read_summary(path / SUMMARY_NAME)
    figures = tuple(
        (name, (path / "figures" / name).read_bytes())
        for name in FIGURE_NAMES
        if (path / "figures" / name).exists()
    )
    species = species_of(summary.datastack)
    kind = SPECIES_LABEL.get(species, summary.datastack) if species else summary.datastack
    return EditsInput(path, summary, figures, kind)


def _clamp(value: float, ci: tuple[float, float] | None) -> tuple[float, float]:
    """A CI widened to contain its point (percentile intervals need not); (v, v) when missing."""
    if ci is None or any(c is None or not math.isfinite(c) for c in ci):
        return (value, value)
    return (max(0.0, min(float(ci[0]), value)), max(float(ci[1]), value))


@dataclass(frozen=True)
class MeasuredBasis:
    """What cost.json says the measured per-edit cost is (and its GPU / $ basis and roofline)."""

    t_merge: MeasuredPerEdit
    t_split: MeasuredPerEdit
    gpus_per_node: int
    usd_per_gpu_hour: float
    usd_basis: str
    roofline_bf16_s_per_edit: tuple[float, float] | None
    roofline_fp8_s_per_edit: tuple[float, float] | None


def _measured_per_edit(cost: CostReport | None) -> MeasuredBasis | None:
    if not cost:
        return None
    merge, split = (cost.per_op.get(op) for op in OP_KINDS)
    if merge is None or split is None or merge.node_s_per_edit is None or split.node_s_per_edit is None:
        return None
    tm = MeasuredPerEdit(merge.node_s_per_edit, _clamp(merge.node_s_per_edit, merge.node_s_per_edit_ci))
    ts = MeasuredPerEdit(split.node_s_per_edit, _clamp(split.node_s_per_edit, split.node_s_per_edit_ci))

    def roof(attr: str) -> tuple[float, float] | None:
        vm, vs = getattr(merge, attr), getattr(split, attr)
        if vm is None or vs is None or merge.decisions_per_edit is None or split.decisions_per_edit is None:
            return None
        return (vm * merge.decisions_per_edit, vs * split.decisions_per_edit)

    proj = cost.projection
    usd = proj.usd_per_gpu_hour if proj else DEFAULT_USD_PER_GPU_HOUR
    basis = proj.usd_basis if proj else DEFAULT_USD_BASIS
    if cost.served_by is not None and not cost.served_by.priced:  # a CPU rehearsal: never priced as H100
        usd, basis = math.nan, rehearsal_basis(cost.served_by)
    return MeasuredBasis(
        tm, ts, cost.throughput.gpus_per_endpoint, usd, basis,
        roof("roofline_bf16_node_s_per_decision"), roof("roofline_fp8_node_s_per_decision"),
    )  # fmt: skip


def _seed_times() -> tuple[MeasuredPerEdit, MeasuredPerEdit]:
    return (
        MeasuredPerEdit(SEED_T_MERGE_S, (SEED_T_MERGE_S, SEED_T_MERGE_S)),
        MeasuredPerEdit(SEED_T_SPLIT_S, (SEED_T_SPLIT_S, SEED_T_SPLIT_S)),
    )


def _dataset_cost(
    dataset: str, kind: str, source: str, counts: EditsProjection, measured: MeasuredBasis | None
) -> DatasetCost:
    gpus = measured.gpus_per_node if measured else 2
    usd = measured.usd_per_gpu_hour if measured else DEFAULT_USD_PER_GPU_HOUR
    basis = measured.usd_basis if measured else DEFAULT_USD_BASIS
    seed = project_cost(counts, *_seed_times(), gpus, usd, basis)
    cost = None
    if measured:
        cost = project_cost(
            counts, measured.t_merge, measured.t_split, gpus, usd, basis,
            measured.roofline_bf16_s_per_edit, measured.roofline_fp8_s_per_edit,
        )  # fmt: skip
    return DatasetCost(dataset, kind, source, cost, seed, counts)


def _small_sample_notes(e: EditsInput) -> list[str]:
    return [
        f"{e.path}: sample {x.label}: {x.small_sample_note}"
        for x in e.summary.samples
        if x.small_sample and x.small_sample_note
    ]


def _at_knee(measured: MeasuredBasis, factor: float) -> MeasuredBasis:
    """The per-edit costs moved to the capacity knee (report/capacity.py `knee_scale`)."""

    def scaled(t: MeasuredPerEdit) -> MeasuredPerEdit:
        return MeasuredPerEdit(t.seconds * factor, (t.ci[0] * factor, t.ci[1] * factor))

    return replace(measured, t_merge=scaled(measured.t_merge), t_split=scaled(measured.t_split),
                   roofline_bf16_s_per_edit=None, roofline_fp8_s_per_edit=None)  # fmt: skip


def full_dataset_costs(
    edits: tuple[EditsInput, ...], cost: CostReport | None, manifest: RunManifest,
    knee: KneeScale | None = None,
) -> tuple[list[DatasetCost], list[str]]:  # fmt: skip
    """Full-dataset rows: each edits folder's projection (mouse-like first), then the pilot's own; with a
    capacity sweep, each again priced at its knee."""
    measured = _measured_per_edit(cost)
    rows, notes = [], []
    order = {"mouse": 0, "fly": 1}
    for e in sorted(edits, key=lambda e: order.get(species_of(e.summary.datastack) or "", 2)):
        c = e.summary.cost
        notes.extend(_small_sample_notes(e))
        if c.merges.value is None or c.splits.value is None or c.merges.ci is None or c.splits.ci is None:
            notes.append(f"{e.path}: the edits summary has no projected merge/split counts")
            continue
        try:
            counts = EditsProjection(
                e.summary.datastack, c.merges.value, c.merges.ci, c.splits.value, c.splits.ci,
                e.summary.sampling.ci_level, c.counts_basis,
            )  # fmt: skip
        except ConfigError as exc:  # e.g. a summary written before count intervals kept to their support
            notes.append(f"{e.path}: no projection from this edits summary ({exc})")
            continue
        rows.append(_dataset_cost(counts.dataset, e.kind, f"edits sample {c.sample}", counts, measured))
    own = cost.projection if cost else None
    if own:
        counts = EditsProjection(
            own.dataset, own.merges, own.merges_ci, own.splits, own.splits_ci, own.ci_level, own.counts_basis
        )
        species = species_of(own.dataset)
        kind = SPECIES_LABEL.get(species, own.dataset) if species else own.dataset
        neurons = manifest.identity.neurons
        source = f"the pilot's own sample ({'?' if neurons is None else neurons} neurons)"
        rows.append(_dataset_cost(own.dataset, kind, source, counts, measured))
    if cost is None:
        notes.append(
            "this run has no cost.json (no LLM answers were timed): only the seed's placeholders are shown"
        )
    elif measured is None:
        notes.append("cost.json lacks a measured merge or split cost per edit: no measured projection")
    if not rows:
        notes.append("no full-dataset projection: pass --edits DIR (a `proofpilot edits` output folder)")
    if knee is not None and measured is not None:
        at_knee = _at_knee(measured, knee.factor)
        rows += [
            _dataset_cost(r.dataset, r.kind, f"{r.source}, priced at the capacity knee ({knee.concurrency} "
                          "in flight)", r.counts, at_knee)
            for r in list(rows)
        ]  # fmt: skip
    return rows, notes


def gather(
    run_dir: Path, edits_dirs: tuple[Path, ...] = (), compare_dirs: tuple[Path, ...] = (),
    n_bootstrap: int = 1000, seed: int = 0,
) -> tuple[ReportInputs, Path]:  # fmt: skip
    """Everything the report shows; input errors surface here, before anything is written."""
    run_dir = Path(run_dir)
    edits = tuple(load_edits(Path(d)) for d in edits_dirs)
    evaluation, rows = evaluate([run_dir, *compare_dirs], n_bootstrap=n_bootstrap, seed=seed)
    manifest = read_run(run_dir)
    cost = read_cost_json(run_dir / COST_NAME) if (run_dir / COST_NAME).exists() else None
    capacity = read_run_capacity(run_dir)
    knee = knee_scale(capacity, cost)
    dataset_costs, notes = full_dataset_costs(edits, cost, manifest, knee)
    eval_json, _ = write_eval(evaluation, rows, run_dir / "eval")
    inputs = ReportInputs(
        run_dir, manifest, evaluation, rows, cost, edits, tuple(dataset_costs), tuple(notes), capacity, knee
    )
    return inputs, eval_json


def check_out_path(out_path: Path) -> None:
    """The report's path must not be a folder, and the nearest existing folder above it must be a folder."""
    if out_path.is_dir():
        raise DataError(f"cannot write the report {out_path}: it is a directory")
    for parent in out_path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise DataError(f"cannot write the report {out_path}: {parent} is not a directory")
            return


def build_report(
    run_dir: Path, edits_dirs: tuple[Path, ...] = (), compare_dirs: tuple[Path, ...] = (),
    out_path: Path | None = None, n_bootstrap: int = 1000, seed: int = 0,
) -> ReportResult:  # fmt: skip
    """Score the run, draw the plots, write one self-contained HTML file (atomically); returns its path."""
    # lazy: report.html imports this module
    from proofpilot.report.html import render_report

    start = time.perf_counter()
    out_path = Path(out_path) if out_path else Path(run_dir) / REPORT_NAME
    check_out_path(out_path)  # before any work: a bad --out is one line, not a failure at the end
    inputs, eval_json = gather(run_dir, tuple(edits_dirs), tuple(compare_dirs), n_bootstrap, seed)
    document, n_images = render_report(inputs, build_seconds=lambda: time.perf_counter() - start)
    data = document.encode()
    tmp = out_path.with_name(out_path.name + ".tmp")
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, out_path)
    except OSError as exc:
        raise DataError(f"cannot write the report {out_path}: {exc.strerror or exc}") from None
    seconds = time.perf_counter() - start
    log.info("report %s: %d bytes, %d images, %.1f s", out_path, len(data), n_images, seconds)
    return ReportResult(out_path, len(data), n_images, seconds, eval_json)
