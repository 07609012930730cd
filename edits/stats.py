"""Per-sample statistics of edits per neuron, with bootstrap CIs and the projection to the whole table.

Input rows follow `proofpilot.datastack.records.PER_NEURON_COLUMNS`. Error rows (a log that could not be
fetched) are excluded from every statistic and counted in `n_errors`: an error is never a neuron with 0 edits.
The projection to N assumes the errors are missing at random. CI methods: see `edits_intervals`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from proofpilot.core.errors import DataError
from proofpilot.edits.bootstrap import TOP_FRACTIONS, GroupedSample, bootstrap, point_statistics
from proofpilot.edits.dedup import dedup_statistics
from proofpilot.edits.distinct import DistinctResult, distinct_statistics
from proofpilot.edits.intervals import SMALL_SAMPLE_N, SampleIntervals, quantile_interval
from proofpilot.edits.records import Estimate, SampleStats

PERCENTILES = (25, 50, 75, 90, 95, 99)


@dataclass(frozen=True)
class SampleResult:
    stats: SampleStats
    intervals: SampleIntervals  # keeps the bootstrap draws for the cost CIs
    distinct: DistinctResult | None = None  # with the operations' multiplicities: distinct-operation counts


def ok_rows(per_neuron: pd.DataFrame) -> pd.DataFrame:
    """The rows with an edit history; their counts must be present and consistent."""
    ok = per_neuron[per_neuron["status"] == "ok"]
    counts = ok[["n_edits", "n_merges", "n_splits"]]
    if counts.isna().any().any():
        raise DataError("per-neuron table has ok rows with missing edit counts")
    if ((counts["n_merges"] + counts["n_splits"]) != counts["n_edits"]).any():
        raise DataError("per-neuron table has rows where merges + splits != edits")
    return ok


def error_reasons(per_neuron: pd.DataFrame) -> dict[str, int]:
    errors = per_neuron.loc[per_neuron["status"] != "ok", "reason"].fillna("unknown").astype(str)
    return {str(k): int(v) for k, v in errors.value_counts().sort_index().items()}


def _share_complement(share: Estimate) -> Estimate:
    if share.value is None:
        return share
    ci = None if share.ci is None else (1 - share.ci[1], 1 - share.ci[0])
    return Estimate(1 - share.value, ci, share.method)


def sample_statistics(
    label: str,
    per_neuron: pd.DataFrame,
    membership: pd.DataFrame,
    population: int,
    n_boot: int,
    rng: np.random.Generator,
    level: float = 0.95,
    multiplicity: pd.DataFrame | None = None,
) -> SampleResult:
    """Statistics of one sample: `per_neuron` holds exactly the sampled neurons, `membership` their logs;
    `multiplicity` (operation_id, m: proofread neurons whose logs hold it) adds distinct-operation counts."""
    ok = ok_rows(per_neuron)
    n_ok = len(ok)
    if n_ok < 2:
        raise DataError(
            f"sample {label}: only {n_ok} of {len(per_neuron)} neurons have an edit history; "
            f"errors: {error_reasons(per_neuron)}"
        )
    edits = ok["n_edits"].to_numpy(dtype=np.int64)
    merges = ok["n_merges"].to_numpy(dtype=np.int64)
    grouped = GroupedSample.from_counts(edits, merges)
    intervals = SampleIntervals(point_statistics(grouped), bootstrap(grouped, n_boot, rng), population, level)
    ok_membership = membership[membership["root_id"].isin(ok["root_id"])]
    merge_share = intervals.merge_share()
    distinct = None
    if multiplicity is not None:
        distinct = distinct_statistics(
            ok["root_id"].to_numpy(), ok_membership, multiplicity, population, n_boot, rng, level
        )
    stats = SampleStats(
        label=label,
        n=len(per_neuron),
        n_ok=n_ok,
        n_errors=len(per_neuron) - n_ok,
        error_reasons=error_reasons(per_neuron),
        population=population,
        sampling_fraction=n_ok / population,
        n_zero_edits=int((edits == 0).sum()),
        mean_edits=intervals.linear_mean(1, 0),
        sd_edits=float(edits.std(ddof=1)),
        median_edits=quantile_interval(edits, 0.5, population, level),
        min_edits=int(edits.min()),
        max_edits=int(edits.max()),
        percentiles={f"p{q}": float(np.percentile(edits, q)) for q in PERCENTILES},
        mean_merges=intervals.linear_mean(0, 1),
        mean_splits=intervals.linear_mean(1, -1),
        merge_share=merge_share,
        split_share=_share_complement(merge_share),
        p95=quantile_interval(edits, 0.95, population, level),
        tail_count=int((edits > np.percentile(edits, 95)).sum()),
        tail_share=intervals.tail_share(),
        gini=intervals.gini(),
        top_shares={f"top_{round(f * 100)}pct": intervals.top_share(f) for f in TOP_FRACTIONS},
        projected_total=intervals.linear_total(1, 0),
        projected_merges=intervals.linear_total(0, 1),
        projected_splits=intervals.linear_total(1, -1),
        dedup=dedup_statistics(ok_membership, intervals, level),
        n_bootstrap=n_boot,
        ci_level=level,
        small_sample=n_ok < SMALL_SAMPLE_N,
        distinct=None if distinct is None else distinct.stats,
    )
    return SampleResult(stats, intervals, distinct)
