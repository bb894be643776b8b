"""Training data for the scene model: whole photos (not face crops), split, held in memory, and augmented views.

Everyday photos (`../shared/data/scenes/`) and the whole frames of the face
photos (hair, clothes and backgrounds) are few for learning colour, so every
sample is a fresh view: a random scale and crop, a flip, and the gray input
degraded as old footage is (gamma, contrast, exposure, blur, grain, JPEG;
`data.degrade_gray`). The target is the view's Lab a/b at the model's output
size, a quarter of its input.
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from colorstream import imageops
from colorstream.training import data

OUTPUT_STRIDE = 4  # the scene net predicts at a quarter of its input's size


@dataclass
class SceneAugment:
    side: tuple[float, float] = (160.0, 320.0)  # the photo's longer side is scaled to this range before cropping
    crop: int = 128  # square training views, in model input pixels
    scene_fraction: float = 0.5  # share of views drawn from everyday photos rather than face photos


def split_photos(folder: Path, val_percent: int, test_percent: int) -> dict[str, list[Path]]:
    """Every image of a folder by split, people's photos by identity, so one person's photos share a split."""
    splits: dict[str, list[Path]] = {split: [] for split in data.SPLITS}
    for path in data.list_images(folder):
        splits[data.split_of(data.identity_of(path), val_percent, test_percent)].append(path)
    return splits


def _read(path: str) -> np.ndarray | None:
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    return image if image is not None and min(image.shape[:2]) >= 32 else None


def read_images(paths: list[Path], workers: int = 2) -> list[np.ndarray]:
    """The readable images among `paths`, BGR, in order; unreadable or tiny files are left out."""
    if not paths:
        return []
    # spawned, not forked: a fork copies locks that other threads (torch, Ray, the caller's) may hold
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        images = pool.map(_read, [str(path) for path in paths], chunksize=64)
    return [image for image in images if image is not None]


def random_view(image: np.ndarray, rng: np.random.Generator, aug: SceneAugment) -> np.ndarray:
    """A crop x crop BGR view of `image` at a random scale and place, mirrored half the time."""
    height, width = image.shape[:2]
    scale = max(rng.uniform(*aug.side) / max(height, width), aug.crop / min(height, width))
    size = (max(aug.crop, int(round(width * scale))), max(aug.crop, int(round(height * scale))))
    scaled = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    y = int(rng.integers(scaled.shape[0] - aug.crop + 1))
    x = int(rng.integers(scaled.shape[1] - aug.crop + 1))
    view = scaled[y:y + aug.crop, x:x + aug.crop]
    return np.ascontiguousarray(view[:, ::-1] if rng.random() < 0.5 else view)


def ab_target(image: np.ndarray, stride: int = OUTPUT_STRIDE) -> np.ndarray:
    """(H, W, 3) BGR uint8 -> (H/stride, W/stride, 2) float32 Lab a/b, averaged over each block."""
    ab = imageops.bgr_to_lab(image)[:, :, 1:]
    height, width = image.shape[:2]
    return cv2.resize(ab, (width // stride, height // stride), interpolation=cv2.INTER_AREA)


class SceneSampler:
    """Draws augmented (gray input, a/b target) batches, mixing everyday photos and whole face photos."""

    def __init__(self, scenes: list[np.ndarray], faces: list[np.ndarray], aug: SceneAugment,
                 degrade: data.AugmentConfig, seed: int | list[int]):
        if not scenes and not faces:
            raise ValueError("no training photos for the scene model")
        self.scenes, self.faces, self.aug, self.degrade = scenes, faces, aug, degrade
        self.rng = np.random.default_rng(seed)

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        """(crop, crop) uint8 gray input, (crop/4, crop/4, 2) float32 a/b target."""
        rng = self.rng
        pool = self.scenes if (rng.random() < self.aug.scene_fraction and self.scenes) or not self.faces else self.faces
        view = random_view(pool[int(rng.integers(len(pool)))], rng, self.aug)
        return data.degrade_gray(imageops.to_gray(view), rng, self.degrade), ab_target(view)

    def batch(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """(B, crop, crop) uint8 gray inputs and (B, crop/4, crop/4, 2) float32 a/b targets."""
        pairs = [self.sample() for _ in range(batch_size)]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
