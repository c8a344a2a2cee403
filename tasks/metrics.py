"""Pure metric functions shared by the tasks, training and the bench. NumPy in, Python numbers out."""

from __future__ import annotations

import math

import numpy as np


def accuracy(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Fraction of predictions equal to the labels.

    Args:
        labels: true class indices, shape (N,).
        predictions: predicted class indices, shape (N,).

    Returns:
        mean(labels == predictions) in [0, 1]; NaN for N = 0.
    """
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    if labels.shape != predictions.shape:
        raise ValueError(f"labels {labels.shape} and predictions {predictions.shape} differ in shape")
    return float(np.mean(labels == predictions)) if labels.size else float("nan")


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts C[i, j] = number of samples of true class i predicted as class j.

    Args:
        labels: true class indices in [0, num_classes), shape (N,).
        predictions: predicted class indices in [0, num_classes), shape (N,).
        num_classes: K.

    Returns:
        int64 array of shape (K, K); rows sum to the per-class support.
    """
    labels, predictions = np.asarray(labels, dtype=np.int64), np.asarray(predictions, dtype=np.int64)
    for name, values in (("labels", labels), ("predictions", predictions)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{name} must lie in [0, {num_classes}), got [{values.min()}, {values.max()}]")
    return np.bincount(labels * num_classes + predictions, minlength=num_classes**2).reshape(num_classes, num_classes)


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """Recall of each class from a confusion matrix: C[i, i] / sum_j C[i, j] (NaN for a class with no samples)."""
    confusion = np.asarray(confusion, dtype=np.float64)
    support = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(confusion) / support, np.nan)


def dice(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Dice coefficient 2|A∩B| / (|A| + |B|) of two boolean masks of one shape; 1.0 when both are empty."""
    predicted, truth = np.asarray(predicted, dtype=bool), np.asarray(truth, dtype=bool)
    if predicted.shape != truth.shape:
        raise ValueError(f"Masks differ in shape: {predicted.shape} vs {truth.shape}.")
    total = int(predicted.sum()) + int(truth.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(predicted, truth).sum()) / total


def bootstrap_interval(values: np.ndarray, confidence: float = 0.95, resamples: int = 10_000,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of `values` (one number per independent unit, e.g. per person).

    Resamples the units with replacement, so with few units the interval says how much the mean depends on which
    ones happened to be drawn. Seeded: the same values give the same interval.

    Returns:
        (low, high); (v, v) for a single value.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("No values to bootstrap.")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1); got {confidence}.")
    draws = np.random.default_rng(seed).integers(0, values.size, (resamples, values.size))
    means = values[draws].mean(axis=1)
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return float(low), float(high)


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """The luma Y of ITU-R BT.601 YCbCr ("studio swing": 16–235), as super-resolution papers measure it.

    Y = 16 + (65.481 R + 128.553 G + 24.966 B) with R, G, B in [0, 1]: MATLAB's rgb2ycbcr, here scikit-image's.

    Args:
        image: RGB, (H, W, 3), uint8 in 0..255 or float in [0, 1]; or (H, W) gray (R = G = B).

    Returns:
        float64 (H, W) in [16, 235].
    """
    from skimage.color import rgb2ycbcr

    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"Expected an (H, W, 3) RGB or (H, W) gray image; got shape {image.shape}.")
    rgb = image.astype(np.float64) / 255.0 if image.dtype == np.uint8 else image.astype(np.float64)
    return rgb2ycbcr(rgb)[..., 0]


def _shaved_y(predicted: np.ndarray, truth: np.ndarray, shave: int) -> tuple[np.ndarray, np.ndarray]:
    predicted, truth = np.asarray(predicted), np.asarray(truth)
    if predicted.shape != truth.shape:
        raise ValueError(f"Images differ in shape: {predicted.shape} vs {truth.shape}.")
    if shave < 0 or 2 * shave >= min(truth.shape[:2]):
        raise ValueError(f"Cannot shave {shave} pixels off each side of a {truth.shape[1]}×{truth.shape[0]} image.")
    crop = (slice(shave, truth.shape[0] - shave), slice(shave, truth.shape[1] - shave))
    return rgb_to_y(predicted)[crop], rgb_to_y(truth)[crop]


def psnr_y(predicted: np.ndarray, truth: np.ndarray, shave: int = 0) -> float:
    """PSNR on Y (BT.601, `rgb_to_y`) with `shave` pixels cut from every side: the convention of super-resolution
    papers since SRCNN (Dong et al. 2014), where shave is the scale factor.

    PSNR = 10 log10(255² / MSE), MSE over the remaining Y pixels (0–255 scale).

    Args:
        predicted, truth: RGB images of one shape, (H, W, 3) uint8 (or float in [0, 1]), or (H, W) gray.
        shave: pixels removed from each border before comparing.

    Returns:
        dB; inf when the two are equal.

    Raises:
        ValueError: shapes differ, or the shave leaves no pixel.
    """
    predicted_y, truth_y = _shaved_y(predicted, truth, shave)
    mse = float(np.mean((predicted_y - truth_y) ** 2))
    return float("inf") if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def ssim_y(predicted: np.ndarray, truth: np.ndarray, shave: int = 0) -> float:
    """SSIM on Y (BT.601), `shave` pixels cut from every side, with the constants of Wang et al. 2004 as SR papers
    use them: an 11×11 Gaussian window of σ 1.5, K1 = 0.01, K2 = 0.03, data range 255 (scikit-image's
    structural_similarity with gaussian_weights and population covariance).

    Args and Raises: as `psnr_y`. Returns: the mean SSIM, in [-1, 1] (1 when equal).
    """
    from skimage.metrics import structural_similarity

    predicted_y, truth_y = _shaved_y(predicted, truth, shave)
    return float(structural_similarity(predicted_y, truth_y, data_range=255.0, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))
