"""Training losses. The paper's is MSE; the others are measured against it (see MODEL_CARD.md).

Pixel losses average the plausible photos a sketch allows, which blurs
detail; two terms push back. `edge_loss` compares the luma gradients of
output and photo, so the strokes' edges must come through. The adversarial
term is pix2pix's: a small PatchGAN judges (sketch, photo) pairs patch by
patch, with least-squares targets for stable training from scratch.
"""

from __future__ import annotations

import torch
import torch.nn as nn
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


LUMA_RGB = (0.299, 0.587, 0.114)  # BT.601, as the metrics' gray


def luma(rgb: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB -> (B, 1, H, W) luma."""
    weights = torch.tensor(LUMA_RGB, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return (rgb * weights).sum(dim=1, keepdim=True)


def sobel(gray: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) -> (B, 2, H-2, W-2): horizontal and vertical Sobel gradients at valid positions."""
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=gray.dtype, device=gray.device)
    kernels = torch.stack([kx, kx.t()]).unsqueeze(1) / 8.0  # (2, 1, 3, 3), unit gain on a unit ramp
    return F.conv2d(gray, kernels)


def edge_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between the luma gradients of (B, 3, H, W) RGB prediction and target."""
    return F.l1_loss(sobel(luma(prediction)), sobel(luma(target)))


class PatchDiscriminator(nn.Module):
    """pix2pix's PatchGAN, small: (sketch, RGB photo) -> a real/fake score per patch.

    Three stride-2 convs and two stride-1 convs give each score pix2pix's
    receptive field of 70 pixels, about half a 128-pixel face view: eyes,
    mouth and hairline are judged as parts, not the face as a whole. Training only; it
    is never saved in a model checkpoint.
    """

    def __init__(self, channels: int = 32):
        super().__init__()
        c = channels

        def block(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 4, stride, 1), nn.InstanceNorm2d(c_out), nn.LeakyReLU(0.2, inplace=True)]

        self.body = nn.Sequential(
            nn.Conv2d(4, c, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),  # (B, c, N/2, N/2)
            *block(c, 2 * c, 2),  # (B, 2c, N/4, N/4)
            *block(2 * c, 4 * c, 2),  # (B, 4c, N/8, N/8)
            *block(4 * c, 4 * c, 1),  # (B, 4c, N/8 - 1, N/8 - 1)
            nn.Conv2d(4 * c, 1, 4, 1, 1))  # (B, 1, N/8 - 2, N/8 - 2) scores

    def forward(self, sketch: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
        # sketch: (B, 1, N, N) in [0, 1]; photo: (B, 3, N, N) RGB in [0, 1]
        return self.body(torch.cat([sketch, photo], dim=1) - 0.5)


def adversarial_loss(scores: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN (Mao et al. 2017): real patches are pushed to 1, fake ones to 0."""
    return F.mse_loss(scores, torch.full_like(scores, 1.0 if real else 0.0))


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
