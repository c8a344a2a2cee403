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


def test_tiles_of_swin2sr_join_without_a_visible_seam():
    torch.manual_seed(0)
    model = upscale.build(upscale.Config(arch="swin2sr", swin_embed_dim=12, swin_depths=(2,), swin_heads=(2,),
                                         swin_window=4)).eval()
    image = Image.fromarray(np.random.default_rng(2).integers(0, 255, (28, 36, 3), dtype=np.uint8))
    tiled = np.asarray(upscale.upscale_image(model, image, tile=16), dtype=np.int16)  # 2 × 3 tiles
    whole = np.asarray(upscale.upscale_image(model, image, tile=64), dtype=np.int16)
    assert tiled.shape == whole.shape == (56, 72, 3) and np.abs(tiled - whole).max() <= 1


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


def test_a_result_over_the_limit_and_bad_passes_are_refused_before_any_work(served, monkeypatch, tmp_path):
    monkeypatch.setattr(upscale, "MAX_OUTPUT_PIXELS", 4_000_000)  # so a ×4 photo may have 250,000 pixels
    big = tmp_path / "big.png"
    Image.new("RGB", (600, 500)).save(big)
    monkeypatch.setattr(upscale, "upscale_image", None)  # no model work may start
    with pytest.raises(ValueError, match="600×500 = 0.3 megapixels; the limit is 0.2.*at most 4 megapixels, so ×2 takes larger photos"):
        upscale.predict(served, str(big), passes=2)
    with pytest.raises(ValueError, match="passes must be 1"):
        upscale.predict(served, Image.new("RGB", (6, 6)), passes=3)


def test_a_sixteen_bit_image_comes_back_at_eight_bits_with_a_note(served, tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((4, 4), 40000, np.uint16)).save(path)
    result = upscale.predict(served, str(path))
    assert result.image.size == (8, 8) and "more than 8 bits" in result.note


def test_training_time_and_the_validation_curve_add_up_over_a_resume(photos, tmp_path):
    first = upscale.train(tiny_config(tmp_path, photos, "fast", max_train_steps=None, checkpointing_steps=100))
    again = upscale.train(tiny_config(tmp_path, photos, "fast", max_train_steps=None, checkpointing_steps=100,
                                      num_epochs=2, resume_from_checkpoint="latest"))
    before, after = first.metrics, again.metrics
    assert len(before["val_seconds"]) == 1 and len(after["val_seconds"]) == len(after["val_psnr_y"]) == 2
    assert after["val_seconds"][0] == before["val_seconds"][0] < after["val_seconds"][1] <= after["training_seconds"]
    assert after["training_seconds"] > before["training_seconds"] and after["resumed"] == [{"from": "checkpoint-3"}]


@pytest.fixture(scope="module")
def bundle(photos, tmp_path_factory):
    """A served folder like the bundled one: FastSR, with an SRCNN trained the same way in its srcnn/ sub-folder."""
    root = tmp_path_factory.mktemp("bundle")
    upscale.train(tiny_config(root, photos, "fast", max_train_steps=None))
    upscale.train(tiny_config(root / "fast", photos, "srcnn", max_train_steps=None))
    return root / "fast"


def test_bench_upscale_writes_the_keys_other_checks_read(bundle, photos, tmp_path, capsys):
    from bench.__main__ import main

    out = tmp_path / "upscale.json"
    main(["upscale", "--weights", str(bundle), "--data", str(photos / "val"), "--n_latency", "2", "--megapixels", "0.2",
          "--json", str(out)])
    result = json.loads(out.read_text())
    quality = result["quality"]
    assert {"psnr_y", "ssim_y", "bicubic_psnr_y", "srcnn_psnr_y"} <= set(quality) and result["n"] == 2
    assert 10 < quality["bicubic_psnr_y"] < 60 and quality["srcnn_psnr_y"] != quality["psnr_y"]
    assert result["latency_ms"]["p50"] > 0 and result["latency_input"] == "512×512 photo → 1024×1024"
    width, height = map(int, result["large_photo"]["input"].split("×"))
    assert result["large_photo"]["output"] == f"{2 * width}×{2 * height}" and width * height > 150_000
    assert result["large_photo"]["extra_mib"] >= 0


def test_bench_upscale_archs_puts_every_bundled_net_in_the_model_card(bundle, photos, capsys):
    from bench.__main__ import main

    from tasks.training import read_model_card

    main(["upscale-archs", "--weights", str(bundle), "--data", f"{photos / 'val'},{photos / 'train'}",
          "--n_latency", "1", "--card"])
    table = capsys.readouterr().out
    assert "| bicubic |" in table and "| fast |" in table and "| srcnn |" in table
    text, figures = read_model_card(bundle)
    assert "## Architectures" in text and "| fast (serving) |" in text and "| srcnn |" in text
    assert "val PSNR / SSIM" in text and "train PSNR / SSIM" in text  # one column pair per folder scored
    assert [caption for _, caption in figures][:1] == ["Crops: bicubic, each net, the original"]
    assert (bundle / "comparison.png").stat().st_size > 5000



def test_the_bench_scores_what_evaluate_scores_by_default_not_the_training_photos():
    from bench.__main__ import evaluation_data

    assert evaluation_data(upscale) == str(upscale.PHOTOS / "set5") != upscale.DEFAULT_DATA
    from tasks import classify

    assert evaluation_data(classify) == classify.DEFAULT_DATA  # evaluate's default is DEFAULT_DATA there


def test_a_softer_low_resolution_input_is_trained_on_scored_on_and_named_in_the_card(photos, tmp_path, monkeypatch):
    sharp = Image.open(next((photos / "train").iterdir())).convert("RGB")
    plain, soft = upscale.downscale(sharp, 2), upscale.downscale(sharp, 2, blur=0.5)
    assert soft.size == plain.size and np.abs(np.diff(np.asarray(soft, float), axis=1)).mean() < \
        np.abs(np.diff(np.asarray(plain, float), axis=1)).mean()  # the blur took detail away
    blurs = []
    real_downscale = upscale.downscale
    monkeypatch.setattr(upscale, "downscale", lambda image, scale, blur=0.0: blurs.append(blur) or
                        real_downscale(image, scale, blur))
    upscale.train(tiny_config(tmp_path, photos, "fast", lr_blur=0.5))
    assert blurs and set(blurs) == {0.5}  # the training patches and the validation photos alike
    assert "Gaussian blur of σ 0.5 LR pixels" in (tmp_path / "fast" / "README.md").read_text()
