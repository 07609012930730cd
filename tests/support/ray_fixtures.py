"""The module-scoped local Ray of the orchestrator tests (2 CPUs, as in CI), in a short private temp dir."""

from __future__ import annotations

import shutil
import tempfile

import pytest
import ray

from proofpilot.orchestrator.ray_session import RayOptions, ray_session


@pytest.fixture(scope="module")
def ray_up():
    temp_dir = tempfile.mkdtemp(prefix="ppr-", dir="/tmp")  # short: unix socket paths are limited
    try:
        with ray_session(RayOptions(num_cpus=2, temp_dir=temp_dir)) as started:
            assert started and ray.is_initialized()
            yield
        assert not ray.is_initialized()
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
