"""Colorize: LAB conversion, the person split, the models, predict's contract, a training smoke run, the sweep."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import rgb2lab

from tasks import colorize, training
from tasks.images import load_rgb
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    """Five "people" with three photos each: a tinted gradient per person, so color is learnable from L."""
    root = tmp_path_factory.mktemp("faces")
    rng = np.random.default_rng(0)
    for person in range(5):
        folder = root / f"s{person + 1:02d}"
        folder.mkdir()
        tint = rng.uniform(0.4, 1.0, 3)
        for photo in range(3):
            ramp = np.linspace(0.2, 1.0, 24)[None, :, None] * np.ones((24, 24, 1))
            pixels = np.clip(ramp * tint + rng.normal(0, 0.03, (24, 24, 3)), 0, 1)
            Image.fromarray((pixels * 255).astype(np.uint8)).save(folder / f"image{photo:05d}.jpg")
    return root


def tiny_config(tmp_path, data, **overrides) -> colorize.Config:
    values = dict(data=str(data), transfer_data="", output_dir=str(tmp_path / "out"), size=16, width=4,
                  num_epochs=1, repeats=1, train_batch_size=4, checkpointing_steps=1, val_fraction=0.2, test_fraction=0.2)
    return colorize.Config(**{**values, **overrides})


@pytest.fixture(scope="module")
def trained(people, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("colorize")
    colorize.train(tiny_config(tmp_path, people, max_train_steps=2))
    return tmp_path / "out"


def test_lab_matches_scikit_image_and_round_trips():
    rng = np.random.default_rng(1)
    rgb = rng.uniform(0, 1, (32, 32, 3))
    rgb[0, :8] = [[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1], [1, 0, 1]]
    ours = colorize.rgb_to_lab(torch.from_numpy(rgb).permute(2, 0, 1).float()).permute(1, 2, 0).double().numpy()
    reference = rgb2lab(rgb)
    a_span, b_span = np.diff(colorize.A_RANGE)[0], np.diff(colorize.B_RANGE)[0]
    np.testing.assert_allclose(ours[..., 0] * 100, reference[..., 0], atol=2e-3)
    np.testing.assert_allclose(ours[..., 1] * a_span + colorize.A_RANGE[0], reference[..., 1], atol=5e-3)
    np.testing.assert_allclose(ours[..., 2] * b_span + colorize.B_RANGE[0], reference[..., 2], atol=5e-3)
    assert ours.min() >= -1e-6 and ours.max() <= 1 + 1e-6  # the sRGB gamut fits the normalised range
    back = colorize.lab_to_rgb(torch.from_numpy(ours).permute(2, 0, 1).float()).permute(1, 2, 0).numpy()
    np.testing.assert_allclose(back, rgb, atol=1e-4)
    units = colorize.ab_units(torch.from_numpy(ours[..., 1:]).float()).double().numpy()  # normalised → CIELAB a*, b*
    np.testing.assert_allclose(units, reference[..., 1:], atol=5e-3)
    torch.testing.assert_close(colorize.ab_units(colorize.NEUTRAL_AB), torch.zeros(2), atol=1e-5, rtol=0)


def test_gray_from_lightness_is_lab_to_rgb_without_color():
    lightness = torch.linspace(0, 1, 101).view(1, 1, 1, 101)
    neutral = colorize.NEUTRAL_AB.view(1, 2, 1, 1).expand(1, 2, 1, 101)
    expected = colorize.lab_to_rgb(torch.cat([lightness, neutral], 1))
    torch.testing.assert_close(colorize.gray_from_lightness(lightness), expected, atol=2e-4, rtol=0)


def test_split_is_by_person_and_covers_everyone():
    names = [f"s{i:02d}" for i in range(1, 41)]
    split = training.split_groups(names, seed=0, val_fraction=0.16, test_fraction=0.2)
    parts = [set(split[part]) for part in ("train", "val", "test")]
    assert [len(part) for part in parts] == [26, 6, 8]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert set.union(*parts) == set(names)
    assert training.split_groups(names, 0, 0.16, 0.2) == split != training.split_groups(names, 1, 0.16, 0.2)


@pytest.mark.parametrize("labelled", [True, False])
def test_a_hub_dataset_is_split_by_its_label_column(tmp_path, monkeypatch, labelled):
    import datasets

    # 5 people × 2 photos, each person one flat color; served from a local parquet file in place of the Hub
    colors = [(40 * person, 200 - 30 * person, 90) for person in range(5) for _ in range(2)]
    rows = {"image": [Image.new("RGB", (30, 20), color) for color in colors]}
    if labelled:
        rows["label"] = [person for person in range(5) for _ in range(2)]
    datasets.Dataset.from_dict(rows).to_parquet(str(tmp_path / "train.parquet"))
    load = datasets.load_dataset
    monkeypatch.setattr(datasets, "load_dataset", lambda path, split: load(
        "parquet", data_files=str(tmp_path / "train.parquet"), split=split) if path == "someone/faces" else None)
    cfg = colorize.Config(data="someone/faces", size=16, val_fraction=0.2, test_fraction=0.2)
    photos = colorize.load_split_photos(cfg)
    groups = {part: set(names) for part, names in photos.groups.items()}
    assert sorted(len(names) for names in photos.groups.values()) == [2, 2, 6]
    assert not (groups["train"] & groups["val"] or groups["train"] & groups["test"] or groups["val"] & groups["test"])
    for part in ("train", "val", "test"):
        assert photos.rgb[part].shape == (len(photos.names[part]), 3, 16, 16)
        for name, group, image in zip(photos.names[part], photos.groups[part], photos.rgb[part]):
            row = int(name.removeprefix("someone/faces[").removesuffix("]"))
            assert group == str(row // 2 if labelled else row)  # its person, or else the photo is its own group
            torch.testing.assert_close(image[:, 8, 8] * 255, torch.tensor(colors[row], dtype=torch.float32),
                                       atol=1, rtol=0)


@pytest.mark.parametrize(("skip", "context"), [(False, False), (True, False), (True, True)])
def test_forward_shapes_and_range(skip, context):
    model = colorize.Colorizer(width=8, skip=skip, size=32, context=context).eval()
    out = model(torch.rand(2, 1, 32, 32))
    assert out.shape == (2, 2, 32, 32) and torch.isfinite(out).all() and 0 <= out.min() and out.max() <= 1
    mean = colorize.MeanColor(size=32)(torch.rand(2, 1, 32, 32))
    assert mean.shape == (2, 2) and torch.isfinite(mean).all()


def test_save_load_strict_round_trip(tmp_path):
    model = colorize.Colorizer(width=8, skip=True, size=16, context=True).eval()
    model.save_pretrained(tmp_path)
    loaded = colorize.load(str(tmp_path)).model
    assert loaded.skip and loaded.size == 16 and loaded.context is not None
    x = torch.rand(1, 1, 16, 16)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_the_context_branch_sees_the_whole_photo():
    """Without it, a pixel's color depends on its neighbourhood only; with it, also on a far corner of the photo."""
    torch.manual_seed(0)
    x = torch.rand(1, 1, 256, 256)
    far = x.clone()
    far[..., 128:, 128:] = 1.0  # change only the bottom-right quarter: white
    for context in (False, True):
        model = colorize.Colorizer(width=8, skip=True, size=256, context=context).eval()
        if context:  # untrained, the branch is nearly silent: make it loud, this checks the wiring
            model.context[-1].weight.data.mul_(1000)
        with torch.no_grad():
            top_left = (model(x) - model(far))[..., :16, :16].abs().max()
        assert (top_left > 1e-6) == context, (context, float(top_left))


def test_smoke_run_writes_the_output_folder(trained):
    for name in ("config.json", "model.safetensors", "mean_color/model.safetensors", "data.json", "README.md",
                 "metrics.json", "training_curves.png", "examples.png"):
        assert (trained / name).is_file(), name
    summary = json.loads((trained / "metrics.json").read_text())
    assert summary["steps"] == 2 and 0 < summary["test_mae"] < 1
    data = json.loads((trained / "data.json").read_text())
    assert sorted(data["split"]["train"] + data["split"]["val"] + data["split"]["test"]) == [f"s0{i}" for i in range(1, 6)]
    assert list(summary["test_mae_by_person"]) == data["split"]["test"]
    assert summary["mae_by_split"]["test"] == pytest.approx(summary["test_mae"])
    assert set(summary["mae_by_split"]) == {"train", "val", "test"}
    assert "## Where the error is" in (trained / "README.md").read_text()


def test_augment_scales_each_channel_within_the_color_jitter():
    flat = torch.full((200, 3, 8, 8), 0.5)  # a flat photo: zoom and shifts leave it as it is, only the gains show
    gains = colorize.augment(flat, torch.Generator().manual_seed(0), color=0.2) / 0.5
    torch.testing.assert_close(gains, gains[..., :1, :1].expand_as(gains))  # one gain per channel and photo
    assert 0.8 <= gains.min() < 0.82 and 1.18 < gains.max() <= 1.2
    assert (gains[:, 0] - gains[:, 2]).abs().max() > 0.2  # the channels draw apart: a tint, not only brightness
    torch.testing.assert_close(colorize.augment(flat, torch.Generator().manual_seed(0), color=0.0), flat)


@pytest.mark.parametrize("augment", [True, False])
def test_training_augments_each_batch_with_the_configured_color_jitter(people, tmp_path, monkeypatch, augment):
    calls, original = [], colorize.augment
    monkeypatch.setattr(colorize.fit, "augment", lambda rgb, generator, **kwargs: calls.append(kwargs) or original(
        rgb, generator, **kwargs))
    colorize.train(tiny_config(tmp_path, people, max_train_steps=2, color_jitter=0.07, augment=augment))
    assert calls == ([{"color": 0.07, "flip": False}] * 2 if augment else [])


def test_match_cast_removes_a_global_tint_and_nothing_else():
    true_ab = torch.rand(3, 2, 8, 8)
    tinted = true_ab + torch.tensor([0.05, -0.03]).view(1, 2, 1, 1)  # right colors under the wrong light
    torch.testing.assert_close(colorize.match_cast(tinted, true_ab), true_ab)
    wrong = true_ab.flip(-1)  # wrong colors in the right places, same mean
    assert colorize.mae(colorize.match_cast(wrong, true_ab), true_ab).min() > 0.1


def test_by_group_averages_each_person_in_first_seen_order():
    values = torch.tensor([[1.0, 10.0], [3.0, 30.0], [5.0, 50.0]])
    means = colorize.by_group(values, ["s02", "s01", "s02"])
    assert list(means) == ["s02", "s01"]
    torch.testing.assert_close(means["s02"], torch.tensor([3.0, 30.0]))
    with pytest.raises(ValueError, match="3 values for 2"):
        colorize.by_group(values, ["s01", "s02"])


def test_mean_color_is_scored_beside_a_constant_guess(people):
    photos = colorize.load_photos(sorted(people.glob("s0*/*.jpg")), 16)
    true_mean = colorize.rgb_to_lab(photos)[:, 1:].mean((2, 3))
    guess = torch.tensor([0.55, 0.6])

    class Constant(torch.nn.Module):  # a regressor that ignores L and says `guess`: no better than the baseline
        def forward(self, lightness):
            return guess.expand(len(lightness), 2)

    regressor = Constant()
    scores = colorize.score_mean_color(regressor, photos, guess)
    expected = float(((true_mean - guess) ** 2).mean())
    assert scores["mse"] == pytest.approx(expected) and scores["baseline_mse"] == pytest.approx(expected)
    assert regressor.training  # scored in eval mode, handed back as it came (mid-training)
    assert colorize.score_mean_color(Constant(), photos, true_mean.mean(0))["baseline_mse"] < expected


def test_evaluate_reports_each_test_person_and_each_split(trained, people, tmp_path):
    model = colorize.load(str(trained))
    report = colorize.evaluate(model, str(people))
    test_people = model.split["test"]
    assert report["n"] == 3 * len(test_people)
    assert sorted(report["people"]) == [f"s0{i}" for i in range(1, 6)]
    test_maes = [report["people"][name]["mae"] for name in test_people]
    assert report["mae"] == pytest.approx(np.mean(test_maes))
    assert set(report["by_split"]) == {"train", "val", "test"}
    assert report["by_split"]["test"] == pytest.approx(report["mae"])
    for name, person in report["people"].items():
        assert name in model.split[person["part"]]
        photos = colorize.load_photos(sorted((people / name).glob("*.jpg")), model.model.size)
        true_ab = colorize.ab_units(colorize.rgb_to_lab(photos)[:, 1:].mean((0, 2, 3)))
        np.testing.assert_allclose(person["ab"], true_ab.numpy(), atol=0.01)
    low, high = report["interval"]
    assert low - 1e-6 <= report["mae"] <= high + 1e-6 and 0 <= report["cast_matched_mae"] < 1
    assert 0 < report["mean_color_mse"] < 1 and 0 < report["mean_color_baseline_mse"] < 1  # trained has mean_color/
    flat = tmp_path / "flat"  # not the training folder: every photo is its own unit, no split
    flat.mkdir()
    for index, photo in enumerate(sorted(people.glob("s0[12]/*.jpg"))):
        (flat / f"{index}.jpg").write_bytes(photo.read_bytes())
    report = colorize.evaluate(model, str(flat))
    assert report["n"] == 6 and report["test_people"] == 0 and "people" not in report and "by_split" not in report


@pytest.mark.parametrize("decay", ["constant", "cosine"])
def test_lr_decay_sets_the_schedule(people, tmp_path, decay):
    colorize.train(tiny_config(tmp_path, people, num_epochs=2, max_train_steps=6, lr_warmup_steps=1, lr_decay=decay))
    state = json.loads((tmp_path / "out" / training.CHECKPOINTS / "checkpoint-6" / "trainer_state.json").read_text())
    rates = state["history"]["lr"]
    assert len(rates) == 6 and rates[0] == pytest.approx(1e-3)
    if decay == "constant":
        assert rates == pytest.approx([1e-3] * 6)
    else:  # falls every step towards zero at the end of the run
        assert all(later < earlier for earlier, later in zip(rates, rates[1:])) and rates[-1] < 1e-4


def test_refit_trains_on_the_validation_people_too_and_keeps_the_last_epoch(people, tmp_path, monkeypatch):
    summaries, curve_labels = {}, []
    plot = training.plot_training_curves
    monkeypatch.setattr(training, "plot_training_curves",
                        lambda history, path, title, val_label: (curve_labels.append(val_label),
                                                                 plot(history, path, title, val_label)))
    for refit in (False, True):  # 3 training people and 1 validation person, 3 photos each, batches of 3
        cfg = tiny_config(tmp_path / str(refit), people, num_epochs=2, train_batch_size=3, refit=refit)
        colorize.train(cfg)
        out = Path(cfg.output_dir)
        summaries[refit] = json.loads((out / "metrics.json").read_text())
        data = json.loads((out / "data.json").read_text())
        photos = colorize.load_split_photos(cfg).rgb
        seen = torch.cat([photos["train"], photos["val"]]) if refit else photos["train"]
        seen_mean_ab = colorize.rgb_to_lab(seen)[:, 1:].mean((0, 2, 3))
        torch.testing.assert_close(torch.tensor(data["train_mean_ab"]), seen_mean_ab)
        assert data["trained_on"] == (["train", "val"] if refit else ["train"])
        assert ("validation people (trained on: refit)" in (out / "README.md").read_text()) == refit
        assert ("trained on: refit" in curve_labels[-1]) == refit  # the curve says it is no longer held out
    assert summaries[False]["steps"] == 2 * 3 and summaries[True]["steps"] == 2 * 4
    assert summaries[True]["best_epoch"] == 1  # the last, whatever its validation MAE
    assert colorize.evaluate(colorize.load(str(out)), str(people))["trained_on"] == ["train", "val"]


def test_extra_training_photos_are_trained_on_and_nothing_else(people, tmp_path):
    extra = tmp_path / "scenes"
    extra.mkdir()
    for index in range(3):
        Image.new("RGB", (30, 20), (40 * index, 200, 90)).save(extra / f"scene{index}.png")
    plain = tiny_config(tmp_path / "plain", people, train_batch_size=3)
    mixed = tiny_config(tmp_path / "mixed", people, train_batch_size=3, extra_train=str(extra))
    for cfg in (plain, mixed):
        colorize.train(cfg)
    summaries = [json.loads((Path(cfg.output_dir) / "metrics.json").read_text()) for cfg in (plain, mixed)]
    data = [json.loads((Path(cfg.output_dir) / "data.json").read_text()) for cfg in (plain, mixed)]
    assert summaries[0]["steps"] == 9 // 3 and summaries[1]["steps"] == (9 + 3) // 3  # 3 training people × 3 photos
    assert data[0]["split"] == data[1]["split"] and data[1]["extra_train"] == str(extra)
    assert data[0]["train_mean_ab"] == data[1]["train_mean_ab"]  # the baseline stays the training people's color
    assert summaries[1]["test_photos"] == summaries[0]["test_photos"] == 3
    cards = [(Path(cfg.output_dir) / "README.md").read_text() for cfg in (plain, mixed)]
    assert f"Also trained on every photo in `{extra}`" in cards[1] and "Also trained on" not in cards[0]


def test_init_seed_trains_another_model_on_the_same_split(trained, people, tmp_path):
    again = tiny_config(tmp_path / "again", people, max_train_steps=2, init_seed=0)  # -1, the default, means seed
    other = tiny_config(tmp_path / "other", people, max_train_steps=2, init_seed=1)
    served = {"again": colorize.train(again), "other": colorize.train(other), "trained": colorize.load(str(trained))}
    assert all(served[name].split == served["trained"].split and served[name].facts == served["trained"].facts
               for name in served)  # the same people and photos
    models = {name: value.model for name, value in served.items()}
    x = torch.rand(2, 1, 16, 16)
    torch.testing.assert_close(models["again"](x), models["trained"](x), rtol=0, atol=0)
    assert not torch.allclose(models["other"](x), models["trained"](x))
    # and the model train() hands back scores as the folder it wrote does (its split and mean color came with it)
    again_report = colorize.evaluate(served["again"], str(people))
    assert again_report["people"] == colorize.evaluate(colorize.load(again.output_dir), str(people))["people"]


@pytest.fixture(scope="module")
def ensemble(trained, people, tmp_path_factory):
    """The `trained` colorizer and one like it from init seed 1, as an ensemble (through the command line)."""
    tmp_path = tmp_path_factory.mktemp("ensemble")
    colorize.train(tiny_config(tmp_path / "seed1", people, max_train_steps=2, init_seed=1))
    colorize.main(["ensemble", str(tmp_path / "both"), str(trained), str(tmp_path / "seed1" / "out")])
    return tmp_path / "both", [trained, tmp_path / "seed1" / "out"]


def test_an_ensemble_predicts_its_members_mean_and_serves_like_a_colorizer(ensemble, people):
    folder, member_folders = ensemble
    served, members = colorize.load(str(folder)), [colorize.load(str(path)).model for path in member_folders]
    model = served.model
    assert isinstance(model, colorize.ColorizerEnsemble) and model.size == 16
    x = torch.rand(3, 1, 16, 16)
    torch.testing.assert_close(model(x), (members[0](x) + members[1](x)) / 2)
    summary = json.loads((folder / "metrics.json").read_text())
    assert [member["init_seed"] for member in summary["members"]] == [0, 1]
    assert summary["steps"] == 4 and summary["parameters"] == 2 * colorize.count_parameters(members[0])
    test_x = colorize.load_photos([p for name in served.split["test"]
                                   for p in colorize.photo_groups(str(people))[name]], 16)
    assert summary["members"][1]["test_mae"] == pytest.approx(colorize.score(members[1], test_x)["mae"])
    assert summary["test_mae"] == pytest.approx(colorize.evaluate(served, str(people))["mae"])
    first = colorize.load(str(member_folders[0]))
    assert (served.split, served.facts) == (first.split, first.facts)
    assert (folder / "mean_color" / "model.safetensors").is_file()
    assert Image.open(folder / "training_curves.png").height > Image.open(member_folders[0] / "training_curves.png").height
    card = (folder / "README.md").read_text()
    assert "the mean of 2 colorizers" in card and "seeds (init, data order and augmentation draws: 0, 1)" in card
    photo = Image.new("RGB", (37, 23), (120, 80, 60))
    assert colorize.predict(served, photo).image.size == (37, 23)


def test_an_ensemble_refuses_members_of_other_people_or_the_same_seed(trained, ensemble, people, tmp_path):
    colorize.train(tiny_config(tmp_path, people, max_train_steps=1, seed=1))  # another split of the people
    with pytest.raises(ValueError, match="other people or photos"):
        colorize.build_ensemble([str(trained), str(tmp_path / "out")], str(tmp_path / "mixed"))
    # `python -m tasks.colorize` says why, without a traceback
    result = subprocess.run([sys.executable, "-m", "tasks.colorize", "ensemble", str(tmp_path / "twice"), str(trained),
                             str(trained)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "same seed" in result.stderr and "Traceback" not in result.stderr
    with pytest.raises(ValueError, match="is one of the members"):
        colorize.build_ensemble([str(trained), str(ensemble[1][1])], str(trained))
    with pytest.raises(ValueError, match="not a trained colorizer folder"):
        colorize.build_ensemble([str(ensemble[0]), str(trained)], str(tmp_path / "nested"))
    older = tmp_path / "older"  # a folder written before data.json had "extra_train": none, as its default says
    shutil.copytree(trained, older)
    data = json.loads((older / "data.json").read_text())
    del data["extra_train"]
    (older / "data.json").write_text(json.dumps(data))
    other = shutil.copytree(ensemble[1][1], tmp_path / "other")
    for folder in (older, other):  # and members without training curves: the ensemble has none either
        (folder / "training_curves.png").unlink()
    assert len(colorize.build_ensemble([str(older), str(other)], str(tmp_path / "both")).model.members) == 2
    assert (tmp_path / "both" / "metrics.json").is_file() and not (tmp_path / "both" / "training_curves.png").exists()


def _lightness(image: Image.Image) -> np.ndarray:
    return rgb2lab(np.asarray(image.convert("RGB"), dtype=np.float64) / 255)[..., 0]


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "I;16"])
def test_predict_keeps_size_and_lightness(trained, mode):
    model = colorize.load(str(trained))
    rng = np.random.default_rng(2)
    if mode == "I;16":
        photo = Image.fromarray(rng.integers(0, 65535, (45, 70), dtype=np.uint16))
    else:
        photo = Image.fromarray(rng.integers(0, 256, (45, 70, 4), dtype=np.uint8), "RGBA").convert(mode)
    path = trained.parent / f"photo-{mode.replace(';', '')}.png"
    photo.save(path)
    result = colorize.predict(model, str(path))
    assert result.image.size == (70, 45) and result.gray.size == (70, 45)
    source = load_rgb(path)
    # the output's L is the input's L (up to 8-bit rounding), at full resolution
    assert np.abs(_lightness(result.image) - _lightness(source)).mean() < 0.5
    assert result.was_color == (mode in ("RGB", "RGBA")) and (result.mae is None) == (mode in ("L", "I;16"))


def _gray_texture(size: int = 64) -> np.ndarray:
    """A gray photo's worth of structure: smooth blobs and edges, (size, size) uint8 in 60..200."""
    rng = np.random.default_rng(4)
    coarse = rng.uniform(60, 200, (size // 8, size // 8))
    return np.asarray(Image.fromarray(coarse.astype(np.uint8)).resize((size, size), Image.Resampling.BICUBIC))


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    import io

    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def test_gray_photos_with_sensor_scanner_or_jpeg_noise_are_gray_and_color_photos_are_not():
    from skimage import data

    gray = _gray_texture()[..., None].repeat(3, axis=2).astype(np.int16)
    rng = np.random.default_rng(2)
    # ../shared/cases/replayed-reports/min_gray_noise2_64.png is such a photo with ±2 per channel
    noisy = {amplitude: Image.fromarray(np.clip(gray + rng.integers(-amplitude, amplitude + 1, gray.shape), 0, 255)
                                        .astype(np.uint8)) for amplitude in (2, 4, 6, 10)}
    large = _gray_texture(1024)[..., None].repeat(3, axis=2).astype(np.int16)
    large_noisy = Image.fromarray(np.clip(large + rng.integers(-10, 11, large.shape), 0, 255).astype(np.uint8))
    casts = [Image.fromarray(np.clip(gray + cast, 0, 255).astype(np.uint8)) for cast in ([3, 1, -3], [5, 2, -5])]
    for photo in (*noisy.values(), large_noisy, *casts, _jpeg(noisy[4], 50), Image.fromarray(gray.astype(np.uint8))):
        assert not colorize.has_color(photo)
    astronaut = np.asarray(data.astronaut(), dtype=np.float64)
    dull = astronaut.mean(2, keepdims=True) + 0.15 * (astronaut - astronaut.mean(2, keepdims=True))  # 15% saturation
    for photo in (Image.fromarray(astronaut.astype(np.uint8)), Image.fromarray(dull.astype(np.uint8)),
                  _jpeg(Image.fromarray(data.coffee()), 50)):
        assert colorize.has_color(photo)
    # a gray photo with one small colored patch (4% of it) has color
    patched = np.asarray(noisy[2]).copy()
    patched[:13, :13] = (200, 40, 40)
    assert colorize.has_color(Image.fromarray(patched))


def test_a_noisy_gray_photo_gets_no_error_score(trained):
    rng = np.random.default_rng(3)
    photo = _gray_texture()[..., None].astype(np.int16) + rng.integers(-2, 3, (64, 64, 3))
    result = colorize.predict(colorize.load(str(trained)), Image.fromarray(photo.astype(np.uint8)))
    assert not result.was_color and result.mae is None


def test_predict_in_bands_gives_the_photo_predicted_whole(trained, monkeypatch):
    from skimage import data

    model, photo = colorize.load(str(trained)), Image.fromarray(data.coffee()).resize((97, 61))
    whole = colorize.predict(model, photo, saturation=1.3)
    for band_pixels in (97 * 7, 30):  # 9 bands of 7 rows; tiles of 1 row × 30 columns (a photo wider than a band)
        monkeypatch.setattr(colorize.serve, "BAND_PIXELS", band_pixels)
        banded = colorize.predict(model, photo, saturation=1.3)
        np.testing.assert_array_equal(np.asarray(banded.image), np.asarray(whole.image))
        np.testing.assert_array_equal(np.asarray(banded.gray), np.asarray(whole.gray))
        assert banded.mae == pytest.approx(whole.mae, rel=1e-5)
    # and the whole is F.interpolate of the model's a*b* over the full photo, joined with its L (to 8-bit rounding)
    lab = colorize.rgb_to_lab(torch.from_numpy(np.asarray(photo, dtype=np.float32) / 255).permute(2, 0, 1)[None])
    size = model.model.size
    small = torch.nn.functional.interpolate(lab[:, :1], size=(size, size), mode="bilinear", antialias=True)
    ab = torch.nn.functional.interpolate(model.model(small), size=(61, 97), mode="bilinear", align_corners=False).detach()
    ab = colorize.NEUTRAL_AB.view(1, 2, 1, 1) + 1.3 * (ab - colorize.NEUTRAL_AB.view(1, 2, 1, 1))
    expected = colorize.lab_to_rgb(torch.cat([lab[:, :1], ab], 1))[0].permute(1, 2, 0).numpy() * 255
    assert np.abs(np.asarray(whole.image, dtype=np.float64) - expected).max() <= 1.0
    assert whole.mae == pytest.approx(float((ab - lab[:, 1:]).abs().mean()), rel=1e-4)


def test_saturation_zero_gives_gray_and_bad_values_are_refused(trained):
    model = colorize.load(str(trained))
    photo = Image.new("RGB", (20, 20), (200, 120, 60))
    gray = np.asarray(colorize.predict(model, photo, saturation=0.0).image, dtype=np.int16)
    assert np.abs(gray - gray[..., :1]).max() <= 1  # R = G = B
    with pytest.raises(ValueError, match="Saturation"):
        colorize.predict(model, photo, saturation=-1)


def test_sweep_runs_two_trials_in_shards_and_writes_its_table(people, tmp_path):
    from training import sweep

    fixed = ["--data", str(people), "--transfer_data", "", "--size", "16", "--max_train_steps", "1",
             "--train_batch_size", "4", "--repeats", "1", "--num_epochs", "1"]
    # a shard runs its own trials only (trial 1 of 0, 1) and writes no table
    sweep.run(["colorize", "--grid", "width=2,4", "--metric", "best_val_mae", "--output_dir", str(tmp_path / "sweep"),
               "--shard", "1/2", "--", *fixed])
    assert (tmp_path / "sweep" / "trial-1" / "metrics.json").is_file()
    assert not (tmp_path / "sweep" / "trial-0").exists() and not (tmp_path / "sweep" / "sweep.md").exists()
    summary = sweep.run(["colorize", "--grid", "width=2,4", "--metric", "best_val_mae", "--also", "test_mae", "--output_dir",
                         str(tmp_path / "sweep"), "--", *fixed])
    assert sorted(row["values"]["width"] for row in summary["trials"]) == [2, 4]
    table = (tmp_path / "sweep" / "sweep.md").read_text()
    assert "| width | best_val_mae | test_mae | parameters |" in table and (tmp_path / "sweep" / "sweep.png").is_file()
    # a finished sweep is not run again: the trials are read back
    again = sweep.run(["colorize", "--grid", "width=2,4", "--metric", "best_val_mae", "--also", "test_mae", "--output_dir",
                       str(tmp_path / "sweep"), "--", *fixed])
    assert again["trials"] == summary["trials"]


@pytest.mark.parametrize("flags", [["--grid", "width=2", "--", "--refit"],
                                   ["--grid", "width=2", "refit=false,true", "--"]])
def test_a_sweep_refuses_to_rank_refit_trials(tmp_path, flags):
    from training import sweep

    with pytest.raises(SystemExit, match="in-sample"):
        sweep.run(["colorize", "--metric", "best_val_mae", "--output_dir", str(tmp_path / "sweep"), *flags,
                   "--data", str(tmp_path / "no-photos")])
    assert not (tmp_path / "sweep").exists()  # refused before any trial ran


def test_bench_colorize_writes_the_readme_figures(people, trained, tmp_path, capsys):
    from bench.__main__ import main

    scenes = tmp_path / "scenes"
    scenes.mkdir()
    for index in range(2):
        Image.new("RGB", (40, 30), (30 + 90 * index, 140, 200)).save(scenes / f"scene{index}.png")
    main(["colorize", "--data", str(people), "--weights", str(trained), "--transfer", str(scenes), "--n_latency", "2",
          "--json", str(tmp_path / "colorize.json")])
    result = json.loads((tmp_path / "colorize.json").read_text())
    quality = result["quality"]
    assert result["task"] == "colorize" and result["trained_on"] == ["train"] and len(result["people"]) == 5
    assert quality["scenes_photos"] == 2 and result["latency_ms"]["p50"] > 0 and "| colorize |" in capsys.readouterr().out
    # the spread of the people's mean a*, b*, recomputed with scikit-image from the photos at the model's size
    means = {}
    for photo in sorted(people.glob("*/*.jpg")):
        pixels = np.asarray(colorize.square(load_rgb(photo), 16), dtype=np.float64) / 255
        means.setdefault(photo.parent.name, []).append(rgb2lab(pixels)[..., 1:].mean((0, 1)))
    spread = np.std([np.mean(tints, 0) for tints in means.values()], 0, ddof=1)
    np.testing.assert_allclose([quality["tint_std/people/a"], quality["tint_std/people/b"]], spread, atol=0.05)
    # RGB scaling at ±15% moves a photo's tint about three times as far as at ±5% (the same draws, scaled)
    for axis in "ab":
        ratio = quality[f"tint_std/rgb_scaling_0.15/{axis}"] / quality[f"tint_std/rgb_scaling_0.05/{axis}"]
        assert 2.5 < ratio < 3.5


@pytest.mark.parametrize("spec", ["2/2", "1", "a/2", "-1/2"])
def test_a_bad_shard_is_refused(spec):
    from training import sweep

    with pytest.raises(SystemExit, match="--shard takes K/N"):
        sweep.parse_shard(spec)


def test_colorfulness_on_hand_checkable_images():
    gray = torch.full((1, 3, 8, 8), 0.5)
    red = torch.zeros(1, 3, 8, 8)
    red[:, 0] = 1.0  # rg = 255, yb = 127.5 everywhere: no spread, M = 0.3 · √(255² + 127.5²)
    halves = torch.zeros(1, 3, 8, 8)
    halves[:, 0, :, :4], halves[:, 1, :, 4:] = 1.0, 1.0  # red | green: rg = ±255 (σ 255, μ 0), yb = 127.5 (σ 0)
    scores = colorize.colorfulness(torch.cat([gray, red, halves]))
    torch.testing.assert_close(scores, torch.tensor([0.0, 0.3 * (255 ** 2 + 127.5 ** 2) ** 0.5,
                                                     255 + 0.3 * 127.5]), rtol=0, atol=1e-3)


def test_extra_photos_skip_grayscale_ones_and_count_them(tmp_path):
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        folder.mkdir()
    Image.new("RGB", (20, 10), (200, 40, 40)).save(folders[0] / "red.png")
    Image.new("L", (20, 10), 128).save(folders[0] / "gray.png")  # a gray photo saved as L
    Image.new("RGB", (20, 10), (90, 90, 90)).save(folders[1] / "gray-rgb.png")  # and one saved as RGB
    Image.new("RGB", (20, 10), (30, 160, 60)).save(folders[1] / "green.png")
    extra = colorize.load_extra_photos(f"{folders[0]}, {folders[1]}", size=8)
    assert extra.rgb.shape == (2, 3, 8, 8)
    assert extra.photos == {str(folders[0]): 1, str(folders[1]): 1}
    assert extra.skipped_gray == {str(folders[0]): 1, str(folders[1]): 1}
    with pytest.raises(FileNotFoundError):
        colorize.load_extra_photos(str(tmp_path / "missing"), size=8)


def test_flip_mirrors_half_the_views_and_changes_nothing_else():
    rgb = torch.rand(64, 3, 8, 8)
    plain = colorize.augment(rgb, torch.Generator().manual_seed(3), zoom=0.0, shift=0.0, color=0.1)
    flipped = colorize.augment(rgb, torch.Generator().manual_seed(3), zoom=0.0, shift=0.0, color=0.1, flip=True)
    mirrored = torch.tensor([torch.allclose(f, p.flip(-1), atol=1e-5) for f, p in zip(flipped, plain)])
    same = torch.tensor([torch.allclose(f, p, atol=1e-5) for f, p in zip(flipped, plain)])
    assert (mirrored | same).all() and 16 < int(mirrored.sum()) < 48  # each view one or the other, about half flipped


def test_the_general_photo_model_trains_loads_and_colorizes(people, tmp_path):
    extra = tmp_path / "scenes"
    extra.mkdir()
    for index in range(4):
        Image.new("RGB", (30, 20), (40 * index, 200, 90)).save(extra / f"scene{index}.png")
    Image.new("L", (30, 20), 100).save(extra / "gray.png")
    cfg = tiny_config(tmp_path, people, arch="unet", width=4, depth=2, size=16, extra_train=str(extra), max_train_steps=2,
                      transfer_data=str(extra), validate_on_transfer=True, keep_last=True, flip=True, people_repeats=2)
    served = colorize.train(cfg)
    assert isinstance(served.model, colorize.PhotoColorizer) and served.model.size == 16
    again = colorize.load(cfg.output_dir)  # from its folder, by its config.json
    assert isinstance(again.model, colorize.PhotoColorizer)
    summary = json.loads((Path(cfg.output_dir) / "metrics.json").read_text())
    assert summary["steps"] == 2 and summary["extra_photos"] == {str(extra): 4}
    assert summary["skipped_gray"] == {str(extra): 1}
    assert summary["scenes_colorfulness"] >= 0 and summary["scenes_true_colorfulness"] > 10
    card = (Path(cfg.output_dir) / "README.md").read_text()
    assert "a general-photo colorizer" in card and "skipped as already grayscale" in card
    result = colorize.predict(again, Image.new("RGB", (37, 23), (120, 60, 30)))
    assert result.image.size == (37, 23) and result.was_color
    with pytest.raises(ValueError, match="general-photo U-Net"):  # an ensemble averages faces colorizers only
        colorize.build_ensemble([cfg.output_dir, cfg.output_dir], str(tmp_path / "ensemble"))
    with pytest.raises(ValueError, match="multiple of 4"):
        colorize.train(tiny_config(tmp_path, people, arch="unet", depth=2, size=18))
    with pytest.raises(ValueError, match="arch must be one of"):
        colorize.train(tiny_config(tmp_path, people, arch="vit"))


def test_init_weights_fine_tunes_from_a_trained_folder(trained, people, tmp_path):
    def weights(served):  # parameters only: BatchNorm's running statistics move in any training step
        return {key: value.detach() for key, value in served.model.named_parameters()}

    start = weights(colorize.load(str(trained)))
    still = tiny_config(tmp_path / "still", people, max_train_steps=1, learning_rate=0.0, init_weights=str(trained))
    fresh = tiny_config(tmp_path / "fresh", people, max_train_steps=1, learning_rate=0.0)
    kept, new = weights(colorize.train(still)), weights(colorize.train(fresh))
    assert all(torch.equal(kept[key], start[key]) for key in start)  # at lr 0 the weights are the folder's
    assert not all(torch.equal(new[key], start[key]) for key in start)  # a fresh init is not
    summary = json.loads((Path(still.output_dir) / "metrics.json").read_text())
    assert summary["first_stage"]["steps"] == 2 and summary["first_stage"]["config"]["width"] == 4
    with pytest.raises(ValueError, match="pass the flags it was trained with"):  # another shape than the folder's
        colorize.train(tiny_config(tmp_path / "wide", people, width=8, init_weights=str(trained)))
    with pytest.raises(FileNotFoundError, match="init_weights"):
        colorize.train(tiny_config(tmp_path / "none", people, init_weights=str(tmp_path / "missing")))
    with pytest.raises(ValueError, match="whom this run's split holds out"):  # seed 2 tests on s04, whom seed 0 trained on
        colorize.train(tiny_config(tmp_path / "other", people, seed=2, init_weights=str(trained)))


def test_load_picks_either_model_of_a_colorize_folder(trained, tmp_path):
    bundled = {model: colorize.load(model=model) for model in colorize.MODELS}
    assert isinstance(bundled["photos"].model, colorize.PhotoColorizer)  # the default, at the folder's top
    assert isinstance(bundled["faces"].model, colorize.ColorizerEnsemble)  # the original experiment, in faces/
    assert bundled["faces"].folder == bundled["photos"].folder / "faces"
    assert bundled["faces"].weights.name == bundled["photos"].weights.name + "/faces"
    with pytest.raises(FileNotFoundError, match="has no faces model"):  # one trained folder holds one model
        colorize.load(str(trained), model="faces")
    with pytest.raises(ValueError, match="photos, faces"):
        colorize.load(model="landscapes")
