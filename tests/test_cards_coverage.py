"""The coverage measure of the Cards bench: improved precision/recall and the stock and ink read off the pixels."""

import numpy as np
import pytest
import torch

from tasks.cards import coverage
from tasks.cards.render import INK_COLORS, STOCK_COLORS, render_card


def two_clusters(n: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    points = torch.randn(2 * n, 4, generator=generator)  # few dimensions: 400 samples fill them
    points[n:, 0] += 50.0  # the second cluster, far along one axis
    return points


def test_one_distribution_scores_near_one_on_both():
    precision, recall = coverage.precision_recall(two_clusters(200, 0), two_clusters(200, 1))
    assert precision > 0.85 and recall > 0.85


def test_a_generator_that_draws_one_of_two_modes_keeps_precision_and_loses_half_the_recall():
    real = two_clusters(200, 0)
    precision, recall = coverage.precision_recall(real, two_clusters(200, 1)[:200])  # only the first cluster
    assert precision > 0.85
    assert 0.4 < recall < 0.55


def test_generated_samples_moved_off_the_real_manifold_count_against_precision_and_leave_their_mode_uncovered():
    real, generated = two_clusters(200, 0), two_clusters(200, 1)
    generated[:200, 1] += 30.0  # the generated first cluster moved where no render is
    precision, recall = coverage.precision_recall(real, generated)
    assert 0.4 < precision < 0.55
    assert 0.4 < recall < 0.55


def test_a_radius_needs_more_samples_than_neighbours():
    with pytest.raises(ValueError, match="more than 3 samples"):
        coverage.knn_radii(torch.zeros(3, 4))


def test_stock_and_ink_are_read_back_from_renders_where_the_paper_shows():
    cards = [render_card(7_000_000 + i, category, (80, 64)) for i in range(30) for category in ("CLEAN", "SMALL")]
    stock, ink = coverage.stock_and_ink([card.image for card in cards])
    assert np.mean(stock == [card.stock for card in cards]) >= 0.8
    assert np.mean(ink == [card.ink for card in cards]) >= 0.8
    assert stock.max() < len(STOCK_COLORS) and ink.max() < len(INK_COLORS)


def test_coverage_reports_shares_that_sum_to_one_and_zero_distance_for_the_same_cards():
    from tasks.cards.judge import Judge

    judge = Judge().eval()
    renders = [render_card(8_000_000 + i, "CLEAN", (80, 64)).image for i in range(8)]
    result = coverage.coverage(judge, renders, renders)
    assert result["precision"] == result["recall"] == 1.0
    assert result["stock_tv"] == result["ink_tv"] == 0.0
    assert sum(result["stock_shares"]["generated"]) == pytest.approx(1.0)
    assert len(result["ink_shares"]["renders"]) == len(INK_COLORS)
