"""The two profiles of the embedded datastack: what each imitates and the parameters its generator draws from.

Targets come from the seed write-up's committed samples (docs/seed.md "Committed samples"). Mouse-like
(MICrONS minnie65): 421.75 ± 266 edits per proofread neuron, median 354, p95 964, 47.1 % merges. Fly-like
(FlyWire FAFB): the seed's n=100 and n=500 fly samples come from one run, successive draws of one RNG stream,
so they are independent simple random samples (expected overlap 0.4 of 139,255 neurons). They are pooled into
one sample of 600, which weights each by its size (the precision-weighted combination): 1,784 + 9,512 = 11,296
edits, mean 18.83 (the issue's "19 ± 36" to its precision); 1,282 + 7,028 = 8,310 merges = 73.57 % (inside its
72-74 %); pooled sd 36.2; median 8; p95 60-61; top 5 % holding 36-37 % of edits. The n=1000 sample is left
out: drawn in a later run with the same seed 42, it likely begins with the n=100 draw (docs/seed.md
"Sample overlap"). The generated population: mean 18.83, sd 36.1, median 8, p95 63, p99 190, max 660, top 5 %
= 36.8 % of edits, 73.57 % merges. A lognormal body with one tail knee cannot hold median 8, p95 near 61 and
that top-5 % share at this mean with an sd below about 40; the soft ceiling compresses the extreme tail
instead (a hard cap would pile hundreds of neurons onto one value)."""

from __future__ import annotations

from dataclasses import dataclass

from proofpilot.core.errors import ConfigError


@dataclass(frozen=True)
class CountModel:
    """Per-neuron edit counts: a lognormal around `median`, reshaped above `tail_knee`
    (x -> knee·(x/knee)^power: power < 1 thins the tail, > 1 fattens it) and again above `ceiling_knee`
    (same map with `ceiling_power`, < 1 to compress the extreme tail; both knees in the units of `median`),
    rescaled, rounded and capped at `max_edits`, then nudged so that the population mean is exactly
    `target_mean`."""

    median: float
    sigma: float
    target_mean: float
    tail_knee: float = float("inf")
    tail_power: float = 1.0
    ceiling_knee: float = float("inf")
    ceiling_power: float = 1.0
    min_edits: int = 0
    max_edits: int = 8000  # hard cap (never above ids.OWN_OPS_CAP)
    zero_share: float = 0.0  # neurons with no edit at all, on top of those that round to zero


@dataclass(frozen=True)
class MergeModel:
    """Per-neuron merge share ~ Beta(mean·κ, (1-mean)·κ); the pooled share is then set to `target_share`."""

    target_share: float
    concentration: float


@dataclass(frozen=True)
class Profile:
    name: str  # also the datastack name
    imitates: str
    pcg_table: str
    aligned_volume: str
    aligned_volume_id: int
    segmentation_resolution_nm: tuple[float, float, float]
    annotation_resolution_nm: tuple[float, float, float]  # voxel resolution of the proofread table's points
    proofread_table: str
    proofread_schema: str
    materialization_version: int
    materialization_timestamp: str  # "%Y-%m-%dT%H:%M:%S.%f", UTC
    edits_start: str  # first edit timestamp of the window edits are drawn from (UTC ISO)
    n_neurons: int
    counts: CountModel
    merges: MergeModel
    shared_split_probability: float  # per split of the smaller side of a neuron pair
    n_users: int
    user_affiliations: tuple[str, ...]
    volume_size_nm: tuple[float, float, float]  # bounding box of the synthetic volume
    seed: int

    @property
    def datastack(self) -> str:
        return self.name


MINNIE65_SYNTHETIC = Profile(
    name="minnie65_synthetic",
    imitates="MICrONS minnie65_public (mouse visual cortex)",
    pcg_table="minnie65_synthetic",
    aligned_volume="minnie65_phase3",
    aligned_volume_id=1,
    segmentation_resolution_nm=(8.0, 8.0, 40.0),
    annotation_resolution_nm=(4.0, 4.0, 40.0),
    proofread_table="proofreading_status_and_strategy",
    proofread_schema="proofreading_boolstatus_user",
    materialization_version=1412,
    materialization_timestamp="2025-05-16T10:10:01.200708",
    edits_start="2020-06-01T00:00:00",
    n_neurons=2314,
    counts=CountModel(
        median=354.0, sigma=0.8, target_mean=421.75, tail_knee=800.0, tail_power=0.35, min_edits=1
    ),
    merges=MergeModel(target_share=0.471, concentration=12.0),
    shared_split_probability=0.05,
    n_users=180,
    user_affiliations=("Allen Institute", "Princeton", "Baylor College of Medicine", "Zetta AI"),
    volume_size_nm=(1_400_000.0, 1_000_000.0, 900_000.0),
    seed=651412,
)

FAFB_SYNTHETIC = Profile(
    name="fafb_synthetic",
    imitates="FlyWire flywire_fafb_public (adult fly brain)",
    pcg_table="fafb_synthetic",
    aligned_volume="fafb_seung_alignment_v0",
    aligned_volume_id=2,
    segmentation_resolution_nm=(16.0, 16.0, 40.0),
    annotation_resolution_nm=(4.0, 4.0, 40.0),
    proofread_table="proofread_neurons",
    proofread_schema="bound_tag",
    materialization_version=783,
    materialization_timestamp="2023-09-30T05:10:00.000000",
    edits_start="2019-01-15T00:00:00",
    n_neurons=139_255,
    counts=CountModel(
        median=8.0,
        sigma=1.21,
        target_mean=11_296 / 600,  # the seed's n=100 and n=500 fly samples pooled (module docstring)
        tail_knee=65.0,
        tail_power=1.35,
        ceiling_knee=280.0,
        ceiling_power=0.3,
        max_edits=950,  # not reached (max 660)
        zero_share=0.015,
    ),
    merges=MergeModel(target_share=8_310 / 11_296, concentration=3.0),
    shared_split_probability=0.08,
    n_users=1400,
    user_affiliations=("Princeton", "Cambridge", "Vienna BioCenter", "Janelia", "FlyWire Community"),
    volume_size_nm=(1_000_000.0, 500_000.0, 280_000.0),
    seed=783139,
)

PROFILES: dict[str, Profile] = {p.name: p for p in (MINNIE65_SYNTHETIC, FAFB_SYNTHETIC)}


def get_profile(name: str) -> Profile:
    """The profile called `name` (= its datastack name); ConfigError for an unknown one."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(
            f"unknown embedded profile {name!r}; choose one of {', '.join(sorted(PROFILES))}"
        ) from None
