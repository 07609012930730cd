"""Helpers shared by the test suite: fixtures for real servers (Prometheus, Chromium, vLLM), a fake
LLM endpoint and hand-made runs."""
