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
