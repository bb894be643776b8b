"""Palette guidance: a colour image of similar content steers the whole-frame colour towards its palette.

After Welsh, Ashikhmin and Mueller 2002 ("Transferring color to greyscale
images"): a gray pixel takes the colour of reference pixels that match it in
luminance and in the texture around it (the local standard deviation). Here
the matching is done once, as a table: the reference's pixels are binned by
luminance, texture and height in the frame (sky above, ground below), and
each bin keeps its mean a/b and how much its colours agree. Each frame pixel
looks its bin up, so guidance costs a table lookup per pixel, live too.

The table steers, it does not replace: the scene model's colour is pulled
towards the bin's mean only as far as the bin is reliable (enough pixels,
colours that agree). Where the reference has no opinion, the model's colour
stands, so a reference can only help where it knows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from colorstream import imageops

WORK_SIDE = 256  # the reference and the frames are compared at this longer side, as the scene model sees frames
LIGHTNESS_BINS = 12
TEXTURE_EDGES = (2.0, 5.0, 10.0, 20.0)  # local standard deviation (gray levels) between texture bins
HEIGHT_BINS = 3  # top, middle, bottom of the frame
TEXTURE_WINDOW = 5  # pixels: the neighbourhood of the local standard deviation (Welsh et al. use 5x5)
MIN_PIXELS = 40  # a bin with fewer reference pixels has no opinion
AGREEMENT = 12.0  # a/b spread within a bin at which its reliability falls to 1/e
STRENGTH = 0.8  # how far a fully reliable bin pulls the model's colour


def _features(gray: np.ndarray) -> np.ndarray:
    """(h, w) uint8 gray at working size -> (h, w) int bin index of luminance x texture x height."""
    values = gray.astype(np.float32)
    mean = cv2.blur(values, (TEXTURE_WINDOW, TEXTURE_WINDOW))
    deviation = np.sqrt(np.maximum(0.0, cv2.blur(values * values, (TEXTURE_WINDOW, TEXTURE_WINDOW)) - mean * mean))
    lightness = np.minimum((values * LIGHTNESS_BINS / 256.0).astype(np.int64), LIGHTNESS_BINS - 1)
    texture = np.searchsorted(np.array(TEXTURE_EDGES), deviation)
    rows = np.minimum((np.arange(gray.shape[0]) * HEIGHT_BINS // gray.shape[0]), HEIGHT_BINS - 1)
    height = np.broadcast_to(rows[:, None], gray.shape)
    return (lightness * (len(TEXTURE_EDGES) + 1) + texture) * HEIGHT_BINS + height


def _working(image: np.ndarray) -> np.ndarray:
    scale = min(1.0, WORK_SIDE / max(image.shape[:2]))
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA) if scale < 1.0 else image


@dataclass
class Palette:
    """Per bin: the reference's mean a/b and how far to trust it."""

    ab: np.ndarray  # (bins, 2) float32
    reliability: np.ndarray  # (bins,) float32 in [0, 1]

    @classmethod
    def from_image(cls, image: np.ndarray) -> "Palette":
        """A colour reference image (BGR, any size) -> its palette table."""
        return cls.from_images([image])

    @classmethod
    def from_images(cls, images: Iterable[np.ndarray]) -> "Palette":
        """Colour images (BGR, any sizes) pooled into one table: a bin where they disagree is trusted less."""
        size = LIGHTNESS_BINS * (len(TEXTURE_EDGES) + 1) * HEIGHT_BINS
        count, total, square = np.zeros(size), np.zeros((size, 2)), np.zeros(size)
        for image in images:
            small = _working(image[:, :, :3] if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR))
            bins = _features(imageops.to_gray(small)).ravel()
            ab = imageops.bgr_to_lab(small)[:, :, 1:].reshape(-1, 2).astype(np.float64)
            count += np.bincount(bins, minlength=size)
            total += np.stack([np.bincount(bins, ab[:, i], size) for i in range(2)], axis=1)
            square += np.bincount(bins, (ab * ab).sum(axis=1), size)
        mean = total / np.maximum(count, 1)[:, None]
        spread = np.sqrt(np.maximum(0.0, square / np.maximum(count, 1) - (mean * mean).sum(axis=1)))
        reliability = np.exp(-spread / AGREEMENT) * np.minimum(1.0, count / MIN_PIXELS) * (count >= MIN_PIXELS)
        return cls(mean.astype(np.float32), (STRENGTH * reliability).astype(np.float32))

    @classmethod
    def read(cls, path: Path) -> "Palette":
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"{path}: not a readable image (the --reference)")
        return cls.from_image(image)

    def steer(self, gray: np.ndarray, ab: np.ndarray) -> np.ndarray:
        """The model's (h, w, 2) a/b for a frame, pulled towards the palette; `gray` is the frame, any size."""
        bins = _features(_working(gray))  # at the reference's scale, so texture means the same in both
        size = (ab.shape[1], ab.shape[0])
        target = cv2.resize(self.ab[bins], size, interpolation=cv2.INTER_AREA)
        weight = cv2.resize(self.reliability[bins], size, interpolation=cv2.INTER_AREA)[..., None]
        return (1.0 - weight) * ab + weight * target
