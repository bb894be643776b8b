"""Per-track colour smoothing: resets, averaging when still, and no after-images when the face moves."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from colorstream import imageops
from colorstream.stream.frames import Face, Frame
from colorstream.stream.smoothing import METHODS, AdaptiveAverage, FlowSmoothing, still_weight
from colorstream.stream.stages import Smooth
from test_temporal import texture


def frame_with_face(chroma_a: float, crop: np.ndarray, track: int = 0, cut: bool = False) -> Frame:
    """A frame with one face whose model output has Lab a = `chroma_a` (b = 0) everywhere."""
    size = crop.shape[0]
    lab = np.zeros((size, size, 3), np.float32)
    lab[..., 0], lab[..., 1] = 60.0, chroma_a
    frame = Frame(0, np.zeros((8, 8, 3), np.uint8), scene_cut=cut)
    frame.faces = [Face(track, imageops.Box(0, 0, size, size), crop=crop, colour=imageops.lab_to_bgr(lab))]
    return frame


def smoothed_a(smooth: Smooth, chroma_a: float, crop: np.ndarray, **kwargs) -> np.ndarray:
    return smooth([frame_with_face(chroma_a, crop, **kwargs)])[0].faces[0].chroma[..., 0]


@pytest.mark.parametrize("method", METHODS)
def test_every_face_aligned_method_starts_afresh_at_a_scene_cut_and_on_a_new_track(method):
    crop = texture(48, 48)
    smooth = Smooth(method, window=5)
    fresh = smoothed_a(Smooth(method), 20.0, crop)  # what a first frame of 20 gives: 20, up to Lab rounding
    for _ in range(4):
        smoothed_a(smooth, 0.0, crop)
    assert np.allclose(smoothed_a(smooth, 20.0, crop, cut=True), fresh, atol=1e-4)
    smoothed_a(smooth, 0.0, crop)
    assert np.allclose(smoothed_a(smooth, 20.0, crop, track=5), fresh, atol=1e-4)


def test_adaptive_average_weights_by_how_much_the_crop_changed():
    still, other = texture(32, 32, seed=1), texture(32, 32, seed=2)
    ones, zeros = np.ones((32, 32, 2), np.float32), np.zeros((32, 32, 2), np.float32)
    smoother = AdaptiveAverage(base=0.25, scale=8.0)
    smoother(zeros, still)
    assert np.allclose(smoother(ones, still), 0.25)  # nothing moved: the base weight, like "ema"
    brighter = (still.astype(np.int16) + 4).clip(0, 255).astype(np.uint8)
    motion = float(np.mean(np.abs(brighter.astype(np.float32) - still)))
    expected = 0.25 + 0.75 * motion / 8.0  # half-way to the scale: half-way to weight 1
    assert np.allclose(smoother(zeros, brighter), 0.25 * (1 - expected), atol=1e-6)
    assert np.allclose(smoother(ones, other), 1.0)  # a different picture: only the current frame counts


def composited(gray: np.ndarray, cr: np.ndarray | float, cut: bool = False) -> Frame:
    """A frame as `Composite` leaves it: its own luma, chroma Cr = `cr` (Cb = 0), one face box over all of it.

    `cr` is given at frame size and subsampled to the 4:2:0 plane, as the composite makes it.
    """
    full = np.broadcast_to(np.asarray(cr, np.float32), gray.shape)
    plane = cv2.resize(full, (gray.shape[1] // 2, gray.shape[0] // 2), interpolation=cv2.INTER_AREA)
    cr_plane = np.clip(128.0 + plane + 0.5, 0, 255).astype(np.uint8)
    frame = Frame(0, gray, scene_cut=cut, chroma=(np.full_like(cr_plane, 128), cr_plane))
    frame.faces = [Face(0, imageops.Box(0, 0, gray.shape[1], gray.shape[0]))]
    return frame


def output_cr(smooth: FlowSmoothing, frame: Frame) -> np.ndarray:
    """Cr of the smoothed output around 0, brought back to frame size (8-bit planes: good to about 1)."""
    cr = smooth([frame])[0].chroma[1].astype(np.float32) - 128.0
    return cv2.resize(cr, (frame.gray.shape[1], frame.gray.shape[0]), interpolation=cv2.INTER_LINEAR)


def mid_texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A texture in mid-gray tones, where Cr = 30 is still inside the RGB cube."""
    return (90 + texture(height, width, seed) // 3).astype(np.uint8)


def test_flow_smoothing_averages_a_still_face_like_an_exponential_average_and_keeps_luma():
    gray = mid_texture(64, 64)
    smooth = FlowSmoothing(base=still_weight(5))  # weight 1/3 on the current frame
    assert np.allclose(output_cr(smooth, composited(gray, 0.0)), 0.0, atol=1.0)
    second = smooth([composited(gray, 9.0)])[0]
    assert np.allclose(second.chroma[1].astype(np.float32) - 128.0, 3.0, atol=1.0)  # 9/3 + 0 * 2/3
    assert np.array_equal(second.luma, imageops.gray_to_luma(gray))  # only the chroma planes change
    rng = np.random.default_rng(0)
    noisy = [10.0 + rng.normal(0.0, 2.0, (64, 64)) for _ in range(30)]
    outputs = [output_cr(smooth, composited(gray, chroma)) for chroma in noisy]
    assert np.std(outputs[-1]) < 0.6 * np.std(noisy[-1])  # flicker damped
    assert np.mean(outputs[-1]) == pytest.approx(10.0, abs=0.3)  # around the true colour


def test_flow_smoothing_clamps_the_history_to_the_current_prediction():
    gray = mid_texture(64, 64)
    smooth = FlowSmoothing(base=1 / 3, clamp=8.0)
    smooth([composited(gray, 0.0)])
    # history 0 is 24 away from the current 24: clamped to 24 - 8, then 1/3 * 24 + 2/3 * (24 - 8)
    assert np.allclose(output_cr(smooth, composited(gray, 24.0)), 24.0 - 2 / 3 * 8.0, atol=1.0)


def test_flow_smoothing_starts_afresh_at_a_scene_cut():
    gray = mid_texture(64, 64)
    smooth = FlowSmoothing(base=1 / 3)
    smooth([composited(gray, 0.0)])
    assert np.allclose(output_cr(smooth, composited(gray, 20.0, cut=True)), 20.0, atol=1.0)


def test_flow_smoothing_fades_a_face_in_and_out_within_the_clamp():
    gray = mid_texture(64, 64)

    def faceless() -> Frame:
        frame = composited(gray, 0.0)
        frame.faces = []
        return frame

    smooth = FlowSmoothing(base=1 / 3, clamp=8.0)
    smooth([faceless()])
    # a face appears mid-shot over gray (history 0): it starts at most 2/3 of the clamp short of its colour
    assert np.allclose(output_cr(smooth, composited(gray, 20.0)), 20.0 - 2 / 3 * 8.0, atol=1.0)
    assert np.allclose(output_cr(smooth, composited(gray, 20.0)), 20.0 - 2 / 3 * (2 / 3 * 8.0), atol=1.0)
    assert np.allclose(output_cr(smooth, faceless()), 2 / 3 * 8.0, atol=1.0)  # the colour lingers one frame
    assert np.allclose(output_cr(smooth, faceless()), 0.0, atol=1.0)  # and is gone the next


def test_flow_smoothing_leaves_a_frame_the_keyframes_colour_covers_and_blends_the_next_with_it():
    gray = mid_texture(64, 64)
    smooth = FlowSmoothing(base=1 / 3)
    smooth([composited(gray, 0.0)])
    covered = composited(gray, 12.0)
    covered.keyframe_weight = np.ones((16, 16), np.float32)  # the carried colour leads everywhere
    assert np.allclose(output_cr(smooth, covered), 12.0, atol=1.0)  # as carried, not pulled towards 0
    uncovered = composited(gray, 24.0)
    uncovered.keyframe_weight = np.zeros((16, 16), np.float32)  # the models' colour leads: smoothed
    assert np.allclose(output_cr(smooth, uncovered), 24.0 / 3 + 12.0 * 2 / 3, atol=1.0)


def test_flow_smoothing_works_on_shrunk_planes_and_touches_only_the_faces():
    gray = mid_texture(96, 160)
    smooth = FlowSmoothing(base=1 / 3, work_side=32)  # 6 x 6 frame pixels a block: 48x80 chroma planes shrunk 3x
    for cr in (0.0, 9.0):
        frame = composited(gray, cr)
        frame.faces = [Face(0, imageops.Box(30, 20, 60, 60))]
        before = frame.chroma[1].copy()
        after = smooth([frame])[0].chroma[1]
    outside = np.ones(before.shape, bool)
    outside[9:42, 15:45] = False  # the box in chroma pixels (15..45, 10..40), grown to whole 3 x 3 blocks
    assert np.array_equal(after[outside], before[outside])
    assert np.allclose(after[18:32, 23:37].astype(np.float32) - 128.0, 3.0, atol=1.0)


def moving_stripe(offset: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured frame panned `offset` pixels right, and Cr that is 30 on a stripe of the texture."""
    scene = mid_texture(64, 160, seed=3)
    gray = np.ascontiguousarray(scene[:, 40 - offset:104 - offset])
    chroma = np.zeros((64, 64), np.float32)
    chroma[:, 20 + offset:30 + offset] = 30.0  # the stripe is at texture columns 60..69
    return gray, chroma


def test_flow_smoothing_follows_a_moving_face_where_a_plain_average_ghosts():
    smooth, unsmoothed = FlowSmoothing(base=still_weight(5)), FlowSmoothing(base=1.0)
    average = None
    for offset in range(0, 16, 3):  # 3 pixels a frame
        gray, chroma = moving_stripe(offset)
        flowed = output_cr(smooth, composited(gray, chroma))
        plain = output_cr(unsmoothed, composited(gray, chroma))  # the same frame through the 4:2:0 plane alone
        average = chroma if average is None else chroma / 3 + 2 * average / 3  # the same weights, no flow
    ghost_flow = float(np.abs(flowed - plain)[8:-8, 8:-8].mean())
    ghost_average = float(np.abs(average - chroma)[8:-8, 8:-8].mean())
    assert ghost_average > 3.0  # colour smeared along the stripe's path
    assert ghost_flow < 0.25 * ghost_average
