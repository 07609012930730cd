"""proofpilot.telemetry"""
