"""proofpilot.telemetry: Prometheus metrics of every decision, vLLM /metrics scrapes, and the cost of a run
(cost.json).

Names load on first use (importing the package is light).
"""

from proofpilot.core.lazy import lazy_exports

_EXPORTS = {
    "run_cost_report": ".run_cost",
    "build_cost_report": ".cost",
    "CostReport": ".cost",
    "write_cost_json": ".cost",
    "make_decision_logger": ".metrics",
    "PrometheusDecisionLogger": ".metrics",
    "EditsProjection": ".projection",
    "CostProjection": ".projection",
    "project_cost": ".projection",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
