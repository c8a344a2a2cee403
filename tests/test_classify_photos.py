"""The photo model of Classify: the clothing folder, the split by sender, the loss, routing, training, the bench."""

import csv
import json

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from tasks import classify
from tasks.classify import photos
from tasks.hub import ASSETS_DIR

COLOURS = {"T-Shirt": (230, 40, 40), "Pants": (30, 30, 200), "Dress": (10, 120, 10), "Shirt": (250, 250, 120),
           "Outwear": (90, 40, 10), "Shoes": (20, 20, 20), "Longsleeve": (40, 200, 200),  # learned, not scored
           "Hat": (250, 0, 250)}  # Hat: neither learned nor scored


@pytest.fixture(scope="module")
def clothing(tmp_path_factory):
    """A clothing folder in extra.sh's layout: 10 senders, each with one photo of every label (a coloured item on
    the sender's own backdrop), Hat photos included (not scored)."""
    folder = tmp_path_factory.mktemp("clothing")
    (folder / "images").mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for sender in range(10):
        backdrop = rng.integers(150, 190, 3)
        for label, colour in COLOURS.items():
            pixels = np.empty((90, 70, 3), dtype=np.uint8)
            pixels[:] = backdrop
            pixels[20:70, 15:55] = colour
            name = f"{sender}-{label}"
            Image.fromarray(pixels).save(folder / "images" / f"{name}.jpg")
            rows.append({"image": name, "label": label, "sender_id": str(100 + sender), "kids": "False"})
    with open(folder / "labels.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=["image", "label", "sender_id", "kids"])
        writer.writeheader()
        writer.writerows(rows)
    return folder


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    """An AlexNet features file with torchvision's key names (random weights: these tests check the mechanics; the
    real run starts from ImageNet's)."""
    from safetensors.torch import save_file

    path = tmp_path_factory.mktemp("backbone") / "alexnet-features.safetensors"
    torch.manual_seed(0)
    save_file({f"features.{key}": value for key, value in torchvision.models.alexnet().features.state_dict().items()},
              path)
    return path


@pytest.fixture(scope="module")
def trained(clothing, backbone, tmp_path_factory):
    folder = tmp_path_factory.mktemp("photo-model")
    cfg = classify.Config(model="photos", photos=str(clothing), backbone=str(backbone), photo_size=64,
                          output_dir=str(folder), num_epochs=2, train_batch_size=8, lr_warmup_steps=1,
                          val_fraction=0.2, test_fraction=0.2, checkpointing_steps=2)
    return classify.train(cfg)


def test_the_folder_is_read_with_its_scored_labels_only(clothing, tmp_path):
    read = photos.read_clothing(clothing)
    assert len(read.paths) == 10 * 6 and "Hat" not in read.labels and len(set(read.senders)) == 10
    learned = photos.read_clothing(clothing, photos.LEARNED)
    assert len(learned.paths) == 10 * 7 and "Longsleeve" in learned.labels and "Hat" not in learned.labels
    with pytest.raises(FileNotFoundError, match="labels.csv"):
        photos.read_clothing(tmp_path)


def test_the_split_is_by_sender_and_seeded(clothing):
    read = photos.read_clothing(clothing)
    split = photos.split_senders(read, 0, 0.2, 0.2)
    assert sorted(sum(split.values(), [])) == sorted(set(read.senders))  # every sender in one part only
    assert len(split["val"]) == len(split["test"]) == 2
    assert split == photos.split_senders(read, 0, 0.2, 0.2) and split != photos.split_senders(read, 1, 0.2, 0.2)


def test_the_loss_is_cross_entropy_for_one_right_class_and_any_footwear_for_shoes():
    logits = torch.randn(2, 10)
    right = photos.label_mask(["Dress", "Shoes"], photos.FASHION_MNIST)
    assert right[1].sum() == 3 and right[0, photos.FASHION_MNIST.index("Dress")]
    torch.testing.assert_close(photos.set_loss(logits[:1], right[:1]), torch.nn.functional.cross_entropy(
        logits[:1], torch.tensor([photos.FASHION_MNIST.index("Dress")])))
    footwear = logits[1].softmax(-1)[right[1]].sum()
    torch.testing.assert_close(photos.set_loss(logits[1:], right[1:]), -footwear.log())


def test_fashion_mnist_pictures_go_to_the_cnn_and_photos_do_not():
    picture = Image.open(ASSETS_DIR / "examples" / "classify" / "1-trouser.png").convert("RGB")
    assert classify.looks_like_fashion_mnist(picture)
    photo = Image.new("RGB", (60, 80), (180, 150, 120))  # a coloured backdrop
    assert not classify.looks_like_fashion_mnist(photo)
    assert not classify.looks_like_fashion_mnist(Image.new("RGB", (60, 80), (240, 240, 240)))  # gray on white


def test_letterbox_keeps_the_aspect_on_the_border_colour():
    image = Image.new("RGB", (40, 80), (10, 200, 30))
    boxed = photos.letterbox(image, 64)
    assert boxed.size == (64, 64)
    assert boxed.getpixel((0, 32)) == (10, 200, 30) and boxed.getpixel((32, 32)) == (10, 200, 30)


def test_a_short_training_run_writes_a_servable_folder_with_its_split(trained, clothing):
    folder = trained.folder
    assert {"config.json", "model.safetensors", "metrics.json", "README.md"} <= {p.name for p in folder.iterdir()}
    metrics = trained.metrics
    split = metrics["split"]
    assert not set(split["train"]) & set(split["test"]) and metrics["epochs_trained"] == 2
    assert metrics["test"]["n"] == 6 * len(split["test"]) and 0 <= metrics["test"]["photos_accuracy"] <= 1
    assert list(metrics["test_also_learned"]["photos_per_class"]) == ["Longsleeve"]  # reported, not scored
    assert "Darkroom Classify: photos of clothes" in (folder / "README.md").read_text()
    photo = next((clothing / "images").glob("*-Dress.jpg"))
    prediction = classify.predict(trained, str(photo))  # a photo model's folder answers every input
    assert prediction.model == "photos" and prediction.model_input.size == (64, 64)
    assert abs(sum(prediction.probabilities.values()) - 1) < 1e-5


def test_an_interrupted_photo_run_resumes_to_the_weights_of_an_unbroken_one(clothing, backbone, tmp_path):
    import shutil

    values = dict(model="photos", photos=str(clothing), backbone=str(backbone), photo_size=64, num_epochs=2,
                  train_batch_size=8, lr_warmup_steps=1, val_fraction=0.2, test_fraction=0.2, checkpointing_steps=2)
    whole = classify.train(classify.Config(**values, output_dir=str(tmp_path / "whole")))
    kept = sorted((tmp_path / "whole" / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    first = next(path for path in kept if int(path.name.split("-")[1]) < whole.metrics["steps"])  # mid-run
    (tmp_path / "broken" / "checkpoints").mkdir(parents=True)  # as if killed right after that checkpoint
    shutil.copytree(first, tmp_path / "broken" / "checkpoints" / first.name)
    shutil.copy(tmp_path / "whole" / "checkpoints" / "best.safetensors", tmp_path / "broken" / "checkpoints")
    again = classify.train(classify.Config(**values, output_dir=str(tmp_path / "broken"),
                                           resume_from_checkpoint="latest"))
    assert again.metrics["resumed"][0]["from"] == first.name and again.metrics["steps"] == whole.metrics["steps"]
    for (name, a), (_, b) in zip(whole.model.state_dict().items(), again.model.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)  # the same batches, shifts, dropout


def test_a_bad_frozen_layers_is_refused(clothing, backbone, tmp_path):
    with pytest.raises(ValueError, match="frozen_layers"):
        classify.train(classify.Config(model="photos", photos=str(clothing), backbone=str(backbone),
                                       frozen_layers=14, output_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="model must be"):
        classify.train(classify.Config(model="mnist", output_dir=str(tmp_path)))


def test_the_bundled_folder_routes_photos_to_the_photo_model():
    served = classify.load()
    assert isinstance(served.model, classify.ClothingCNN) and classify.photo_model(served) is not None
    examples = sorted((ASSETS_DIR / "examples" / "classify" / "photos").glob("*.jpg"))
    assert len(examples) >= 3 and (ASSETS_DIR / "examples" / "classify" / "photos" / "CREDITS.md").is_file()
    for path in examples:
        prediction = classify.predict(served, str(path))
        assert prediction.model == "photos" and prediction.model_input.size == (160, 160)
    trouser = classify.predict(served, str(ASSETS_DIR / "examples" / "classify" / "1-trouser.png"))
    assert trouser.model == "fashion-mnist" and list(trouser.probabilities)[0] == "Trouser"
    assert classify.load(model="photos").model is not None


def test_augment_shifts_and_flips_but_keeps_the_scale():
    image = torch.zeros(1, 3, 40, 40, dtype=torch.uint8)
    image[:, :, 10:30, 15:25] = 200  # a 20 × 10 item
    out = photos.augment(image.repeat(8, 1, 1, 1), torch.Generator().manual_seed(0))
    assert out.shape == (8, 3, 40, 40) and out.dtype == torch.float32 and 0 <= out.min() and out.max() <= 1
    for picture in out:
        bright = picture[0] > 0.3
        rows, cols = bright.any(1).nonzero(), bright.any(0).nonzero()
        assert len(rows) == 20 and len(cols) == 10  # moved, not enlarged
    assert len({tuple(picture[0].nonzero()[0].tolist()) for picture in out}) > 1  # moved differently


def test_a_folder_without_a_photo_model_or_its_split_says_so(trained, tmp_path, clothing):
    import shutil

    from tasks import hub

    cnn_only = tmp_path / "cnn"
    shutil.copytree(ASSETS_DIR / "models" / "classify", cnn_only, ignore=shutil.ignore_patterns("photos"))
    with pytest.raises(hub.NoSuchModel, match="no photo model"):
        classify.load(str(cnn_only), model="photos")
    no_split = tmp_path / "no-split"
    shutil.copytree(trained.folder, no_split, ignore=shutil.ignore_patterns("checkpoints"))
    (no_split / "metrics.json").write_text("{}")
    with pytest.raises(ValueError, match="senders it trained on"):
        classify.evaluate_photos(classify.load(str(no_split)), str(clothing))


def test_bench_scores_only_the_senders_the_model_never_saw(trained, clothing, tmp_path):
    from bench.__main__ import main

    out = tmp_path / "classify.json"
    main(["classify", "--weights", str(trained.folder), "--photos", str(clothing), "--n_latency", "3",
          "--json", str(out)])
    result = json.loads(out.read_text())
    scored = classify.evaluate_photos(trained, str(clothing))
    assert result["photos_senders"] == len(trained.metrics["split"]["test"]) == scored["senders"]
    assert result["quality"]["photos_accuracy"] == pytest.approx(scored["photos_accuracy"])
    assert set(result["quality"]["photos_per_class"]) == set(photos.PHOTO_LABELS)
    assert result["latency_ms"]["p50"] > 0 and "accuracy" not in result["quality"]  # no CNN in this folder
    assert result["n"] == scored["n"] == 6 * scored["senders"]
    low, high = result["quality"]["photos_accuracy_low"], result["quality"]["photos_accuracy_high"]
    assert 0 <= low <= result["quality"]["photos_accuracy"] <= high <= 1


def test_with_the_cnn_beside_it_the_bench_also_scores_the_cnn_on_the_same_photos(trained, clothing, tmp_path):
    import shutil

    from bench.__main__ import main

    both = tmp_path / "both"
    shutil.copytree(ASSETS_DIR / "models" / "classify", both, ignore=shutil.ignore_patterns("photos"))
    shutil.copytree(trained.folder, both / "photos", ignore=shutil.ignore_patterns("checkpoints"))
    out = tmp_path / "classify.json"
    main(["classify", "--weights", str(both), "--data", str(_fashion_folder()), "--photos", str(clothing),
          "--n_latency", "2", "--json", str(out)])
    result = json.loads(out.read_text())
    quality = result["quality"]
    assert 0 <= quality["cnn_photos_accuracy"] <= 1 and set(quality["cnn_photos_per_class"]) == set(photos.PHOTO_LABELS)
    assert result["n"] == quality["n"] and result["photos_n"] == 6 * result["photos_senders"]  # each set its own n


def _fashion_folder():
    from tasks.classify import DEFAULT_DATA

    return DEFAULT_DATA


def test_the_interval_resamples_senders_not_photos():
    labels = ["Dress"] * 4 + ["Shoes"] * 4
    senders = ["a", "a", "b", "b"] * 2
    said = ["Dress", "Dress", "Coat", "Coat", "Sneaker", "Sneaker", "Coat", "Coat"]  # sender a right, b wrong
    low, high = photos.sender_interval(said, labels, senders)
    assert low == 0.0 and high == 1.0  # either sender alone can be drawn twice
    assert photos.sender_interval(["Dress"] * 4 + ["Sneaker"] * 4, labels, ["a"] * 8) == (1.0, 1.0)  # all right
