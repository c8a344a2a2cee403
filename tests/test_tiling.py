"""Tiled inference: the same result as one pass whatever the tiling, any image size, memory bounded by the tile."""

import pytest
import torch
from torch import nn

from bench.__main__ import process_memory_mb, reset_peak_memory
from tasks.tiling import tiled

RADIUS = 3  # three 3×3 convolutions see 3 pixels around each pixel


def upscaler(seed: int = 0) -> nn.Module:
    """A random ×2 network of receptive-field radius RADIUS: three 3×3 convs, then a sub-pixel shuffle."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(8, 3 * 4, 3, padding=1), nn.PixelShuffle(2)).eval()


@pytest.mark.parametrize("height, width, tile", [(20, 20, 32), (70, 90, 32), (1, 1, 32), (3, 5, 2)])
@torch.inference_mode()
def test_tiles_give_what_one_pass_gives(height, width, tile):
    # (20, 20) fits one tile; (70, 90) takes 3 × 3 tiles of 32; a 1×1 image; a 3×5 image in 2×2 tiles
    model, image = upscaler(), torch.rand(1, 3, height, width)
    whole = model(image)
    result = tiled(model, image, scale=2, tile=tile, context=RADIUS)
    assert result.shape == (1, 3, 2 * height, 2 * width)
    torch.testing.assert_close(result, whole, rtol=0, atol=1e-5)


@torch.inference_mode()
def test_too_little_context_leaves_a_seam():
    model, image = upscaler(), torch.rand(1, 3, 64, 64)
    seams = (tiled(model, image, scale=2, tile=32, context=1) - model(image)).abs()
    assert seams.max() > 1e-3  # the tiles' edges were computed from padding, not from the photo
    assert seams[..., :56, :56].max() <= 1e-5  # far from the joins (32·2 ± 2·2 output pixels) nothing changed


@torch.inference_mode()
def test_a_model_that_needs_multiples_gets_padded_tiles_and_the_padding_is_cut_off():
    plain = upscaler()

    def windowed(x: torch.Tensor) -> torch.Tensor:  # refuses what a Swin window would refuse
        assert x.shape[-2] % 8 == 0 and x.shape[-1] % 8 == 0, x.shape
        return plain(x)

    image = torch.rand(1, 3, 37, 45)
    result = tiled(windowed, image, scale=2, tile=16, context=RADIUS, multiple=8)
    assert result.shape == (1, 3, 74, 90)
    # away from the bottom and right edges (where the repeated edge stands in for the photo) it is the one pass
    torch.testing.assert_close(result[..., :64, :80], plain(image)[..., :64, :80], rtol=0, atol=1e-5)


@torch.inference_mode()
def test_uint8_results_are_the_float_result_rounded():
    model, image = upscaler(), torch.rand(1, 3, 40, 50)
    as_bytes = tiled(model, image, scale=2, tile=16, context=RADIUS, dtype=torch.uint8)
    expected = model(image).clamp(0, 1).mul(255).round()
    assert as_bytes.dtype == torch.uint8 and (as_bytes.float() - expected).abs().max() <= 1


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match=r"\(1, C, H, W\)"):
        tiled(upscaler(), torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="tile ≥ 1"):
        tiled(upscaler(), torch.rand(1, 3, 8, 8), tile=0)


@torch.inference_mode()
def test_a_24_megapixel_photo_needs_its_result_and_a_tile_of_memory_not_a_float_copy_of_the_result():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 12, 3, padding=1), nn.PixelShuffle(2)).eval()
    image = torch.rand(1, 3, 4000, 6000)  # 24 MP (288 MB as floats)
    reset_peak_memory("self")  # a new peak from here (Linux)
    before = process_memory_mb("self")["rss"]
    result = tiled(model, image, scale=2, tile=512, context=1, dtype=torch.uint8)
    extra = process_memory_mb("self")["peak"] - before
    result_mb = result.numel() / 2**20  # 96 MP × 3 bytes = 275 MiB
    assert result.shape == (1, 3, 8000, 12000)
    assert extra < result_mb + 300, extra  # as floats the result alone would be 1,100 MiB
