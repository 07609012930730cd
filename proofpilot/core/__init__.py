"""proofpilot/core"""
