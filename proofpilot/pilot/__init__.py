"""proofpilot/pilot"""
