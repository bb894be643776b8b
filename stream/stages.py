"""The colorizing elements: detect -> scene colour -> sketchify -> infer -> smooth -> composite.

Each is a small callable over a batch of `Frame`s, run by `stream.pipeline`.
"""

from __future__ import annotations

import os
import threading

import cv2
import numpy as np

from colorstream import imageops, temporal
from colorstream.model.inference import Predictor, ScenePredictor
from colorstream.stream import keyframes
from colorstream.stream.frames import Face, Frame
from colorstream.stream.palette import Palette
from colorstream.stream.smoothing import METHODS, TrackSmoother
from colorstream.stream.tracking import FaceTracker, SceneCutDetector


class Detect:
    """Scene-cut check and face tracking: everything that looks at the whole frame."""

    def __init__(self, tracker: FaceTracker, crop_margin: float, reach: float = 1.0):
        self.tracker, self.cuts = tracker, SceneCutDetector()
        self.margin = crop_margin * reach

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        for frame in frames:
            frame.scene_cut = self.cuts(frame.gray)
            if frame.scene_cut:
                self.tracker.reset()
            frame.faces = [Face(track.id, imageops.square_box(track.box, self.margin))
                           for track in self.tracker.update(frame.gray, frame.seconds)]
        return frames


class SceneColour:
    """Whole-frame chroma from the scene model on every `every`-th frame (and at each scene cut); the frames
    between carry the last prediction along the DIS flow of the gray input, at the model's working size.

    The model's a/b (a quarter of its working size) is small and smooth, so
    moving it costs far less than predicting it: every third frame on a
    CPU keeps a 720p film faster than real time (README). A `palette`
    (`--reference`) then steers each frame's colour (`stream.palette`).
    """

    def __init__(self, predictor: ScenePredictor, saturation_gain: float, every: int = 1,
                 palette: Palette | None = None, flip_average: bool = False, temperature: float | None = None):
        self.predictor, self.saturation_gain, self.every = predictor, saturation_gain, max(1, every)
        self.palette, self.flip_average, self.temperature = palette, flip_average, temperature
        self._previous: tuple[np.ndarray, np.ndarray] | None = None  # working-size gray, the model's own a/b
        self._since = 0  # frames since the model last ran

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        # a frame the keyframes' colour covers gets none, and the carried prediction stops there: the next
        # frame that needs the model has it run afresh
        needed = [keyframes.models_needed(frame.keyframe_weight, frame.gray.shape) for frame in frames]
        inputs = [self.predictor.prepare(frame.gray) if need else None for frame, need in zip(frames, needed)]
        fresh = []  # the frames the model sees, in one batch
        for index, frame in enumerate(frames):
            if not needed[index]:
                self._since = 0
                continue
            if frame.scene_cut or self._since % self.every == 0:
                fresh.append(index)
                self._since = 0
            self._since += 1
        predicted = self.predictor.predict_prepared(np.stack([inputs[i] for i in fresh]), self.saturation_gain,
                                                    self.temperature, self.flip_average) if fresh else []
        by_index = dict(zip(fresh, predicted))
        for index, frame in enumerate(frames):
            if not needed[index]:
                self._previous = None
                continue
            ab = by_index[index] if index in by_index else self._carried(inputs[index])
            self._previous = inputs[index], ab
            frame.scene_ab = ab if self.palette is None else self.palette.steer(inputs[index], ab)
        return frames

    def _carried(self, gray: np.ndarray) -> np.ndarray:
        """The last a/b moved onto this frame along the flow (t -> t-1) of the working-size gray."""
        return carry_ab(*self._previous, gray)


def carry_ab(gray_before: np.ndarray, ab_before: np.ndarray, gray: np.ndarray) -> np.ndarray:
    """The scene model's a/b of an earlier working-size gray frame, moved onto `gray` along their DIS flow."""
    to_previous = temporal.flow(gray, gray_before, cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)  # (h, w, 2)
    stride = gray.shape[0] // ab_before.shape[0]
    small = cv2.resize(to_previous, (ab_before.shape[1], ab_before.shape[0]), interpolation=cv2.INTER_AREA)
    return temporal.warp(ab_before, small / stride)  # (h/4, w/4, 2)


BACKGROUND_NICENESS = 10  # the live scene model's thread yields the cores to the stages that frames wait on


class BackgroundSceneColour:
    """Live: the scene model runs in a thread of its own, on the newest frame offered to it every `every`
    frames, and each frame takes the newest prediction moved onto it along the flow.

    No frame waits for the model, only for the flow (about a millisecond at
    its working size), except the first frame and a scene cut, whose colour
    cannot come from an earlier shot. In file mode `SceneColour` is used
    instead: there every frame must come out the same on every run.
    """

    def __init__(self, predictor: ScenePredictor, saturation_gain: float, every: int = 1,
                 palette: Palette | None = None, temperature: float | None = None):
        self.predictor, self.saturation_gain, self.every = predictor, saturation_gain, max(1, every)
        self.palette, self.temperature = palette, temperature
        self._since = 0  # frames since the model was last offered one
        self._condition = threading.Condition()
        self._offered: tuple[int, np.ndarray] | None = None  # (number, working-size gray) the model has not taken
        self._offers = 0
        self._latest: tuple[int, np.ndarray, np.ndarray] | None = None  # (number, gray, a/b) of the newest prediction
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="scene model", daemon=True)
        self._thread.start()

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        for frame in frames:
            gray = self.predictor.prepare(frame.gray)
            with self._condition:
                fresh_shot = frame.scene_cut or self._latest is None
                if fresh_shot or self._since % self.every == 0:
                    self._offers += 1
                    self._offered = self._offers, gray  # replaces an older frame the model has not taken
                    self._since = 0
                    self._condition.notify_all()
                self._since += 1
                wanted = self._offers if fresh_shot else 0
                self._condition.wait_for(lambda: self._error is not None or (
                    self._latest is not None and self._latest[0] >= wanted))
                if self._error is not None:
                    raise self._error
                _, gray_before, ab_before = self._latest
            ab = ab_before if gray_before is gray else carry_ab(gray_before, ab_before, gray)
            frame.scene_ab = ab if self.palette is None else self.palette.steer(gray, ab)
        return frames

    def close(self) -> None:
        """Stop the model's thread, after the prediction it may be making: none must outlive the session."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        self._thread.join()

    def _run(self) -> None:
        try:  # Linux: a nice thread, so the stages a frame waits on get the cores first
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICENESS)
        except (AttributeError, OSError):
            pass
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._offered is not None or self._closed)
                if self._closed:
                    return
                (number, gray), self._offered = self._offered, None
            try:
                ab = self.predictor.predict_prepared(gray[None], self.saturation_gain, self.temperature)[0]
            except BaseException as error:  # handed to the pipeline's thread, which reports it
                with self._condition:
                    self._error = error
                    self._condition.notify_all()
                return
            with self._condition:
                self._latest = number, gray, ab
                self._condition.notify_all()


class Sketchify:
    """Face crops -> the model's input, made by the op and parameters its checkpoint names; a face the keyframes'
    colour covers gets none, and so no colour from the model."""

    def __init__(self, predictor: Predictor):
        self.predictor = predictor

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        size = self.predictor.resolution
        for frame in frames:
            for face in frame.faces:
                if not keyframes.models_needed(frame.keyframe_weight, frame.gray.shape, face.box):
                    continue
                face.crop = imageops.crop_square(frame.gray, face.box, size)
                face.sketch = imageops.prepare_sketch(self.predictor.sketchify(face.crop), size,
                                                      self.predictor.normalize)
        return frames


class Infer:
    """All faces of all frames in the batch through the network at once."""

    def __init__(self, predictor: Predictor, saturation_gain: float, batch_size: int = 32):
        self.predictor, self.batch_size, self.saturation_gain = predictor, batch_size, saturation_gain

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        faces = [face for frame in frames for face in frame.faces if face.sketch is not None]
        if faces:
            colours = self.predictor.predict_prepared(np.stack([face.sketch for face in faces]), self.batch_size,
                                                      self.saturation_gain)
            for face, colour in zip(faces, colours):
                face.colour = colour
        return frames


class Smooth:
    """Per-track temporal smoothing of the predicted chroma in face-aligned coordinates (`stream.smoothing`),
    and the conversion of the model's colour to the chroma the composite uses.

    A new track or a scene cut starts from scratch.
    """

    def __init__(self, method: str = "mean", window: int = 5):
        if method not in METHODS:
            raise ValueError(f"unknown face-aligned smoothing {method!r}; expected one of {', '.join(METHODS)}")
        self.method, self.window = method, window
        self.tracks: dict[int, TrackSmoother] = {}

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        for frame in frames:
            if frame.scene_cut:
                self.tracks.clear()
            coloured = [face for face in frame.faces if face.colour is not None]
            live = {face.track for face in coloured}  # a face the keyframes covered starts afresh after
            self.tracks = {track: smoother for track, smoother in self.tracks.items() if track in live}
            for face in coloured:
                if face.track not in self.tracks:
                    self.tracks[face.track] = METHODS[self.method](self.window)
                face.chroma = self.tracks[face.track](imageops.bgr_to_lab(face.colour)[:, :, 1:], face.crop)
        return frames


class Composite:
    """The frame's own luma, untouched; chroma from the face model in the face squares, blended with a feathered
    mask into the scene model's chroma of the whole frame (or into gray, with `--scope faces`); over both, the
    keyframes' carried colour by its confidence, and where that confidence is low, the models' colour corrected
    by how far it misses the keyframes' nearby (`stream.keyframes`).

    Only the output's (Cb, Cr) planes are made, at their own resolution
    (half size for 4:2:0): the models never touch luminance, so edges stay
    as sharp as the source. The scene's small a/b is upsampled bilinearly:
    chroma is low-frequency, and the luma carries the detail. With faces
    only, just the faces' rectangle is made, and frames without faces cost
    nothing. Overlapping faces mix their chroma by weight.
    """

    def __init__(self, feather: float = 0.2):
        self.feather = feather
        self._masks: dict[int, np.ndarray] = {}

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        for frame in frames:
            frame.chroma = self._chroma(frame)
        return frames

    def _chroma(self, frame: Frame) -> tuple[np.ndarray, np.ndarray] | None:
        height, width = frame.gray.shape
        factor = imageops.chroma_subsampling(height, width)
        plane = (height // factor, width // factor)
        coloured = [face for face in frame.faces if face.chroma is not None]
        faces_roi = self._union(coloured, *plane, factor)
        whole = frame.scene_ab is not None or frame.keyframe_chroma is not None  # the whole plane is coloured
        if faces_roi is None and not whole:
            return None
        roi = (0, 0, plane[1], plane[0]) if whole else faces_roi
        x0, y0, x1, y1 = roi  # in chroma-plane pixels
        size = (x1 - x0, y1 - y0)
        if frame.scene_ab is not None:  # the scene's colour everywhere, the faces' blended over it below
            ab = cv2.resize(frame.scene_ab, size, interpolation=cv2.INTER_LINEAR)  # (y1-y0, x1-x0, 2)
        elif faces_roi is not None:
            ab = np.zeros((size[1], size[0], 2), np.float32)
        if faces_roi is not None:  # only the faces' rectangle needs the face blend
            fx0, fy0, fx1, fy1 = faces_roi
            face_size = (fx1 - fx0, fy1 - fy0)
            ab_sum = np.zeros((face_size[1], face_size[0], 2), np.float32)
            weight_sum = np.zeros((face_size[1], face_size[0]), np.float32)
            for face in coloured:
                face_ab, weight = self._warp(face, fx0, fy0, face_size, factor)
                ab_sum += face_ab * weight[:, :, None]
                weight_sum += weight
            inside = ab[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]  # a view: changed in place
            # where no face reaches, its share is 0 and what was there (the scene, or gray) fills it
            inside *= (1.0 - np.minimum(weight_sum, 1.0))[:, :, None]
            inside += ab_sum / np.maximum(weight_sum, 1.0)[:, :, None]
        modelled = frame.scene_ab is not None or faces_roi is not None
        if not modelled:  # no model coloured it (the keyframes cover it): neutral
            cb_roi = cr_roi = np.full((size[1], size[0]), 128, np.uint8)
        else:
            gray = frame.gray[y0 * factor:y1 * factor, x0 * factor:x1 * factor]
            if factor > 1:
                gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)  # (y1-y0, x1-x0)
            lab = cv2.merge([imageops.gray_lightness(gray), ab[:, :, 0], ab[:, :, 1]])
            cb_roi, cr_roi = imageops.lab_to_video_chroma(lab)
        if frame.keyframe_chroma is not None:  # the archivist's colour, wherever the flow could carry it
            keyframe = frame.keyframe_chroma + 128.0  # made at the plane's size (`KeyframeStage`)
            trust = cv2.resize(frame.keyframe_weight, size, interpolation=cv2.INTER_LINEAR)
            model = np.dstack([cb_roi, cr_roi]).astype(np.float32)
            # a logo's colour, carried across a cut, says nothing of the models' miss around it; but where no model
            # ran, the few pixels it leaves take the colour around them all the same (neutral gray, corrected)
            if not (frame.keyframe_overlay and modelled):
                model = keyframes.corrected_model(model, keyframe, frame.keyframe_weight)
            cb_roi, cr_roi = (np.clip(trust * keyframe[:, :, i] + (1.0 - trust) * model[:, :, i] + 0.5, 0, 255)
                              .astype(np.uint8) for i in range(2))
        if whole:
            return cb_roi, cr_roi
        cb = np.full(plane, 128, np.uint8)
        cr = cb.copy()
        cb[y0:y1, x0:x1], cr[y0:y1, x0:x1] = cb_roi, cr_roi
        return cb, cr

    @staticmethod
    def _union(faces: list[Face], height: int, width: int, factor: int) -> tuple[int, int, int, int] | None:
        """The rectangle covering every face box in a plane `factor` times smaller than the frame, clipped to it."""
        if not faces:
            return None
        x0 = max(0, int(np.floor(min(f.box.x for f in faces) / factor)))
        y0 = max(0, int(np.floor(min(f.box.y for f in faces) / factor)))
        x1 = min(width, int(np.ceil(max(f.box.x + f.box.w for f in faces) / factor)))
        y1 = min(height, int(np.ceil(max(f.box.y + f.box.h for f in faces) / factor)))
        return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None

    def _warp(self, face: Face, x0: int, y0: int, roi_size: tuple[int, int],
              factor: int) -> tuple[np.ndarray, np.ndarray]:
        """The face's chroma and feather weight resampled onto the ROI at (x0, y0) of a plane `factor` times smaller."""
        size = face.chroma.shape[0]
        scale = face.box.w / size / factor
        # model pixel (u, v) -> ROI pixel ((box.x + u * box.w / size) / factor - x0, ...)
        to_roi = np.array([[scale, 0.0, face.box.x / factor - x0], [0.0, scale, face.box.y / factor - y0]], np.float32)
        chroma = cv2.warpAffine(face.chroma, to_roi, roi_size, flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE)
        if size not in self._masks:
            self._masks[size] = imageops.feather_mask(size, self.feather)
        weight = cv2.warpAffine(self._masks[size], to_roi, roi_size, flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return chroma, weight
