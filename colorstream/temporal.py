"""Temporal-consistency measures of video, and the optical flow they (and flow smoothing) need.

Flow convention: `flow(a, b)` is w_{a->b}, so that a(x) ~ b(x + w_{a->b}(x)).
To bring frame b into a's coordinates, sample b at x + w_{a->b}(x): that is
`warp(b, w_{a->b})`. Warping output t-1 onto frame t therefore takes the
flow from t to t-1.
"""

from __future__ import annotations

from collections import deque
from functools import lru_cache

import cv2
import numpy as np

CDC_STEPS = (1, 2, 4)  # frame distances d of the colour distribution consistency, each weighted 1/3
MIN_FLOW_SIDE = 32  # OpenCV's DIS crashes (SIGSEGV) on a frame 8 to 24 pixels high, and refuses 8x8: pad up to this


def flow(source: np.ndarray, target: np.ndarray, preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) -> np.ndarray:
    """Dense DIS optical flow w from `source` to `target`, (H, W) uint8 gray each -> (H, W, 2) float32 in pixels.

    MEDIUM is for measuring; FAST is about 8x cheaper and good enough where flow only guides smoothing.
    A DIS object is made for each call: one that has computed flow before gives another answer (by up to
    0.05 px on a test clip), so a frame's colour would depend on every frame before it, and a film
    colorized in segments would differ from one colorized in one piece. Making one costs a fraction of a ms.
    """
    height, width = source.shape
    pad = {"top": 0, "left": 0, "bottom": max(0, MIN_FLOW_SIDE - height), "right": max(0, MIN_FLOW_SIDE - width)}
    if pad["bottom"] or pad["right"]:  # a tiny or very thin frame: its edge repeated, the flow of the pad dropped
        source, target = (cv2.copyMakeBorder(image, borderType=cv2.BORDER_REPLICATE, **pad)
                          for image in (source, target))
    dis = cv2.DISOpticalFlow_create(preset)
    field = dis.calc(np.ascontiguousarray(source), np.ascontiguousarray(target), None)
    return np.ascontiguousarray(field[:height, :width])


@lru_cache(maxsize=8)
def pixel_grid(height: int, width: int) -> np.ndarray:
    """(H, W, 2) float32 pixel coordinates (x, y); shared, so never written to."""
    grid = np.dstack(np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)))
    grid.flags.writeable = False
    return grid


def warp(image: np.ndarray, flow_field: np.ndarray) -> np.ndarray:
    """`image` sampled at x + flow(x) (bilinear, border replicated); same shape and dtype as `image`."""
    target = pixel_grid(*flow_field.shape[:2]) + flow_field
    return cv2.remap(image, target[..., 0], target[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def occlusion_mask(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """Pixels of the source frame that fail the forward-backward check (True = occluded), (H, W) bool.

    forward is w_{a->b}, backward w_{b->a}; the backward flow is read where the
    forward flow lands, w_bw = w_{b->a}(x + w_{a->b}(x)), and x is occluded when
    |w_fw + w_bw|^2 > 0.01 (|w_fw|^2 + |w_bw|^2) + 0.5 (Lai et al. 2018, after Sundaram et al. 2010).
    """
    landed = warp(backward, forward)
    mismatch = squared_length(forward + landed)
    magnitude = squared_length(forward) + squared_length(landed)
    return mismatch > 0.01 * magnitude + 0.5


def squared_length(vectors: np.ndarray) -> np.ndarray:
    """(..., 2) -> (...) x^2 + y^2; several times faster than a numpy reduction over an axis of two."""
    x, y = vectors[..., 0], vectors[..., 1]
    return x * x + y * y


def length(vectors: np.ndarray) -> np.ndarray:
    """(..., 2) -> (...) Euclidean length."""
    return np.sqrt(squared_length(vectors))


def warp_error(previous: np.ndarray, current: np.ndarray, flow_to_previous: np.ndarray,
               valid: np.ndarray) -> float:
    """Lai et al. 2018 warp error of one frame pair: the mean squared difference between `current` and
    `previous` warped onto it, over the `valid` (unoccluded) pixels and all channels.

    previous, current: (H, W, 3) uint8, scaled to [0, 1]; flow_to_previous: w_{t->t-1};
    valid: (H, W) bool. 0 when no pixel is valid.
    """
    if not valid.any():
        return 0.0
    warped = warp(previous, flow_to_previous).astype(np.float32) / 255.0
    difference = current.astype(np.float32) / 255.0 - warped  # (H, W, 3)
    return float(np.mean(difference[valid] ** 2))


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence of two histograms (normalised here), in nats: 0 when equal, ln 2 when disjoint."""
    p = np.asarray(p, np.float64) / np.sum(p)
    q = np.asarray(q, np.float64) / np.sum(q)
    middle = 0.5 * (p + q)

    def kl_to_middle(r: np.ndarray) -> float:
        used = r > 0  # 0 log 0 = 0; middle > 0 wherever r > 0
        return float(np.sum(r[used] * np.log(r[used] / middle[used])))

    return 0.5 * kl_to_middle(p) + 0.5 * kl_to_middle(q)


def channel_histograms(image: np.ndarray) -> np.ndarray:
    """(H, W, C) uint8 -> (C, 256) counts of each channel's values."""
    return np.stack([np.bincount(image[..., c].ravel(), minlength=256) for c in range(image.shape[2])])


class ColourDistributionConsistency:
    """CDC (Liu et al. 2021): for d in {1, 2, 4}, the mean over frame pairs (t, t+d) of the Jensen-Shannon
    divergence of per-channel 256-bin histograms (averaged over channels); the three means weighted 1/3.

    Fed one frame at a time; it keeps only the last four frames' histograms.
    Lower is more consistent; 0 for a clip whose colour distribution never changes.
    """

    def __init__(self):
        self._recent: deque[np.ndarray] = deque(maxlen=max(CDC_STEPS))
        self._sums = dict.fromkeys(CDC_STEPS, 0.0)
        self._pairs = dict.fromkeys(CDC_STEPS, 0)

    def add(self, image: np.ndarray) -> None:
        histograms = channel_histograms(image)
        for step in CDC_STEPS:
            if len(self._recent) >= step:
                earlier = self._recent[-step]
                self._sums[step] += float(np.mean([js_divergence(h0, h1) for h0, h1 in zip(earlier, histograms)]))
                self._pairs[step] += 1
        self._recent.append(histograms)

    @property
    def value(self) -> float:
        """The CDC so far; a step with no frame pair yet (clips under 5 frames) is left out of the mean."""
        means = [self._sums[step] / self._pairs[step] for step in CDC_STEPS if self._pairs[step]]
        return float(np.mean(means)) if means else 0.0
