"""Frozen records of the edit-distribution analysis (configuration in, `EditSummary` out)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from proofpilot.core.errors import ConfigError
from proofpilot.datastack.source import DataSource

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Estimate:
    """A point estimate, its confidence interval (None where not estimable) and how it was made."""

    value: float | None
    ci: tuple[float, float] | None
    method: str

    def scaled(self, factor: float, method: str | None = None) -> Estimate:
        ci = None if self.ci is None else (self.ci[0] * factor, self.ci[1] * factor)
        value = None if self.value is None else self.value * factor
        return Estimate(value, ci, method or self.method)

    @property
    def width(self) -> float | None:
        return None if self.ci is None else self.ci[1] - self.ci[0]


@dataclass(frozen=True)
class CostBasis:
    """The seed's cost framework: seconds of a whole node per merge / split decision, and the price basis."""

    t_merge_s: float = 2.0
    t_split_s: float = 2.5
    gpus_per_node: int = 2
    usd_per_gpu_hour: float = 2.0

    def __post_init__(self) -> None:
        for name, option in (
            ("t_merge_s", "--t-merge"),
            ("t_split_s", "--t-split"),
            ("usd_per_gpu_hour", "--usd-per-gpu-hour"),
        ):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ConfigError(
                    f"{option} must be a non-negative number of seconds or dollars, got {value}"
                )
        if self.gpus_per_node < 1:
            raise ConfigError(f"--gpus-per-node must be at least 1, got {self.gpus_per_node}")


@dataclass(frozen=True)
class DedupStats:
    """Per-neuron sums vs unique operations (a shared split is in two neurons' logs).

    `sample_*` fields describe the sampled neurons only. `overcount` estimates the population's
    Σ(per-neuron edits) − (unique operations); `unique_ops` = projected per-neuron sum − overcount.
    """

    sample_edit_rows: int  # Σ per-neuron edits over the sampled ok neurons
    sample_unique_ops: int  # distinct operation ids among them
    sample_shared_ops: int  # operation ids seen in two or more sampled neurons
    sample_dedup_factor: float | None  # unique / rows in the sample
    sharing_pairs_observed: int  # pairs of sampled neurons that share at least one operation
    max_neurons_per_op: int  # in the sample; the estimator assumes ≤ 2 in the population
    pair_inclusion_probability: float  # P(both neurons of a given pair are sampled)
    identifiable: bool
    overcount: Estimate
    unique_ops: Estimate
    unique_merges: Estimate
    unique_splits: Estimate
    dedup_factor: Estimate  # unique ops / per-neuron sum, population
    note: str


@dataclass(frozen=True)
class DistinctStats:
    """Distinct operations projected from the sample: each logged operation weighs 1/m, m = the proofread
    neurons whose logs hold it (edits/distinct.py). N × mean weight is unbiased for the distinct count."""

    ops: Estimate
    merges: Estimate
    splits: Estimate
    sample_rows: int  # (neuron, operation) rows of the sampled ok neurons
    sample_weight: float  # Σ 1/m over them
    shared_rows: int  # rows whose operation lies in two or more proofread neurons' logs
    max_neurons_per_op: int
    rows_without_m: int  # rows whose m was not looked up (weighed 1: an over-estimate)
    method: str
    note: str


@dataclass(frozen=True)
class SampleStats:
    """Statistics of one sample of proofread neurons (errors excluded), with CIs and the projection to N."""

    label: str
    n: int  # neurons sampled
    n_ok: int
    n_errors: int
    error_reasons: dict[str, int]
    population: int
    sampling_fraction: float  # n_ok / N (used by the finite-population correction)
    n_zero_edits: int  # ok neurons whose log is genuinely empty
    mean_edits: Estimate
    sd_edits: float
    median_edits: Estimate
    min_edits: int
    max_edits: int
    percentiles: dict[str, float]  # p25 … p99, linear interpolation
    mean_merges: Estimate
    mean_splits: Estimate
    merge_share: Estimate  # pooled: Σ merges / Σ edits
    split_share: Estimate
    p95: Estimate
    tail_count: int  # neurons with edits > p95 (strict, as the seed)
    tail_share: Estimate  # their share of the sample's edits
    gini: Estimate
    top_shares: dict[str, Estimate]  # "top_1pct" … share of edits in the top ceil(x·n) neurons
    projected_total: Estimate  # N × mean edits (per-neuron sums: shared operations counted once per neuron)
    projected_merges: Estimate
    projected_splits: Estimate
    dedup: DedupStats
    n_bootstrap: int
    ci_level: float
    small_sample: bool = False  # fewer ok neurons than intervals.SMALL_SAMPLE_N: the intervals are rough
    distinct: DistinctStats | None = None  # None without the operations' multiplicities


@dataclass(frozen=True)
class CostEstimate:
    """Cost of a set of operations in the seed's framework, with CIs carried from the operation counts."""

    label: str  # which sample / basis
    counts_basis: str  # "per-neuron sums" or "deduplicated"
    merges: Estimate
    splits: Estimate
    node_hours: Estimate
    gpu_hours: Estimate
    usd: Estimate


@dataclass(frozen=True)
class SensitivityPoint:
    seconds_per_op: float
    node_hours: Estimate
    gpu_hours: Estimate
    usd: Estimate


@dataclass(frozen=True)
class CostReport:
    basis: CostBasis
    primary: CostEstimate  # the largest sample (or the census): distinct operations where known, else sums
    deduplicated: CostEstimate | None
    per_sample: tuple[CostEstimate, ...]
    sensitivity: tuple[SensitivityPoint, ...]  # uniform s/op over all operations of the primary sample
    per_neuron_sums: CostEstimate | None = None  # the seed's way, beside a distinct-operation primary


@dataclass(frozen=True)
class EditsConfig:
    """Everything `run_edits` needs; one object from the CLI (or a test) to the library.

    `out_dir` None: nothing is written (`analyze`); `run_edits` needs one."""

    source: DataSource
    out_dir: Path | None = None
    sample_sizes: tuple[int, ...] = (100, 500)
    full: bool = False
    nested: bool = False
    seed: int = 0
    n_bootstrap: int = 1000
    ci_level: float = 0.95
    workers: int = 2
    batch_size: int = 50  # roots per change-log call
    progress: bool = True
    cost: CostBasis = field(default_factory=CostBasis)
    compare_dirs: tuple[Path, ...] = ()  # earlier `edits` outputs drawn next to this one in the figures
    figures: bool = True
    model: bool = False  # also fit the hierarchical model (edits/hierarchical.py) to each sample
    resamples: int = 10  # R independent extra samples per size, Figure 1's spread (edits/resamples.py)

    def __post_init__(self) -> None:
        if isinstance(self.source, str):  # a bare datastack name
            object.__setattr__(self, "source", DataSource(self.source))
        if self.out_dir is not None:
            object.__setattr__(self, "out_dir", Path(self.out_dir))
        object.__setattr__(self, "sample_sizes", tuple(self.sample_sizes))
        if not self.sample_sizes and not self.full:
            raise ConfigError("give at least one --sample-sizes value or --full")
        if any(n < 2 for n in self.sample_sizes):
            raise ConfigError(f"sample sizes must be at least 2, got {sorted(self.sample_sizes)}")
        if len(set(self.sample_sizes)) != len(self.sample_sizes):
            raise ConfigError(f"sample sizes must be distinct, got {list(self.sample_sizes)}")
        if self.n_bootstrap < 1000:
            raise ConfigError(f"--bootstrap must be at least 1000 resamples, got {self.n_bootstrap}")
        if not 0.5 < self.ci_level < 1:
            raise ConfigError(f"CI level must lie in (0.5, 1), got {self.ci_level}")
        if self.seed < 0:
            raise ConfigError(f"--seed must be non-negative, got {self.seed}")

    @property
    def datastack(self) -> str:
        return self.source.datastack


@dataclass(frozen=True)
class EditSummary:
    """What was measured, from which data, and (once written) where its files are."""

    datastack: str
    version: int | None
    pin: dict
    population: dict  # table, n_neurons, duplicates dropped
    samples: tuple[SampleStats, ...]
    cost: CostReport
    config: EditsConfig
    out_dir: Path | None = None  # None until written (`write_edits`)
    files: tuple[Path, ...] = ()
    model: tuple = ()  # edits.hierarchical.ModelIntervals per sample (config.model), beside the bootstrap's
    resamples: dict | None = None  # edits.resamples.resample_validation (config.resamples > 0)


@dataclass(frozen=True, eq=False)
class EditsResult:
    """What `analyze` returns: the summary record and the rows it was computed from (nothing written).

    `per_neuron` has one row per neuron of the table that was fetched, with an `in_<sample>` column per
    sample; `operations` one row per distinct operation (None if not fetched); `membership` the
    neuron-operation pairs."""

    summary: EditSummary
    per_neuron: pd.DataFrame
    operations: pd.DataFrame | None
    membership: pd.DataFrame
