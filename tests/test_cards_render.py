"""The card renderer: deterministic by seed, masks that agree with the category, and the render CLI."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tasks.cards import CATEGORIES, render_card
from tests.conftest import ROOT


@pytest.mark.parametrize("category", CATEGORIES)
def test_same_seed_same_pixels_different_seed_different(category):
    first, again, other = render_card(7, category), render_card(7, category), render_card(8, category)
    assert np.array_equal(np.asarray(first.image), np.asarray(again.image))
    assert np.array_equal(np.asarray(first.mask), np.asarray(again.mask))
    assert not np.array_equal(np.asarray(first.image), np.asarray(other.image))


def test_sizes_and_modes():
    card = render_card(0, "SMALL", size=(80, 64))
    assert card.image.size == (64, 80) and card.image.mode == "RGB"
    assert card.mask.size == (64, 80) and card.mask.mode == "L"
    assert set(np.unique(np.asarray(card.mask))) <= {0, 255}


def stain_fraction(category: str, seeds=range(12)) -> np.ndarray:
    return np.array([(np.asarray(render_card(seed, category).mask) > 0).mean() for seed in seeds])


def test_mask_area_follows_the_category():
    clean, small, light, full = (stain_fraction(c) for c in ("CLEAN", "SMALL", "LIGHT", "FULL_CARD"))
    assert (clean == 0).all()
    assert (small > 0).all() and small.max() < 0.2
    assert light.mean() > small.mean()
    assert full.min() > 0.5  # "stain over most of the card"
    assert (stain_fraction("WHITE_MARKS") > 0).all()


def test_stain_changes_pixels_only_where_the_mask_is():
    # same seed → same card back; the stain must darken (amber) inside the mask and leave outside nearly alone
    card = render_card(3, "SMALL")
    mask = np.asarray(card.mask) > 0
    pixels = np.asarray(card.image, dtype=np.float32)
    blue_inside, blue_outside = pixels[mask, 2].mean(), pixels[~mask, 2].mean()
    assert blue_inside < blue_outside - 20  # amber gum absorbs blue


def test_white_marks_are_lighter_than_the_card():
    card = render_card(5, "WHITE_MARKS")
    pixels, mask = np.asarray(card.image, dtype=np.float32).mean(2), np.asarray(card.mask) > 0
    assert pixels[mask].mean() > pixels[~mask].mean()


def test_unknown_category_is_refused():
    with pytest.raises(ValueError, match="FULL_CARD"):
        render_card(0, "COFFEE")


def test_render_cli_writes_category_folders_and_masks(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tasks.cards", "render", "--n", "2", "--out", str(tmp_path),
                             "--height", "80", "--width", "64"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for category in CATEGORIES:
        images = sorted((tmp_path / category).glob("*.png"))
        masks = sorted((tmp_path / "masks" / category).glob("*.png"))
        assert len(images) == 2 and [p.name for p in images] == [p.name for p in masks]
        with Image.open(images[0]) as image:
            assert image.size == (64, 80)


def test_importing_the_task_leaves_diffusers_for_first_use():
    # the app builds its Cards tab from tasks.cards at start-up; diffusers costs seconds and waits for a real request
    code = ("import sys, tasks.cards as cards; assert 'diffusers' not in sys.modules; "
            "cards.Config; assert 'diffusers' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
