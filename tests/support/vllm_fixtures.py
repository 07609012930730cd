"""Session fixtures: ONE real vLLM CPU server (tiny Qwen2) for the whole test run, and one of the tiny
Qwen2.5-VL for the vision tests (`@pytest.mark.vllm_vl`, their own xdist group).

Loaded through `pytest_plugins` in tests/conftest.py. Tests that use it carry `@pytest.mark.vllm`.
Skips (with the reason) only when the vLLM venv is absent; `make test` installs it. If the tiny model
is missing it is built into a temp dir with deploy/vllm/make_tiny_model.py (~5 s).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from proofpilot.agent.serving import (
    REPO_ROOT,
    CpuServerConfig,
    VllmCpuServer,
    unavailable_reason,
    vision_config,
)


def _serve(config: CpuServerConfig, work: Path, builder: str) -> Iterator[VllmCpuServer]:
    """Start `config`'s server (its model built by deploy/vllm/`builder` if missing); stop it after."""
    if not (config.venv / "bin" / "python").exists():
        pytest.skip(unavailable_reason(config) or "no vLLM venv")
    if not (config.model_dir / "config.json").exists():
        model_dir = work / config.model_dir.name
        script = REPO_ROOT / "deploy" / "vllm" / builder
        subprocess.run([str(config.venv / "bin" / "python"), str(script), str(model_dir)], check=True,
                       capture_output=True)  # fmt: skip
        config = replace(config, model_dir=model_dir)
    server = VllmCpuServer(config)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmCpuServer]:
    """A running vLLM CPU server; tests that stop it must start it again (same port) before returning."""
    work = tmp_path_factory.mktemp("vllm")
    config = CpuServerConfig(cache_dir=work / "cache", log_path=work / "vllm.log")
    yield from _serve(config, work, "make_tiny_model.py")


@pytest.fixture(scope="session")
def vllm_vl_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmCpuServer]:
    """A running vLLM CPU server of the tiny Qwen2.5-VL (built into a temp dir if .cache lacks it)."""
    work = tmp_path_factory.mktemp("vllm-vl")
    config = vision_config(cache_dir=work / "cache", log_path=work / "vllm.log")
    yield from _serve(config, work, "make_tiny_vl_model.py")
