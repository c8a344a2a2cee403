import math

import numpy as np
import pytest

from tasks import metrics


def test_accuracy_counts_matches():
    assert metrics.accuracy(np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2])) == 0.75
    assert metrics.accuracy(np.array([3, 3]), np.array([3, 3])) == 1.0
    assert math.isnan(metrics.accuracy(np.array([]), np.array([])))


def test_accuracy_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        metrics.accuracy(np.array([0, 1]), np.array([0]))


def test_confusion_matrix_rows_are_truth_columns_are_predictions():
    confusion = metrics.confusion_matrix(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 0, 2]), 3)
    np.testing.assert_array_equal(confusion, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    assert confusion.sum() == 6


def test_confusion_matrix_rejects_out_of_range_labels():
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        metrics.confusion_matrix(np.array([0, 3]), np.array([0, 0]), 3)


def test_per_class_accuracy_is_recall_and_nan_without_support():
    per_class = metrics.per_class_accuracy(np.array([[3, 1, 0], [0, 0, 0], [1, 1, 2]]))
    assert per_class[0] == 0.75 and per_class[2] == 0.5
    assert math.isnan(per_class[1])


def test_bootstrap_interval_brackets_the_mean_and_widens_with_spread():
    assert metrics.bootstrap_interval(np.full(8, 0.02)) == pytest.approx((0.02, 0.02))
    tight = np.array([0.019, 0.020, 0.021, 0.020, 0.019, 0.021, 0.020, 0.020])
    spread = np.array([0.012, 0.019, 0.016, 0.032, 0.020, 0.013, 0.027, 0.017])
    low, high = metrics.bootstrap_interval(spread)
    assert low < spread.mean() < high
    assert low > spread.min() and high < spread.max()  # a mean of 8 varies less than one value
    tight_low, tight_high = metrics.bootstrap_interval(tight)
    assert high - low > 5 * (tight_high - tight_low)
    assert metrics.bootstrap_interval(spread, seed=3) == metrics.bootstrap_interval(spread, seed=3)


def test_bootstrap_interval_refuses_nothing_and_bad_confidence():
    with pytest.raises(ValueError, match="No values"):
        metrics.bootstrap_interval(np.array([]))
    with pytest.raises(ValueError, match="confidence"):
        metrics.bootstrap_interval(np.array([0.1, 0.2]), confidence=1.0)


def test_y_is_bt601_studio_swing():
    pixels = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0]]], dtype=np.uint8)  # black, white, red
    np.testing.assert_allclose(metrics.rgb_to_y(pixels), [[16.0, 235.0, 16.0 + 65.481]], atol=1e-9)
    np.testing.assert_allclose(metrics.rgb_to_y(pixels.astype(np.float64) / 255), metrics.rgb_to_y(pixels))
    np.testing.assert_allclose(metrics.rgb_to_y(np.full((2, 2), 255, np.uint8)), 235.0)  # gray: R = G = B


def test_psnr_y_by_hand_and_the_shaved_border_does_not_count():
    truth = np.full((16, 16, 3), 100, np.uint8)  # SSIM's 11×11 window fits what the shave leaves
    predicted = np.full((16, 16, 3), 110, np.uint8)
    # ten gray levels are 10 × 219 / 255 steps of Y: PSNR = 20 log10(255 / 8.588) = 29.45 dB
    assert metrics.psnr_y(predicted, truth) == pytest.approx(20 * np.log10(255 / (10 * 219 / 255)))
    assert metrics.psnr_y(predicted, truth) == pytest.approx(29.452, abs=1e-3)
    framed = truth.copy()
    framed[:2], framed[-2:], framed[:, :2], framed[:, -2:] = 0, 0, 0, 0  # a black 2-pixel frame
    assert metrics.psnr_y(framed, truth, shave=2) == float("inf")
    assert metrics.psnr_y(framed, truth, shave=1) < 20
    assert metrics.ssim_y(framed, truth, shave=2) == pytest.approx(1.0)
    assert metrics.ssim_y(predicted, truth) < 1.0


def test_psnr_and_ssim_refuse_mismatched_shapes_and_a_shave_that_leaves_nothing():
    image = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.psnr_y(image, image[:7])
    with pytest.raises(ValueError, match="Cannot shave 4 pixels"):
        metrics.ssim_y(image, image, shave=4)
