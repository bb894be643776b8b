"""Training losses. The paper's is MSE; the others are measured against it (see MODEL_CARD.md)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from colorstream.metrics import SSIM_K1, SSIM_K2, gaussian_window

LOSSES = ("mse", "l1", "mse+ssim", "l1+ssim")


def ssim_torch(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Differentiable mean SSIM of (B, C, H, W) images in [0, 1], with the metric's own window."""
    channels = a.shape[1]
    window = torch.as_tensor(gaussian_window(), dtype=a.dtype, device=a.device)
    window = window.expand(channels, 1, *window.shape)  # depthwise: (C, 1, 11, 11)

    def local_mean(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, window, groups=channels)  # valid positions only, as in the metric

    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
    mu_a, mu_b = local_mean(a), local_mean(b)
    var_a = local_mean(a * a) - mu_a ** 2
    var_b = local_mean(b * b) - mu_b ** 2
    cov = local_mean(a * b) - mu_a * mu_b
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return index.mean()


def loss_fn(name: str, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """prediction, target: (B, 3, N, N) RGB in [0, 1]."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; expected one of {LOSSES}")
    pixel = F.mse_loss if name.startswith("mse") else F.l1_loss
    loss = pixel(prediction, target)
    if name.endswith("+ssim"):
        loss = loss + 0.5 * (1.0 - ssim_torch(prediction.clamp(0, 1), target))
    return loss


def ab_soft_targets(ab: torch.Tensor, bins: torch.Tensor, neighbours: int = 5, sigma: float = 5.0) -> torch.Tensor:
    """Zhang et al. 2016's soft encoding: each pixel's a/b spread over its nearest bins with a Gaussian kernel.

    ab: (B, h, w, 2) Lab a/b; bins: (Q, 2) -> (B, Q, h, w) weights that sum to 1 per pixel.
    """
    batch, height, width, _ = ab.shape
    distances = torch.cdist(ab.reshape(-1, 2), bins)  # (B*h*w, Q)
    nearest, index = distances.topk(neighbours, dim=1, largest=False)  # (B*h*w, k)
    weights = torch.softmax(-nearest ** 2 / (2.0 * sigma ** 2), dim=1)
    targets = torch.zeros_like(distances).scatter_(1, index, weights)  # (B*h*w, Q)
    return targets.reshape(batch, height, width, -1).permute(0, 3, 1, 2)


def ab_classification_loss(logits: torch.Tensor, ab: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of (B, Q, h, w) logits against the soft-encoded (B, h, w, 2) true a/b."""
    return -(ab_soft_targets(ab, bins) * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()
