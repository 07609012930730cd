"""proofpilot.eval: verdicts scored against the human proofreaders' ground truth, per op type and agent,
with CIs.

Names load on first use (importing the package is light).
"""

from proofpilot.core.lazy import lazy_exports

_EXPORTS = {
    "evaluate": ".decisions",
    "write_eval": ".decisions",
    "EvalReport": ".decisions",
    "GroupMetrics": ".decisions",
    "load_runs": ".rows",
    "score": ".rows",
    "RunInfo": ".rows",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
