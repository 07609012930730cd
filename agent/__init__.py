"""proofpilot.agent"""
