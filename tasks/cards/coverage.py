"""Coverage: how much of what the renderer draws the generator draws too, and how much of what it draws is like a render.

Two views, both comparing generated cards of a category with held-out renders of it:

- improved precision and recall (Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for Assessing
  Generative Models") in the judge's feature space: precision, the share of generated cards inside the k-NN ball of
  some render (are they like renders?); recall, the share of renders inside the k-NN ball of some generated card (is
  all of the renderer's variety drawn?);
- the share of each card-stock color and each ink (the header's color) among generated cards against renders, read
  off the pixels by `stock_and_ink` (the judge is trained on the stain, so its features may ignore the stock).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from skimage.color import rgb2lab

from tasks.cards.judge import Judge, to_batch
from tasks.cards.render import INK_COLORS, STOCK_COLORS

K = 3  # neighbours of the k-NN radius: the paper's default
STOCK_LAB, INK_LAB = (rgb2lab(colors.reshape(1, -1, 3).astype(np.float64)).reshape(-1, 3)
                      for colors in (STOCK_COLORS, INK_COLORS))
STOCK_L_WEIGHT, INK_L_WEIGHT = 0.1, 0.3  # weights of ΔL*² against Δa*² + Δb*² in the nearest-color distance


@torch.inference_mode()
def judge_features(judge: Judge, images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) in [-1, 1] → (N, C) float32: the judge's globally pooled last features (the input of its head)."""
    return torch.cat([judge.features(images[i:i + 256]).mean((2, 3)) for i in range(0, len(images), 256)])


def knn_radii(features: torch.Tensor, k: int = K) -> torch.Tensor:
    """(N,) the distance from each row of `features` (N, C) to its k-th nearest other row."""
    if len(features) <= k:
        raise ValueError(f"A k-NN radius with k = {k} needs more than {k} samples; got {len(features)}.")
    distances = torch.cdist(features, features)
    return distances.kthvalue(k + 1, dim=1).values  # the 1st is the row itself, at 0


def precision_recall(real: torch.Tensor, generated: torch.Tensor, k: int = K) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019, eq. 1-2) of `generated` (M, C) against `real` (N, C).

    The manifold of a set is the union of balls around its samples, each of radius the distance to the sample's k-th
    nearest neighbour in the set. precision = share of generated samples inside the real manifold; recall = share of
    real samples inside the generated manifold. Both in [0, 1]; with few samples (hundreds, not the paper's 50,000)
    even two sets from one distribution score below 1, so compare with that ceiling (two sets of renders).

    Raises:
        ValueError: either set has k or fewer samples.
    """
    real_radii, generated_radii = knn_radii(real, k), knn_radii(generated, k)
    distances = torch.cdist(generated, real)  # (M, N)
    precision = (distances <= real_radii[None, :]).any(dim=1).float().mean()
    recall = (distances <= generated_radii[:, None]).any(dim=0).float().mean()
    return float(precision), float(recall)


def stock_and_ink(pictures: list[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
    """The card stock (index into STOCK_COLORS) and ink (index into INK_COLORS) each card looks printed on and with.

    Stock: the median CIELAB color of the lightest 40% of the card's inner 80% (paper between the print), matched to
    the nearest stock color with ΔL* down-weighted (the renderer varies each card's brightness by a few percent and
    tones it, so lightness tells stocks apart less well than a*, b*). Ink: the median of the darkest 5% of the header
    band (5-30% of the height), matched likewise. On renders (`tests/test_cards_coverage.py`) this recovers the
    drawn stock and ink for about 9 cards in 10 where the paper shows; under a FULL_CARD stain both are read through
    the amber, so only the comparison with renders of the same category means anything there.

    Returns:
        (stock indices (N,), ink indices (N,)), int64.
    """
    stocks, inks = [], []
    for picture in pictures:
        lab = rgb2lab(np.asarray(picture.convert("RGB"), dtype=np.float64) / 255.0)
        height, width = lab.shape[:2]
        inner = lab[round(0.1 * height):round(0.9 * height), round(0.1 * width):round(0.9 * width)].reshape(-1, 3)
        paper = np.median(inner[inner[:, 0] >= np.quantile(inner[:, 0], 0.6)], axis=0)
        band = lab[round(0.05 * height):round(0.3 * height), round(0.1 * width):round(0.9 * width)].reshape(-1, 3)
        ink = np.median(band[band[:, 0] <= np.quantile(band[:, 0], 0.05)], axis=0)
        stocks.append(_nearest(STOCK_LAB, paper, STOCK_L_WEIGHT))
        inks.append(_nearest(INK_LAB, ink, INK_L_WEIGHT))
    return np.array(stocks, dtype=np.int64), np.array(inks, dtype=np.int64)


def _nearest(palette: np.ndarray, color: np.ndarray, l_weight: float) -> int:
    return int(np.argmin(((palette - color) ** 2 * np.array([l_weight, 1.0, 1.0])).sum(axis=1)))


def shares(indices: np.ndarray, n_colors: int) -> np.ndarray:
    """(n_colors,) the share of each index among `indices` (sums to 1)."""
    return np.bincount(indices, minlength=n_colors) / max(len(indices), 1)


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """Half the L1 distance between two share vectors: 0 = the same mix, 1 = no color in common."""
    return float(0.5 * np.abs(p - q).sum())


def coverage(judge: Judge, renders: list[Image.Image], generated: list[Image.Image], k: int = K) -> dict[str, object]:
    """Precision, recall and color shares of `generated` cards against `renders` of the same category and size.

    Returns:
        {"precision", "recall"} in [0, 1]; {"stock_shares", "ink_shares"}: {"renders": [...], "generated": [...]}
        lists over STOCK_COLORS / INK_COLORS; {"stock_tv", "ink_tv"}: their total-variation distances in [0, 1].
    """
    real_features = judge_features(judge, to_batch(renders))
    generated_features = judge_features(judge, to_batch(generated))
    precision, recall = precision_recall(real_features, generated_features, k)
    result: dict[str, object] = {"precision": precision, "recall": recall}
    (real_stock, real_ink), (fake_stock, fake_ink) = stock_and_ink(renders), stock_and_ink(generated)
    for name, real, fake, n_colors in (("stock", real_stock, fake_stock, len(STOCK_COLORS)),
                                       ("ink", real_ink, fake_ink, len(INK_COLORS))):
        real_shares, fake_shares = shares(real, n_colors), shares(fake, n_colors)
        result[f"{name}_shares"] = {"renders": [round(float(v), 4) for v in real_shares],
                                    "generated": [round(float(v), 4) for v in fake_shares]}
        result[f"{name}_tv"] = total_variation(real_shares, fake_shares)
    return result
