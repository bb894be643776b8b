"""Atomic file writes: a reader never sees a half-written file under the final name."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2
import numpy as np


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename it into place."""
    handle, partial = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(partial, 0o666 & ~umask)  # mkstemp makes files private; outputs get the usual mode
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def write_image_atomic(path: Path, image: np.ndarray) -> None:
    """Encode by the file's extension (PNG if it has none) and write atomically."""
    ok, encoded = cv2.imencode(path.suffix or ".png", image)
    if not ok:
        raise ValueError(f"{path}: cannot encode an image as {path.suffix or '.png'}")
    write_bytes_atomic(path, encoded.tobytes())
