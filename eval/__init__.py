"""proofpilot.eval"""
