"""Temporal-consistency measures against their definitions, on tiny hand-made examples."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from colorstream import temporal


def texture(height: int = 64, width: int = 80, seed: int = 0) -> np.ndarray:
    """Smooth random gray texture, (height, width) uint8: something optical flow can lock on to."""
    noise = np.random.default_rng(seed).uniform(0, 255, (height, width)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 2.0)
    return cv2.normalize(smooth, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def constant_flow(height: int, width: int, dx: float, dy: float) -> np.ndarray:
    flow = np.zeros((height, width, 2), np.float32)
    flow[..., 0], flow[..., 1] = dx, dy
    return flow


def test_warp_with_a_constant_flow_shifts_the_image():
    image = texture()
    shifted = temporal.warp(image, constant_flow(64, 80, 3, -2))
    # sampled at (x + 3, y - 2): output row y, column x is input row y - 2, column x + 3
    assert np.array_equal(shifted[2:, :-3], image[:-2, 3:])
    colour = np.dstack([image, 255 - image, image // 2])
    assert np.array_equal(temporal.warp(colour, constant_flow(64, 80, 3, -2))[2:, :-3], colour[:-2, 3:])


def test_flow_points_from_source_to_where_its_content_went():
    source = texture(96, 96)
    target = np.zeros_like(source)
    target[:, 4:] = source[:, :-4]  # the content moved 4 pixels right: source(x) = target(x + 4)
    target[:, :4] = source[:, :1]
    flow = temporal.flow(source, target)
    assert flow.shape == (96, 96, 2) and flow.dtype == np.float32
    interior = flow[16:-16, 16:-16]
    assert np.median(interior[..., 0]) == pytest.approx(4.0, abs=0.1)
    assert np.median(interior[..., 1]) == pytest.approx(0.0, abs=0.1)


@pytest.mark.parametrize("height, width", [(8, 64), (12, 200), (8, 8), (3, 1)])
def test_flow_of_a_tiny_or_thin_frame_has_its_shape(height, width):
    """OpenCV's DIS crashes the process on a frame 8 to 24 pixels high, and refuses 8x8; the flow pads them."""
    source = texture(height, width)
    field = temporal.flow(source, np.roll(source, 1, axis=1), cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
    assert field.shape == (height, width, 2) and np.isfinite(field).all()


def test_occlusion_mask_formula_by_hand():
    def one_pixel(forward, backward):
        return temporal.occlusion_mask(constant_flow(1, 1, *forward), constant_flow(1, 1, *backward))[0, 0]

    # |fw + bw|^2 > 0.01 (|fw|^2 + |bw|^2) + 0.5
    assert not one_pixel((0.5, 0), (0, 0))  # 0.25 against 0.5025
    assert one_pixel((1, 0), (0, 0))  # 1 against 0.51
    assert not one_pixel((30, 0), (-27, 0))  # 9 against 0.01 * 1629 + 0.5 = 16.79: large motion is allowed more
    assert one_pixel((30, 0), (-25, 0))  # 25 against 0.01 * 1525 + 0.5 = 15.75
    assert not temporal.occlusion_mask(constant_flow(8, 8, 2, -1), constant_flow(8, 8, -2, 1)).any()  # translation


def test_occlusion_mask_reads_the_backward_flow_where_the_forward_flow_lands():
    forward = constant_flow(10, 20, 2, 0)
    backward = constant_flow(10, 20, -2, 0)
    backward[:, :10] = 0  # the content of columns < 10 of the second frame came from nowhere in the first
    occluded = temporal.occlusion_mask(forward, backward)
    # pixel x lands on x + 2; consistent exactly where x + 2 >= 10
    assert occluded[:, :8].all() and not occluded[:, 8:].any()


def test_warp_error_is_zero_for_a_translated_image_with_its_true_flow():
    previous = np.dstack([texture(seed=s) for s in range(3)])
    current = np.zeros_like(previous)
    current[:, 3:] = previous[:, :-3]  # moved 3 right: current(x) = previous(x - 3)
    to_previous = constant_flow(64, 80, -3, 0)
    valid = np.zeros((64, 80), bool)
    valid[:, 3:] = True  # the first columns came from outside the frame
    assert temporal.warp_error(previous, current, to_previous, valid) == 0.0
    unwarped = temporal.warp_error(previous, current, np.zeros_like(to_previous), valid)
    assert unwarped > 1e-3


def test_warp_error_is_the_masked_mean_square_in_unit_range():
    previous = np.zeros((4, 5, 3), np.uint8)
    current = np.full((4, 5, 3), 51, np.uint8)  # 0.2 in [0, 1] units
    current[0, 0] = 255  # outside the mask: ignored
    valid = np.ones((4, 5), bool)
    valid[0, 0] = False
    zero = np.zeros((4, 5, 2), np.float32)
    assert temporal.warp_error(previous, current, zero, valid) == pytest.approx(0.04)
    assert temporal.warp_error(previous, current, zero, np.zeros((4, 5), bool)) == 0.0


def test_flow_mask_and_warp_error_together_on_a_moving_texture():
    base = np.dstack([texture(96, 120, seed=s) for s in range(3)])
    previous, current = base[:, 2:98], base[:, :96]  # current(x) = previous(x - 2): a pan to the right
    gray_previous, gray_current = (cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) for image in (previous, current))
    to_previous = temporal.flow(gray_current, gray_previous)
    valid = ~temporal.occlusion_mask(to_previous, temporal.flow(gray_previous, gray_current))
    assert valid.mean() > 0.8
    warped = temporal.warp_error(previous, current, to_previous, valid)
    assert warped < 0.1 * temporal.warp_error(previous, current, np.zeros_like(to_previous), valid)


def test_js_divergence_by_hand_and_against_scipy():
    assert temporal.js_divergence([1, 2, 3], [1, 2, 3]) == 0.0
    assert temporal.js_divergence([5, 0], [0, 7]) == pytest.approx(np.log(2))  # disjoint: ln 2 nats
    # p = (1, 0), q = (1/2, 1/2), m = (3/4, 1/4): KL(p||m) = ln 4/3, KL(q||m) = 1/2 ln 4/3
    assert temporal.js_divergence([1, 0], [1, 1]) == pytest.approx(0.75 * np.log(4 / 3))
    rng = np.random.default_rng(0)
    p, q = rng.integers(0, 50, 256), rng.integers(0, 50, 256)
    assert temporal.js_divergence(p, q) == pytest.approx(jensenshannon(p, q) ** 2)  # scipy gives the square root
    assert temporal.js_divergence(p, q) == pytest.approx(temporal.js_divergence(q, p))


def test_channel_histograms_count_each_channel():
    image = np.zeros((2, 3, 3), np.uint8)
    image[..., 1] = 7
    image[0, 0, 2] = 255
    histograms = temporal.channel_histograms(image)
    assert histograms.shape == (3, 256)
    assert histograms[0, 0] == 6 and histograms[1, 7] == 6
    assert histograms[2, 0] == 5 and histograms[2, 255] == 1


def cdc_of(frames: list[np.ndarray]) -> float:
    cdc = temporal.ColourDistributionConsistency()
    for frame in frames:
        cdc.add(frame)
    return cdc.value


def test_cdc_by_hand():
    black, white = np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 255, np.uint8)
    assert cdc_of([black] * 6) == 0.0
    # alternating: every pair at distance 1 is disjoint in all channels (ln 2), at distance 2 and 4 identical
    assert cdc_of([black, white, black, white, black]) == pytest.approx(np.log(2) / 3)
    blue = black.copy()
    blue[..., 0] = 255  # only one channel of three differs: ln 2 / 3 per pair at distance 1
    assert cdc_of([black, blue, black, blue, black]) == pytest.approx(np.log(2) / 9)
    # black to white at frame 2 of 6: distance 1 has 1 disjoint pair of 5, distance 2 has 2 of 4, distance 4 2 of 2
    frames = [black, black, white, white, white, white]
    assert cdc_of(frames) == pytest.approx(np.log(2) * (1 / 5 + 2 / 4 + 2 / 2) / 3)


def test_cdc_of_short_clips_uses_the_distances_it_has():
    black, white = np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 255, np.uint8)
    assert cdc_of([black]) == 0.0
    assert cdc_of([black, white]) == pytest.approx(np.log(2))  # only distance 1 exists


def test_vector_lengths_are_euclidean():
    vectors = np.random.default_rng(0).normal(0, 5, (7, 9, 2)).astype(np.float32)
    assert np.allclose(temporal.length(vectors), np.linalg.norm(vectors, axis=2), rtol=1e-6)
    assert np.allclose(temporal.squared_length(vectors), np.sum(vectors ** 2, axis=2), rtol=1e-6)
    assert temporal.length(np.array([3.0, 4.0])) == 5.0
