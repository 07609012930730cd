"""proofpilot.tasks: decision tasks: one per merge/split operation of the ingested neurons (true partner and
distractors), with skeleton features.

Names load on first use (importing the package is light).
"""

from proofpilot.core.lazy import lazy_exports

_EXPORTS = {
    "tasks_from_ingest": ".build",
    "build_tasks": ".build",
    "TaskOptions": ".build",
    "add_features": ".prepare",
    "SkeletonCache": ".prepare",
    "DecisionTask": ".records",
    "DistractorSource": ".distractors",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
