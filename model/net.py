"""The networks: face models (a 1-channel sketch or gray face at N x N in, an RGB photo out) and the scene model.

Three architectures share one config:
- "paper": the baseline of the sketch-inversion paper, 5 conv + 2 deconv + 1 conv with ReLU;
- "unet": an encoder-decoder with skip connections and residual blocks at the
  bottleneck, after Convolutional Sketch Inversion. The face models use it.
- "scene": whole-frame colour. Gray luminance in, a distribution over quantised
  Lab a/b bins out at a quarter of the input's resolution (Zhang et al. 2016, with a
  global-context branch after Iizuka et al. 2016), lean enough for video on a CPU.
All are fully convolutional; sides must be a multiple of `size_multiple`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval

ARCHITECTURES = ("unet", "paper", "scene")


@dataclass
class ModelConfig:
    arch: str = "unet"
    base_channels: int = 16  # channels at full resolution; doubled at every level down
    levels: int = 3  # number of 2x downsamplings (unet only)
    res_blocks: int = 2  # residual blocks at the bottleneck (unet and scene)
    outputs: int = 3  # output channels: RGB for face models, the number of a/b bins for "scene"

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.arch!r}; expected one of {ARCHITECTURES}")
        if min(self.base_channels, self.levels, self.outputs) < 1 or self.res_blocks < 0:
            raise ValueError("base_channels, levels and outputs must be at least 1, res_blocks at least 0")

    @property
    def size_multiple(self) -> int:
        return 2 ** (self.levels if self.arch in ("unet", "scene") else 2)

    def to_dict(self) -> dict:
        return asdict(self)


def conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn_relu(channels, channels),
                                  nn.Conv2d(channels, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class UNet(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        widths = [config.base_channels * 2 ** i for i in range(config.levels + 1)]
        self.stem = nn.Sequential(conv_bn_relu(1, widths[0]), conv_bn_relu(widths[0], widths[0]))
        # each down: strided conv halves H, W and doubles channels, then one more conv
        self.downs = nn.ModuleList(
            nn.Sequential(conv_bn_relu(widths[i], widths[i + 1], stride=2), conv_bn_relu(widths[i + 1], widths[i + 1]))
            for i in range(config.levels))
        self.bottleneck = nn.Sequential(*[ResBlock(widths[-1]) for _ in range(config.res_blocks)])
        # each up: bilinear 2x (no checkerboard), 1x1 to narrow, concat the skip, two convs
        self.up_narrow = nn.ModuleList(nn.Conv2d(widths[i + 1], widths[i], 1) for i in reversed(range(config.levels)))
        self.up_fuse = nn.ModuleList(
            nn.Sequential(conv_bn_relu(2 * widths[i], widths[i]), conv_bn_relu(widths[i], widths[i]))
            for i in reversed(range(config.levels)))
        self.head = nn.Conv2d(widths[0], config.outputs, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, 1, N, N) sketch in [0, 1]
        h = self.stem(x - 0.5)  # (B, C, N, N)
        skips = [h]
        for down in self.downs:
            h = down(h)  # (B, 2C, N/2, N/2) ... down to (B, C*2^L, N/2^L, N/2^L)
            skips.append(h)
        h = self.bottleneck(skips.pop())
        for narrow, fuse in zip(self.up_narrow, self.up_fuse):
            h = narrow(F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False))
            h = fuse(torch.cat([h, skips.pop()], dim=1))  # back up one level: (B, C*2^l, N/2^l, N/2^l)
        return 0.5 + self.head(h)  # (B, 3, N, N) RGB, about [0, 1]


class PaperNet(nn.Module):
    """The paper's net: 5 conv, 2 deconv, 1 conv, ReLU between them."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        c = config.base_channels
        self.body = nn.Sequential(
            nn.Conv2d(1, c, 5, 1, 2), nn.ReLU(inplace=True),
            nn.Conv2d(c, 2 * c, 3, 2, 1), nn.ReLU(inplace=True),  # (B, 2c, N/2, N/2)
            nn.Conv2d(2 * c, 4 * c, 3, 2, 1), nn.ReLU(inplace=True),  # (B, 4c, N/4, N/4)
            nn.Conv2d(4 * c, 4 * c, 3, 1, 1), nn.ReLU(inplace=True),
            nn.Conv2d(4 * c, 4 * c, 3, 1, 1), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(4 * c, 2 * c, 4, 2, 1), nn.ReLU(inplace=True),  # (B, 2c, N/2, N/2)
            nn.ConvTranspose2d(2 * c, c, 4, 2, 1), nn.ReLU(inplace=True),  # (B, c, N, N)
            nn.Conv2d(c, 3, 5, 1, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 + self.body(x - 0.5)


class SceneNet(nn.Module):
    """Gray frame -> logits over a/b bins at a quarter of its size.

    Colour is low-frequency, so the net works at half resolution from its
    first layer and predicts at a quarter; the frame's own luma keeps the
    edges. A pooled global feature, added at the bottleneck, lets the
    whole frame's content (sky, indoors, skin) inform every pixel's colour.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        widths = [config.base_channels * 2 ** i for i in range(config.levels)]
        self.stem = nn.Sequential(conv_bn_relu(1, widths[0], stride=2), conv_bn_relu(widths[0], widths[0]))
        self.downs = nn.ModuleList(
            nn.Sequential(conv_bn_relu(widths[i], widths[i + 1], stride=2), conv_bn_relu(widths[i + 1], widths[i + 1]))
            for i in range(config.levels - 1))
        self.bottleneck = nn.Sequential(*[ResBlock(widths[-1]) for _ in range(config.res_blocks)])
        self.context = nn.Sequential(nn.Linear(widths[-1], widths[-1]), nn.ReLU(inplace=True),
                                     nn.Linear(widths[-1], widths[-1]))
        # the decoder climbs back to a quarter of the input's size: fine enough for chroma
        self.up_narrow = nn.ModuleList(nn.Conv2d(widths[i + 1], widths[i], 1)
                                       for i in reversed(range(1, config.levels - 1)))
        self.up_fuse = nn.ModuleList(
            nn.Sequential(conv_bn_relu(2 * widths[i], widths[i]), conv_bn_relu(widths[i], widths[i]))
            for i in reversed(range(1, config.levels - 1)))
        self.head = nn.Conv2d(widths[1], config.outputs, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, 1, H, W) gray in [0, 1]
        h = self.stem(x - 0.5)  # (B, C, H/2, W/2)
        skips = []
        for down in self.downs:
            h = down(h)  # (B, 2C, H/4, W/4) ... down to (B, C*2^(L-1), H/2^L, W/2^L)
            skips.append(h)
        h = skips.pop()
        context = self.context(h.mean(dim=(2, 3)))  # (B, C*2^(L-1)): what the whole frame shows
        h = self.bottleneck(h + context[:, :, None, None])
        for narrow, fuse in zip(self.up_narrow, self.up_fuse):
            h = narrow(F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False))
            h = fuse(torch.cat([h, skips.pop()], dim=1))  # back up one level
        return self.head(h)  # (B, Q, H/4, W/4) logits over the a/b bins


def build(config: ModelConfig) -> nn.Module:
    return {"unet": UNet, "paper": PaperNet, "scene": SceneNet}[config.arch](config)


def fold_batchnorm(net: nn.Module) -> nn.Module:
    """For inference only: each BatchNorm that follows a conv folded into the conv's weights, in place.

    The outputs are the same to float precision and each fold saves a pass
    over the activations. Frozen statistics only: the net is put in eval
    mode, and must never be trained again.
    """
    net.eval()
    for sequence in [module for module in net.modules() if isinstance(module, nn.Sequential)]:
        for i in range(len(sequence) - 1):
            if isinstance(sequence[i], nn.Conv2d) and isinstance(sequence[i + 1], nn.BatchNorm2d):
                sequence[i] = fuse_conv_bn_eval(sequence[i], sequence[i + 1])
                sequence[i + 1] = nn.Identity()
    return net


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
