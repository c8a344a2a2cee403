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
