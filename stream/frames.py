"""What travels between pipeline stages: a frame and the faces found in it."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from colorstream import imageops


@dataclass
class Face:
    track: int
    box: imageops.Box  # the square the model sees, in frame pixels
    sketch: np.ndarray | None = None  # (N, N) uint8 model input
    colour: np.ndarray | None = None  # (N, N, 3) uint8 BGR model output
    chroma: np.ndarray | None = None  # (N, N, 2) float32 Lab a/b after smoothing


@dataclass
class Frame:
    index: int
    image: np.ndarray  # (H, W, 3) uint8 BGR as decoded; only its luminance is used
    pts: int | None = None
    time_base: Fraction | None = None
    captured: float = 0.0  # time.perf_counter() when it entered the pipeline
    gray: np.ndarray | None = None
    scene_cut: bool = False
    faces: list[Face] = field(default_factory=list)
    output: np.ndarray | None = None

    @property
    def seconds(self) -> float:
        if self.pts is None or self.time_base is None:
            return float(self.index) / 30.0
        return float(self.pts * self.time_base)
