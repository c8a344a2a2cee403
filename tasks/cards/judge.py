"""The category judge: a small CNN trained on rendered cards, used to score whether generated cards show the
category they were asked for (category fidelity), and a diversity measure.

The judge trains on render seed 2 and is checked on render seed 3; the DDPM trains on render seed 1, so none of the
judge's cards were seen by the generator. It is also checked on those held-out renders slightly blurred or with a
color cast: generated cards differ from renders in just such ways, and the category does not change with them, so
its accuracy there says how far to trust it on generated cards.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision.transforms.v2.functional import gaussian_blur

from tasks.cards.render import CATEGORIES, render_card


class Judge(nn.Module):
    """(B, 3, H, W) in [-1, 1] → logits over CATEGORIES. Four conv stages, global average pooling."""

    def __init__(self, width: int = 16):
        super().__init__()
        layers, channels = [], 3
        for out in (width, 2 * width, 4 * width, 4 * width):
            layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(), nn.MaxPool2d(2)]
            channels = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, len(CATEGORIES))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images).mean((2, 3)))


def to_batch(pictures: list[Image.Image]) -> torch.Tensor:
    """PIL RGB images → (B, 3, H, W) in [-1, 1]."""
    array = np.stack([np.asarray(picture.convert("RGB"), dtype=np.float32) for picture in pictures])
    return torch.from_numpy(array).permute(0, 3, 1, 2) / 127.5 - 1.0


def rendered(size: tuple[int, int], n_per_category: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    pictures, labels = [], []
    for label, category in enumerate(CATEGORIES):
        for index in range(n_per_category):
            pictures.append(render_card(seed * 1_000_000 + index, category, size).image)
            labels.append(label)
    return to_batch(pictures), torch.tensor(labels)


def train_judge(size: tuple[int, int], n_per_category: int = 300, epochs: int = 10,
                seed: int = 2) -> tuple[Judge, dict[str, float]]:
    """Train on render seed `seed`.

    Returns:
        The judge in eval mode, and its accuracy on render seed `seed + 1` as rendered ("renders", the ceiling) and
        after each of `shifts` ("blurred", "color_cast").
    """
    torch.manual_seed(seed)
    images, labels = rendered(size, n_per_category, seed)
    judge = Judge()
    optimizer = torch.optim.AdamW(judge.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 3e-3, total_steps=epochs * -(-len(images) // 64))
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        judge.train()
        for indices in torch.randperm(len(images), generator=generator).split(64):
            loss = F.cross_entropy(judge(images[indices]), labels[indices])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    judge.eval()
    held_out, held_out_labels = rendered(size, max(20, n_per_category // 5), seed + 1)
    return judge, {name: float((classify(judge, images) == held_out_labels).float().mean())
                   for name, images in {"renders": held_out, **shifts(held_out, seed)}.items()}


def shifts(images: torch.Tensor, seed: int) -> dict[str, torch.Tensor]:
    """Cards (B, 3, H, W) in [-1, 1] changed in ways that keep their category: a Gaussian blur of σ 0.7 px, and a
    color cast (each channel of each card scaled by a factor drawn from 0.9–1.1)."""
    gain = 1 + 0.1 * (2 * torch.rand(len(images), 3, 1, 1, generator=torch.Generator().manual_seed(seed)) - 1)
    return {"blurred": gaussian_blur(images, kernel_size=[5, 5], sigma=[0.7, 0.7]),
            "color_cast": ((images + 1) * gain - 1).clamp(-1, 1)}


@torch.inference_mode()
def classify(judge: Judge, images: torch.Tensor) -> torch.Tensor:
    return torch.cat([judge(images[i:i + 256]).argmax(-1) for i in range(0, len(images), 256)])


def min_pairwise_distance(pictures: list[Image.Image]) -> float:
    """The smallest RMS pixel distance (0–255 scale) between any two of `pictures`: near 0 means near-duplicates."""
    if len(pictures) < 2:
        raise ValueError(f"A distance between two pictures needs at least two; got {len(pictures)}.")
    flat = to_batch(pictures).flatten(1) * 127.5
    distances = torch.cdist(flat, flat) / flat.shape[1] ** 0.5
    distances.fill_diagonal_(float("inf"))
    return float(distances.min())
