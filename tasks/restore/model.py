"""Restore's network: the suite's U-Net (`tasks.unet.UNet`) predicting a residual, conditioned on a class id by an
embedding added at the bottleneck, and giving its bottleneck as the feature vector the clusterer groups photos by.

    damaged (B, 3, h, w) ─encode─▶ bottleneck (B, C, h/2^d, w/2^d) ─+ embedding[class]─decode─▶ residual
    restored = damaged + residual                         features = bottleneck averaged over space (B, C)
"""

from __future__ import annotations

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from tasks.unet import UNet


class RestoreUNet(UNet, PyTorchModelHubMixin, library_name="darkroom", license="mit",
                  tags=["image-restoration", "darkroom"]):
    """(B, 3, h, w) float in [0, 1] (h, w multiples of 2^depth) and class ids (B,) int64 in [0, max_classes) →
    restored (B, 3, h, w) (not clamped).

    The embedding starts at zero, so before the clusterer exists every class is the unconditioned net; class 0 is
    what BASELINE always uses.
    """

    def __init__(self, width: int = 16, depth: int = 4, max_classes: int = 32):
        super().__init__(in_channels=3, out_channels=3, width=width, depth=depth)
        self.max_classes = max_classes
        self.embedding = nn.Embedding(max_classes, self.channels[-1])
        nn.init.zeros_(self.embedding.weight)

    def freeze_encoder(self) -> None:
        """Stop the encoder learning (its weights and its BatchNorm statistics): once the clusterer is fitted on the
        bottleneck features, they must stay the features it was fitted on."""
        self.encoder_frozen = True
        for parameter in self.down.parameters():
            parameter.requires_grad_(False)
        self.down.eval()

    def train(self, mode: bool = True) -> RestoreUNet:
        super().train(mode)
        if getattr(self, "encoder_frozen", False):
            self.down.eval()  # BatchNorm keeps the statistics the clusterer's features were made with
        return self

    @property
    def multiple(self) -> int:
        """What the input's sides must be multiples of."""
        return 2 ** self.depth

    @property
    def receptive_radius(self) -> int:
        """Input pixels around a pixel that reach its output: two 3×3 convs per level on the way down and up, each
        2^level pixels wide at its level, plus the pooling offsets: 4 · (2^(depth+1) − 1), rounded up to a multiple."""
        radius = 4 * (2 ** (self.depth + 1) - 1)
        return -(-radius // self.multiple) * self.multiple

    def features(self, damaged: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) → (B, channels[-1]): the bottleneck averaged over space, what the clusterer groups."""
        bottom, _ = self.encode(damaged)
        return bottom.mean(dim=(-2, -1))

    def forward(self, damaged: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
        bottom, skips = self.encode(damaged)
        if classes is None:
            classes = torch.zeros(len(damaged), dtype=torch.long, device=damaged.device)
        bottom = bottom + self.embedding(classes)[:, :, None, None]
        return damaged + self.decode(bottom, skips)
