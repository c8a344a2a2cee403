"""Mask: Dice, the car split, paired augmentation, the U-Net, predict's outputs, training smoke run and resume."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from tasks import mask, metrics, training


@pytest.fixture(scope="module")
def carvana(tmp_path_factory):
    """Kaggle layout: 5 "cars" × 2 views, a dark ellipse on a light studio floor, with palette-GIF masks."""
    root = tmp_path_factory.mktemp("carvana")
    (root / "train").mkdir()
    (root / "train_masks").mkdir()
    rng = np.random.default_rng(0)
    for car in range(5):
        for view in (1, 2):
            name = f"car{car:03d}_{view:02d}"
            box = (int(rng.integers(5, 25)), int(rng.integers(10, 20)), int(rng.integers(60, 90)), int(rng.integers(40, 55)))
            photo = Image.new("RGB", (96, 64), (225, 225, 230))
            ImageDraw.Draw(photo).ellipse(box, fill=tuple(int(v) for v in rng.integers(10, 120, 3)))
            photo.save(root / "train" / f"{name}.jpg")
            truth = Image.new("P", (96, 64), 0)
            truth.putpalette([0, 0, 0, 255, 255, 255])
            ImageDraw.Draw(truth).ellipse(box, fill=1)
            truth.save(root / "train_masks" / f"{name}_mask.gif")
    return root


def tiny_config(tmp_path, data, **overrides) -> mask.Config:
    values = dict(data=str(data), output_dir=str(tmp_path / "out"), input_height=32, input_width=48, width=4, depth=2,
                  num_epochs=1, train_batch_size=4, checkpointing_steps=1, val_fraction=0.2, test_fraction=0.2)
    return mask.Config(**{**values, **overrides})


@pytest.fixture(scope="module")
def just_trained(carvana, tmp_path_factory):
    """What `train` returned from a 2-step run."""
    tmp_path = tmp_path_factory.mktemp("mask")
    return mask.train(tiny_config(tmp_path, carvana, max_train_steps=2))


@pytest.fixture(scope="module")
def trained(just_trained):
    """The folder that run wrote."""
    return just_trained.folder


def test_evaluate_on_the_model_train_returns_scores_only_its_test_cars(carvana, just_trained, trained):
    # the model train() hands back carries its split, as the folder does: evaluate scores the 1 test car's 2 photos,
    # not every car it trained on
    test_cars = json.loads((trained / "split.json").read_text())["test"]
    assert just_trained.split["test"] == test_cars and len(test_cars) == 1
    fresh, loaded = (mask.evaluate(served, str(carvana)) for served in (just_trained, mask.load(str(trained))))
    assert fresh["n"] == loaded["n"] == 2 and fresh["dice"] == loaded["dice"]


@pytest.mark.parametrize("predicted, truth, expected", [
    ([[1, 1], [0, 0]], [[1, 1], [0, 0]], 1.0),  # identical
    ([[1, 1], [0, 0]], [[0, 0], [1, 1]], 0.0),  # disjoint
    ([[0, 0], [0, 0]], [[0, 0], [0, 0]], 1.0),  # both empty: nothing to find, nothing found
    ([[1, 1], [1, 0]], [[1, 0], [0, 0]], 0.5),  # 2·1 / (3 + 1)
])
def test_dice_on_hand_checkable_masks(predicted, truth, expected):
    assert metrics.dice(np.array(predicted), np.array(truth)) == pytest.approx(expected)


def test_split_is_by_car_and_covers_every_car(carvana):
    pairs = mask.find_pairs(str(carvana))
    cars = sorted({mask.car_id(photo) for photo, _ in pairs})
    split = training.split_groups(cars, 0, 0.15, 0.15)
    parts = [set(split[part]) for part in ("train", "val", "test")]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert set.union(*parts) == set(cars) and all(parts)
    sixty = training.split_groups([f"{i:012x}" for i in range(60)], 0, 0.15, 0.15)
    assert [len(sixty[part]) for part in ("train", "val", "test")] == [42, 9, 9]


def test_a_second_folder_of_cars_leaves_the_first_folders_split_as_it_was(carvana, tmp_path):
    more = tmp_path / "more"
    (more / "images").mkdir(parents=True)
    (more / "masks").mkdir()
    for car in range(5, 12):  # 7 more cars, the other layout (images/ + masks/), one view each
        shutil.copy(carvana / "train" / "car000_01.jpg", more / "images" / f"car{car:03d}_01.jpg")
        shutil.copy(carvana / "train_masks" / "car000_01_mask.gif", more / "masks" / f"car{car:03d}_01_mask.gif")
    alone = mask.split_cars(str(carvana), 0, 0.2, 0.2)
    both = mask.split_cars(f"{carvana},{more}", 0, 0.2, 0.2)
    extra = training.split_groups([f"car{car:03d}" for car in range(5, 12)], 0, 0.2, 0.2)
    assert both == {part: sorted(alone[part] + extra[part]) for part in alone}  # each folder split on its own
    assert len(mask.find_pairs(f"{carvana}, {more}")) == 10 + 7
    served = mask.train(tiny_config(tmp_path, f"{carvana},{more}", max_train_steps=1))
    assert served.split == both
    assert {mask.car_id(photo) for photo, _ in mask.scored_pairs(served, f"{carvana},{more}")} == set(both["test"])
    with pytest.raises(ValueError, match="is in both"):  # a car twice would sit on both sides of the split
        mask.find_pairs(f"{carvana},{carvana}")


def test_photo_and_mask_get_the_same_augmentation():
    photos = torch.zeros(3, 3, 32, 48)
    photos[:, :, 8:20, 5:25] = 1.0  # a white box on black ...
    masks = photos[:, :1].clone()  # ... and its mask
    moved, moved_masks = mask.augment(photos, masks, torch.Generator().manual_seed(0), light=0.0)
    # without brightness/contrast change, the photo's box and the mask moved together
    torch.testing.assert_close(moved[:, :1], moved_masks, atol=1e-5, rtol=0)
    assert not torch.equal(moved_masks, masks)


def test_unet_forward_shape_and_finite():
    model = mask.CarUNet(width=4, depth=3, input_size=(32, 48)).eval()
    logits = model(torch.rand(2, 3, 32, 48))
    assert logits.shape == (2, 1, 32, 48) and torch.isfinite(logits).all()


def test_save_load_strict_round_trip(tmp_path):
    model = mask.CarUNet(width=4, depth=2, input_size=(32, 48)).eval()
    model.save_pretrained(tmp_path)
    loaded = mask.load(str(tmp_path))
    assert loaded.model.input_size == (32, 48) and loaded.split == {} and loaded.metrics == {}
    x = torch.rand(1, 3, 32, 48)
    torch.testing.assert_close(loaded.model(x), model(x), rtol=0, atol=0)


def test_smoke_run_writes_the_output_folder(trained):
    for name in ("config.json", "model.safetensors", "split.json", "README.md", "metrics.json", "training_curves.png"):
        assert (trained / name).is_file(), name
    summary = json.loads((trained / "metrics.json").read_text())
    assert summary["steps"] == 2 and 0.0 <= summary["test_dice"] <= 1.0 and summary["test_photos"] == 2
    assert summary["device"] == "cpu" and summary["training_seconds"] > 0  # where and how long: into the card
    assert "Trained on cpu for" in (trained / "README.md").read_text()


@pytest.mark.parametrize("size", [(96, 64), (333, 200)])
def test_mask_and_cutout_have_the_photo_size_and_alpha_is_the_mask(trained, carvana, size):
    model = mask.load(str(trained))
    photo = Image.open(next((carvana / "train").glob("*.jpg"))).convert("RGB").resize(size)
    result = mask.predict(model, photo, threshold=0.5)
    assert result.mask.size == size and result.cutout.size == size and result.cutout.mode == "RGBA"
    assert np.array_equal(np.asarray(result.cutout)[..., 3], np.asarray(result.mask))
    assert set(np.unique(np.asarray(result.mask))) <= {0, 255}


def test_a_photo_without_a_car_gives_a_valid_mask(trained):
    result = mask.predict(mask.load(str(trained)), Image.new("RGB", (120, 80), (30, 160, 40)), threshold=0.5)
    assert result.mask.size == (120, 80)  # possibly empty, never an error
    with pytest.raises(ValueError, match="Threshold"):
        mask.predict(mask.load(str(trained)), Image.new("RGB", (20, 20)), threshold=1.5)


def test_clean_up_keeps_the_largest_component_and_fills_holes():
    noisy = np.zeros((20, 20), dtype=bool)
    noisy[2:15, 2:15] = True
    noisy[6:9, 6:9] = False  # a hole
    noisy[18, 18] = True  # a speck
    cleaned = mask.clean_up(noisy)
    assert cleaned[7, 7] and not cleaned[18, 18] and cleaned.sum() == 13 * 13


def test_a_missing_sweep_fails_before_training(carvana, tmp_path):
    with pytest.raises(FileNotFoundError, match="sweep.md is missing"):
        mask.train(tiny_config(tmp_path, carvana, sweep_results=str(tmp_path / "no-sweep")))
    assert not (tmp_path / "out").exists()  # nothing trained, nothing written


def test_bench_mask_scores_the_test_cars_at_full_resolution(carvana, trained, tmp_path, capsys):
    from bench.__main__ import main

    main(["mask", "--data", str(carvana), "--weights", str(trained), "--n_latency", "2",
          "--json", str(tmp_path / "mask.json")])
    result = json.loads((tmp_path / "mask.json").read_text())
    # recomputed through predict, at each photo's own size, on the cars split.json holds out
    test_cars = set(json.loads((trained / "split.json").read_text())["test"])
    pairs = [pair for pair in mask.find_pairs(str(carvana)) if mask.car_id(pair[0]) in test_cars]
    model = mask.load(str(trained))
    dice = [metrics.dice(np.asarray(mask.predict(model, str(photo), cleanup=False).mask) > 127, mask.read_mask(truth))
            for photo, truth in pairs]
    assert test_cars and result["quality"]["photos"] == len(pairs) == 2 * len(test_cars)
    assert result["quality"]["dice"] == pytest.approx(float(np.mean(dice)), abs=1e-6)
    assert result["latency_input"] == "96×64 photo" and result["latency_ms"]["p50"] > 0
    assert "| mask |" in capsys.readouterr().out


def test_evaluate_scores_only_cars_the_model_never_saw(carvana, trained, tmp_path):
    split = json.loads((trained / "split.json").read_text())
    model = mask.load(str(trained))

    def folder(name, cars, rename=lambda car: car):  # a Kaggle-layout copy holding only these cars' photos
        root = tmp_path / name
        (root / "train").mkdir(parents=True)
        (root / "train_masks").mkdir()
        for photo, truth in mask.find_pairs(str(carvana)):
            car = mask.car_id(photo)
            if car in cars:
                shutil.copy(photo, root / "train" / photo.name.replace(car, rename(car), 1))
                shutil.copy(truth, root / "train_masks" / truth.name.replace(car, rename(car), 1))
        return str(root)

    seen = split["train"] + split["val"]
    with pytest.raises(ValueError, match="trained on or validated on"):
        mask.evaluate(model, folder("seen", seen))
    # the test cars beside one trained-on car: only the test cars count
    mixed = folder("mixed", split["test"] + seen[:1])
    assert {mask.car_id(photo) for photo, _ in mask.scored_pairs(model, mixed)} == set(split["test"])
    # cars the split never named (another set) are scored whole
    other = folder("other", seen, rename=lambda car: f"new{car}")
    assert mask.evaluate(model, other)["n"] == len(mask.find_pairs(other))


def _studio_car(size=(480, 320)):
    """A dark car-like ellipse with sharp edges on a light floor, its true mask, and the soft probability a
    16×-smaller map leaves after bilinear upsampling."""
    width, height = size
    photo = Image.new("RGB", size, (225, 225, 230))
    ImageDraw.Draw(photo).ellipse((60, 80, 400, 250), fill=(40, 50, 70))
    truth = np.asarray(photo.convert("L")) < 128
    small = torch.from_numpy(truth.astype(np.float32))[None, None]
    small = torch.nn.functional.avg_pool2d(small, 16)
    chance = torch.nn.functional.interpolate(small, size=(height, width), mode="bilinear", align_corners=False)
    return photo, truth, chance[0, 0].numpy()


def test_refine_edges_changes_only_the_blurred_edge_and_follows_the_photo():
    photo, truth, chance = _studio_car()
    refined = mask.refine_edges(chance, photo)
    assert refined.shape == chance.shape == (photo.height, photo.width) and refined.dtype == np.float32
    low, high = mask.REFINE_BAND
    outside = (chance <= low) | (chance >= high)
    assert np.array_equal(refined[outside], chance[outside].astype(np.float32))  # only the edge band moves
    assert not np.array_equal(refined, chance.astype(np.float32))
    assert 0 <= refined.min() and refined.max() <= 1
    near = ~outside
    assert near.mean() < 0.2  # the band is the edge, not the car
    plain, sharp = metrics.dice(chance > 0.5, truth), metrics.dice(refined > 0.5, truth)
    assert sharp > plain + 0.003, (plain, sharp)  # snapped to the photo's edge
    with pytest.raises(ValueError, match="differ in size"):
        mask.refine_edges(chance[:-1], photo)


def test_serving_options_reach_predict_and_are_chosen_on_validation_cars(trained, carvana, tmp_path):
    served = mask.load(str(trained))
    assert mask.serving(served) == {"flip": False, "refine": False}  # a folder without "serving": plain
    photo = Image.open(mask.find_pairs(str(carvana))[0][0])
    plain = mask.predict(served, photo).probability
    served.metrics["serving"] = {"flip": True, "refine": True}
    both = mask.predict(served, photo).probability
    assert both.shape == plain.shape == (photo.height, photo.width) and not np.array_equal(both, plain)
    chosen = mask.choose_serving(served, str(carvana))
    assert set(chosen["validation"]) == {"plain", "flip", "refine", "flip+refine"}
    assert chosen["photos"] == 2 * len(served.split["val"])  # the validation cars' views, no other
    gain = chosen["validation"]["flip"]["dice"] - chosen["validation"]["plain"]["dice"]
    assert chosen["serving"]["flip"] == (gain >= mask.SERVING_MIN_GAIN)
    others = tmp_path / "others"  # only a car the model did not validate on
    (others / "images").mkdir(parents=True)
    (others / "masks").mkdir()
    test_car = served.split["test"][0]
    shutil.copy(carvana / "train" / f"{test_car}_01.jpg", others / "images")
    shutil.copy(carvana / "train_masks" / f"{test_car}_01_mask.gif", others / "masks")
    with pytest.raises(ValueError, match="none of this model's"):
        mask.choose_serving(served, str(others))


def test_write_serving_records_the_choice_once_in_the_folder(trained, carvana, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(trained, folder)
    for _ in range(2):  # a second run replaces its section
        chosen = mask.write_serving(str(folder), str(carvana))
    summary = json.loads((folder / "metrics.json").read_text())
    assert summary["serving"] == chosen["serving"] and set(summary["serving_validation"]) == set(chosen["validation"])
    assert mask.serving(mask.load(str(folder))) == chosen["serving"]  # predict follows the folder
    card = (folder / "README.md").read_text()
    assert card.count(mask.SERVING_HEADING) == 1 and "| flip+refine |" in card


@pytest.mark.parametrize("scores, chosen", [
    ({"plain": 0.98, "flip": 0.9806, "refine": 0.9801, "flip+refine": 0.9812}, {"flip": True, "refine": True}),
    ({"plain": 0.98, "flip": 0.9806, "refine": 0.9820, "flip+refine": 0.9808}, {"flip": True, "refine": False}),
    ({"plain": 0.98, "flip": 0.9803, "refine": 0.9806, "flip+refine": 0.9830}, {"flip": False, "refine": True}),
    ({"plain": 0.98, "flip": 0.9803, "refine": 0.9803, "flip+refine": 0.9806}, {"flip": False, "refine": False}),
])
def test_choose_serving_adds_flip_then_refinement_each_on_its_own_gain(trained, carvana, monkeypatch, scores, chosen):
    # refinement is judged against what is on before it: flip+refine over flip when flip is on, refine over plain if not
    served = mask.load(str(trained))
    names = {(False, False): "plain", (True, False): "flip", (False, True): "refine", (True, True): "flip+refine"}
    monkeypatch.setattr(mask, "full_resolution_dice", lambda model, pairs, flip=False, refine=False: {
        "dice": scores[names[flip, refine]], "seconds_per_photo": 0.1})
    assert mask.choose_serving(served, str(carvana))["serving"] == chosen
