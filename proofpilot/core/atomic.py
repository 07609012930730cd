"""Atomic file writes: a reader sees the old file or the new one, and a failed write (full disk) leaves
neither a torn file nor a stray temporary behind."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def write_text_atomic(path: Path, text: str) -> Path:
    """Write `text` to `path` through a temporary file in the same folder, then rename it into place."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path
