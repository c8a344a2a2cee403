"""The suite's U-Net (Ronneberger et al. 2015): the Mask task's car segmenter, Restore's restorer and the general-photo
colorizer are built on it.

    DoubleConv(w) ─pool─ DoubleConv(2w) ─pool─ … DoubleConv(2^depth·w) [bottleneck] ─up─ cat ─ DoubleConv … ─ 1×1 conv

Inputs' sides must be multiples of 2^depth. Subclasses change what enters (`in_channels`), what leaves
(`out_channels`) and what happens at the bottleneck (`bottleneck`), never the keys of the shared layers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DoubleConv(nn.Sequential):
    """(3×3 conv → BatchNorm → ReLU) × 2, size-preserving."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
                         nn.ReLU(inplace=True), nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class UNet(nn.Module):
    """(B, in_channels, h, w) → (B, out_channels, h, w); h and w multiples of 2^depth.

    Attributes:
        channels: the width of each level, width · 2^level for level 0..depth (the last is the bottleneck's).
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 1, width: int = 16, depth: int = 4):
        super().__init__()
        self.depth = depth
        self.channels = [width * 2 ** level for level in range(depth + 1)]
        channels = self.channels
        self.down = nn.ModuleList([DoubleConv(in_channels, channels[0])] +
                                  [DoubleConv(channels[i], channels[i + 1]) for i in range(depth)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(channels[i + 1], channels[i], 2, stride=2)
                                 for i in reversed(range(depth))])
        self.merge = nn.ModuleList([DoubleConv(2 * channels[i], channels[i]) for i in reversed(range(depth))])
        self.head = nn.Conv2d(channels[0], out_channels, 1)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The bottleneck (B, channels[-1], h / 2^depth, w / 2^depth) and the skips, shallowest first."""
        skips = []
        for index, block in enumerate(self.down):
            x = block(x if index == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        return skips.pop(), skips

    def bottleneck(self, x: torch.Tensor) -> torch.Tensor:
        """What happens between encoder and decoder (nothing here; Restore adds its cluster's embedding)."""
        return x

    def decode(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        for up, merge in zip(self.up, self.merge):
            x = merge(torch.cat([up(x), skips.pop()], 1))
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bottom, skips = self.encode(x)
        return self.decode(self.bottleneck(bottom), skips)
