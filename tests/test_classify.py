"""The classifier: model shape and numerics, save/load, data reading, preprocessing and predict."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from tasks import classify
from tasks.hub import ASSETS_DIR

EXAMPLES = sorted((ASSETS_DIR / "examples" / "classify").glob("*.png"))


def test_forward_shape_and_finite():
    model = classify.ClothingCNN(width=4).eval()
    logits = model(torch.rand(3, 1, 28, 28))
    assert logits.shape == (3, 10) and torch.isfinite(logits).all()


def test_bundled_model_is_within_parameter_budget():
    model = classify.load().model
    assert classify.count_parameters(model) <= 500_000
    assert model.class_names == classify.CLASS_NAMES


def test_save_load_round_trip_strict(tmp_path):
    torch.manual_seed(0)
    model = classify.ClothingCNN(width=4, dropout=0.1, class_names=[f"c{i}" for i in range(10)]).eval()
    model.features[0][1].running_mean = torch.rand_like(model.features[0][1].running_mean)  # not just init values
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config == {"width": 4, "dropout": 0.1, "class_names": [f"c{i}" for i in range(10)]}
    loaded = classify.ClothingCNN.from_pretrained(tmp_path, strict=True).eval()
    images = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(loaded(images), model(images), rtol=0, atol=0)
    assert loaded.class_names == model.class_names


def test_read_idx_round_trip(tiny_fashion):
    images, labels = classify.load_split(str(tiny_fashion), "train")
    assert images.shape == (48, 28, 28) and images.dtype == np.uint8
    assert labels.tolist() == [i % 10 for i in range(48)]


def test_truncated_idx_is_reported(tmp_path, tiny_fashion):
    import gzip

    data = gzip.open(tiny_fashion / "train-images-idx3-ubyte.gz").read()
    with gzip.open(tmp_path / "broken.gz", "wb") as file:
        file.write(data[:-100])
    with pytest.raises(ValueError, match="truncated"):
        classify._read_idx(tmp_path / "broken.gz")


def test_datasets_folder_is_read(tmp_path):
    import datasets

    for split, n in (("train", 6), ("test", 4)):
        rows = {"image": [Image.new("L", (28, 28), i * 20) for i in range(n)], "label": list(range(n))}
        datasets.Dataset.from_dict(rows).to_parquet(str(tmp_path / f"{split}.parquet"))
    images, labels = classify.load_split(str(tmp_path), "test")
    assert images.shape == (4, 28, 28) and labels.tolist() == [0, 1, 2, 3]
    assert images[3, 0, 0] == 60


def test_augment_keeps_shape_and_flips_or_shifts():
    batch = torch.zeros(64, 1, 28, 28)
    batch[:, :, 10:18, 2:6] = 1.0  # a bar on the left
    out = classify.augment(batch, torch.Generator().manual_seed(0))
    assert out.shape == batch.shape
    assert set(out.unique().tolist()) <= {0.0, 1.0}  # integer shifts, no blur
    assert (out[:, 0, :, 14:].sum((1, 2)) > 0).any()  # some were flipped to the right half
    assert out.sum() <= batch.sum()


def test_model_input_of_a_fashion_mnist_image_is_nearly_unchanged():
    image = Image.open(EXAMPLES[0])
    model_input = classify.preprocess(image.convert("RGB"))
    assert model_input.size == (28, 28) and model_input.mode == "L"
    original = np.asarray(image, dtype=np.float32)
    difference = np.abs(np.asarray(model_input, dtype=np.float32) - original).mean()
    assert difference < 20  # same object, same place, same contrast (up to resampling)


def test_light_background_photo_is_inverted_centred_and_padded():
    photo = Image.new("RGB", (300, 200), (240, 240, 235))  # a light studio background
    photo.paste((30, 30, 40), (40, 50, 100, 190))  # a dark, tall object off to the left
    model_input = np.asarray(classify.preprocess(photo))
    assert model_input[0, 0] == 0 and model_input[14, 14] > 200  # black background, bright object
    columns = np.flatnonzero(model_input.max(0) > 100)
    assert abs((columns.min() + columns.max()) / 2 - 13.5) <= 1  # centred horizontally
    rows = np.flatnonzero(model_input.max(1) > 100)
    assert rows.min() <= 1 and rows.max() >= 26  # longer side scaled to 28


@pytest.mark.parametrize("item", [(40, 50, 90), (200, 200, 190)])  # darker and lighter than the background
def test_an_item_on_a_mid_tone_background_is_found_in_either_direction(item):
    # ../shared/cases/replayed-reports/min_dark_on_gray_64.png: navy on (110, 110, 110) became an all-black input
    photo = Image.new("RGB", (64, 64), (110, 110, 110))
    photo.paste(item, (20, 12, 44, 52))
    model_input = np.asarray(classify.preprocess(photo))
    assert model_input[14, 14] > 200 and model_input[0, 0] == 0  # a bright item on black, as in Fashion-MNIST
    assert (model_input > 128).mean() > 0.4  # the item, scaled to fill the height


@pytest.mark.parametrize("photo", [
    Image.new("RGB", (64, 64), (110, 110, 110)),
    Image.new("RGB", (300, 200), "white"),
    Image.fromarray(np.clip(128 + np.random.default_rng(0).integers(-6, 7, (64, 64, 3)), 0, 255).astype(np.uint8)),
], ids=["mid-gray", "white", "noisy gray"])
def test_a_photo_where_nothing_stands_out_says_so_instead_of_guessing(photo):
    with pytest.raises(classify.NoItemError, match="No item stands out"):
        classify.predict(classify.load(), photo)


def test_predict_returns_sorted_probabilities_and_model_input():
    model = classify.load()
    trouser = next(path for path in EXAMPLES if "trouser" in path.name)
    prediction = classify.predict(model, str(trouser))
    assert list(prediction.probabilities) [0] == "Trouser"
    values = list(prediction.probabilities.values())
    assert values == sorted(values, reverse=True) and abs(sum(values) - 1) < 1e-5
    assert prediction.model_input.size == (28, 28)


def test_predict_rejects_a_non_image(tmp_path):
    text = tmp_path / "shirt.jpg"
    text.write_text("not a picture")
    with pytest.raises(ValueError, match="not an image"):
        classify.predict(classify.load(), str(text))


def test_examples_cover_every_class_with_real_test_images():
    assert len(EXAMPLES) >= 10
    names = " ".join(path.stem for path in EXAMPLES)
    for name in classify.CLASS_NAMES:
        assert classify.slug(name) in names
    for path in EXAMPLES:
        with Image.open(path) as image:
            assert image.size == (28, 28) and image.mode == "L"


def test_bench_classify_scores_the_test_split(tiny_fashion, tmp_path, capsys):
    from bench.__main__ import main

    main(["classify", "--data", str(tiny_fashion), "--n_latency", "12", "--json", str(tmp_path / "classify.json")])
    result = json.loads((tmp_path / "classify.json").read_text())
    quality = result["quality"]
    # recomputed from the test IDX files with the model alone: the 20 test images, not the 48 training ones
    model = classify.load().model
    images, labels = classify.load_split(str(tiny_fashion), "test")
    with torch.no_grad():
        predicted = model(torch.tensor(images, dtype=torch.float32)[:, None] / 255).argmax(-1).numpy()
    assert result["n"] == len(labels) == 20
    assert quality["accuracy"] == pytest.approx(float(np.mean(predicted == labels)))
    for index, name in enumerate(model.class_names):  # two images per class
        assert quality[f"accuracy/{name}"] == pytest.approx(float(np.mean(predicted[labels == index] == index)))
    assert quality["parameters"] == classify.count_parameters(model) and result["latency_ms"]["p50"] > 0
    assert "| classify |" in capsys.readouterr().out
