"""cost.json: its records, its one writer (`write_cost_json`) and its one typed reader (`read_cost_json`)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from proofpilot.agent.records import Verdict
from proofpilot.core.atomic import write_text_atomic
from proofpilot.core.records import from_json, read_json_object
from proofpilot.orchestrator.run_records import StoredVerdict
from proofpilot.telemetry.attribution import Attribution
from proofpilot.telemetry.projection import (
    CostProjection,
)
from proofpilot.telemetry.roofline import RooflineEstimate
from proofpilot.telemetry.served import ServedBy

COST_NAME = "cost.json"
N_BOOTSTRAP = 1000
CI_METHOD = (
    "95 % percentile bootstrap: decisions resampled (the op and token mix), and for the regression also "
    "the scrape intervals in blocks of about one mean latency (the fit); then widened by the busy-window "
    "edge uncertainty (the scrape intervals in which the queue switched between empty and non-empty)"
)
CLIENT_METHOD = (
    "union of the client's (sent, received) intervals per endpoint (monotonic clock), summed over endpoints; "
    "95 % CI: the same bootstrap over decisions as the scraped figure, without edge widening (no edges)"
)
NOT_A_COST = "not a cost: the sum of per-decision latencies over-counts by the mean concurrency"
UNITS = {
    "node_s": "seconds of one serving node (one vLLM endpoint, TP group) per unit",
    "gpu_s": "node_s × GPUs per endpoint",
    "node_hours": "hours of one serving node",
    "usd": "US dollars at usd_per_gpu_hour",
}


@dataclass(frozen=True)
class DecisionUsage:
    """One finished decision as the pilot saw it: op type, client latency, `usage` tokens summed over its
    LLM calls, and the number of completed LLM responses (what the server's request counter counts).
    `call_spans`: (sent, received) of its LLM calls on the host's monotonic clock, grouped for the exact
    busy time by (`session`, `endpoint`) (telemetry/busy.py); empty for verdicts of older runs."""

    op: str
    latency_s: float
    prompt_tokens: int
    completion_tokens: int
    llm_calls: int = 1
    call_spans: tuple[tuple[float, float], ...] = ()
    endpoint: str | None = None
    session: int | None = None
    image_tokens: int = 0  # the views' part of prompt_tokens (0 for text-only and older runs)
    n_images: int = 0  # views per LLM call

    @classmethod
    def from_verdict(cls, verdict: Verdict | StoredVerdict) -> DecisionUsage:
        """From an agent `Verdict` or a stored verdict line (`read_verdict_rows`)."""
        return cls(
            op=verdict.op_kind,
            latency_s=float(verdict.latency_s),
            prompt_tokens=int(verdict.prompt_tokens),
            completion_tokens=int(verdict.completion_tokens),
            llm_calls=int(verdict.answers),
            call_spans=tuple(verdict.call_spans),
            endpoint=verdict.endpoint,
            session=getattr(verdict, "session", None),
            image_tokens=int(getattr(verdict, "image_tokens", 0) or 0),
            n_images=int(getattr(verdict, "n_images", 0) or 0),
        )


@dataclass(frozen=True)
class ThroughputCost:
    busy_node_seconds: float
    window_seconds: float
    busy_fraction: float
    saturated_fraction: float
    decisions: int
    llm_calls: int
    server_requests: float
    node_s_per_decision: float
    node_s_per_decision_ci: tuple[float, float]
    gpu_s_per_decision: float
    node_s_per_call: float
    gpus_per_endpoint: int
    n_endpoints: int
    edge_uncertainty_s: float
    ci_method: str = CI_METHOD


@dataclass(frozen=True)
class ClientBusyCost:
    """Node-seconds per decision from the client's own send/receive times (telemetry/busy.py): busy = the
    union of the intervals with at least one of the pilot's requests in flight, per endpoint, summed.
    Exact to the clock for a server only the pilot uses; with other clients on it (`foreign_load`) it is
    the pilot's busy time, not the node's cost."""

    busy_node_seconds: float
    decisions: int
    node_s_per_decision: float
    node_s_per_decision_ci: tuple[float, float]
    gpu_s_per_decision: float
    n_groups: int  # (session, endpoint) groups whose unions were summed
    ratio_to_scraped: float  # node_s_per_decision / the scrape-window figure (ThroughputCost)
    foreign_load: bool  # the server finished more requests than the pilot made calls
    method: str = CLIENT_METHOD


@dataclass(frozen=True)
class OpCost:
    op: str
    decisions: int
    llm_calls: int
    edits: int | None
    calls_per_edit: float | None
    decisions_per_edit: float | None
    prompt_tokens_per_decision: float
    completion_tokens_per_decision: float
    node_s_per_decision: float
    node_s_per_decision_ci: tuple[float, float]
    gpu_s_per_decision: float
    node_s_per_edit: float | None
    node_s_per_edit_ci: tuple[float, float] | None
    naive_latency_sum_per_decision_s: float
    roofline_bf16_node_s_per_decision: float | None
    roofline_fp8_node_s_per_decision: float | None
    views_per_call: float = 0.0  # rendered views sent with each LLM call (0: text-only)
    image_tokens_per_decision: float = 0.0  # the views' part of prompt_tokens_per_decision
    text_tokens_per_decision: float | None = None  # the rest: system and user text, chat template
    image_share: float | None = None  # share of the op's attributed node-seconds that its image tokens carry


@dataclass(frozen=True)
class NaiveLatencySum:
    latency_sum_s: float
    per_decision_s: float
    ratio_to_node_s_per_decision: float
    server_inference_time_per_request_s: float | None
    label: str = NOT_A_COST


@dataclass(frozen=True)
class CostReport:
    throughput: ThroughputCost
    attribution: Attribution
    per_op: dict[str, OpCost]
    naive_latency: NaiveLatencySum
    roofline_at_mean: dict[str, RooflineEstimate] | None
    projection: CostProjection | None
    notes: tuple[str, ...] = ()
    client_busy: ClientBusyCost | None = None  # absent from older files and verdicts without call spans
    served_by: ServedBy | None = None  # what served the run (telemetry/served.py); absent from older files
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    units: dict[str, str] = field(default_factory=lambda: dict(UNITS))
    schema: str = "proofpilot.cost/1"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, source: str = COST_NAME) -> CostReport:
        """The record `to_dict` wrote (nulls of non-finite floats read back as NaN); DataError naming the
        field otherwise."""
        return from_json(cls, data, source)


def read_cost_json(path: Path) -> CostReport:
    """cost.json (or a run dir's cost.json) as the record `write_cost_json` wrote."""
    path = Path(path)
    path = path / COST_NAME if path.is_dir() else path
    return CostReport.from_dict(read_json_object(path, "cost report"), str(path))


def _finite_or_null(value):
    """JSON has no inf/NaN: a quantity that cannot be estimated (a ratio over an empty window) is null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_null(v) for v in value]
    return value


def write_cost_json(report: CostReport, run_dir: Path) -> Path:
    """Write run_dir/cost.json atomically (a crash leaves the previous file intact)."""
    path = Path(run_dir) / COST_NAME
    write_text_atomic(path, json.dumps(_finite_or_null(report.to_dict()), indent=1, allow_nan=False))
    return path
