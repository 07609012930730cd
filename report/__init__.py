"""proofpilot.report: one HTML report of a pilot: edit statistics, decision quality, cost.

Names load on first use (importing the package is light).
"""

from proofpilot.core.lazy import lazy_exports

_EXPORTS = {
    "build_report": ".build",
    "gather": ".build",
    "ReportInputs": ".build",
    "ReportResult": ".build",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
