"""Upscale: the three architectures, their training smoke runs, predict on any image (alpha, ×4, 1×1, size limit)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from tasks import upscale


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Two folders of small textured photos (training, validation), as image folders like T91 / BSDS."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for split, count in (("train", 3), ("val", 2)):
        (root / split).mkdir()
        for index in range(count):
            base = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
            Image.fromarray(base).resize((64, 48), Image.Resampling.BICUBIC).save(root / split / f"{index}.png")
    return root


def tiny_config(tmp_path, photos, arch, **overrides) -> upscale.Config:
    values = dict(data=str(photos / "train"), val_data=str(photos / "val"), output_dir=str(tmp_path / arch), arch=arch,
                  patch_size=16, patches_per_image=2, train_batch_size=2, num_epochs=1, max_train_steps=2,
                  lr_warmup_steps=1, width=8, blocks=1, swin_embed_dim=12, swin_depths=(1,), swin_heads=(2,),
                  swin_window=4, checkpointing_steps=1)
    return upscale.Config(**{**values, **overrides})


@pytest.mark.parametrize("arch", upscale.ARCHS)
def test_each_architecture_doubles_the_size_and_round_trips_its_folder(arch, photos, tmp_path):
    served = upscale.train(tiny_config(tmp_path, photos, arch))
    low = torch.rand(1, 3, 8, 12)
    with torch.no_grad():
        out = upscale.forward(served.model, low)
        assert out.shape == (1, 3, 16, 24) and torch.isfinite(out).all()
        again = upscale.load(str(tmp_path / arch))
        torch.testing.assert_close(upscale.forward(again.model, low), out, rtol=0, atol=0)
    summary = json.loads((tmp_path / arch / "metrics.json").read_text())
    assert summary["steps"] == 2 and summary["arch"] == arch and served.facts == {"arch": arch}


@pytest.mark.parametrize("arch", ["srcnn", "fast"])
def test_tiles_of_a_cnn_give_the_one_pass_result(arch):
    model = upscale.build(upscale.Config(arch=arch, width=8, blocks=2)).eval()
    image = Image.fromarray(np.random.default_rng(1).integers(0, 255, (70, 90, 3), dtype=np.uint8))
    tiled = np.asarray(upscale.upscale_image(model, image, tile=32), dtype=np.int16)
    with torch.no_grad():
        whole = upscale.forward(model, upscale.to_tensor(image)).clamp(0, 1).mul(255).round()[0].permute(1, 2, 0)
    assert np.abs(tiled - whole.numpy()).max() <= 1


@pytest.fixture(scope="module")
def served(photos, tmp_path_factory):
    return upscale.train(tiny_config(tmp_path_factory.mktemp("served"), photos, "fast"))


def test_predict_keeps_transparency_and_gives_bicubic_at_the_same_size(served):
    rgba = Image.new("RGBA", (10, 6), (200, 40, 40, 255))
    rgba.putpixel((0, 0), (0, 0, 0, 0))
    result = upscale.predict(served, rgba)
    assert result.image.mode == result.bicubic.mode == "RGBA" and result.image.size == result.bicubic.size == (20, 12)
    assert result.image.getpixel((0, 0))[3] < 128 and result.image.getpixel((19, 11))[3] == 255  # not on black


@pytest.mark.parametrize("size, passes, expected", [((1, 1), 1, (2, 2)), ((3, 5), 2, (12, 20))])
def test_tiny_images_and_two_passes(served, size, passes, expected):
    result = upscale.predict(served, Image.new("RGB", size, (90, 120, 150)), passes=passes)
    assert result.image.size == expected and result.factor == expected[0] // size[0] and result.note is None


def test_a_result_over_the_limit_and_bad_passes_are_refused_before_any_work(served, monkeypatch):
    monkeypatch.setattr(upscale, "MAX_OUTPUT_PIXELS", 100)
    with pytest.raises(ValueError, match="would be 24×24 = 0 megapixels"):
        upscale.predict(served, Image.new("RGB", (6, 6)), passes=2)
    with pytest.raises(ValueError, match="passes must be 1"):
        upscale.predict(served, Image.new("RGB", (6, 6)), passes=3)


def test_a_sixteen_bit_image_comes_back_at_eight_bits_with_a_note(served, tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((4, 4), 40000, np.uint16)).save(path)
    result = upscale.predict(served, str(path))
    assert result.image.size == (8, 8) and "more than 8 bits" in result.note
