"""MAE on normalised a*b*, and what it is made of: per photo, per person (with a bootstrap interval over people), the
part left once each photo's overall tint is given (`match_cast`), the mean-color regressor's MSE; and colourfulness
(`colorfulness`), which shows what MAE rewards: a gray guess."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from tasks import metrics, training
from tasks.colorize.lab import NEUTRAL_AB, lab_to_rgb, rgb_to_lab
from tasks.colorize.models import MeanColor, Model


def mae(predicted_ab: torch.Tensor, true_ab: torch.Tensor) -> torch.Tensor:
    """Mean absolute error per image over normalised a*b*: (B, 2, H, W) pairs → (B,)."""
    return (predicted_ab - true_ab).abs().flatten(1).mean(1)


@torch.inference_mode()
def colorize_batch(model: Model, rgb: torch.Tensor, batch_size: int = 50) -> torch.Tensor:
    """Predicted normalised a*b* (N, 2, S, S) for RGB (N, 3, S, S) at the model size, in eval mode."""
    device = next(model.parameters()).device
    with training.evaluating(model):
        return torch.cat([model(rgb_to_lab(rgb[i:i + batch_size].to(device))[:, :1]).float().cpu()
                          for i in range(0, len(rgb), batch_size)])


def colorfulness(rgb: torch.Tensor) -> torch.Tensor:
    """Colourfulness per image: Hasler & Süsstrunk, "Measuring colourfulness in natural images" (SPIE 5007, 2003),
    their metric M^(3), on sRGB in 0..255 as in the paper.

        rg = R - G,  yb = (R + G) / 2 - B,  M = √(σ_rg² + σ_yb²) + 0.3 · √(μ_rg² + μ_yb²)   (σ, μ over the pixels)

    Their scale: 0 not colourful, 15 slightly, 33 moderately, 45 averagely, 59 quite, 82 highly, 109 extremely.
    A gray image scores 0; one flat pure red (255, 0, 0) scores 0.3 · √(255² + 127.5²) ≈ 85.5.

    Args:
        rgb: (B, 3, H, W) sRGB in [0, 1].

    Returns:
        (B,) float.
    """
    red, green, blue = (255 * rgb.float()).flatten(2).unbind(1)
    rg, yb = red - green, (red + green) / 2 - blue
    spread = torch.sqrt(rg.var(1, unbiased=False) + yb.var(1, unbiased=False))
    return spread + 0.3 * torch.sqrt(rg.mean(1) ** 2 + yb.mean(1) ** 2)


def match_cast(predicted_ab: torch.Tensor, true_ab: torch.Tensor) -> torch.Tensor:
    """The prediction with each image's mean a*b* moved onto the true mean: an oracle for the photo's overall tint
    (skin tone, white balance, the color of the light), which its lightness barely tells. Diagnostic only."""
    return predicted_ab - predicted_ab.mean((2, 3), keepdim=True) + true_ab.mean((2, 3), keepdim=True)


def score(model: Model, rgb: torch.Tensor, mean_ab: torch.Tensor | None = None) -> dict:
    """Per-image MAE of the model (and of predicting `mean_ab` everywhere, the trivial baseline) on RGB photos, and
    the MAE left once each photo's overall color is given (`match_cast`); each photo's true and predicted mean a*b*;
    the mean `colorfulness` of the colorized photos (their L, the predicted a*b*) and of the photos themselves; and the
    MAE of painting every photo gray (a* = b* = 0), which a cautious colorizer drifts towards."""
    if rgb.shape[-1] != model.size:
        rgb = F.interpolate(rgb, size=(model.size, model.size), mode="bilinear", antialias=True, align_corners=False)
    lab = rgb_to_lab(rgb)
    true_ab = lab[:, 1:]
    predicted_ab = colorize_batch(model, rgb)
    errors = mae(predicted_ab, true_ab)
    colorized = lab_to_rgb(torch.cat([lab[:, :1], predicted_ab], 1))
    result = {"mae": float(errors.mean()), "per_image": errors,
              "colorfulness": float(colorfulness(colorized).mean()), "true_colorfulness": float(colorfulness(rgb).mean()),
              "cast_matched_mae": float(mae(match_cast(predicted_ab, true_ab), true_ab).mean()),
              "tint": true_ab.mean((2, 3)), "predicted_tint": predicted_ab.mean((2, 3))}  # (N, 2) each
    result["neutral_mae"] = float(mae(NEUTRAL_AB.view(1, 2, 1, 1).expand_as(true_ab), true_ab).mean())  # all gray
    if mean_ab is not None:
        result["baseline_mae"] = float(mae(mean_ab.view(1, 2, 1, 1).expand_as(true_ab), true_ab).mean())
    return result


def by_group(per_image: torch.Tensor, groups: list[str]) -> dict[str, torch.Tensor]:
    """Mean of per-image values (N, ...) per group (`groups`: each image's person), in first-seen order."""
    if len(per_image) != len(groups):
        raise ValueError(f"{len(per_image)} values for {len(groups)} group names.")
    rows: dict[str, list[int]] = {}
    for index, group in enumerate(groups):
        rows.setdefault(group, []).append(index)
    return {group: per_image[indices].mean(0) for group, indices in rows.items()}


def score_people(model: Model, rgb: torch.Tensor, groups: list[str], mean_ab: torch.Tensor) -> dict:
    """`score` on the photos of several people (`groups`: each photo's person), plus the MAE of each person and a 95%
    bootstrap interval over people: with a handful of test people, which ones were drawn moves the MAE more than
    anything about the photos."""
    result = score(model, rgb, mean_ab)
    result["per_person"] = {person: float(value) for person, value in by_group(result["per_image"], groups).items()}
    result["interval"] = metrics.bootstrap_interval(np.array(list(result["per_person"].values())))
    return result


@torch.inference_mode()
def score_mean_color(mean_color: MeanColor, rgb: torch.Tensor, mean_ab: torch.Tensor) -> dict[str, float]:
    """MSE of the mean-color regressor on each photo's mean a*b*, beside a constant guess (the training mean):
    whether lightness tells a photo's overall color at all."""
    lab = rgb_to_lab(rgb)
    true_mean = lab[:, 1:].mean((2, 3))
    with training.evaluating(mean_color):
        predicted = mean_color(lab[:, :1])
    return {"mse": float(F.mse_loss(predicted, true_mean)),
            "baseline_mse": float(F.mse_loss(mean_ab.expand_as(true_mean), true_mean))}
