"""Image tokens of a view, as Qwen2(.5)-VL's image processor counts them (no transformers import needed).

The processor resizes an H×W image with `smart_resize` (each side to a multiple of patch × merge = 28 px, the
area kept within [min_pixels, max_pixels]), cuts it into 14 px patches and merges 2×2 patches into one LLM
token; the chat template wraps each image in `<|vision_start|>` … `<|vision_end|>`. So one view adds
`(h/28)·(w/28) + 2` prompt tokens. `QWEN25_VL_32B` holds the settings of Qwen/Qwen2.5-VL-32B-Instruct's
preprocessor_config.json (the tiny model of deploy/vllm/make_tiny_vl_model.py writes the same file);
`ImageProcessor.from_model_dir` reads a model's own file.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from proofpilot.core.errors import ConfigError, DataError

VISION_WRAPPER_TOKENS = 2  # <|vision_start|> and <|vision_end|> around each image's pad tokens


@dataclass(frozen=True)
class ImageProcessor:
    """The geometry of Qwen2(.5)-VL's image processor (the fields of preprocessor_config.json it uses)."""

    patch_size: int = 14
    merge_size: int = 2
    min_pixels: int = 3136
    max_pixels: int = 12845056

    @property
    def factor(self) -> int:
        return self.patch_size * self.merge_size

    @classmethod
    def from_model_dir(cls, model_dir: str | Path) -> ImageProcessor:
        """The settings in `model_dir/preprocessor_config.json`; ConfigError if it is missing or malformed."""
        path = Path(model_dir) / "preprocessor_config.json"
        try:
            data = json.loads(path.read_text())
            return cls(**{k: int(data[k]) for k in ("patch_size", "merge_size", "min_pixels", "max_pixels")})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"no usable image-processor settings in {path}: {exc}") from None

    def resized(self, height: int, width: int) -> tuple[int, int]:
        """`smart_resize` of transformers' Qwen2-VL image processor: (height, width) after resizing."""
        if height < 1 or width < 1:
            raise DataError(f"an image needs a positive size, got {height}×{width}")
        if max(height, width) / min(height, width) > 200:
            raise DataError(f"image aspect ratio over 200: {height}×{width}")
        f = self.factor
        h, w = round(height / f) * f, round(width / f) * f
        if h * w > self.max_pixels:
            beta = math.sqrt(height * width / self.max_pixels)
            h, w = max(f, math.floor(height / beta / f) * f), max(f, math.floor(width / beta / f) * f)
        elif h * w < self.min_pixels:
            beta = math.sqrt(self.min_pixels / (height * width))
            h, w = math.ceil(height * beta / f) * f, math.ceil(width * beta / f) * f
        return h, w

    def pad_tokens(self, height: int, width: int) -> int:
        """`<|image_pad|>` tokens of one image: merged patches after resizing."""
        h, w = self.resized(height, width)
        return (h // self.factor) * (w // self.factor)

    def view_tokens(self, height: int, width: int | None = None) -> int:
        """Prompt tokens one image adds: its pad tokens and the two vision wrapper tokens."""
        return self.pad_tokens(height, height if width is None else width) + VISION_WRAPPER_TOKENS


QWEN25_VL_32B = ImageProcessor()  # Qwen/Qwen2.5-VL-32B-Instruct's preprocessor_config.json
