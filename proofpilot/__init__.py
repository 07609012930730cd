"""proofpilot: measure what AI proofreading of a connectome would cost.

Stages live in sub-packages: ``proofpilot.datastack`` (CAVE access and the embedded datastack),
``proofpilot.eval`` (edit statistics, decision scoring, reports),
``proofpilot.agent`` (prompt, client, baseline),
``proofpilot.orchestrator`` (tasks and Ray dispatch), ``proofpilot.telemetry`` (Prometheus and cost).
"""

__version__ = "0.1.0"
