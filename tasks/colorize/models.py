"""The two models, as in the original course project: the mean-color regressor (`MeanColor`) and the colorizer
(`Colorizer`, plain or U-Net, with an optional global-context branch); `ColorizerEnsemble` averages several
colorizers trained alike with different seeds; `PhotoColorizer`, the suite's U-Net with a global-context branch, is
the general-photo model."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from tasks.training import count_parameters  # noqa: F401  (re-exported: colorize.count_parameters)
from tasks.unet import UNet

HUB_KWARGS = dict(library_name="darkroom", license="mit", repo_url="https://huggingface.co/spaces/darkroom/darkroom",
                  tags=["image-to-image", "colorization", "darkroom"])


class MeanColor(nn.Module, PyTorchModelHubMixin, **HUB_KWARGS):
    """The original's mean-color regressor: 3 stride-2 convs of 3 filters, then dense 2 with a sigmoid.

        L (B,1,S,S) ─conv 3, s2 ×3─▶ (B,3,S/8,S/8) ─flatten, dense─▶ mean a*b* (B,2) in [0, 1]
    """

    def __init__(self, size: int = 128):
        super().__init__()
        layers, channels = [], 1
        for _ in range(3):
            layers += [nn.Conv2d(channels, 3, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
            channels = 3
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Sequential(nn.Linear(3 * (size // 8) ** 2, 2), nn.Sigmoid())

    def forward(self, lightness: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(lightness))


def conv(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1), nn.ReLU(inplace=True))


class Up(nn.Module):
    """×2 bilinear upsampling, then a 3×3 conv (no checkerboard artefacts, unlike a strided transposed conv)."""

    def __init__(self, in_channels: int, out_channels: int, last: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.activation = nn.Sigmoid() if last else nn.ReLU(inplace=True)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.activation(self.conv(F.interpolate(features, scale_factor=2, mode="bilinear", align_corners=False)))


class Colorizer(nn.Module, PyTorchModelHubMixin, **HUB_KWARGS):
    """L (B,1,S,S) in [0,1] → a*b* (B,2,S,S) in [0,1]; S a multiple of 8.

        BN ─ down(w,s2) ─ down(w,s2) ─ down(w,s2) ─(+)─ conv ×3 ─ up(w) ─ up(w) ─ up(2, sigmoid)
                 │           │            ├─────────┘ context=True: global average pool, 2 dense, added per channel
                 └───────────┴────────────┴── skip=True: concatenated into the up path at the same size (U-Net)

    The context branch lets the whole photo bear on every pixel's color (the conv path reaches ~80 px of a 128-px
    photo, and weighs the near ones most): a small global prior in the spirit of Iizuka et al. (2016).
    """

    def __init__(self, width: int = 64, skip: bool = False, size: int = 128, context: bool = False):
        super().__init__()
        self.skip, self.size = skip, size
        self.norm = nn.BatchNorm2d(1)
        self.down = nn.ModuleList([conv(1, width, 2), conv(width, width, 2), conv(width, width, 2)])
        self.context = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, width), nn.ReLU(),
                                     nn.Linear(width, width)) if context else None
        self.middle = nn.Sequential(conv(width, width), conv(width, width), conv(width, width))
        extra = width if skip else 0
        self.up = nn.ModuleList([Up(width + extra, width), Up(width + extra, width), Up(width + extra, 2, last=True)])

    def forward(self, lightness: torch.Tensor) -> torch.Tensor:
        x, skips = self.norm(lightness), []
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        if self.context is not None:  # what the whole photo looks like, as one bias per channel
            x = x + self.context(x)[:, :, None, None]
        x = self.middle(x)
        for layer, skipped in zip(self.up, reversed(skips)):
            x = layer(torch.cat([x, skipped], 1) if self.skip else x)
        return x


class ColorizerEnsemble(nn.Module, PyTorchModelHubMixin, **HUB_KWARGS):
    """Colorizers trained alike on the same people with different seeds (`init_seed`): predicts the mean of their
    a*b*. Averaging cuts what is seed noise in each member's guess of a photo's tint, never the bias they share.

    Made from trained folders by `build_ensemble`; `load` tells it from a `Colorizer` by its config.json.
    """

    def __init__(self, members: list[dict]):  # each member's Colorizer config: width, skip, size, context
        super().__init__()
        if not members:
            raise ValueError("An ensemble needs at least one member.")
        self.members = nn.ModuleList([Colorizer(**config) for config in members])
        sizes = {member.size for member in self.members}
        if len(sizes) > 1:
            raise ValueError(f"An ensemble's members must share one input size; got {sorted(sizes)}.")
        self.size = sizes.pop()

    def forward(self, lightness: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(lightness) for member in self.members]).mean(0)


class PhotoColorizer(UNet, PyTorchModelHubMixin, **HUB_KWARGS):
    """The general-photo colorizer: L (B,1,S,S) in [0,1] → a*b* (B,2,S,S) in [0,1]; S a multiple of 2^depth.

        L ─ DoubleConv(w) ─pool─ … DoubleConv(2^depth·w) ─(+ context)─ up, cat ─ … ─ 1×1 conv ─ sigmoid ─ a*b*

    The suite's U-Net (`tasks.unet`, as Mask and Restore) with one input and two outputs. At the bottleneck (S/16 at
    depth 4, each position seeing ~140 px of the input) a global-context branch adds the whole photo's pooled features
    back to every position, as one bias per channel (Iizuka et al., "Let there be Color!", SIGGRAPH 2016, fuse a
    global feature vector at the same place): whether it is a beach, a street or a face bears on every pixel's color.
    """

    def __init__(self, width: int = 16, depth: int = 4, size: int = 128):
        super().__init__(in_channels=1, out_channels=2, width=width, depth=depth)
        self.size = size
        channels = self.channels[-1]
        self.context = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, channels), nn.ReLU(),
                                     nn.Linear(channels, channels))

    def bottleneck(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.context(x)[:, :, None, None]

    def forward(self, lightness: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(super().forward(lightness - 0.5))


Model = Colorizer | ColorizerEnsemble | PhotoColorizer  # what `load`'s Served holds; every scoring and serving
#                                                         function takes any of them

