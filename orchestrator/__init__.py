"""proofpilot.orchestrator"""
