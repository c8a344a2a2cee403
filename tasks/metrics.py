"""Pure metric functions shared by the tasks, training and the bench. NumPy in, Python numbers out."""

from __future__ import annotations

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
