"""Full-dataset cost: the edits stage's projected merges/splits × the measured node-seconds per edit.

The counts are distinct operations where the edits stage looked up each operation's multiplicity (its
summary's primary cost: a split in two proofread neurons' logs counted once), else per-neuron sums (the
seed's way); `counts_basis` says which. The per-edit cost is measured on distinct operations, so distinct
counts are the consistent product.

    node-hours = (merges · t_merge + splits · t_split) / 3600     t = node-seconds per *edit* (calls/edit in)
    GPU-hours  = GPUs per node · node-hours;   $ = GPU-hours · $/GPU-hour

Beside it: the seed write-up's placeholders (2.0 s per merge, 2.5 s per split, on the same projected
counts) and the roofline for Qwen2.5-32B on 2×H100 (telemetry/roofline.py). The seed's t was quoted
"on dual H100", so its hours are node-hours (docs/cost.md "Dollar basis", docs/seed.md "Cost placeholders").
"""

from __future__ import annotations

from dataclasses import dataclass

from proofpilot.core.errors import ConfigError

SEED_T_MERGE_S = 2.0
SEED_T_SPLIT_S = 2.5
DEFAULT_USD_PER_GPU_HOUR = 2.50
DEFAULT_USD_BASIS = (
    'H100 SXM on-demand, middle of the $1.90–2.94 per GPU-hour range (gpu.blog; docs/cost.md "Dollar basis")'
)


def _check_ci(name: str, value: float, ci: tuple[float, float]) -> tuple[float, float]:
    lo, hi = (float(ci[0]), float(ci[1]))
    if not (0 <= lo <= value <= hi):
        raise ConfigError(f"{name}: need 0 <= CI low <= value <= CI high, got {value} with CI ({lo}, {hi})")
    return lo, hi


@dataclass(frozen=True)
class EditsProjection:
    """Projected full-dataset operations from the edits stage (plain numbers and CI tuples)."""

    dataset: str
    merges: float
    merges_ci: tuple[float, float]
    splits: float
    splits_ci: tuple[float, float]
    ci_level: float = 0.95
    counts_basis: str = "per-neuron sums"  # or "distinct operations (1/m-weighted)" (edits.cost)

    def __post_init__(self) -> None:
        object.__setattr__(self, "merges_ci", _check_ci("projected merges", self.merges, self.merges_ci))
        object.__setattr__(self, "splits_ci", _check_ci("projected splits", self.splits, self.splits_ci))
        if not 0 < self.ci_level < 1:
            raise ConfigError(f"CI level must be in (0, 1), got {self.ci_level}")


@dataclass(frozen=True)
class MeasuredPerEdit:
    """Measured node-seconds per edit of one op type (per decision × decisions per edit), with its CI."""

    seconds: float
    ci: tuple[float, float]


@dataclass(frozen=True)
class CostProjection:
    """Full-dataset node-hours, GPU-hours and $, with the seed's placeholders and the roofline beside them."""

    dataset: str
    ci_level: float
    merges: float
    merges_ci: tuple[float, float]
    splits: float
    splits_ci: tuple[float, float]
    t_merge_node_s_per_edit: float
    t_merge_ci: tuple[float, float]
    t_split_node_s_per_edit: float
    t_split_ci: tuple[float, float]
    node_hours: float
    node_hours_ci: tuple[float, float]
    gpu_hours: float
    gpu_hours_ci: tuple[float, float]
    usd: float
    usd_ci: tuple[float, float]
    gpus_per_node: int
    usd_per_gpu_hour: float
    usd_basis: str
    seed_t_merge_s: float
    seed_t_split_s: float
    seed_node_hours: float
    seed_gpu_hours: float
    ratio_t_merge_to_seed: float
    ratio_t_split_to_seed: float
    ratio_node_hours_to_seed: float | None
    roofline_bf16_node_hours: float | None
    roofline_fp8_node_hours: float | None
    counts_basis: str = "per-neuron sums"
    ci_note: str = (
        "CI bounds combine the low (high) ends of the projected counts with the low (high) ends of the "
        "measured per-edit cost: a conservative interval, wider than the exact CI of the product"
    )


def _node_hours(merges: float, t_merge: float, splits: float, t_split: float) -> float:
    return (merges * t_merge + splits * t_split) / 3600.0


def project_cost(
    edits: EditsProjection,
    t_merge: MeasuredPerEdit,
    t_split: MeasuredPerEdit,
    gpus_per_node: int = 2,
    usd_per_gpu_hour: float = DEFAULT_USD_PER_GPU_HOUR,
    usd_basis: str = DEFAULT_USD_BASIS,
    roofline_bf16_s_per_edit: tuple[float, float] | None = None,
    roofline_fp8_s_per_edit: tuple[float, float] | None = None,
) -> CostProjection:
    """Plug the measured (merge, split) node-seconds per edit into the edits projection.

    `roofline_*_s_per_edit` are (merge, split) roofline node-seconds per edit, if the run had LLM tokens.
    """
    if gpus_per_node < 1:
        raise ConfigError(f"GPUs per node must be >= 1, got {gpus_per_node}")
    if usd_per_gpu_hour < 0:
        raise ConfigError(f"$ per GPU-hour must be >= 0, got {usd_per_gpu_hour}")
    tm_ci = _check_ci("t_merge per edit", t_merge.seconds, t_merge.ci)
    ts_ci = _check_ci("t_split per edit", t_split.seconds, t_split.ci)
    node_h = _node_hours(edits.merges, t_merge.seconds, edits.splits, t_split.seconds)
    node_ci = (
        _node_hours(edits.merges_ci[0], tm_ci[0], edits.splits_ci[0], ts_ci[0]),
        _node_hours(edits.merges_ci[1], tm_ci[1], edits.splits_ci[1], ts_ci[1]),
    )
    gpu_h, gpu_ci = gpus_per_node * node_h, (gpus_per_node * node_ci[0], gpus_per_node * node_ci[1])
    seed_node_h = _node_hours(edits.merges, SEED_T_MERGE_S, edits.splits, SEED_T_SPLIT_S)

    def _roof(pair: tuple[float, float] | None) -> float | None:
        return None if pair is None else _node_hours(edits.merges, pair[0], edits.splits, pair[1])

    return CostProjection(
        dataset=edits.dataset,
        ci_level=edits.ci_level,
        merges=edits.merges,
        merges_ci=edits.merges_ci,
        splits=edits.splits,
        splits_ci=edits.splits_ci,
        t_merge_node_s_per_edit=t_merge.seconds,
        t_merge_ci=tm_ci,
        t_split_node_s_per_edit=t_split.seconds,
        t_split_ci=ts_ci,
        node_hours=node_h,
        node_hours_ci=node_ci,
        gpu_hours=gpu_h,
        gpu_hours_ci=gpu_ci,
        usd=gpu_h * usd_per_gpu_hour,
        usd_ci=(gpu_ci[0] * usd_per_gpu_hour, gpu_ci[1] * usd_per_gpu_hour),
        gpus_per_node=gpus_per_node,
        usd_per_gpu_hour=usd_per_gpu_hour,
        usd_basis=usd_basis,
        seed_t_merge_s=SEED_T_MERGE_S,
        seed_t_split_s=SEED_T_SPLIT_S,
        seed_node_hours=seed_node_h,
        seed_gpu_hours=gpus_per_node * seed_node_h,
        ratio_t_merge_to_seed=t_merge.seconds / SEED_T_MERGE_S,
        ratio_t_split_to_seed=t_split.seconds / SEED_T_SPLIT_S,
        ratio_node_hours_to_seed=node_h / seed_node_h if seed_node_h > 0 else None,
        roofline_bf16_node_hours=_roof(roofline_bf16_s_per_edit),
        roofline_fp8_node_hours=_roof(roofline_fp8_s_per_edit),
        counts_basis=edits.counts_basis,
    )
