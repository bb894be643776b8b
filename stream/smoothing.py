"""Temporal smoothing of face colour: per face track in face-aligned coordinates, or per frame along the flow.

The face-aligned methods are small stateful objects, one per track, called
once per frame with the model's chroma and the gray face crop it was
predicted from; the stage (`stream.stages.Smooth`) makes a fresh one for a
new track and drops them all at a scene cut, so no colour outlives its face
or its shot. "flow" (`FlowSmoothing`) is a stage of its own after
compositing, and resets at scene cuts too.

The paper's moving average ("mean") removes flicker but drags the colour of
past frames over a moving face (after-images). The motion-aware methods give
the current frame more weight as the face moves, and "flow" also moves the
colour history with the face and limits how far it may pull.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Protocol

import cv2
import numpy as np

from colorstream import imageops, temporal
from colorstream.stream.frames import Frame
from colorstream.stream.keyframes import models_needed

DEFAULT_SMOOTHING = "flow"  # the best measured: README, "Temporal stability"
MOTION_SCALE = 16.0  # mean absolute gray change (0-255) of the face crop at which only the current frame counts
FLOW_SCALE = 16.0  # flow speed (small pixels, see WORK_SIDE, per frame) at which only the current frame counts
CLAMP = 24.0  # how far (Cb/Cr distance, 0-255 scale) the colour history may pull away from the current prediction
WORK_SIDE = 160  # flow smoothing sees the frame shrunk by a whole factor to at most this many pixels a side
FLOW_MARGIN = 8  # small pixels of context around the faces for the flow

class TrackSmoother(Protocol):
    def __call__(self, chroma: np.ndarray, crop: np.ndarray) -> np.ndarray:
        """chroma: (N, N, 2) float32 Lab a/b of this frame; crop: (N, N) uint8 gray -> smoothed (N, N, 2)."""


def current_weight(base: float, motion: np.ndarray | float, scale: float) -> np.ndarray | float:
    """The weight of the current frame: `base` when still, rising linearly to 1 at `scale` motion."""
    return base + (1.0 - base) * np.minimum(1.0, np.asarray(motion) / scale)


class Unsmoothed:
    def __call__(self, chroma: np.ndarray, crop: np.ndarray) -> np.ndarray:
        return chroma


class MovingAverage:
    """The paper's method: the mean of the last `window` frames."""

    def __init__(self, window: int):
        self.history: deque[np.ndarray] = deque(maxlen=window)

    def __call__(self, chroma: np.ndarray, crop: np.ndarray) -> np.ndarray:
        self.history.append(chroma)
        return np.mean(self.history, axis=0)


class ExponentialAverage:
    """An exponential moving average with the current frame weighted `weight`."""

    def __init__(self, weight: float):
        self.weight = weight
        self.average: np.ndarray | None = None

    def __call__(self, chroma: np.ndarray, crop: np.ndarray) -> np.ndarray:
        if self.average is not None:
            chroma = self.weight * chroma + (1.0 - self.weight) * self.average
        self.average = chroma
        return chroma


class AdaptiveAverage:
    """An exponential moving average whose current-frame weight grows with how much the face crop changed.

    Motion is the mean absolute gray difference between this crop and the
    last: cheap, and it is what the history misses when the face moves in its box.
    """

    def __init__(self, base: float, scale: float = MOTION_SCALE):
        self.base, self.scale = base, scale
        self.average: np.ndarray | None = None
        self.crop: np.ndarray | None = None

    def __call__(self, chroma: np.ndarray, crop: np.ndarray) -> np.ndarray:
        if self.average is not None:
            motion = float(np.mean(np.abs(crop.astype(np.float32) - self.crop)))
            weight = current_weight(self.base, motion, self.scale)
            chroma = weight * chroma + (1.0 - weight) * self.average
        self.average, self.crop = chroma, crop
        return chroma


class FlowSmoothing:
    """Flow-guided blending of the output's chroma, in frame coordinates: a stage after `Composite`.

    With whole-frame colour (a scene model) it smooths the whole frame; with
    faces only, the face boxes.

    Face-aligned smoothing cannot remove the flicker that comes from the face
    box itself stepping at each detection (the colour patch and its feathered
    edge jump with it), so this works on the composited frame, over the face
    boxes of this frame and the last. The last smoothed chroma is moved onto
    this frame with DIS flow of the gray input and blended in where the flow
    passes the forward-backward occlusion check. The history is clamped to
    within `clamp` of the current prediction, so it can never drag the
    colour further than that (a face appearing mid-shot fades in from at
    most that far), and the current frame's weight rises with the flow speed.

    A frame whose colour the keyframes lead nearly everywhere (the test that
    also spares it the models, `keyframes.models_needed`) is left as it is:
    that colour is read from the keyframe through a map chained along the
    flow, steady by construction, and blending it with its own past moved
    along another flow cost more than it steadied (docs/HISTORY.md, Keyframes). It still
    becomes the history the next frame is blended with.

    It works on the output's own (Cb, Cr) planes (video range, around 128):
    a change of them moves no pixel's luma. Flow and blending run on the
    planes shrunk by a whole factor to at most `work_side` pixels a side
    (chroma is smooth), and only the correction is brought back and added.
    """

    def __init__(self, base: float, scale: float = FLOW_SCALE, clamp: float = CLAMP, work_side: int = WORK_SIDE):
        self.base, self.scale, self.clamp, self.work_side = base, scale, clamp, work_side
        self._previous: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # small gray, chroma, faces

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        for frame in frames:
            if frame.scene_cut:
                self._previous = None
            self._smooth(frame)
        return frames

    def _smooth(self, frame: Frame) -> None:
        height, width = frame.gray.shape
        subsampling = imageops.chroma_subsampling(height, width)
        plane_shape = (height // subsampling, width // subsampling)
        block = -(-max(height, width) // self.work_side)  # frame pixels per small pixel, whole: exact blocks
        factor = -(-block // subsampling)  # chroma pixels per small pixel
        block = factor * subsampling
        gray = _shrink(frame.gray, block)  # (h, w), the size of the shrunk chroma planes
        whole = frame.scene_ab is not None or frame.keyframe_chroma is not None
        faces = np.full(gray.shape, whole)  # (h, w) what is coloured: the whole frame, or
        for face in frame.faces:  # every small pixel a face box touches
            top, left = max(0, int(face.box.y // block)), max(0, int(face.box.x // block))
            bottom = max(0, int(np.ceil((face.box.y + face.box.h) / block)))
            right = max(0, int(np.ceil((face.box.x + face.box.w) / block)))
            faces[top:bottom, left:right] = True
        # smoothed: where faces are and where they were, so a box that steps aside does not drop its edge at once
        area = faces if self._previous is None else faces | self._previous[2]
        chroma = np.zeros((*gray.shape, 2), np.float32)  # (h, w, 2) gray where no face is
        if area.any():
            x, y, w, h = cv2.boundingRect(area.astype(np.uint8))  # in small pixels
            region = (slice(y * factor, min(plane_shape[0], (y + h) * factor)),
                      slice(x * factor, min(plane_shape[1], (x + w) * factor)))
            planes = frame.chroma or (np.full(plane_shape, 128, np.uint8), np.full(plane_shape, 128, np.uint8))
            current = np.dstack([_shrink(plane[region].astype(np.float32), factor) for plane in planes]) - 128.0
            chroma[y:y + h, x:x + w] = current  # (h', w', 2) Cb, Cr
            covered = frame.keyframe_weight is not None and not models_needed(frame.keyframe_weight,
                                                                                 frame.gray.shape)
            if self._previous is not None and not covered:
                smoothed = self._blend(gray, chroma, *self._previous[:2], (x, y, w, h))
                correction = np.where(area[y:y + h, x:x + w, None], smoothed - current, 0.0).astype(np.float32)
                grown = _grow(correction, factor)  # (h'', w'', 2), a little larger than the region at the edges
                planes = tuple(plane.copy() for plane in planes)
                for index, plane in enumerate(planes):
                    part = plane[region]
                    part[:] = cv2.add(part, grown[:part.shape[0], :part.shape[1], index], dtype=cv2.CV_8U)
                frame.chroma = planes
                chroma[y:y + h, x:x + w] = smoothed
            chroma[~area] = 0.0
        self._previous = gray, chroma, faces

    def _blend(self, gray: np.ndarray, chroma: np.ndarray, gray_before: np.ndarray, chroma_before: np.ndarray,
               rect: tuple[int, int, int, int]) -> np.ndarray:
        """The chroma in `rect` (small pixels) blended with the last smoothed chroma moved onto it, (h, w, 2).

        Flow is computed over the rectangle with a margin, so colour can come
        from just outside it.
        """
        x, y, w, h = rect
        x0, y0 = max(0, x - FLOW_MARGIN), max(0, y - FLOW_MARGIN)
        window = (slice(y0, min(gray.shape[0], y + h + FLOW_MARGIN)), slice(x0, min(gray.shape[1], x + w + FLOW_MARGIN)))
        inner = (slice(y - y0, y - y0 + h), slice(x - x0, x - x0 + w))  # the rectangle inside the window
        fast = cv2.DISOPTICAL_FLOW_PRESET_FAST
        to_previous = temporal.flow(gray[window], gray_before[window], fast)  # w_{t->t-1}
        trusted = ~temporal.occlusion_mask(to_previous, temporal.flow(gray_before[window], gray[window], fast))[inner]
        history = temporal.warp(chroma_before[window], to_previous)[inner]
        current = chroma[y:y + h, x:x + w]
        offset = history - current
        distance = temporal.length(offset)[..., None]
        history = current + offset * np.minimum(1.0, self.clamp / np.maximum(distance, 1e-6))  # into the clamp
        weight = current_weight(self.base, temporal.length(to_previous[inner]), self.scale)[..., None]
        return np.where(trusted[..., None], weight * current + (1.0 - weight) * history, current)


def _shrink(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean over `factor` x `factor` blocks; a partial block at the right or bottom edge is padded by replication."""
    if factor == 1:
        return image
    height, width = image.shape[:2]
    if height % factor or width % factor:
        image = cv2.copyMakeBorder(image, 0, -height % factor, 0, -width % factor, cv2.BORDER_REPLICATE)
    return cv2.resize(image, (image.shape[1] // factor, image.shape[0] // factor), interpolation=cv2.INTER_AREA)


def _grow(image: np.ndarray, factor: int) -> np.ndarray:
    """The inverse of `_shrink` for smooth images: bilinear, pixel centres aligned, padding included."""
    if factor == 1:
        return image
    height, width = image.shape[:2]
    return cv2.resize(image, (width * factor, height * factor), interpolation=cv2.INTER_LINEAR)


def still_weight(window: int) -> float:
    """The current frame's weight in the exponential averages when nothing moves: 2 / (window + 1)."""
    return 2.0 / (max(1, window) + 1.0)


METHODS: dict[str, Callable[[int], TrackSmoother]] = {  # name -> the smoother of a new track, given --window
    "none": lambda window: Unsmoothed(),
    "mean": lambda window: MovingAverage(max(1, window)),
    "ema": lambda window: ExponentialAverage(still_weight(window)),
    "ema-adaptive": lambda window: AdaptiveAverage(still_weight(window)),
}
SMOOTHING = (*METHODS, "flow")  # "flow" works on whole frames: `FlowSmoothing`, a stage of its own
