"""proofpilot.orchestrator: Ray dispatch of decision tasks to the agents, the append-only run store, outage
handling.

Names load on first use (importing the package is light).
"""

from proofpilot.core.lazy import lazy_exports

_EXPORTS = {
    "Dispatcher": ".dispatch",
    "DispatchStats": ".dispatch",
    "RayOptions": ".ray_session",
    "ray_session": ".ray_session",
    "RunStore": ".store",
    "read_verdicts": ".store",
    "read_manifest": ".store",
    "DecisionStatLogger": ".stats",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
