"""What travels between pipeline stages: a frame and the faces found in it."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import cv2
import numpy as np

from colorstream import imageops


@dataclass
class Face:
    track: int
    box: imageops.Box  # the square the model sees, in frame pixels
    crop: np.ndarray | None = None  # (N, N) uint8 gray face crop the sketch is made from; smoothing tracks it
    sketch: np.ndarray | None = None  # (N, N) uint8 model input
    colour: np.ndarray | None = None  # (N, N, 3) uint8 BGR model output
    chroma: np.ndarray | None = None  # (N, N, 2) float32 Lab a/b after smoothing


@dataclass
class Frame:
    """One frame as planes: the model sees `gray`; the output keeps `luma` and gains `chroma`.

    Video frames arrive as a Y plane and leave as Y, Cb, Cr planes, so the
    luminance is passed through untouched and no full-frame RGB conversion
    is ever made.
    """

    index: int
    gray: np.ndarray  # (H, W) uint8 full-range luminance: what the detector and the sketch see
    luma: np.ndarray | None = None  # (H, W) uint8 video-range Y, written out as it came; made from gray if absent
    pts: int | None = None
    time_base: Fraction | None = None
    captured: float = 0.0  # time.perf_counter() when it entered the pipeline
    image: np.ndarray | None = None  # (H, W, 3) uint8 BGR, kept only from colour sources, for display
    scene_cut: bool = False
    scene_ab: np.ndarray | None = None  # (h, w, 2) float32 Lab a/b of the whole frame, small; None: faces only
    keyframe_chroma: np.ndarray | None = None  # (H', W', 2) float32 Cb, Cr - 128 carried from keyframes, at the
    keyframe_weight: np.ndarray | None = None  # output's chroma plane size; (h, w) float32 its confidence, small
    keyframe_overlay: bool = False  # the carried colour is only what stayed in place since an earlier shot's keyframe
    faces: list[Face] = field(default_factory=list)
    chroma: tuple[np.ndarray, np.ndarray] | None = None  # output (Cb, Cr), video range; None: neutral gray

    def __post_init__(self) -> None:
        if self.luma is None:
            self.luma = imageops.gray_to_luma(self.gray)

    @classmethod
    def from_bgr(cls, index: int, image: np.ndarray, **kwargs) -> "Frame":
        """A frame from a BGR picture (a camera or a still image), which is kept for display."""
        return cls(index, imageops.to_gray(image), image=image, **kwargs)

    @property
    def seconds(self) -> float:
        if self.pts is None or self.time_base is None:
            return float(self.index) / 30.0
        return float(self.pts * self.time_base)

    def input_bgr(self) -> np.ndarray:
        return self.image if self.image is not None else cv2.cvtColor(self.gray, cv2.COLOR_GRAY2BGR)

    def output_bgr(self) -> np.ndarray:
        return imageops.gray_with_chroma(self.gray, self.chroma)
