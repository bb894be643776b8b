"""The colorizing elements: detect -> sketchify -> infer -> smooth -> composite.

Each is a small callable over a batch of `Frame`s, run by `stream.pipeline`.
"""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np

from colorstream import imageops
from model.inference import Predictor
from stream.frames import Face, Frame
from stream.tracking import FaceTracker, SceneCutDetector

SMOOTHING = ("none", "mean", "ema")


class Detect:
    """Gray conversion, scene-cut check and face tracking: everything that looks at the whole frame."""

    def __init__(self, tracker: FaceTracker, crop_margin: float, reach: float = 1.0):
        self.tracker, self.cuts = tracker, SceneCutDetector()
        self.margin = crop_margin * reach

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        for frame in frames:
            frame.gray = imageops.to_gray(frame.image)
            frame.scene_cut = self.cuts(frame.gray)
            if frame.scene_cut:
                self.tracker.reset()
            frame.faces = [Face(track.id, imageops.square_box(track.box, self.margin))
                           for track in self.tracker.update(frame.gray, frame.seconds)]
        return frames


class Sketchify:
    """Face crops -> the model's input, made by the op and parameters its checkpoint names."""

    def __init__(self, predictor: Predictor):
        self.predictor = predictor

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        size = self.predictor.resolution
        for frame in frames:
            for face in frame.faces:
                crop = imageops.crop_square(frame.gray, face.box, size)
                face.sketch = imageops.prepare_sketch(self.predictor.sketchify(crop), size, self.predictor.normalize)
        return frames


class Infer:
    """All faces of all frames in the batch through the network at once."""

    def __init__(self, predictor: Predictor, batch_size: int = 32):
        self.predictor, self.batch_size = predictor, batch_size

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        faces = [face for frame in frames for face in frame.faces]
        if faces:
            colours = self.predictor.predict_prepared(np.stack([face.sketch for face in faces]), self.batch_size)
            for face, colour in zip(faces, colours):
                face.colour = colour
        return frames


class Smooth:
    """Per-track temporal smoothing of the predicted chroma, in face-aligned coordinates.

    "mean" is the paper's moving average over the last `window` frames; "ema"
    an exponential average with weight 2 / (window + 1). A new track or a
    scene cut starts from scratch.
    """

    def __init__(self, method: str = "mean", window: int = 5):
        if method not in SMOOTHING:
            raise ValueError(f"unknown smoothing {method!r}; expected one of {', '.join(SMOOTHING)}")
        self.method, self.window = method, max(1, window)
        self.history: dict[int, deque] = {}
        self.average: dict[int, np.ndarray] = {}

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        for frame in frames:
            if frame.scene_cut:
                self.history.clear()
                self.average.clear()
            live = {face.track for face in frame.faces}
            for gone in set(self.history) - live:
                del self.history[gone]
            for gone in set(self.average) - live:
                del self.average[gone]
            for face in frame.faces:
                face.chroma = self._smooth(face.track, imageops.bgr_to_lab(face.colour)[:, :, 1:])
        return frames

    def _smooth(self, track: int, chroma: np.ndarray) -> np.ndarray:
        if self.method == "none":
            return chroma
        if self.method == "mean":
            history = self.history.setdefault(track, deque(maxlen=self.window))
            history.append(chroma)
            return np.mean(history, axis=0)
        previous = self.average.get(track)
        weight = 2.0 / (self.window + 1.0)
        self.average[track] = chroma if previous is None else weight * chroma + (1.0 - weight) * previous
        return self.average[track]


class Composite:
    """Full-resolution luminance from the frame, chroma from the model, blended in with a feathered mask.

    Outside faces the output is the frame's own gray: the model never touches
    luminance, so edges stay as sharp as the source. Overlapping faces mix
    their chroma by weight.
    """

    def __init__(self, feather: float = 0.2):
        self.feather = feather
        self._masks: dict[int, np.ndarray] = {}

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        for frame in frames:
            frame.output = cv2.cvtColor(frame.gray, cv2.COLOR_GRAY2BGR)
            roi = self._union(frame)
            if roi is not None:
                x0, y0, x1, y1 = roi
                chroma_sum = np.zeros((y1 - y0, x1 - x0, 2), np.float32)
                weight_sum = np.zeros((y1 - y0, x1 - x0), np.float32)
                for face in frame.faces:
                    chroma, weight = self._warp(face, x0, y0, (x1 - x0, y1 - y0))
                    chroma_sum += chroma * weight[:, :, None]
                    weight_sum += weight
                lab = imageops.bgr_to_lab(frame.output[y0:y1, x0:x1])
                lab[:, :, 1:] = chroma_sum / np.maximum(weight_sum, 1.0)[:, :, None]  # the frame's own chroma is 0
                frame.output[y0:y1, x0:x1] = imageops.lab_to_bgr(lab)
        return frames

    @staticmethod
    def _union(frame: Frame) -> tuple[int, int, int, int] | None:
        """The pixel rectangle covering every face box, clipped to the frame."""
        if not frame.faces:
            return None
        height, width = frame.gray.shape
        x0 = max(0, int(np.floor(min(f.box.x for f in frame.faces))))
        y0 = max(0, int(np.floor(min(f.box.y for f in frame.faces))))
        x1 = min(width, int(np.ceil(max(f.box.x + f.box.w for f in frame.faces))))
        y1 = min(height, int(np.ceil(max(f.box.y + f.box.h for f in frame.faces))))
        return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None

    def _warp(self, face: Face, x0: int, y0: int, roi_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """The face's chroma and feather weight resampled onto the ROI whose top-left is (x0, y0)."""
        size = face.chroma.shape[0]
        scale = face.box.w / size
        # model pixel (u, v) -> ROI pixel (box.x + u * scale - x0, box.y + v * scale - y0)
        to_roi = np.array([[scale, 0.0, face.box.x - x0], [0.0, scale, face.box.y - y0]], np.float32)
        chroma = cv2.warpAffine(face.chroma, to_roi, roi_size, flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE)
        if size not in self._masks:
            self._masks[size] = imageops.feather_mask(size, self.feather)
        weight = cv2.warpAffine(self._masks[size], to_roi, roi_size, flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return chroma, weight
