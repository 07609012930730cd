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
# Template variables (deploy/grafana/dashboard.py declares them): the model (the pilot's --model = vLLM's
# served model name) and the vLLM instances. "All" is the regex `.*`, which also matches a missing label.
MODEL_VAR, INSTANCE_VAR = "$model", "$instance"
VLLM_FILTER = f'model_name=~"{MODEL_VAR}", instance=~"{INSTANCE_VAR}"'
VARIABLE_ALL = {MODEL_VAR: ".*", INSTANCE_VAR: ".*"}


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
    """Decision latency per agent and op: an LLM's and the baseline's latencies are never pooled."""
    buckets = f"rate(proofpilot_decision_seconds_bucket[{RATE_INTERVAL}])"
    expr = f"histogram_quantile({q}, sum by (le, agent, op) ({buckets}))"
    return Query(expr, f"{{{{agent}}}} {{{{op}}}} p{round(q * 100)}", "pilot")


def _phase(phase: str, q: float) -> Query:
    """vLLM's per-request timing of one phase per decision, by op (agent/timings.py)."""
    buckets = f"rate(proofpilot_server_{phase}_seconds_bucket[{RATE_INTERVAL}])"
    return Query(f"histogram_quantile({q}, sum by (le, op) ({buckets}))", f"{{{{op}}}} {phase}", "pilot")


def _cave_quantile(q: float) -> Query:
    buckets = f"rate(proofpilot_cave_request_seconds_bucket[{RATE_INTERVAL}])"
    expr = f"histogram_quantile({q}, sum by (le, endpoint) ({buckets}))"
    return Query(expr, f"{{{{endpoint}}}} p{round(q * 100)}", "pilot")


def _v(metric: str) -> str:
    """A vLLM series narrowed to the dashboard's model and instance variables."""
    return f"{metric}{{{VLLM_FILTER}}}"


def _rate(metric: str, by: str) -> str:
    return f"sum by ({by}) (rate({metric}[{RATE_INTERVAL}]))"


PANELS: tuple[PanelSpec, ...] = (
    PanelSpec(
        "Decisions",
        "Decision latency by agent and op (p50 / p95 / p99)",
        "s",
        "Client end-to-end seconds per decision, per agent (the LLM and the baseline apart). Latency, not "
        "cost: see node-seconds per decision.",
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
        "Decisions",
        "What the run serves and asks",
        "short",
        "proofpilot_run_info: the served model, the prompt version, the agent and the device (cpu = a "
        "rehearsal, not an H100 cost).",
        (
            Query(
                "max by (model, prompt_version, agent, device) (proofpilot_run_info)",
                "{{agent}}: {{model}} on {{device}}, prompt {{prompt_version}}",
                "pilot",
            ),
        ),
    ),
    PanelSpec(
        "Decisions",
        "CAVE request latency (p50 / p95)",
        "s",
        "Wall time of one CAVE request by route (ingestion and lookups).",
        (_cave_quantile(0.5), _cave_quantile(0.95)),
    ),
    PanelSpec(
        "Cost",
        "Node-seconds per decision over the window (client-exact)",
        "s",
        "rate(busy node-seconds) / rate(LLM decisions): the pilot's cost over any window, from the time at "
        "least one of its requests was in flight (exact for a server only the pilot uses).",
        (
            Query(
                f"sum(rate(proofpilot_busy_node_seconds_total[{RATE_INTERVAL}])) / "
                f'(sum(rate(proofpilot_decisions_total{{agent="llm"}}[{RATE_INTERVAL}])) > 0)',
                "busy node-s / decision",
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
                f"1 / (sum by (instance) (rate({_v('vllm:request_success_total')}[{RATE_INTERVAL}])) > 0)",
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
            Query(f"sum by (instance) ({_v('vllm:num_requests_running')})", "{{instance}} running", "vllm"),
            Query(f"sum by (instance) ({_v('vllm:num_requests_waiting')})", "{{instance}} waiting", "vllm"),
        ),
    ),
    PanelSpec(
        "Serving (vLLM)",
        "vLLM KV-cache use",
        "percentunit",
        "Fraction of the KV cache in use (vllm:kv_cache_usage_perc, 0-1).",
        (Query(f"max by (instance) ({_v('vllm:kv_cache_usage_perc')})", "{{instance}}", "vllm"),),
    ),
    PanelSpec(
        "Serving (vLLM)",
        "vLLM tokens per second",
        "short",
        "Prompt (prefill) and generated (decode) tokens per second on the server.",
        (
            Query(_rate(_v("vllm:prompt_tokens_total"), "instance"), "{{instance}} prompt", "vllm"),
            Query(_rate(_v("vllm:generation_tokens_total"), "instance"), "{{instance}} generation", "vllm"),
        ),
    ),
)

PANELS += (
    PanelSpec(
        "Server timings (vLLM per request)",
        "Queue / prefill / decode per decision, p50 by op",
        "s",
        "vLLM's own per-request timings (--enable-per-request-metrics), summed over a decision's calls: "
        "queued to scheduled, scheduled to first token, first to last token. Latencies, not costs.",
        tuple(_phase(phase, 0.5) for phase in ("queue", "prefill", "decode")),
    ),
    PanelSpec(
        "Server timings (vLLM per request)",
        "Queue / prefill / decode per decision, p95 by op",
        "s",
        "As the p50 panel, at p95; time to first token from arrival = queue + prefill.",
        tuple(_phase(phase, 0.95) for phase in ("queue", "prefill", "decode", "ttft")),
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


def expand(expr: str, rate_interval: str = "1m", variables: dict[str, str] | None = None) -> str:
    """The expression as Prometheus's HTTP API takes it: Grafana's `$__rate_interval` and the template
    variables substituted (default: every variable at "All", i.e. `.*`)."""
    for name, value in {**VARIABLE_ALL, **(variables or {})}.items():
        expr = expr.replace(name, value)
    return expr.replace(RATE_INTERVAL, rate_interval)
