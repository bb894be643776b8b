"""Colour from the archivist's hand: keyframes coloured once and carried through their shot along optical flow.

A keyframe is a colour image of one frame of the input (coloured by hand,
or a colour still of the same shot); only its chroma is used, so it may
differ from the frame in size and in tones. Before the video is colorized,
one pass over the gray input carries each keyframe's chroma forward and
backward through its shot (never across a scene cut):

- Along DIS flow of the gray frames, shrunk to `WORK_SIDE`. Each frame keeps
  a map of where its pixels were in the keyframe (the maps are chained frame
  to frame), and the colour is sampled once from the keyframe through it, so
  a long shot does not blur the colour by resampling it again and again.
- Each step also corrects the chain against the keyframe itself: the flow
  from the frame to the keyframe as the chain brings it there is short, so
  it is exact, and it is taken wherever it fits the frame's tones better.
  Drift no longer adds up over a long pan or zoom.
- And it compares each pixel with the keyframe at the same place: what has
  not moved (a channel's logo, a caption, a still backdrop seen again) stays
  where it was, though the flow around it drags it along.
- With a confidence per pixel that is 1 on the keyframe, falls to 0 where
  the forward-backward check fails (occlusion, content entering the frame),
  fades with flow inconsistency and with the distance a point has moved
  (small flow errors add up with the motion).
- Where two keyframes bracket a frame, their colours are blended by those
  confidences and by the distance in frames (linearly, as a colourist
  interpolates between keyframes).
- A later shot without a keyframe of its own keeps the last keyframe's colour
  only where the frame is as it was in the keyframe, at the same place: a
  channel's logo or a caption that stays through the cut keeps its colour.

The result (chroma, confidence and each pixel's place in the keyframe that
leads there, per frame, small) goes to a temporary file, not memory, so an
hour of film fits. The pass runs in a thread beside the colorizing pipeline:
a frame is handed on as soon as no later keyframe can change it (at once
after the last keyframe of its shot; otherwise once that later keyframe's
colour has been carried back to it). `KeyframeStage` hands each
frame its share at the output's chroma resolution: the small chroma
upsampled, plus the leading keyframe's fine detail (what its full-size chroma
has beyond the small one) read through the same places, so colour edges stay
as sharp as the keyframe's. The composite blends it over the models' colour
by the confidence, blurred so there is no seam: where flow cannot carry
colour, the scene and face models' colour shows. A model is not run at all
for a frame (or a face) whose colour the keyframes lead nearly everywhere
(`models_needed`).
"""

from __future__ import annotations

import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from colorstream import files, imageops, temporal
from colorstream.stream.frames import Frame
from colorstream.stream.pipeline import POLL_SECONDS, Stopped
from colorstream.stream.tracking import SceneCutDetector
from colorstream.stream.video_io import VideoReader

WORK_SIDE = 192  # propagation sees the frame shrunk to this longer side: colour is smooth, flow is cheap there
FLOW_PRESET = cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST  # the most faithful inside plain regions, and the cheapest
TRAVEL_DECAY = 0.004  # confidence lost per small pixel a point travels: flow errors add up with the motion
MISMATCH_FREE = 0.5  # forward-backward mismatch (small pixels) below which flow is trusted fully ...
CONSISTENCY = 0.5  # ... and above it, the mismatch at which confidence falls to 1/e
FLAT_WINDOW = (9, 9)  # the neighbourhood (small pixels) over which a keyframe's colour counts as flat or not
FLAT_FREE = 2.0  # chroma spread (Cb/Cr levels) in that neighbourhood that still counts as flat (noise, JPEG) ...
FLAT_CHROMA = 7.0  # ... and beyond it, the spread at which flatness falls to 1/e
TONE_FREE = 10.0  # gray levels a pixel may differ from its place in the keyframe without doubt ...
TONE_SCALE = 15.0  # ... and beyond that, the difference at which confidence falls to 1/e
CORRECTION = 3.0  # small pixels: how far the direct look at the keyframe may move a point the chain still holds
REACQUIRE = 0.5  # a point the chain holds less surely than this may be re-found anywhere by the direct look
STILL_WINDOW = (5, 5)  # the neighbourhood (small pixels) compared with the keyframe's at the same place ...
STILL_FREE = 1.5  # ... whose mean tone difference (gray levels) still counts as not having moved ...
STILL_SCALE = 1.5  # ... and beyond it, the difference at which that trust falls to 1/e
STILL_TEXTURE = 6.0  # tone spread (gray levels) of the keyframe's neighbourhood below which a match means nothing
FILL_SIGMA = 6.0  # small pixels: how far the motion of trusted points reaches into a region the flow cannot read
OUTSIDE = 3.0  # small pixels beyond the keyframe's edge whose colour is still its edge's
EDGE_BLUR = 2.0  # Gaussian sigma (small pixels) of the confidence used for blending: no seam where flow gives up
BIAS_REACH = 6.0  # Gaussian sigma (small pixels) over which the models' miss against the carried colour is averaged
BIAS_SUPPORT = 0.3  # ... and the share of carried colour in that neighbourhood below which the correction fades out
MODELS_LEAD = 0.5  # carried confidence below which the models' colour leads the blend ...
MODELS_AREA = 0.02  # ... and the share of a frame or face box where it must lead for the model to be run at all
_EDGE_KERNEL = np.ones((5, 5), np.uint8)
ASPECT_TOLERANCE = 0.03  # a keyframe whose aspect ratio differs more than this is not a frame of the input


class KeyframeError(ValueError):
    """A keyframe that cannot be used; the message is one line for the user."""


def keyframe_paths(pairs: list[str], folder: Path | None) -> dict[int, Path]:
    """`--keyframe INDEX=IMAGE` (repeatable) and `--keyframes DIR` (files named `<index>.png`) -> index: path."""
    found: dict[int, Path] = {}

    def add(index: int, path: Path, given: str) -> None:
        if index in found:
            raise KeyframeError(f"{given}: frame {index} already has the keyframe {found[index]}")
        if not path.is_file():
            raise KeyframeError(f"{given}: {path}: no such file")
        found[index] = path

    for pair in pairs:
        match = re.fullmatch(r"\s*(\d+)\s*=(.+)", pair)
        if not match:
            raise KeyframeError(f"--keyframe {pair!r}: expected INDEX=IMAGE, e.g. 0=frame0.png (INDEX counts "
                                "frames from 0 in decode order)")
        add(int(match.group(1)), Path(match.group(2)), f"--keyframe {pair}")
    if folder is not None:
        if not folder.is_dir():
            raise KeyframeError(f"--keyframes {folder}: no such directory")
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() not in imageops.IMAGE_SUFFIXES or path.name.startswith("."):
                continue  # notes, a viewer's thumbnails: not keyframes
            if not path.stem.isdigit():  # meant as a keyframe, most likely: silence would lose its colour
                raise KeyframeError(f"--keyframes {folder}: {path.name} is not named <frame index>{path.suffix}; "
                                    "rename it to the index of its frame, or move it out of the folder")
            add(int(path.stem), path, f"--keyframes {folder}")
        if not any(path.stem.isdigit() for path in folder.iterdir()):
            raise KeyframeError(f"--keyframes {folder}: no images named <frame index>.png in it")
    return found


def work_size(height: int, width: int, side: int = WORK_SIDE) -> tuple[int, int]:
    """(width, height) of the frame shrunk to `side` pixels on its longer side."""
    scale = min(1.0, side / max(height, width))
    return max(8, int(round(width * scale))), max(8, int(round(height * scale)))


def keyframe_chroma(image: np.ndarray, frame_height: int, frame_width: int, size: tuple[int, int],
                    where: str = "keyframe") -> np.ndarray:
    """A colour image of a frame -> its video-range (Cb, Cr) minus 128 at `size` (width, height), (h, w, 2) float32.

    Chroma planes, not Lab a/b: with the frame's own luma they give back the
    keyframe's colours exactly, as copying its planes would; the keyframe's
    own tones are never used.
    """
    height, width = image.shape[:2]
    if abs(np.log((width / height) / (frame_width / frame_height))) > ASPECT_TOLERANCE:
        raise KeyframeError(f"{where}: is {width}x{height}, but the frames are {frame_width}x{frame_height}: "
                            "a keyframe must show the whole frame (any size, the same shape)")
    small = cv2.resize(image[:, :, :3], size, interpolation=cv2.INTER_AREA)
    return np.dstack(imageops.bgr_to_video_chroma(small)).astype(np.float32) - 128.0


def keyframe_detail(image: np.ndarray, small: np.ndarray, plane: tuple[int, int]) -> np.ndarray:
    """What a keyframe's chroma at the output's plane size (width, height) has beyond its `small` chroma upsampled:
    the fine colour edges the small working size loses, (H, W, 2) float32."""
    full = np.dstack([cv2.resize(channel, plane, interpolation=cv2.INTER_AREA)
                      for channel in imageops.bgr_to_video_chroma(image[:, :, :3])]).astype(np.float32) - 128.0
    return full - cv2.resize(small, plane, interpolation=cv2.INTER_LINEAR)


def read_keyframe(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise KeyframeError(f"{path}: not a readable image")
    return image


@dataclass
class CarriedColour:
    """One frame's share of the keyframes' colour, at the small working size."""

    chroma: np.ndarray  # (h, w, 2) float32 Cb, Cr minus 128
    weight: np.ndarray  # (h, w) float32 confidence in [0, 1]
    shift: np.ndarray  # (h, w, 2) float32 (small pixels) from each pixel to its place in the keyframe that leads there
    later: np.ndarray  # (h, w) bool: the later of the two `sources` leads there (the earlier elsewhere)
    sources: tuple[int, int]  # (earlier, later) keyframe index; the same twice where only one reaches the frame
    overlay: bool = False  # only what stayed in place since a keyframe of an earlier shot (`_Carried.overlay`)


class KeyframeColour:
    """Per frame, the keyframes' carried colour (`CarriedColour`), small, and each keyframe's fine detail at the
    output's chroma size, in a temporary file, written by the pass (`propagate`) while it is read.

    Only the frames of shots with a keyframe take room: each gets a slot of
    fixed size as it is first written, so no frame count is needed up front.
    `get` waits until the pass has made the frame final.
    """

    def __init__(self, size: tuple[int, int], plane: tuple[int, int]):
        self.width, self.height = size
        self.plane = plane  # (width, height) of the output's chroma planes
        # int8 Cb and Cr, uint8 confidence, uint8 which keyframe leads, float16 shift x and y
        self._record = self.height * self.width * 8
        self._detail_record = plane[0] * plane[1] * 2 * 2  # float16 Cb and Cr
        self._file = tempfile.TemporaryFile(prefix="colorstream-keyframes-")
        self._end = 0
        self._slots: dict[int, tuple[int, tuple[int, int], bool]] = {}  # frame index: (offset, sources, overlay)
        self._details: dict[int, int] = {}  # keyframe index: offset
        self.frames = 0  # frames in the video, once the pass has seen them all
        self.seconds = 0.0  # the pass's time, once it has ended
        self._file_lock = threading.Lock()  # the pass writes while the pipeline reads
        self._progress = threading.Condition()
        self._final = 0  # frames before this index are final
        self._ended = False
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._readers_stop: threading.Event | None = None  # once set, a reader waiting for a frame gives up

    def _write(self, offset: int | None, data: bytes) -> int:
        if offset is None:
            offset, self._end = self._end, self._end + len(data)
        with self._file_lock, self._named_errors():
            self._file.seek(offset)
            self._file.write(data)
        return offset

    def _read(self, offset: int, length: int) -> bytes:
        with self._file_lock, self._named_errors():  # the seek writes out what is buffered
            self._file.seek(offset)
            return self._file.read(length)

    @staticmethod
    @contextmanager
    def _named_errors() -> Iterator[None]:
        """A full disk says where: the file itself has no name."""
        try:
            yield
        except OSError as error:
            raise OSError(error.errno, error.strerror, f"the keyframes' temporary file in {tempfile.gettempdir()} "
                          "(set TMPDIR to a folder with room)") from None

    def put_detail(self, keyframe: int, detail: np.ndarray) -> None:
        self._details[keyframe] = self._write(self._details.get(keyframe), detail.astype(np.float16).tobytes())

    def detail(self, keyframe: int) -> np.ndarray:
        """(H, W, 2) float32 at the plane size: see `keyframe_detail`."""
        data = self._read(self._details[keyframe], self._detail_record)
        return np.frombuffer(data, np.float16).reshape(self.plane[1], self.plane[0], 2).astype(np.float32)

    def put(self, index: int, carried: CarriedColour) -> None:
        record = np.empty((self.height, self.width, 8), np.uint8)
        record[..., :2] = np.clip(np.round(carried.chroma), -127, 127).astype(np.int8).view(np.uint8)
        record[..., 2] = np.clip(np.round(carried.weight * 255.0), 0, 255)
        record[..., 3] = carried.later
        record[..., 4:] = carried.shift.astype(np.float16).view(np.uint8)
        offset = self._slots.get(index, (None,))[0]
        self._slots[index] = (self._write(offset, record.tobytes()), carried.sources, carried.overlay)

    def get(self, index: int) -> CarriedColour | None:
        """The frame's final carried colour, or None for a frame no keyframe reaches; waits for the pass to make it
        final, and raises what stopped the pass."""
        with self._progress:
            while not (index < self._final or self._ended):
                if self._readers_stop is not None and self._readers_stop.is_set():
                    raise Stopped
                self._progress.wait(POLL_SECONDS)
            if self._error is not None:
                raise self._error
            if index >= self._final and self._stop.is_set():
                raise RuntimeError(f"the keyframe pass was stopped before frame {index}")
        return self.stored(index)  # None past the frames the pass saw (a damaged tail it could not decode)

    def stored(self, index: int) -> CarriedColour | None:
        """What the pass has written for the frame so far, without waiting: the pass reads its forward colour back."""
        if index not in self._slots:
            return None
        offset, sources, overlay = self._slots[index]
        record = np.frombuffer(self._read(offset, self._record), np.uint8).reshape(self.height, self.width, 8)
        return CarriedColour(record[..., :2].view(np.int8).astype(np.float32), record[..., 2].astype(np.float32) / 255.0,
                             record[..., 4:].copy().view(np.float16).astype(np.float32), record[..., 3] > 0, sources,
                             overlay)

    @property
    def error(self) -> BaseException | None:
        """What stopped the pass, once it has ended; None while it runs or when it finished."""
        return self._error

    def stop_readers_with(self, stop: threading.Event) -> None:
        """A reader waiting for a frame gives up (`Stopped`) once `stop` is set: a pipeline that shuts down must
        not wait for the pass to reach a far keyframe."""
        self._readers_stop = stop

    def mark_final(self, through: int) -> None:
        """Frames before `through` are final."""
        with self._progress:
            self._final = max(self._final, through)
            self._progress.notify_all()

    def _run(self, work: Callable[[threading.Event], None]) -> None:
        """The pass, in the thread `start` made; how it ended is kept for `get` and `wait`."""
        started = time.perf_counter()
        try:
            work(self._stop)
        except BaseException as error:  # noqa: BLE001 - handed to the reader of the colour, who reports it
            self._error = error
        with self._progress:
            self.seconds = time.perf_counter() - started
            self._ended = True
            self._progress.notify_all()

    def start(self, work: Callable[[threading.Event], None]) -> None:
        self._thread = threading.Thread(target=self._run, args=(work,), name="keyframe pass", daemon=True)
        self._thread.start()

    def wait(self) -> None:
        """Until the pass has ended; raises what stopped it (a keyframe past the last frame is found only there)."""
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Stop the pass, if it still runs, and drop the file."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._file.close()


def corrected_model(model: np.ndarray, keyframe: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """The models' chroma, (H, W, 2) Cb/Cr at the plane size, shifted by how far it misses the keyframes' carried
    colour (`keyframe`, the same size) where that colour holds nearby (`weight`, small), (H, W, 2) float32.

    Where the carried colour gives up (a mouth that opens, what enters the frame), the models' colour shows;
    the models' error there is most like their error next to it, where the keyframe says what the colour is.
    So that error, averaged by confidence over `BIAS_REACH` small pixels, is taken off; it fades out where
    little carried colour is near, and far from any the models' colour stands as it is.
    """
    small = (weight.shape[1], weight.shape[0])
    model = np.asarray(model, np.float32)
    miss = (cv2.resize(keyframe, small, interpolation=cv2.INTER_AREA)
            - cv2.resize(model, small, interpolation=cv2.INTER_AREA)) * weight[..., None]  # (h, w, 2)
    support = cv2.GaussianBlur(weight, (0, 0), BIAS_REACH)
    bias = cv2.GaussianBlur(miss, (0, 0), BIAS_REACH) / np.maximum(support, 1e-3)[..., None] * \
        np.minimum(1.0, support / BIAS_SUPPORT)[..., None]
    return cv2.add(model, cv2.resize(bias, (model.shape[1], model.shape[0]), interpolation=cv2.INTER_LINEAR))


def models_needed(weight: np.ndarray | None, frame_shape: tuple[int, int], box: imageops.Box | None = None) -> bool:
    """Whether a model must colour this frame (or this face `box`, in frame pixels) beside the keyframes' colour
    (`weight`, small; None where no keyframe reaches).

    Where the carried colour leads on all but a few pixels, those few take
    the carried colour around them (`corrected_model` of neutral gray), so
    the model's run would change almost nothing; skipping it is what keeps
    keyframed video near the speed of plain colorizing.
    """
    if weight is None:
        return True
    if box is not None:
        scale_y, scale_x = weight.shape[0] / frame_shape[0], weight.shape[1] / frame_shape[1]
        top, left = max(0, int(box.y * scale_y)), max(0, int(box.x * scale_x))
        weight = weight[top:max(top + 1, int(np.ceil((box.y + box.h) * scale_y))),
                        left:max(left + 1, int(np.ceil((box.x + box.w) * scale_x)))]
        if weight.size == 0:  # a box beyond the frame
            return False
    return float(np.mean(weight < MODELS_LEAD)) >= MODELS_AREA


def _checked_flow(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DIS flow from `source` to `target` (where each source pixel is in the target) and each pixel's trust in
    [0, 1]: 0 where the forward-backward check fails, fading with the mismatch above `MISMATCH_FREE`."""
    there = temporal.flow(source, target, FLOW_PRESET)
    landed = temporal.warp(temporal.flow(target, source, FLOW_PRESET), there)
    mismatch = temporal.squared_length(there + landed)
    occluded = mismatch > 0.01 * (temporal.squared_length(there) + temporal.squared_length(landed)) + 0.5
    trust = np.exp(-np.maximum(0.0, np.sqrt(mismatch) - MISMATCH_FREE) / CONSISTENCY)
    trust[occluded] = 0.0
    return there, trust


@dataclass
class _Carried:
    """One direction's state: where each pixel of the current frame was in the keyframe, and how sure that is.

    Each step chains the map along the flow from the last frame, and also
    looks straight back at the keyframe: where that direct flow passes its
    own check and is surer, it replaces the chain. That re-finds pixels
    the chain lost behind an occlusion (a hand passing, a mouth opening)
    and stops drift from adding up where the content is still in view.
    """

    anchor: np.ndarray  # (h, w, 2) float32 chroma (Cb, Cr minus 128) of the keyframe
    anchor_small: np.ndarray  # (h, w) uint8 the keyframe's frame, shrunk
    anchor_gray: np.ndarray  # (h, w) float32 the same, softened, for comparing tones
    flatness: np.ndarray  # (h, w) float32 in [0, 1]: 1 where the keyframe's colour is the same all around
    texture: np.ndarray  # (h, w) float32 in [0, 1]: 1 where the keyframe's tones vary enough to be recognised
    where: np.ndarray  # (h, w, 2) float32 keyframe pixel coordinates of each pixel of the current frame
    confidence: np.ndarray  # (h, w) float32
    age: int = 0  # frames from the keyframe

    @classmethod
    def start(cls, anchor: np.ndarray, anchor_gray: np.ndarray) -> "_Carried":
        height, width = anchor.shape[:2]
        mean = cv2.blur(anchor, FLAT_WINDOW)
        spread = np.sqrt(np.maximum(0.0, cv2.blur(anchor * anchor, FLAT_WINDOW) - mean * mean).sum(axis=2))
        flatness = np.exp(-np.maximum(0.0, spread - FLAT_FREE) / FLAT_CHROMA)
        soft = _soft(anchor_gray)
        tone_mean = cv2.blur(soft, STILL_WINDOW)
        tone_spread = np.sqrt(np.maximum(0.0, cv2.blur(soft * soft, STILL_WINDOW) - tone_mean * tone_mean))
        return cls(anchor, anchor_gray, soft, flatness, np.minimum(1.0, tone_spread / STILL_TEXTURE),
                   temporal.pixel_grid(height, width).copy(), np.ones((height, width), np.float32))

    def step(self, gray: np.ndarray, gray_before: np.ndarray) -> None:
        """Move onto `gray` from `gray_before` (the frame the state is on)."""
        self.age += 1
        back, trust = _checked_flow(gray, gray_before)  # w_{t->t-1}: where this frame's pixels were
        # where the flow fails its check it is no guide (a flat wall or a plain shirt gives it nothing to hold
        # on to): there a point moves as the trusted points around it do, not with the flow's noise
        reliable = (trust > 0.0).astype(np.float32)
        around = cv2.GaussianBlur(reliable, (0, 0), FILL_SIGMA)[..., None]
        filled = cv2.GaussianBlur(back * reliable[..., None], (0, 0), FILL_SIGMA) / np.maximum(around, 1e-3)
        self.where = temporal.warp(self.where, np.where(reliable[..., None] > 0, back, filled))
        confidence = temporal.warp(self.confidence, back) * trust * np.exp(-TRAVEL_DECAY * temporal.length(back))
        soft = _soft(gray)
        self._refine(gray, soft, confidence)
        direct, direct_trust = _checked_flow(gray, self.anchor_small)  # straight to the keyframe
        direct_where = temporal.pixel_grid(*gray.shape) + direct
        direct_trust *= self._tones_agree(soft, direct_where)  # a far match that only looks alike is not it
        # it corrects the chain's drift (a small step) or re-finds what the chain lost; it never overrules a
        # chain that holds with a leap elsewhere, which is what a look-alike far away would be
        near = temporal.squared_length(direct_where - self.where) < CORRECTION ** 2
        better = (direct_trust > confidence) & (near | (confidence < REACQUIRE))
        self.where[better] = direct_where[better]
        # flow has nothing to hold on to in a flat region (a wall, a green screen) and fails its check there,
        # but any nearby point of a flat colour has the right colour: keep it, if the tones still agree (what
        # moved in front of a wall is not the wall)
        confidence[better] = direct_trust[better]
        self._keep_still(soft, confidence)
        self.confidence = np.maximum(confidence, self._sample(self.flatness) * self._tones_agree(soft, self.where))
        height, width = gray.shape  # what came from beyond the keyframe's edge (a few pixels: its edge's colour)
        outside = (self.where[..., 0] < -OUTSIDE) | (self.where[..., 0] > width - 1 + OUTSIDE) | \
                  (self.where[..., 1] < -OUTSIDE) | (self.where[..., 1] > height - 1 + OUTSIDE)
        self.confidence[outside] = 0.0

    def _refine(self, gray: np.ndarray, soft_gray: np.ndarray, confidence: np.ndarray) -> None:
        """Correct the chain's drift against the keyframe itself, in place (`where`, and `confidence` where it moves).

        The keyframe as the chain brings it onto this frame is only a small
        step from it, even when the keyframe itself is far (a pan, a zoom), so
        the flow between the two is short and exact. A pixel takes the place it
        gives only where that flow passes its check and the frame's tones fit
        the keyframe's there better than at the chain's place: in a region with
        nothing to fit (a black backdrop), the chain is left as it is.
        """
        seen = self._sample(self.anchor_small)  # (h, w) uint8
        residual, trust = _checked_flow(gray, seen)
        refined = temporal.warp(self.where, residual)
        difference = self._tone_difference(soft_gray, refined)
        trust *= _agreement(difference)
        # misfit: the tone difference averaged over 3x3 pixels, at the refined place and at the chain's
        fits = (trust > 0.0) & (cv2.blur(difference, (3, 3)) <
                                cv2.blur(self._tone_difference(soft_gray, self.where), (3, 3)))
        self.where[fits] = refined[fits]
        confidence[fits] = np.maximum(confidence[fits], trust[fits])

    def _keep_still(self, soft_gray: np.ndarray, confidence: np.ndarray) -> None:
        """Put back in place, in `where` and `confidence`, what has not moved since the keyframe.

        A small still thing over moving content (a channel's logo, a caption,
        a frame's border) is dragged along by the flow around it, and the
        keyframe's own place is too near for the direct look to tell apart. So
        each pixel is also compared with the keyframe at the same place: where
        its tone and a neighbourhood around it match there (any of the windows
        that hold it, so a still thing's edge counts too), the neighbourhood is
        varied enough for the match to mean something, and it fits better than
        at the chain's place, the pixel has stayed where it was.
        """
        still, misfit = self._still(soft_gray)
        kernel = np.ones(STILL_WINDOW[::-1], np.uint8)
        chain_misfit = cv2.erode(cv2.blur(self._tone_difference(soft_gray, self.where), STILL_WINDOW), kernel)
        stays = (still > REACQUIRE) & (misfit < chain_misfit)
        self.where[stays] = temporal.pixel_grid(*soft_gray.shape)[stays]
        confidence[stays] = np.maximum(confidence[stays], still[stays])

    def _still(self, soft_gray: np.ndarray, strict: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """How surely each pixel is where it was in the keyframe, by its tones there, in [0, 1], and the best misfit
        (mean tone difference) of the windows that hold it, both (h, w) float32. `strict`: only windows whose tones
        vary by `STILL_TEXTURE` or more count at all (grain in a dark corner of another shot can match by chance)."""
        kernel = np.ones(STILL_WINDOW[::-1], np.uint8)
        difference = np.abs(soft_gray - self.anchor_gray)
        misfit = cv2.blur(difference, STILL_WINDOW)  # (h, w) per window, centred on each pixel
        texture = (self.texture >= 1.0).astype(np.float32) if strict else self.texture
        window_still = np.exp(-np.maximum(0.0, misfit - STILL_FREE) / STILL_SCALE) * texture
        still = cv2.dilate(window_still, kernel) * _agreement(difference)  # the best window that holds the pixel
        return still, cv2.erode(misfit, kernel)

    def overlay(self, gray: np.ndarray, source: int) -> CarriedColour | None:
        """A frame of a later shot: the keyframe's colour only where the frame has not changed since it, or None.

        What stays in place across a cut is laid over the picture: a
        channel's logo, a caption, a frame's border (or a shot seen again from
        the same place). Its colour is the keyframe's, as in the keyframe's
        own shot; without it, the logo would change colour at every cut. The
        flow has no part here, so the state's chain is left as it is.
        """
        still = self._still(_soft(gray), strict=True)[0]
        if not (still > REACQUIRE).any():
            return None
        height, width = gray.shape
        return CarriedColour(self.anchor.copy(), np.where(still > REACQUIRE, still, 0.0).astype(np.float32),
                             np.zeros((height, width, 2), np.float32), np.zeros((height, width), bool),
                             (source, source), overlay=True)

    def _sample(self, image: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
        """`image` (keyframe coordinates) read at each current pixel's place in the keyframe."""
        where = self.where if where is None else where
        return cv2.remap(image, where, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def _tone_difference(self, soft_gray: np.ndarray, where: np.ndarray) -> np.ndarray:
        """|this frame's tone - the keyframe's at `where`|, per pixel."""
        return np.abs(soft_gray - self._sample(self.anchor_gray, where))

    def _tones_agree(self, soft_gray: np.ndarray, where: np.ndarray) -> np.ndarray:
        """1 where this frame's tone matches the keyframe's at `where`, falling off beyond `TONE_FREE` levels."""
        return _agreement(self._tone_difference(soft_gray, where))

    def colour(self, source: int) -> CarriedColour:
        """The state as one frame's share, `source` being the keyframe it is carried from."""
        height, width = self.where.shape[:2]
        return CarriedColour(self._sample(self.anchor), self.confidence,
                             self.where - temporal.pixel_grid(height, width), np.zeros((height, width), bool),
                             (source, source))


def _agreement(tone_difference: np.ndarray) -> np.ndarray:
    """1 up to `TONE_FREE` gray levels of difference, then falling off with `TONE_SCALE`."""
    return np.exp(-np.maximum(0.0, tone_difference - TONE_FREE) / TONE_SCALE)


def _soft(gray: np.ndarray) -> np.ndarray:
    """Gray as float32, blurred a little, so a tone comparison is not thrown by a pixel of misregistration."""
    return cv2.GaussianBlur(gray.astype(np.float32), (0, 0), 1.0)


def _blend(backward: CarriedColour, forward: CarriedColour, age_forward: int, age_backward: int) -> CarriedColour:
    """A frame bracketed by two keyframes: their colours by confidence, and linearly in time, so the nearer leads."""
    share = backward.weight * age_forward
    share_f = forward.weight * age_backward
    backward.chroma = (backward.chroma * share[..., None] + forward.chroma * share_f[..., None]) / \
        np.maximum(share + share_f, 1e-6)[..., None]
    backward.weight = 1.0 - (1.0 - backward.weight) * (1.0 - forward.weight)
    backward.later = share > share_f  # the fine detail comes from the keyframe with the larger share
    backward.shift = np.where(backward.later[..., None], backward.shift, forward.shift)
    backward.sources = (forward.sources[0], backward.sources[1])
    return backward


def _carry(frames: Iterator[Frame], size: tuple[int, int], anchors: dict[int, np.ndarray], store: KeyframeColour,
           stop: threading.Event) -> None:
    """Forward from each keyframe through its shot as the frames come, and backward from each keyframe to the one
    before it in the shot (or the shot's start), blending the two by confidence.

    Shots are cut where the colorizing pipeline cuts them (`SceneCutDetector`
    on the same gray frames). Only the frames since the shot's last keyframe
    are held, shrunk, and only while a later keyframe may still reach them.
    """
    cuts = SceneCutDetector()
    last_keyframe = max(anchors)
    forward: _Carried | None = None
    source = -1  # the keyframe `forward` comes from
    overlaid: _Carried | None = None  # after a cut: the last keyframe, for what stays in place (`_Carried.overlay`)
    before: np.ndarray | None = None  # the last frame, shrunk
    waiting: list[tuple[int, np.ndarray, int | None]] = []  # (index, shrunk gray, forward age): a later keyframe
    # of the shot may still reach these
    for frame in frames:
        if stop.is_set():
            return
        gray = imageops.shrink(frame.gray, size)
        if cuts(frame.gray):  # no colour crosses a cut, but for what stays in place (a logo)
            overlaid = forward or overlaid
            forward, waiting = None, []
        if frame.index in anchors:
            backward, after = _Carried.start(anchors[frame.index], gray), gray
            for index, earlier, age in reversed(waiting):
                backward.step(earlier, after)
                colour, after = backward.colour(frame.index), earlier
                if age is not None:
                    colour = _blend(colour, store.stored(index), age, backward.age)
                store.put(index, colour)
            forward, source, waiting = _Carried.start(anchors[frame.index], gray), frame.index, []
        elif forward is not None:
            forward.step(gray, before)
        if forward is not None:
            store.put(frame.index, forward.colour(source))
        elif overlaid is not None and (colour := overlaid.overlay(gray, source)) is not None:
            store.put(frame.index, colour)
        if frame.index < last_keyframe and frame.index not in anchors:
            waiting.append((frame.index, gray, forward.age if forward is not None else None))
        before = gray
        store.frames = frame.index + 1
        store.mark_final(waiting[0][0] if waiting else frame.index + 1)


def propagate(source: Path, keyframes: dict[int, Path], side: int = WORK_SIDE, wait: bool = True) -> KeyframeColour:
    """Each keyframe's colour carried through its shot (see the module's docstring), by a pass over `source` in a
    thread of its own; unless `wait`, it returns while the pass runs (the store's `get` waits for each frame).

    The keyframes are read first, so an unreadable or misshapen one fails here.
    """
    reader = VideoReader(source)
    store = None
    try:
        size = work_size(reader.height, reader.width, side)
        plane = imageops.chroma_plane_size(reader.height, reader.width)
        store = KeyframeColour(size, plane)
        anchors = {}
        for index, path in keyframes.items():  # one image at a time
            image = read_keyframe(path)
            anchors[index] = keyframe_chroma(image, reader.height, reader.width, size, str(path))
            store.put_detail(index, keyframe_detail(image, anchors[index], plane))

        def work(stop: threading.Event) -> None:
            try:
                _carry(reader.frames(), size, anchors, store, stop)
            finally:
                reader.close()
            late = sorted(index for index in anchors if index >= store.frames)
            if late:  # found only now: the frames it would have reached are still waiting for it
                raise KeyframeError(f"keyframe for frame {late[0]}: {source} has only {store.frames} frames "
                                    f"(0 to {store.frames - 1})")
            if not stop.is_set():
                store.mark_final(store.frames)

        store.start(work)
        if wait:
            store.wait()
        return store
    except BaseException:
        if store is not None:
            store.close()
        reader.close()
        raise


class KeyframeStage:
    """Hands each frame the keyframes' carried colour from the pass before: `frame.keyframe_chroma`/`keyframe_weight`.

    The chroma is made at the output's chroma size: the small carried chroma
    upsampled, plus the leading keyframe's fine detail read through each
    pixel's place in it. The confidence is blurred here, so the composite's
    blend over the models' colour has no seam where the flow gave up.
    """

    def __init__(self, colour: KeyframeColour):
        self.colour = colour
        self._details: dict[int, np.ndarray] = {}  # the keyframes the last frame read from

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        for frame in frames:
            carried = self.colour.get(frame.index)
            if carried is not None:
                frame.keyframe_chroma = self._sharp(carried)
                # pulled in from where the flow gave up, then softened: it reaches 0 there without a step (a logo
                # across a cut is held where it matches, with no flow to give up: only softened)
                held = carried.weight if carried.overlay else cv2.erode(carried.weight, _EDGE_KERNEL)
                frame.keyframe_weight = cv2.GaussianBlur(held, (0, 0), EDGE_BLUR)
                frame.keyframe_overlay = carried.overlay
        return frames

    def _sharp(self, carried: CarriedColour) -> np.ndarray:
        """The carried chroma at the plane size, (H, W, 2) float32: upsampled, with the keyframes' fine detail."""
        plane = self.colour.plane
        chroma = cv2.resize(carried.chroma, plane, interpolation=cv2.INTER_LINEAR)  # (H, W, 2)
        scale = np.array([plane[0] / self.colour.width, plane[1] / self.colour.height], np.float32)
        shift = cv2.resize(carried.shift * scale, plane, interpolation=cv2.INTER_LINEAR)  # in plane pixels
        places = cv2.add(temporal.pixel_grid(plane[1], plane[0]), shift)  # in the keyframe's plane
        self._details = {index: self._details[index] if index in self._details else self.colour.detail(index)
                         for index in carried.sources}
        details = [cv2.remap(self._details[index], places, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                   for index in dict.fromkeys(carried.sources)]
        if len(details) == 1:
            return cv2.add(chroma, details[0])
        share = cv2.resize(carried.later.astype(np.float32), plane, interpolation=cv2.INTER_LINEAR)[..., None]
        return chroma + details[0] * (1.0 - share) + details[1] * share


def export_keyframes(source: Path, folder: Path, every_seconds: float = 10.0, overwrite: bool = False) -> list[Path]:
    """The frames an archivist colours: the first of each shot, and one every `every_seconds` in a long shot.

    Written as gray PNGs named `<frame index>.png`, ready for `colorize --keyframes`. Existing files are
    refused before any is written, unless `overwrite`.
    """
    reader = VideoReader(source)
    try:
        cuts = SceneCutDetector()
        chosen: list[Frame] = []
        shot_start = None
        for frame in reader.frames():
            if cuts(frame.gray) or shot_start is None or frame.seconds - shot_start >= every_seconds:
                shot_start = frame.seconds  # a new shot, or a long one's next step
                chosen.append(frame)
    finally:
        reader.close()
    targets = [folder / f"{frame.index}.png" for frame in chosen]
    for target in targets:
        files.refuse_existing(target, overwrite)
    folder.mkdir(parents=True, exist_ok=True)
    for frame, target in zip(chosen, targets):
        files.write_image_atomic(target, frame.gray, overwrite)
    return targets
