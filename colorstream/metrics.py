"""The quality metrics we report, written out from their textbook definitions.

Images are uint8 or float arrays on a 0-255 scale, (H, W) or (H, W, C).
"""

from __future__ import annotations

import cv2
import numpy as np

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
DATA_RANGE = 255.0


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = DATA_RANGE) -> float:
    """Peak signal-to-noise ratio in dB over all pixels and channels; inf for identical images."""
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(data_range ** 2 / mse))


def ab_error(a_bgr: np.ndarray, b_bgr: np.ndarray) -> float:
    """Mean Euclidean distance of CIE Lab (a, b) between two BGR uint8 images, pixel by pixel: colour error alone,
    blind to luminance, the score for a colorizer whose luminance is given."""
    a_lab = cv2.cvtColor(np.asarray(a_bgr, np.float32) / 255.0, cv2.COLOR_BGR2Lab)
    b_lab = cv2.cvtColor(np.asarray(b_bgr, np.float32) / 255.0, cv2.COLOR_BGR2Lab)
    return float(np.mean(np.linalg.norm(a_lab[:, :, 1:] - b_lab[:, :, 1:], axis=2)))


def gaussian_profile(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """The normalised 1-D Gaussian whose outer product with itself is the SSIM window."""
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    profile = np.exp(-(offsets ** 2) / (2.0 * sigma ** 2))
    return profile / profile.sum()


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """The normalised 2-D Gaussian weighting window of Wang et al. 2004."""
    profile = gaussian_profile(size, sigma)
    return np.outer(profile, profile)


def _filter_valid(image: np.ndarray, profile: np.ndarray) -> np.ndarray:
    """Weighted local means at every position where the window fits inside the image.

    The window is separable, so it is applied as two 1-D passes (in float64,
    the same sums in another order): 10x faster, which video frames need.
    """
    half = len(profile) // 2
    return cv2.sepFilter2D(image, cv2.CV_64F, profile, profile, borderType=cv2.BORDER_CONSTANT)[half:-half, half:-half]


def ssim_map(a: np.ndarray, b: np.ndarray, data_range: float = DATA_RANGE) -> np.ndarray:
    """Wang et al. 2004 SSIM index for one channel, at every fully covered window position."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if min(a.shape) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {a.shape}")
    profile = gaussian_profile()
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    mu_a, mu_b = _filter_valid(a, profile), _filter_valid(b, profile)
    var_a = _filter_valid(a * a, profile) - mu_a ** 2
    var_b = _filter_valid(b * b, profile) - mu_b ** 2
    cov = _filter_valid(a * b, profile) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = DATA_RANGE) -> float:
    """Mean SSIM; for colour images the mean over channels of each channel's mean SSIM."""
    if a.shape != b.shape:
        raise ValueError(f"SSIM needs images of one shape, got {a.shape} and {b.shape}")
    if a.ndim == 2:
        return float(ssim_map(a, b, data_range).mean())
    return float(np.mean([ssim_map(a[..., c], b[..., c], data_range).mean() for c in range(a.shape[2])]))


def colourfulness(image_bgr: np.ndarray) -> float:
    """Hasler and Suesstrunk 2003 colourfulness M = sigma_rgyb + 0.3 * mu_rgyb of a BGR image."""
    image = np.asarray(image_bgr, np.float64)
    blue, green, red = image[..., 0], image[..., 1], image[..., 2]
    rg = red - green
    yb = 0.5 * (red + green) - blue
    sigma = np.sqrt(rg.std() ** 2 + yb.std() ** 2)
    mu = np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    return float(sigma + 0.3 * mu)


def rank1_identification(gallery: np.ndarray, probes: np.ndarray, energy: float = 0.95) -> float:
    """Rank-1 rate of a PCA + correlation matcher: probe i should match gallery i best.

    gallery: (m, H, W) gray images, m >= n, the ones past n being other
    people's (distractors); probes: (n, H, W) gray images. PCA ("eigenfaces") is fitted on
    the gallery, keeping the components that explain `energy` of its
    variance; a probe matches the gallery image whose coefficients have the
    highest Pearson correlation with its own.
    """
    if len(gallery) < 2:  # one candidate is always the best match; PCA of one image has no variance
        return 1.0 if len(gallery) else float("nan")
    g = gallery.reshape(len(gallery), -1).astype(np.float64)
    p = probes.reshape(len(probes), -1).astype(np.float64)
    mean = g.mean(axis=0)
    _, singular, components = np.linalg.svd(g - mean, full_matrices=False)
    explained = np.cumsum(singular ** 2) / np.sum(singular ** 2)
    keep = int(np.searchsorted(explained, energy) + 1)
    g_coef = (g - mean) @ components[:keep].T  # (n, keep)
    p_coef = (p - mean) @ components[:keep].T
    g_coef = (g_coef - g_coef.mean(1, keepdims=True)) / (g_coef.std(1, keepdims=True) + 1e-12)
    p_coef = (p_coef - p_coef.mean(1, keepdims=True)) / (p_coef.std(1, keepdims=True) + 1e-12)
    correlation = p_coef @ g_coef.T / keep  # (n_probes, n_gallery)
    return float(np.mean(np.argmax(correlation, axis=1) == np.arange(len(p))))
