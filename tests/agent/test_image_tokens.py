"""Image tokens per view: our count of Qwen2.5-VL's image processor against transformers' own processor
(run in the vLLM venv, loaded from the tiny model's preprocessor_config.json), and the tiny model's settings
against the 32B model's."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from proofpilot.agent.image_tokens import QWEN25_VL_32B, VISION_WRAPPER_TOKENS, ImageProcessor
from proofpilot.agent.serving import vision_config
from proofpilot.core.errors import ConfigError, DataError

SIZES = [(256, 256), (512, 512), (1024, 1024), (40, 40), (300, 1000), (2000, 3000), (28, 28)]

PROBE = """
import json, sys
import numpy as np
from transformers import AutoImageProcessor
proc = AutoImageProcessor.from_pretrained(sys.argv[1])
out = []
for h, w in json.loads(sys.argv[2]):
    grid = proc(images=[np.zeros((h, w, 3), dtype=np.uint8)], return_tensors="np")["image_grid_thw"][0]
    out.append(int(grid.prod()) // proc.merge_size ** 2)
print(json.dumps(out))
"""


def test_known_counts_of_the_32b_processor():
    assert QWEN25_VL_32B.factor == 28
    assert QWEN25_VL_32B.pad_tokens(512, 512) == 18 * 18  # 512 rounds to 504 = 18 × 28
    assert QWEN25_VL_32B.pad_tokens(256, 256) == 9 * 9
    assert QWEN25_VL_32B.view_tokens(512) == 324 + VISION_WRAPPER_TOKENS
    assert QWEN25_VL_32B.pad_tokens(28, 28) == 4  # below min_pixels (56×56): scaled up
    capped = ImageProcessor(max_pixels=1003520)  # the GPU launch's --mm-processor-kwargs
    assert capped.pad_tokens(4000, 4000) <= 1280 < QWEN25_VL_32B.pad_tokens(4000, 4000)
    with pytest.raises(DataError):
        QWEN25_VL_32B.pad_tokens(0, 10)


def test_tiny_model_has_the_32b_settings_and_transformers_counts_the_same():
    config = vision_config()
    python = config.venv / "bin" / "python"
    if not python.exists() or not (config.model_dir / "preprocessor_config.json").exists():
        pytest.skip("no vLLM venv or tiny VL model; run deploy/vllm/setup.sh")
    assert ImageProcessor.from_model_dir(config.model_dir) == QWEN25_VL_32B
    done = subprocess.run(
        [str(python), "-c", PROBE, str(config.model_dir), json.dumps(SIZES)],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    counted = json.loads(done.stdout.strip().splitlines()[-1])
    assert counted == [QWEN25_VL_32B.pad_tokens(h, w) for h, w in SIZES]


def test_missing_processor_config_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"preprocessor_config\.json"):
        ImageProcessor.from_model_dir(tmp_path)
