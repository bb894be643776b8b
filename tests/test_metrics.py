import numpy as np
import pytest

from colorstream import metrics


def test_psnr_matches_hand_values():
    a = np.zeros((8, 8, 3), np.uint8)
    assert metrics.psnr(a, a + 1) == pytest.approx(48.1308036, abs=1e-6)  # MSE 1: 10 log10(255^2)
    b = a.copy()
    b[0, 0, 0] = 255  # one pixel of 192 off by 255: MSE 255^2 / 192
    assert metrics.psnr(a, b) == pytest.approx(10 * np.log10(192), abs=1e-9)
    assert metrics.psnr(a, a) == float("inf")


def test_gaussian_window_is_normalised_with_sigma_1_5():
    window = metrics.gaussian_window()
    assert window.shape == (11, 11)
    assert window.sum() == pytest.approx(1.0)
    assert window[5, 6] / window[5, 5] == pytest.approx(np.exp(-1 / (2 * 1.5 ** 2)))


def test_ssim_of_constant_images_is_the_luminance_term_by_hand():
    a = np.full((20, 20), 100.0)
    b = np.full((20, 20), 110.0)
    # variances and covariance are 0, so SSIM = (2*100*110 + C1) / (100^2 + 110^2 + C1), C1 = 6.5025
    assert metrics.ssim(a, b) == pytest.approx(22006.5025 / 22106.5025, abs=1e-12)
    assert metrics.ssim(a, b) == pytest.approx(0.99547644, abs=1e-8)


def test_ssim_map_equals_explicit_weighted_sums_at_one_window():
    rng = np.random.default_rng(1)
    a = rng.uniform(0, 255, (16, 16))
    b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255)
    w = metrics.gaussian_window()
    pa, pb = a[2:13, 3:14], b[2:13, 3:14]  # the window whose centre is (7, 8): map index (2, 3)
    mu_a, mu_b = (w * pa).sum(), (w * pb).sum()
    var_a, var_b = (w * (pa - mu_a) ** 2).sum(), (w * (pb - mu_b) ** 2).sum()
    cov = (w * (pa - mu_a) * (pb - mu_b)).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    expected = (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    ssim_map = metrics.ssim_map(a, b)
    assert ssim_map.shape == (6, 6)  # valid positions only: 16 - 11 + 1
    assert ssim_map[2, 3] == pytest.approx(expected, rel=1e-9)


def test_ssim_properties():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (32, 32, 3)).astype(np.uint8)
    noisy = np.clip(a + rng.normal(0, 30, a.shape), 0, 255).astype(np.uint8)
    noisier = np.clip(a + rng.normal(0, 80, a.shape), 0, 255).astype(np.uint8)
    assert metrics.ssim(a, a) == pytest.approx(1.0)
    assert metrics.ssim(a, noisy) == pytest.approx(metrics.ssim(noisy, a))
    assert 1.0 > metrics.ssim(a, noisy) > metrics.ssim(a, noisier)
    assert metrics.ssim(a, 255 - a) < 0  # anti-correlated structure
    with pytest.raises(ValueError):
        metrics.ssim(a, a[:20])
    with pytest.raises(ValueError):
        metrics.ssim(a[:8, :8], a[:8, :8])


def test_ab_error_is_the_mean_euclidean_lab_chroma_distance():
    # pure red and pure green in sRGB (D65): Lab (53.24, 80.09, 67.20) and (87.73, -86.18, 83.18)
    red, green = np.zeros((2, 3, 3), np.uint8), np.zeros((2, 3, 3), np.uint8)
    red[..., 2], green[..., 1] = 255, 255
    assert metrics.ab_error(red, green) == pytest.approx(np.hypot(80.09 + 86.18, 67.20 - 83.18), abs=0.3)
    gray, white = np.full((2, 3, 3), 90, np.uint8), np.full((2, 3, 3), 255, np.uint8)
    assert metrics.ab_error(gray, white) == pytest.approx(0.0, abs=0.1)  # blind to luminance (OpenCV: a, b ~0.03)
    half = red.copy()
    half[0] = green[0]
    assert metrics.ab_error(half, red) == pytest.approx(metrics.ab_error(green, red) / 2, rel=1e-6)


def test_colourfulness_matches_hand_values():
    gray = np.full((10, 10, 3), 77, np.uint8)
    assert metrics.colourfulness(gray) == pytest.approx(0.0)
    red = np.zeros((10, 10, 3), np.uint8)
    red[..., 2] = 255  # BGR: pure red; rg = 255, yb = 127.5, no spread
    assert metrics.colourfulness(red) == pytest.approx(0.3 * np.hypot(255, 127.5))
    half = red.copy()
    half[:, 5:] = 0  # half red, half black: std and mean of rg, yb are 127.5 and 63.75
    assert metrics.colourfulness(half) == pytest.approx(1.3 * np.hypot(127.5, 63.75))


def test_rank1_identification():
    rng = np.random.default_rng(3)
    gallery = rng.uniform(0, 255, (12, 10, 10))
    assert metrics.rank1_identification(gallery, gallery) == 1.0
    close = gallery + rng.normal(0, 5, gallery.shape)
    assert metrics.rank1_identification(gallery, close) == 1.0
    shuffled = close[::-1]  # probe i now shows person n-1-i
    assert metrics.rank1_identification(gallery, shuffled) == 0.0
    unrelated = rng.uniform(0, 255, (12, 10, 10))
    assert metrics.rank1_identification(gallery, unrelated) < 0.5
    assert metrics.rank1_identification(gallery[:1], unrelated[:1]) == 1.0  # a gallery of one: no PCA to fit


def test_rank1_identification_counts_a_probe_that_best_matches_a_distractor_as_a_miss():
    rng = np.random.default_rng(4)
    people = rng.uniform(0, 255, (12, 10, 10))
    probes = people[:8] + rng.normal(0, 5, (8, 10, 10))  # the first 8 are the probes' true photos
    assert metrics.rank1_identification(people, probes) == 1.0
    lookalikes = probes[:3] + rng.normal(0, 1, (3, 10, 10))  # other people, closer to three probes than their own
    assert metrics.rank1_identification(np.concatenate([people, lookalikes]), probes) == pytest.approx(5 / 8)
