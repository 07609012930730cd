"""proofpilot.agent: the decider: prompt and OpenAI-compatible client for an LLM endpoint, the rule-based
baseline, a vLLM CPU server.

Names load on first use (importing the package is light).
"""

from proofpilot.core.lazy import lazy_exports

_EXPORTS = {
    "AgentClient": ".client",
    "AgentRequest": ".records",
    "Verdict": ".records",
    "ClientStats": ".records",
    "BaselineAgent": ".baseline",
    "fit_rule": ".baseline",
    "CpuServerConfig": ".serving",
    "VllmCpuServer": ".serving",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
