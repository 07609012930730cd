"""summary.json (every number with its CI, units, basis and data pin) from an `EditSummary`, and its typed
reader `read_summary(path) -> SummaryRecord` (what later stages, e.g. the report, read of it).

The Markdown rendering lives in `edits_markdown`; it reads only this JSON, so a summary.md can be regenerated
from summary.json alone.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from proofpilot.core.atomic import write_text_atomic
from proofpilot.core.records import from_json, read_json_object
from proofpilot.datastack.records import DataPin
from proofpilot.edits.calibration import calibration_dict
from proofpilot.edits.cost import SENSITIVITY_SECONDS
from proofpilot.edits.hierarchical import model_dict
from proofpilot.edits.intervals import (
    BIAS_CORRECTED,
    ORDER_STAT,
    RATIO_STUDENTIZED,
    SHARE_STUDENTIZED,
    SMALL_SAMPLE_N,
    STUDENTIZED,
)
from proofpilot.edits.records import (
    CostBasis,
    CostEstimate,
    DedupStats,
    DistinctStats,
    EditSummary,
    Estimate,
    SampleStats,
)
from proofpilot.edits.reference import compare_with_seed

SUMMARY_NAME = "summary.json"
SAMPLE_ESTIMATES = (
    "mean_edits", "projected_total", "merge_share", "median_edits", "p95", "tail_share", "gini",
)  # fmt: skip
COST_ESTIMATES = ("merges", "splits", "node_hours", "gpu_hours", "usd")
UNITS = {
    "edits": "operations in one proofread neuron's filtered change log (merges + splits)",
    "mean_edits": "operations per neuron",
    "merge_share": "fraction of per-neuron-summed operations that are merges (0-1)",
    "tail_share": "fraction of the sample's edits in neurons above the sample's p95",
    "projected_total": "operations in the whole table, per-neuron sums (an operation in k logs counts k "
    "times)",
    "unique_ops": "distinct operation ids in the whole table (deduplicated)",
    "node_hours": "hours of one whole node (all its GPUs) = operation-seconds / 3600",
    "gpu_hours": "node_hours x gpus_per_node",
    "usd": "US dollars = gpu_hours x usd_per_gpu_hour",
}
CALIBRATION_NOTE = (
    "the coverage of these intervals was measured on the embedded tables (ground truth known) by "
    "bench/edits_coverage.py; its saved record is under `calibration` and in the section below"
)
PROJECTION_NOTE = (
    "projected_total = N x mean per-neuron edits. Per-neuron sums count an operation once for every "
    "proofread "
    "neuron whose change log contains it, so a split between two proofread neurons is counted twice (this is "
    "what the seed's Table 1 reports). dedup.unique_ops is the pair-based deduplicated count; distinct.ops "
    "weighs each logged operation by 1/m (m = proofread neurons whose logs hold it), unbiased for the number "
    "of distinct operations, and is the primary cost's basis where it was looked up."
)


def small_sample_note(n_ok: int) -> str:
    return (
        f"small sample: {n_ok} neurons with an edit history (< {SMALL_SAMPLE_N}); its intervals are rough "
        "(bootstrap-t is unreliable this small, count intervals fall back to the percentile bootstrap "
        "where it leaves the support) and likely cover less than nominal"
    )


def _num(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and not math.isfinite(value)) else float(value)


def put(out: dict, key: str, est: Estimate) -> None:
    """`key` = point estimate, `key_ci` = [lo, hi] (null where not estimable)."""
    out[key] = _num(est.value)
    out[f"{key}_ci"] = None if est.ci is None else [_num(est.ci[0]), _num(est.ci[1])]


def _dedup_dict(d: DedupStats) -> dict:
    out = {k: v for k, v in asdict(d).items() if not isinstance(v, dict)}
    for key in ("overcount", "unique_ops", "unique_merges", "unique_splits", "dedup_factor"):
        put(out, key, getattr(d, key))
        out[f"{key}_method"] = getattr(d, key).method
    return out


def _distinct_dict(d: DistinctStats) -> dict:
    out = {k: v for k, v in asdict(d).items() if not isinstance(v, dict)}
    for key in ("ops", "merges", "splits"):
        put(out, key, getattr(d, key))
    return {**out, "ci_method": d.ops.method}


def sample_dict(s: SampleStats) -> dict:
    out: dict = {
        "label": s.label,
        "n": s.n,
        "n_ok": s.n_ok,
        "n_errors": s.n_errors,
        "error_reasons": s.error_reasons,
        "population": s.population,
        "sampling_fraction": s.sampling_fraction,
        "n_zero_edits": s.n_zero_edits,
    }
    for key in (
        "mean_edits",
        "median_edits",
        "mean_merges",
        "mean_splits",
        "merge_share",
        "split_share",
        "p95",
        "tail_share",
        "gini",
        "projected_total",
        "projected_merges",
        "projected_splits",
    ):
        put(out, key, getattr(s, key))
    out.update(
        sd_edits=s.sd_edits,
        min_edits=s.min_edits,
        max_edits=s.max_edits,
        percentiles=s.percentiles,
        tail_count=s.tail_count,
    )
    for key, est in s.top_shares.items():
        put(out, f"{key}_share", est)
    out["projection_basis"] = "per-neuron sums (shared operations counted once per neuron)"
    out["dedup"] = _dedup_dict(s.dedup)
    out["distinct"] = None if s.distinct is None else _distinct_dict(s.distinct)
    out["n_bootstrap"] = s.n_bootstrap
    out["ci_level"] = s.ci_level
    out["small_sample"] = s.small_sample
    if s.small_sample:
        out["small_sample_note"] = small_sample_note(s.n_ok)
    out["ci_methods"] = {
        "mean_edits": s.mean_edits.method,
        "projected_total": s.projected_total.method,
        "merge_share": s.merge_share.method,
        "median_edits": s.median_edits.method,
        "p95": s.p95.method,
        "tail_share": s.tail_share.method,
        "gini": s.gini.method,
    }
    return out


def _cost_dict(c: CostEstimate) -> dict:
    out: dict = {"sample": c.label, "counts_basis": c.counts_basis}
    for key in ("merges", "splits", "node_hours", "gpu_hours", "usd"):
        put(out, key, getattr(c, key))
    out["method"] = c.node_hours.method
    return out


def validation(samples: tuple[SampleStats, ...], nested: bool) -> list[dict]:
    """Consecutive sample sizes compared: difference of mean edits with a CI (arms in quadrature, valid for
    independent draws), relative change, and whether the two CIs overlap."""
    rows = []
    ordered = [s for s in samples if s.mean_edits.ci is not None]
    for a, b in itertools.pairwise(ordered):
        diff = b.mean_edits.value - a.mean_edits.value
        # half-widths in quadrature, arm by arm (independent samples)
        lo = diff - math.hypot(
            b.mean_edits.value - b.mean_edits.ci[0], a.mean_edits.ci[1] - a.mean_edits.value
        )
        hi = diff + math.hypot(
            b.mean_edits.ci[1] - b.mean_edits.value, a.mean_edits.value - a.mean_edits.ci[0]
        )
        rows.append(
            {
                "a": a.label,
                "b": b.label,
                "mean_edits_diff": diff,
                "mean_edits_diff_ci": [lo, hi],
                "relative_change_pct": 100 * diff / a.mean_edits.value if a.mean_edits.value else None,
                "ci_overlap": bool(
                    a.mean_edits.ci[1] >= b.mean_edits.ci[0] and b.mean_edits.ci[1] >= a.mean_edits.ci[0]
                ),
                "difference_excludes_zero": bool(lo > 0 or hi < 0),
                "independent_draws": not nested and "full" not in (a.label, b.label),
            }
        )
    return rows


def summary_dict(summary: EditSummary) -> dict:
    cfg, cost = summary.config, summary.cost
    level = cfg.ci_level
    basis = asdict(cost.basis)
    basis.update(
        formula="node_seconds = merges x t_merge_s + splits x t_split_s; node_hours = node_seconds / 3600; "
        "gpu_hours = node_hours x gpus_per_node; usd = gpu_hours x usd_per_gpu_hour",
        note="t_merge_s / t_split_s are seconds of a whole node per decision "
        "(the seed's placeholders: 2.0 / 2.5 s; "
        "the seed reported node-hours as GPU-hours)",
    )
    primary = _cost_dict(cost.primary)
    primary["basis"] = basis
    primary["deduplicated"] = None if cost.deduplicated is None else _cost_dict(cost.deduplicated)
    primary["per_neuron_sums"] = None if cost.per_neuron_sums is None else _cost_dict(cost.per_neuron_sums)
    primary["per_sample"] = [_cost_dict(c) for c in cost.per_sample]
    primary["sensitivity"] = []
    for point in cost.sensitivity:
        row = {"seconds_per_op": point.seconds_per_op}
        for key in ("node_hours", "gpu_hours", "usd"):
            put(row, key, getattr(point, key))
        primary["sensitivity"].append(row)
    primary["sensitivity_seconds"] = list(SENSITIVITY_SECONDS)
    return {
        "datastack": summary.datastack,
        "version": summary.version,
        "pin": summary.pin,
        "population": summary.population,
        "sampling": {
            "design": "simple random samples without replacement"
            + (", nested (prefixes of one permutation)" if cfg.nested else ", independent draws per size"),
            "seed": cfg.seed,
            "sample_sizes": list(cfg.sample_sizes),
            "full": cfg.full,
            "nested": cfg.nested,
            "n_bootstrap": cfg.n_bootstrap,
            "ci_level": level,
            "calibration_note": CALIBRATION_NOTE,
            "small_sample_n": SMALL_SAMPLE_N,
            "errors": "error neurons are excluded from every statistic and counted in n_errors "
            "(never 0 edits); "
            "the projection assumes they are missing at random",
            "ci_methods": {
                "means_and_totals": STUDENTIZED,
                "merge_share": RATIO_STUDENTIZED,
                "quantiles": ORDER_STAT,
                "tail_shares": SHARE_STUDENTIZED,
                "gini": BIAS_CORRECTED,
                "finite_population_correction": "sqrt(1 - n_ok/N) on the SE (bootstrap-t) or on "
                "the deviations "
                "(percentile); a census (n_ok = N) has CI width 0",
            },
        },
        "units": UNITS,
        "projection_note": PROJECTION_NOTE,
        "samples": [sample_dict(s) for s in summary.samples],
        "validation": validation(summary.samples, cfg.nested),
        "seed_comparison": [c for s in summary.samples if (c := compare_with_seed(summary.datastack, s))],
        "calibration": calibration_dict(summary.datastack),
        "model": [model_dict(m) for m in summary.model],
        "resamples": summary.resamples,
        "cost": primary,
        "files": [str(p.relative_to(summary.out_dir) if summary.out_dir else p) for p in summary.files],
    }


def write_json(data: dict, path: Path) -> Path:
    """Write atomically (a crash never leaves half a file over a good one)."""
    return write_text_atomic(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


# -- the typed reader ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SampleRecord:
    """One sample of summary.json: sizes and the estimates stored with their CI method (`ci_methods`)."""

    label: str
    n: int
    n_ok: int
    n_errors: int
    population: int
    mean_edits: Estimate
    projected_total: Estimate
    merge_share: Estimate
    median_edits: Estimate
    p95: Estimate
    tail_share: Estimate
    gini: Estimate
    small_sample: bool = False  # too few ok neurons: the intervals are rough
    small_sample_note: str | None = None


@dataclass(frozen=True)
class SummaryCost:
    """summary.json's primary cost: projected operations and what they cost at `basis` (one CI method)."""

    sample: str
    counts_basis: str
    merges: Estimate
    splits: Estimate
    node_hours: Estimate
    gpu_hours: Estimate
    usd: Estimate
    basis: CostBasis


@dataclass(frozen=True)
class Population:
    table: str | None
    n_neurons: int
    n_table_rows: int
    n_duplicate_roots: int


@dataclass(frozen=True)
class Sampling:
    design: str
    seed: int
    sample_sizes: tuple[int, ...]
    full: bool
    nested: bool
    n_bootstrap: int
    ci_level: float


@dataclass(frozen=True)
class SummaryRecord:
    """What summary.json holds for later stages (the rest of the file is for people and summary.md)."""

    datastack: str
    version: int | None
    pin: DataPin
    population: Population
    sampling: Sampling
    samples: tuple[SampleRecord, ...]
    cost: SummaryCost

    @classmethod
    def from_dict(cls, data: Any, source: str = SUMMARY_NAME) -> SummaryRecord:
        """From the JSON `summary_dict` wrote; DataError naming the field otherwise."""
        if isinstance(data, dict):
            data = dict(data)
            if isinstance(data.get("samples"), list):
                data["samples"] = [_nest(x, SAMPLE_ESTIMATES, _methods(x)) for x in data["samples"]]
            if isinstance(data.get("cost"), dict):
                method = data["cost"].get("method")
                data["cost"] = _nest(data["cost"], COST_ESTIMATES, dict.fromkeys(COST_ESTIMATES, method))
        return from_json(cls, data, source)

    @classmethod
    def of(cls, summary: EditSummary) -> SummaryRecord:
        """The record of an in-memory summary (what `read_summary` gives back for its summary.json)."""
        cfg, cost = summary.config, summary.cost.primary
        design = summary_dict(summary)["sampling"]["design"]

        def keep(est: Estimate, method: str | None = None) -> Estimate:
            ci = None if est.ci is None else tuple(math.nan if _num(c) is None else float(c) for c in est.ci)
            return Estimate(_num(est.value), ci, method or est.method)  # type: ignore[arg-type]

        samples = tuple(
            SampleRecord(
                s.label, s.n, s.n_ok, s.n_errors, s.population,
                **{k: keep(getattr(s, k)) for k in SAMPLE_ESTIMATES},
                small_sample=s.small_sample,
                small_sample_note=small_sample_note(s.n_ok) if s.small_sample else None,
            )
            for s in summary.samples
        )  # fmt: skip
        sampling = Sampling(
            design, cfg.seed, tuple(cfg.sample_sizes), cfg.full, cfg.nested, cfg.n_bootstrap, cfg.ci_level
        )
        costs = {k: keep(getattr(cost, k), cost.node_hours.method) for k in COST_ESTIMATES}
        return cls(
            datastack=summary.datastack,
            version=summary.version,
            pin=from_json(DataPin, summary.pin, "pin"),
            population=from_json(Population, summary.population, "population"),
            sampling=sampling,
            samples=samples,
            cost=SummaryCost(cost.label, cost.counts_basis, basis=summary.cost.basis, **costs),
        )


def _methods(sample: Any) -> dict:
    methods = sample.get("ci_methods") if isinstance(sample, dict) else None
    return methods if isinstance(methods, dict) else {}


def _nest(flat: Any, keys: tuple[str, ...], methods: dict) -> Any:
    """`key`, `key_ci` and the key's method as one {value, ci, method} object (absent keys stay absent)."""
    if not isinstance(flat, dict):
        return flat
    out = dict(flat)
    for key in keys:
        if key in flat:
            out[key] = {"value": flat[key], "ci": flat.get(f"{key}_ci"), "method": methods.get(key)}
    return out


def read_summary(path: Path) -> SummaryRecord:
    """summary.json (or the `edits` output folder holding it) as its typed record."""
    path = Path(path)
    path = path / SUMMARY_NAME if path.is_dir() else path
    return SummaryRecord.from_dict(read_json_object(path, "edits summary"), str(path))
