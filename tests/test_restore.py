"""Restore: the two-phase training (class 0, then the clusterer's classes), resume, predict on any image, scores."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from tasks import restore
from tasks.restore.model import RestoreUNet


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Two folders of small textured photos (training: 12, validation: 2)."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for split, count in (("train", 12), ("val", 2)):
        (root / split).mkdir()
        for index in range(count):
            base = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
            Image.fromarray(base).resize((64, 48), Image.Resampling.BICUBIC).save(root / split / f"{index}.png")
    return root


def tiny_config(tmp_path, photos, **overrides) -> restore.Config:
    values = dict(data=str(photos / "train"), val_data=str(photos / "val"), output_dir=str(tmp_path / "restore"),
                  width=4, depth=2, patch_size=32, patches_per_image=1, train_batch_size=4, num_epochs=3,
                  cluster_epoch=1, min_cluster_size=4, cluster_views=2, val_images=2, lr_warmup_steps=1, checkpointing_steps=2)
    return restore.Config(**{**values, **overrides})


@pytest.fixture(scope="module")
def served(photos, tmp_path_factory):
    return restore.train(tiny_config(tmp_path_factory.mktemp("served"), photos))


def test_training_clusters_the_photos_after_cluster_epoch_and_the_folder_round_trips(served):
    folder = served.folder
    assert {"clusterer", "clusters.png", "config.json", "model.safetensors", "metrics.json"} <= {
        path.name for path in folder.iterdir()}
    clusterer = served.facts["clusterer"]
    assert clusterer is not None and sum(clusterer.report.sizes) == 24  # 12 photos × 2 views
    assert sum(served.metrics["photos_per_cluster"]) == 12
    assert served.metrics["epochs_trained"] == 3 and len(served.metrics["val_psnr"]) == 3
    again = restore.load(str(folder))
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(again.model(x), served.model(x), rtol=0, atol=0)


def test_baseline_never_clusters(photos, tmp_path):
    served = restore.train(tiny_config(tmp_path, photos, conditioning="none", num_epochs=2))
    assert served.facts["clusterer"] is None and not (served.folder / "clusterer").exists()
    assert restore.predict(served, Image.new("RGB", (5, 3))).photo_class == 0


def test_an_interrupted_run_resumes_with_its_clusterer(photos, tmp_path):
    first = restore.train(tiny_config(tmp_path, photos, max_train_steps=6))  # past the clustering (3 steps an epoch)
    again = restore.train(tiny_config(tmp_path, photos, resume_from_checkpoint="latest"))
    assert again.metrics["resumed"] == [{"from": "checkpoint-6"}] and again.metrics["steps"] == 9
    assert again.facts["clusterer"].report == first.facts["clusterer"].report


def test_a_bad_conditioning_or_patch_size_is_refused_before_training(photos, tmp_path):
    with pytest.raises(ValueError, match="conditioning must be one of cluster, none"):
        restore.train(tiny_config(tmp_path, photos, conditioning="oracle"))
    with pytest.raises(ValueError, match="multiple of 2\\^depth = 4"):
        restore.train(tiny_config(tmp_path, photos, patch_size=30))
    with pytest.raises(ValueError, match="lpips_weight must be 0 or more"):
        restore.train(tiny_config(tmp_path, photos, lpips_weight=-1))
    with pytest.raises(ValueError, match="clean_share must be in"):
        restore.train(tiny_config(tmp_path, photos, random_strength=True, clean_share=1.0))


def test_random_strength_damages_each_patch_by_its_own_share_of_the_recipe_and_leaves_some_clean():
    from tasks.restore.damage import DEFAULT_RECIPE
    from tasks.restore.task import damage_patches

    smooth = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(1))  # a photo-like patch, not pixel noise
    clean = torch.nn.functional.interpolate(smooth, size=(32, 32), mode="bilinear").repeat(64, 1, 1, 1)
    units = torch.ones(64)
    full = damage_patches(clean, units, DEFAULT_RECIPE, torch.Generator().manual_seed(0))
    mixed = damage_patches(clean, units, DEFAULT_RECIPE, torch.Generator().manual_seed(0), True, 0.25)
    change = lambda damaged: (damaged - clean).abs().flatten(1).mean(1)  # noqa: E731
    untouched = change(mixed) == 0
    assert 6 <= int(untouched.sum()) <= 26  # about a quarter of 64 left clean
    assert change(full).min() > 0.05  # the full recipe changes every patch a lot
    damaged = change(mixed)[~untouched]
    assert damaged.min() < change(full).min() / 2 < damaged.max()  # some barely damaged, some heavily
    again = damage_patches(clean, units, DEFAULT_RECIPE, torch.Generator().manual_seed(0), True, 0.25)
    torch.testing.assert_close(again, mixed, rtol=0, atol=0)  # seeded: a resumed run sees the same damage


def test_a_random_strength_run_trains_and_says_so_in_its_card(photos, tmp_path):
    served = restore.train(tiny_config(tmp_path, photos, conditioning="none", num_epochs=1, random_strength=True,
                                       clean_share=0.1))
    assert served.metrics["config"]["random_strength"] is True
    assert "trained at random strengths" in (served.folder / "README.md").read_text()


def test_the_optional_lpips_term_adds_to_the_l1_loss(photos, tmp_path):
    runs = {name: restore.train(tiny_config(tmp_path / name, photos, conditioning="none", max_train_steps=1,
                                            checkpointing_steps=1, lpips_weight=weight))
            for name, weight in (("l1", 0.0), ("both", 1.0))}
    first_loss = {name: _trainer_state(tmp_path / name)["history"]["loss"][0] for name in runs}
    assert first_loss["both"] > first_loss["l1"] + 0.01  # same init, same first batch: the LPIPS term is in the loss
    assert "1 × LPIPS (alex)" in (runs["both"].folder / "README.md").read_text()
    assert "LPIPS" not in (runs["l1"].folder / "README.md").read_text().split("## Training")[1].split("\n")[1]


def _trainer_state(root):
    checkpoints = sorted((root / "restore" / "checkpoints").glob("checkpoint-*"))
    return json.loads((checkpoints[-1] / "trainer_state.json").read_text())


@pytest.mark.parametrize("size", [(1, 1), (3, 5), (70, 90)])
def test_predict_works_on_any_size_and_keeps_transparency(served, size):
    image = Image.new("RGBA", size, (120, 80, 40, 255))
    image.putpixel((0, 0), (0, 0, 0, 0))
    result = restore.predict(served, image)
    assert result.image.size == size and result.image.mode == "RGBA" and result.image.getpixel((0, 0))[3] == 0


@pytest.mark.parametrize("depth", [2, 4])  # 4: the served net's depth (inputs padded to multiples of 16)
def test_tiles_give_the_one_pass_result(depth):
    model = RestoreUNet(width=4, depth=depth).eval()
    image = Image.fromarray(np.random.default_rng(1).integers(0, 255, (150, 190, 3), dtype=np.uint8))
    tiled = np.asarray(restore.restore_image(model, image, tile=48), dtype=np.int16)
    whole = np.asarray(restore.restore_image(model, image, tile=512), dtype=np.int16)
    assert np.abs(tiled - whole).max() <= 1


def test_a_forced_class_outside_the_clusters_is_refused(served):
    with pytest.raises(ValueError, match="photo_class must be in"):
        restore.predict(served, Image.new("RGB", (8, 8)), photo_class=99)


def test_evaluate_scores_damaged_and_restored_in_every_mode(served, photos):
    real = restore.evaluate(served, str(photos / "val"))
    oracle = restore.evaluate(served, str(photos / "val"), mode="max_class")
    baseline = restore.evaluate(served, str(photos / "val"), mode="baseline")
    assert real["n"] == 2 and {"psnr", "ssim", "lpips", "damaged_psnr", "damaged_lpips"} <= set(real)
    assert real["damaged_psnr"] == oracle["damaged_psnr"] == baseline["damaged_psnr"]  # the same damage
    assert oracle["psnr"] >= max(real["psnr"], baseline["psnr"]) - 1e-9


def test_bundle_copies_the_served_files_and_a_half_copy_restores_alike(served, tmp_path):
    half = restore.task.bundle(served.folder, tmp_path / "bundle" / "baseline", half=True)
    assert not (half / "checkpoints").exists() and (half / "clusterer").is_dir()
    again = restore.load(str(half))
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert (again.model(x) - served.model(x)).abs().max() < 1e-2
    with pytest.raises(FileNotFoundError, match="not a trained restore folder"):
        restore.task.bundle(tmp_path / "nothing", tmp_path / "out")


def test_after_clustering_the_encoder_and_so_the_features_stay_put(photos, tmp_path):
    from safetensors.torch import load_file

    restore.train(tiny_config(tmp_path, photos, checkpointing_steps=1, checkpoints_total_limit=20))  # 3 steps/epoch
    checkpoints = tmp_path / "restore" / "checkpoints"
    at_clustering = load_file(checkpoints / "checkpoint-3" / "model.safetensors")  # epoch 1 clusters, then trains
    final = load_file(checkpoints / "checkpoint-9" / "model.safetensors")
    encoder = [key for key in final if key.startswith("down.")]  # weights and BatchNorm statistics
    assert encoder and all(torch.equal(at_clustering[key], final[key]) for key in encoder)
    assert not all(torch.equal(at_clustering[key], final[key]) for key in final if key.startswith("merge."))


def test_bench_restore_writes_the_keys_other_checks_read_and_the_table_into_the_card(served, photos, tmp_path):
    import json

    from bench.__main__ import main

    folder = restore.task.bundle(served.folder, tmp_path / "bundle")
    restore.train(tiny_config(tmp_path, photos, conditioning="none", output_dir=str(folder / "baseline")))
    out = tmp_path / "restore.json"
    main(["restore", "--weights", str(folder), "--data", str(photos / "val"), "--n_latency", "2", "--megapixels",
          "0.2", "--json", str(out), "--card"])
    result = json.loads(out.read_text())
    quality, table = result["quality"], result["table"]
    assert {"psnr", "damaged_psnr", "lpips", "damaged_lpips", "classical_psnr", "classical_lpips"} <= set(quality)
    assert set(table) == {"damaged", "baseline", "real", "max_class", "opencv_telea_nlm", "opencv_telea_nlm_levels",
                          "skimage_biharmonic_nlm"} and result["n"] == 2
    assert table["max_class"]["psnr"] >= table["real"]["psnr"] - 1e-9  # the oracle is never worse than the clusterer
    assert table["baseline"]["psnr"] != table["real"]["psnr"]  # the baseline/ net, not the served one at class 0
    assert quality["classical_psnr"] == max(table[name]["psnr"] for name in table if name.startswith(("opencv", "ski")))
    assert 0 <= quality["damaged_lpips"] <= 1 and result["latency_ms"]["p50"] > 0 and result["large_photo"]["seconds"]
    by_strength = result["by_strength"]  # lighter damage, and none, on the same photos
    assert list(by_strength) == ["0", "0.25", "0.5", "1"] and by_strength["0"]["damaged_psnr"] is None
    assert by_strength["0.25"]["damaged_psnr"] > by_strength["0.5"]["damaged_psnr"] > by_strength["1"]["damaged_psnr"]
    assert by_strength["1"]["psnr"] == pytest.approx(quality["psnr"]) and by_strength["0"]["psnr"] > 0
    card = (folder / "README.md").read_text()
    epochs = served.metrics["epochs_trained"]
    assert f"| {restore.task.ROWS['real']} | {table['real']['l1']:.4f} | {table['real']['psnr']:.2f} |" in card
    assert f"of {epochs} |" in card and "loss (L1)" in card
    assert f"| × 0.5 | {by_strength['0.5']['damaged_psnr']:.2f} | {by_strength['0.5']['psnr']:.2f} |" in card


def test_the_classical_rows_fill_the_masked_pixels_and_auto_levels_undo_a_fade():
    from bench.classical import TOOLS

    clean = np.full((40, 40, 3), (120, 140, 90), dtype=np.uint8)
    damaged, mask = clean.copy(), np.zeros((40, 40), dtype=bool)
    mask[15:25, 15:25] = True
    damaged[mask] = (250, 250, 250)
    for name, tool in TOOLS.items():
        out = tool(damaged, mask)
        assert out.shape == clean.shape and out.dtype == np.uint8, name
        if name != "opencv_telea_nlm_levels":  # a flat photo has no levels to stretch
            assert np.abs(out[mask].astype(int) - (120, 140, 90)).max() <= 3, name
    ramp = np.repeat(np.linspace(0, 255, 64)[None, :, None], 16, axis=0).repeat(3, axis=2)
    faded = (0.4 * ramp + 80).round().astype(np.uint8)  # contrast lost, lifted: 80..182
    restored = TOOLS["opencv_telea_nlm_levels"](faded, np.zeros(faded.shape[:2], dtype=bool))
    assert restored.min() <= 5 and restored.max() >= 250
    from bench.classical import run_tools  # the bench's way: each row once, the same pixels

    rows = run_tools(damaged, mask)
    assert list(rows) == list(TOOLS) and all((rows[name] == TOOLS[name](damaged, mask)).all() for name in TOOLS)


def test_a_rebundle_replaces_the_clusterer_and_a_run_without_one_leaves_none_behind(served, photos, tmp_path):
    folder = restore.task.bundle(served.folder, tmp_path / "bundle")
    (folder / "clusterer" / "stale.json").write_text("{}")
    restore.task.bundle(served.folder, folder)
    assert not (folder / "clusterer" / "stale.json").exists() and (folder / "clusterer").is_dir()
    again = tiny_config(tmp_path, photos, conditioning="none", output_dir=str(folder), max_train_steps=1)
    assert restore.train(again).facts["clusterer"] is None and not (folder / "clusterer").exists()


def test_validation_is_held_out_of_the_training_photos_by_default(photos, tmp_path):
    with pytest.raises(ValueError, match="too few to hold out val_images = 12"):
        restore.train(tiny_config(tmp_path, photos, val_data="", val_images=12))
    trained = restore.train(tiny_config(tmp_path, photos, val_data="", val_images=2, conditioning="none",
                                        max_train_steps=1))
    card = (trained.folder / "README.md").read_text()
    assert "the last 2 photos of train, held out of training" in card
