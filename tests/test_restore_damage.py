"""Restore's synthetic damage: seeded, composable, identity at strength 0, and a mask that is exactly what changed."""

import numpy as np
import pytest
import torch

from tasks.restore import damage as D

REPLACING = ("blotches", "holes", "scratches", "lines", "salt_pepper")  # the kinds whose pixels the mask marks


@pytest.fixture(scope="module")
def photos():
    """Four smooth 'photos' (gradients + a little texture), 96×128."""
    generator = torch.Generator().manual_seed(3)
    ramp = torch.linspace(0.2, 0.8, 128).view(1, 1, 1, -1)
    return (ramp.expand(4, 3, 96, 128) + 0.05 * torch.rand(4, 3, 96, 128, generator=generator)).clamp(0, 1)


def test_the_same_seed_gives_the_same_damage_and_another_seed_another(photos):
    first = D.damage(photos, generator=torch.Generator().manual_seed(7))
    again = D.damage(photos, generator=torch.Generator().manual_seed(7))
    other = D.damage(photos, generator=torch.Generator().manual_seed(8))
    assert torch.equal(first.image, again.image) and torch.equal(first.mask, again.mask)
    assert not torch.equal(first.image, other.image)
    assert first.image.shape == photos.shape and first.mask.shape == (4, 1, 96, 128) and first.mask.dtype == torch.bool
    assert 0 <= float(first.image.min()) and float(first.image.max()) <= 1


@pytest.mark.parametrize("kind", D.KINDS)
def test_each_kind_at_strength_zero_is_the_identity_and_at_full_strength_changes_the_photo(photos, kind):
    untouched = D.damage(photos, {kind: 0.0}, torch.Generator().manual_seed(0))
    assert torch.equal(untouched.image, photos) and not untouched.mask.any()
    damaged = D.damage(photos, {kind: 1.0}, torch.Generator().manual_seed(0))
    assert (damaged.image - photos).abs().mean() > 1e-3


@pytest.mark.parametrize("kind", REPLACING)
def test_the_mask_is_what_a_replacing_kind_changed(photos, kind):
    damaged = D.damage(photos, {kind: 0.8}, torch.Generator().manual_seed(1))
    changed = (damaged.image - photos).abs().amax(dim=1, keepdim=True) > 1e-6
    assert damaged.mask.any() and not (changed & ~damaged.mask).any()  # nothing outside the mask moved
    assert (changed & damaged.mask).sum() >= 0.9 * damaged.mask.sum()  # and (nearly) all of it did


def test_kinds_that_replace_nothing_leave_the_mask_empty_and_a_recipe_composes(photos):
    for kind in set(D.KINDS) - set(REPLACING):
        assert not D.damage(photos, {kind: 1.0}).mask.any()
    both = D.damage(photos, {"holes": 0.5, "lines": 0.5}, torch.Generator().manual_seed(2))
    assert both.mask.any()


@pytest.mark.parametrize("recipe, message", [({"mold": 0.5}, "Unknown damage mold"), ({"blur": 1.5}, r"in \[0, 1\]")])
def test_a_bad_recipe_is_refused(photos, recipe, message):
    with pytest.raises(ValueError, match=message):
        D.damage(photos, recipe)


def test_sizes_scale_with_the_photo():
    small = D.damage(torch.full((1, 3, 96, 96), 0.5), {"holes": 1.0}, torch.Generator().manual_seed(4))
    large = D.damage(torch.full((1, 3, 384, 384), 0.5), {"holes": 1.0}, torch.Generator().manual_seed(4))
    assert abs(float(small.mask.float().mean()) - float(large.mask.float().mean())) < 0.02


def test_a_crop_damaged_at_its_photos_unit_gets_the_photos_marks_as_many_per_pixel():
    from scipy import ndimage

    photo = torch.full((1, 3, 384, 384), 0.5)  # unit 1.5
    whole = [float(D.damage(photo, {"holes": 1.0}, torch.Generator().manual_seed(seed)).mask.float().mean())
             for seed in range(40)]
    crops = {unit: [D.damage(torch.full((1, 3, 96, 96), 0.5), {"holes": 1.0}, torch.Generator().manual_seed(seed),
                             unit=unit).mask[0, 0].numpy() for seed in range(300)] for unit in (1.5, None)}
    coverage = float(np.mean([mask.mean() for mask in crops[1.5]]))
    assert 0.6 < coverage / float(np.mean(whole)) < 1.6  # as much of each pixel is damaged as on the photo
    marks = {unit: np.mean([ndimage.label(mask)[1] for mask in masks]) for unit, masks in crops.items()}
    assert marks[None] > 5 * marks[1.5]  # and in marks the photo's size: few per crop, not many small ones
