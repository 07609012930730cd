"""The Grafana dashboard's PromQL, in one list: deploy/grafana/dashboard.py draws it, tests evaluate it.

Each query is tagged with the side that produces its series: "pilot" (proofpilot's exporter, checked against a
real Prometheus in tests/telemetry/test_telemetry_prometheus.py) or "vllm" (vLLM 0.32 names, checked against a
real vLLM server in the end-to-end pilot test). `$__rate_interval` is Grafana's; `expand()` substitutes it for
direct evaluation through Prometheus's HTTP API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

RATE_INTERVAL = "$__rate_interval"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str
    side: Literal["pilot", "vllm"]


@dataclass(frozen=True)
class PanelSpec:
    row: str
    title: str
    unit: str  # Grafana unit id
    description: str
    queries: tuple[Query, ...]


def _quantile(q: float) -> Query:
    buckets = f"rate(proofpilot_decision_seconds_bucket[{RATE_INTERVAL}])"
    expr = f"histogram_quantile({q}, sum by (le, op) ({buckets}))"
    return Query(expr, f"{{{{op}}}} p{round(q * 100)}", "pilot")


def _rate(metric: str, by: str) -> str:
    return f"sum by ({by}) (rate({metric}[{RATE_INTERVAL}]))"


PANELS: tuple[PanelSpec, ...] = (
    PanelSpec(
        "Decisions",
        "Decision latency by op (p50 / p95 / p99)",
        "s",
        "Client end-to-end seconds per decision. Latency, not cost: see node-seconds per decision.",
        (_quantile(0.5), _quantile(0.95), _quantile(0.99)),
    ),
    PanelSpec(
        "Decisions",
        "Decisions per second",
        "ops",
        "Finished decisions by op type and outcome.",
        (Query(_rate("proofpilot_decisions_total", "op, outcome"), "{{op}} {{outcome}}", "pilot"),),
    ),
    PanelSpec(
        "Decisions",
        "Tokens per second (pilot usage)",
        "short",
        "Prompt and completion tokens from each response's usage, by op type.",
        (Query(_rate("proofpilot_tokens_total", "op, kind"), "{{op}} {{kind}}", "pilot"),),
    ),
    PanelSpec(
        "Decisions",
        "LLM errors by reason",
        "short",
        "Failed LLM calls per second.",
        (Query(_rate("proofpilot_llm_errors_total", "reason"), "{{reason}}", "pilot"),),
    ),
    PanelSpec(
        "Decisions",
        "In-flight LLM requests",
        "short",
        "Requests the orchestrator has in flight, per endpoint.",
        (Query("sum by (endpoint) (proofpilot_inflight)", "{{endpoint}}", "pilot"),),
    ),
    PanelSpec(
        "Decisions",
        "CAVE requests per second",
        "short",
        "CAVE requests by route and status.",
        (
            Query(
                _rate("proofpilot_cave_requests_total", "endpoint, status"),
                "{{endpoint}} {{status}}",
                "pilot",
            ),
        ),
    ),
    PanelSpec(
        "Cost",
        "Node-seconds per decision",
        "s",
        "Throughput-based cost: busy node-seconds / decisions (pilot, from the vLLM scrape), and "
        "1 / request rate per endpoint (valid only while the server is saturated). Never a latency sum.",
        (
            Query("proofpilot_node_seconds_per_decision", "pilot: busy node-s / decisions", "pilot"),
            Query(
                f"1 / (sum by (instance) (rate(vllm:request_success_total[{RATE_INTERVAL}])) > 0)",
                "{{instance}}: 1 / request rate",
                "vllm",
            ),
        ),
    ),
    PanelSpec(
        "Serving (vLLM)",
        "vLLM requests running / waiting",
        "short",
        "Engine queue: running requests are in the batch, waiting ones are queued (waiting > 0 = saturated).",
        (
            Query("sum by (instance) (vllm:num_requests_running)", "{{instance}} running", "vllm"),
            Query("sum by (instance) (vllm:num_requests_waiting)", "{{instance}} waiting", "vllm"),
        ),
    ),
    PanelSpec(
        "Serving (vLLM)",
        "vLLM KV-cache use",
        "percentunit",
        "Fraction of the KV cache in use (vllm:kv_cache_usage_perc, 0-1).",
        (Query("max by (instance) (vllm:kv_cache_usage_perc)", "{{instance}}", "vllm"),),
    ),
    PanelSpec(
        "Serving (vLLM)",
        "vLLM tokens per second",
        "short",
        "Prompt (prefill) and generated (decode) tokens per second on the server.",
        (
            Query(_rate("vllm:prompt_tokens_total", "instance"), "{{instance}} prompt", "vllm"),
            Query(_rate("vllm:generation_tokens_total", "instance"), "{{instance}} generation", "vllm"),
        ),
    ),
)


def queries(side: str | None = None) -> list[str]:
    """Every dashboard expression (of one side, if given), in panel order, without duplicates."""
    out: list[str] = []
    for panel in PANELS:
        for q in panel.queries:
            if (side is None or q.side == side) and q.expr not in out:
                out.append(q.expr)
    return out


def expand(expr: str, rate_interval: str = "1m") -> str:
    """The expression as Prometheus's HTTP API takes it (Grafana's `$__rate_interval` substituted)."""
    return expr.replace(RATE_INTERVAL, rate_interval)
