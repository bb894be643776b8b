"""From an uploaded canvas PNG to the sketch the model inverts: decoding within limits, and strictness."""

from __future__ import annotations

import struct

import cv2
import numpy as np

from colorstream import imageops

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_SIDE = 4096  # a small PNG can claim a huge canvas; refuse before decoding it
SMOOTH_SIGMA = 0.04  # of the canvas side; chosen on FS2K training pairs (README, `colorstream.draw.measure`)


class SketchError(ValueError):
    """The upload is not a usable sketch; `too_large` tells a size limit from a malformed file."""

    def __init__(self, message: str, too_large: bool = False):
        super().__init__(message)
        self.too_large = too_large


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's header, read without decoding the pixels."""
    if not data.startswith(PNG_SIGNATURE) or len(data) < 24 or data[12:16] != b"IHDR":
        raise SketchError("body is not a PNG image")
    return struct.unpack(">II", data[16:24])


def decode_sketch(data: bytes) -> np.ndarray:
    """PNG bytes -> (H, W) uint8 gray sketch, transparent parts taken as white paper."""
    width, height = png_size(data)
    if width > MAX_SIDE or height > MAX_SIDE:
        raise SketchError(f"image is {width}x{height}; at most {MAX_SIDE}x{MAX_SIDE} is accepted", too_large=True)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise SketchError("body is not a readable PNG image")
    if image.dtype == np.uint16:
        image = (image // 257).astype(np.uint8)
    gray = imageops.to_gray(image).astype(np.float32)
    if image.ndim == 3 and image.shape[2] == 4:
        alpha = image[:, :, 3].astype(np.float32) / 255.0
        gray = gray * alpha + 255.0 * (1.0 - alpha)
    return np.clip(gray + 0.5, 0, 255).astype(np.uint8)


def apply_strictness(sketch: np.ndarray, strictness: float, sigma: float = SMOOTH_SIGMA) -> np.ndarray:
    """Blend the strokes with a blurred copy: 1 keeps them as drawn, 0 leaves only the blur.

    In the spirit of DeepFaceDrawing's per-part sliders, a lower strictness
    lets the model follow the sketch's broad shapes rather than every wobble
    of a rough line. The blur's `sigma` is a fraction of the canvas side, so
    a sketch behaves alike at any size.
    """
    if not 0.0 <= strictness <= 1.0:
        raise SketchError(f"strictness {strictness} is outside 0..1")
    if strictness == 1.0:
        return sketch
    smooth = cv2.GaussianBlur(sketch, (0, 0), sigma * max(sketch.shape[:2]))
    blended = strictness * sketch.astype(np.float32) + (1.0 - strictness) * smooth
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)
