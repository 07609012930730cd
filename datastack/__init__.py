"""proofpilot.datastack"""
