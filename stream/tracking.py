"""Face tracks across frames: Haar detections every k-th frame, One Euro filtered boxes, scene cuts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from colorstream import imageops


class OneEuroFilter:
    """Casiez, Roussel and Vogel 2012: a low-pass filter whose cutoff rises with speed.

    Still boxes are smoothed hard (no jitter); moving boxes follow with little lag.
    """

    def __init__(self, min_cutoff: float = 0.5, beta: float = 0.01, d_cutoff: float = 1.0):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.value: np.ndarray | None = None
        self.speed: np.ndarray | None = None
        self.time: float | None = None

    @staticmethod
    def _alpha(cutoff, dt: float):
        tau = 1.0 / (2.0 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self.value is None:
            self.value, self.speed, self.time = x, np.zeros_like(x), t
            return x
        dt = t - self.time if t > self.time else 1.0 / 30.0  # repeated or missing timestamps
        a_d = self._alpha(self.d_cutoff, dt)
        self.speed = a_d * (x - self.value) / dt + (1.0 - a_d) * self.speed
        a = self._alpha(self.min_cutoff + self.beta * np.abs(self.speed), dt)
        self.value = a * x + (1.0 - a) * self.value
        self.time += dt
        return self.value


def iou(a: imageops.Box, b: imageops.Box) -> float:
    w = min(a.x + a.w, b.x + b.w) - max(a.x, b.x)
    h = min(a.y + a.h, b.y + b.h) - max(a.y, b.y)
    inter = max(0.0, w) * max(0.0, h)
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    id: int
    box: imageops.Box  # smoothed Haar box in frame pixels
    filter: OneEuroFilter = field(default_factory=OneEuroFilter)
    misses: int = 0


CONFIRM_IOU = 0.3
CONFIRM_NEIGHBORS = 3
SCAN_SLACK = 1e-3  # seconds: frame times are rounded, and 6 frames at 30 fps must count as 0.2 s
STALLED_STEP = 1.0 / 30.0  # seconds a frame counts for when its time repeats or goes back (a broken file)
RESCAN_MASK = 1.2  # a tracked face's box, grown this much, is flattened out of the full-frame rescan


def without_faces(gray: np.ndarray, boxes: list[imageops.Box], grow: float = RESCAN_MASK) -> np.ndarray:
    """A copy of `gray` with each box, grown by `grow` about its centre, blurred to a 4x4 gradient.

    A Haar cascade rejects a smooth window at its first stages but climbs
    deep into its stages on a face, so a rescan that only looks for new faces
    costs several times less on a talking head once the known ones are flattened
    (`python -m colorstream.stream.track_report` shows which tracks change). A gradient
    rather than a flat fill leaves no hard edge for the cascade to take for
    a face's outline.
    """
    flat = gray.copy()
    for box in boxes:
        cx, cy = box.center
        half = max(box.w, box.h) * grow / 2.0
        x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
        x1, y1 = min(gray.shape[1], int(np.ceil(cx + half))), min(gray.shape[0], int(np.ceil(cy + half)))
        if x1 > x0 and y1 > y0:
            patch = gray[y0:y1, x0:x1]
            tiny = cv2.resize(patch, (4, 4), interpolation=cv2.INTER_AREA)
            flat[y0:y1, x0:x1] = cv2.resize(tiny, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    return flat


def _merged(kept: list[imageops.Box], found: list[imageops.Box]) -> list[imageops.Box]:
    """`kept` plus the faces of `found` that are not already in it (IoU < 0.5 with each)."""
    return kept + [face for face in found if all(iou(face, other) < 0.5 for other in kept)]


class FaceTracker:
    """Detects faces every `detect_every` frames and carries smoothed boxes in between.

    Each detection looks near the tracked faces, at their size
    (`imageops.detect_faces_near`). The whole frame is scanned every
    `rescan_seconds` while faces are tracked, with them flattened out
    (`without_faces`), so a new face is found within that time; while none
    is, every `search_seconds`, or at every detection for `lost_seconds`
    after the last face was lost (it may come back at once); and at once
    after `reset`. A scan is the dearest step (120 ms on a 720p frame on our
    2-core CPU), so footage with no face must not pay it at every detection
    (README, "Detection"). A detection joins the track it overlaps most
    (IoU >= `min_iou`); a track unseen for more than `max_misses` detections
    is dropped, so its colour history goes with it.
    """

    def __init__(self, detect_every: int = 3, min_face: int = 40, detect_side: int = 480, rescan_seconds: float = 1.0,
                 search_seconds: float = 0.2, lost_seconds: float = 1.0, max_misses: int = 2, min_iou: float = 0.2,
                 min_cutoff: float = 0.5, beta: float = 0.01,
                 confirm_cascade: str | None = "haarcascade_frontalface_alt2.xml"):
        self.confirm_cascade = confirm_cascade
        self.detect_every, self.min_face, self.max_misses, self.min_iou = detect_every, min_face, max_misses, min_iou
        self.detect_side = detect_side
        self.rescan_seconds, self.search_seconds, self.lost_seconds = rescan_seconds, search_seconds, lost_seconds
        self.min_cutoff, self.beta = min_cutoff, beta
        self.tracks: list[Track] = []
        self._next_id = 0
        self._since_detection = 0
        self._clock = 0.0  # seconds of footage seen: the frames' own times, but never standing still or going back
        self._last_time: float | None = None
        self._scanned: float | None = None  # the clock at the last full-frame scan; None: scan at the next detection
        self._seen: float | None = None  # the clock when a face was last tracked

    def reset(self) -> None:
        """Forget all tracks, e.g. at a scene cut; the next frame is detected afresh."""
        self.tracks = []
        self._since_detection = 0
        self._scanned = self._seen = None

    def update(self, gray: np.ndarray, t: float) -> list[Track]:
        if self._last_time is not None:  # a repeated or backward time still moves the scan schedule on
            self._clock += t - self._last_time if t > self._last_time else STALLED_STEP
        self._last_time = t
        if self._since_detection % self.detect_every == 0:
            detections: list[imageops.Box] = []
            for track in self.tracks:  # windows of nearby tracks overlap: keep each face once
                detections = _merged(detections, imageops.detect_faces_near(gray, track.box))
            lost = self._seen is not None and self._clock - self._seen < self.lost_seconds  # it may be back soon
            wait = self.rescan_seconds if self.tracks else 0.0 if lost else self.search_seconds
            if self._scanned is None or self._clock - self._scanned + SCAN_SLACK >= wait:
                searched = without_faces(gray, [track.box for track in self.tracks])
                detections = _merged(detections, imageops.detect_faces(searched, min_face=self.min_face,
                                                                       max_side=self.detect_side))
                self._scanned = self._clock
            self._associate(gray, detections, t)
            if self.tracks:
                self._seen = self._clock
        self._since_detection += 1
        return list(self.tracks)

    def _confirmed(self, gray: np.ndarray, box: imageops.Box) -> bool:
        """Whether a second, differently trained cascade also finds this face: the two rarely share a false face."""
        if self.confirm_cascade is None:
            return True
        return any(iou(box, other) >= CONFIRM_IOU for other in
                   imageops.detect_faces_near(gray, box, cascade=self.confirm_cascade, min_neighbors=CONFIRM_NEIGHBORS))

    def _associate(self, gray: np.ndarray, detections: list[imageops.Box], t: float) -> None:
        unmatched = list(detections)
        for track in sorted(self.tracks, key=lambda tr: tr.box.area, reverse=True):
            best = max(unmatched, key=lambda d: iou(track.box, d), default=None)
            if best is not None and iou(track.box, best) >= self.min_iou:
                unmatched.remove(best)
                track.box = self._smooth(track.filter, best, t)
                track.misses = 0
            else:
                track.misses += 1
        self.tracks = [track for track in self.tracks if track.misses <= self.max_misses]
        for detection in filter(lambda d: self._confirmed(gray, d), unmatched):
            track = Track(self._next_id, detection, OneEuroFilter(self.min_cutoff, self.beta))
            track.box = self._smooth(track.filter, detection, t)
            self.tracks.append(track)
            self._next_id += 1

    @staticmethod
    def _smooth(one_euro: OneEuroFilter, box: imageops.Box, t: float) -> imageops.Box:
        cx, cy = box.center
        x, y, side = one_euro(np.array([cx, cy, max(box.w, box.h)]), t)
        return imageops.Box(x - side / 2.0, y - side / 2.0, side, side)


class SceneCutDetector:
    """Flags a frame whose small gray thumbnail differs from the last one's: by more than `threshold` (0-255) on
    average, or by more than `min_change` with a different layout (correlation below `max_correlation`).

    The second test finds the cuts a mean difference alone misses, between two dark or two similar-toned shots
    (a stage and a close-up under the same lights): motion, a flash or a fade keeps the thumbnails' layout
    (correlation 0.65 or more on every frame pair of our 7 clips and 8 pans), a cut does not (0.02 to 0.26 on
    hamilton's three; README, "A scene cut").
    """

    def __init__(self, threshold: float = 40.0, size: int = 32, min_change: float = 10.0,
                 max_correlation: float = 0.5):
        self.threshold, self.size = threshold, size
        self.min_change, self.max_correlation = min_change, max_correlation
        self._last: np.ndarray | None = None

    def __call__(self, gray: np.ndarray) -> bool:
        thumb = imageops.shrink(gray, (self.size, self.size)).astype(np.float32)
        last, self._last = self._last, thumb
        if last is None:
            return False
        change = float(np.mean(np.abs(thumb - last)))
        if change > self.threshold:
            return True
        if change <= self.min_change:
            return False
        now, before = thumb - thumb.mean(), last - last.mean()
        spread = float(np.sqrt((now * now).sum() * (before * before).sum()))
        return float((now * before).sum()) < self.max_correlation * spread  # a flat thumbnail has no layout
