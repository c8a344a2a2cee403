"""The Cards DDPM: training smoke run, DDPMPipeline layout, seeded sampling, samplers, inpainting, bad knobs."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel
from PIL import Image

from tasks import hub
from tasks.cards import CATEGORIES, diffusion, render_card, render_dataset


def tiny_config(tmp_path, **overrides) -> diffusion.Config:
    values = dict(output_dir=str(tmp_path / "out"), height=16, width=16, block_out_channels=(8, 16),
                  norm_num_groups=4, train_batch_size=4, num_epochs=1, lr_warmup_steps=1, save_images_epochs=1, checkpointing_steps=1,
                  num_train_timesteps=50)
    return diffusion.Config(**{**values, **overrides})


def served(model: diffusion.CardModel) -> hub.Served:
    """A model built in the test, served as `load` would serve it."""
    return hub.Served(model=model, weights=hub.Weights(path=hub.MODELS_DIR / "cards", origin="argument", name="test"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-step training run on 8 rendered cards (the smoke run), loaded back through diffusion.load."""
    tmp_path = tmp_path_factory.mktemp("cards")
    render_dataset(2, tmp_path / "data", size=(32, 24), categories=("FULL_CARD", "SMALL", "CLEAN", "LIGHT"))
    cfg = tiny_config(tmp_path, data=str(tmp_path / "data"), max_train_steps=2)
    diffusion.train(cfg)
    return tmp_path / "out"


def test_smoke_run_writes_a_loadable_ddpm_pipeline(trained):
    for name in ("model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
                 "scheduler/scheduler_config.json", "cards_config.json", "README.md", "metrics.json",
                 "training_curves.png", "samples.png", "stain_this_card.png"):
        assert (trained / name).is_file(), name
    assert json.loads((trained / "model_index.json").read_text())["_class_name"] == "DDPMPipeline"
    pipeline = DDPMPipeline.from_pretrained(trained)  # diffusers' own loader accepts the folder
    assert pipeline.unet.config.num_class_embeds == len(CATEGORIES) + 1
    summary = json.loads((trained / "metrics.json").read_text())
    assert summary["steps"] == 2 and summary["training_cards"] == 8
    scheduler = json.loads((trained / "scheduler/scheduler_config.json").read_text())
    assert scheduler["prediction_type"] == "v_prediction"  # the samplers read it from here
    card = (trained / "README.md").read_text()
    assert "More Information Needed" not in card and "![stain this card](stain_this_card.png)" in card


def test_same_seed_same_cards_different_seed_different(trained):
    model = diffusion.load(str(trained))
    first = diffusion.predict(model, "SMALL", seed=3, n=2, num_inference_steps=3)
    again = diffusion.predict(model, "SMALL", seed=3, n=2, num_inference_steps=3)
    other = diffusion.predict(model, "SMALL", seed=4, n=2, num_inference_steps=3)
    assert [np.asarray(p).tolist() for p in first] == [np.asarray(p).tolist() for p in again]
    assert not np.array_equal(np.asarray(first[0]), np.asarray(other[0]))
    # card i depends on seed + i only: the second card of seed 3 is the first card of seed 4
    assert np.array_equal(np.asarray(first[1]), np.asarray(other[0]))


@pytest.mark.parametrize("sampler", diffusion.SCHEDULERS)
def test_each_sampler_returns_cards_of_the_model_size(trained, sampler):
    model = diffusion.load(str(trained))
    cards = diffusion.predict(model, "FULL_CARD", seed=0, n=2, num_inference_steps=4, scheduler=sampler)
    assert len(cards) == 2 and all(card.size == (16, 16) and card.mode == "RGB" for card in cards)


def test_progress_is_reported_every_step(trained):
    seen = []
    diffusion.predict(diffusion.load(str(trained)), "any", n=1, num_inference_steps=5, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(i, 5) for i in range(1, 6)]


@pytest.mark.parametrize("knobs, message", [
    (dict(n=0), "between 1 and"), (dict(num_inference_steps=0), "Steps must be"), (dict(category="COFFEE"), "Unknown category"),
    (dict(scheduler="Euler"), "Unknown scheduler"), (dict(n=diffusion.MAX_CARDS + 1), "between 1 and"),
    (dict(guidance_scale=0.5), "Guidance scale must be"), (dict(guidance_scale=diffusion.MAX_GUIDANCE + 1), "Guidance scale must be"),
])
def test_bad_knobs_give_clear_errors(trained, knobs, message):
    with pytest.raises(ValueError, match=message):
        diffusion.predict(diffusion.load(str(trained)), **{"category": "SMALL", **knobs})


def test_guidance_steers_a_category_and_leaves_any_alone(trained):
    model = diffusion.load(str(trained))
    pixels = lambda cards: np.asarray(cards[0], dtype=np.float32)  # noqa: E731
    plain = pixels(diffusion.predict(model, "SMALL", seed=1, n=1, num_inference_steps=3, guidance_scale=1.0))
    guided = pixels(diffusion.predict(model, "SMALL", seed=1, n=1, num_inference_steps=3, guidance_scale=5.0))
    assert np.abs(guided - plain).mean() > 0.5
    # "any" is the unconditional class itself: guidance toward it is a no-op
    assert np.array_equal(pixels(diffusion.predict(model, "any", seed=1, n=1, num_inference_steps=3, guidance_scale=1.0)),
                          pixels(diffusion.predict(model, "any", seed=1, n=1, num_inference_steps=3, guidance_scale=5.0)))


def test_a_model_built_while_cards_load_gets_real_weights(trained, monkeypatch):
    # what another thread of an app builds while the cards model loads, built at the worst moment: mid-load
    built = []
    from_config = UNet2DModel.from_config.__func__

    def from_config_and_a_neighbour(cls, *args, **kwargs):
        built.append(torch.nn.Linear(2, 2))
        return from_config(cls, *args, **kwargs)

    monkeypatch.setattr(UNet2DModel, "from_config", classmethod(from_config_and_a_neighbour))
    model = diffusion.load(str(trained))
    assert built and built[0].weight.device.type == "cpu"
    assert next(model.model.unet.parameters()).device.type == "cpu"


def test_missing_repo_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="darkroom-tests/no-such-cards"):
        diffusion.load("darkroom-tests/no-such-cards")


def test_a_folder_that_is_no_pipeline_reads_like_a_missing_one(trained, tmp_path):
    import shutil

    from tasks import hub

    (tmp_path / "empty").mkdir()
    (tmp_path / "broken" / "unet").mkdir(parents=True)
    (tmp_path / "broken" / "unet" / "config.json").write_text("{not json")
    shutil.copytree(trained, tmp_path / "no-categories")
    (tmp_path / "no-categories" / diffusion.CARDS_CONFIG).write_text("{}")
    typed = [str(tmp_path / name) for name in ("empty", "broken", "no-categories", "missing")]
    for source in (*typed, "~/" + "a" * 300, "~no-such-user-darkroom/cards", "nul\x00byte"):
        with pytest.raises(FileNotFoundError) as raised:
            diffusion.load(source)
        assert str(raised.value) == hub.cannot_load(source)


def test_tutorial_format_pipeline_loads_and_samples_with_fast_samplers(tmp_path):
    # the HF "train a diffusion model" tutorial's layout: an unconditional UNet2DModel + DDPMScheduler
    unet = UNet2DModel(sample_size=16, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(8, 16), norm_num_groups=4,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"))
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=1000)).save_pretrained(tmp_path)
    model = diffusion.load(str(tmp_path))
    assert model.model.categories is None
    for sampler in ("DPM-Solver++", "DDIM"):
        cards = diffusion.predict(model, "any", seed=1, n=1, num_inference_steps=3, scheduler=sampler)
        assert cards[0].size == (16, 16)


class Oracle:
    """A perfect denoiser for one known card: from x_t it returns the exact ε or v that leads back to `card`."""

    device = torch.device("cpu")

    def __init__(self, card: torch.Tensor, scheduler: DDPMScheduler):
        self.card, self.alphas_cumprod = card, scheduler.alphas_cumprod
        self.prediction_type = scheduler.config.prediction_type
        self.config = SimpleNamespace(sample_size=tuple(card.shape[-2:]), num_class_embeds=None)
        self.timesteps: list[int] = []  # every timestep it was asked about, in order

    def __call__(self, x, t, class_labels=None):
        self.timesteps.append(int(t))
        alpha_bar = self.alphas_cumprod[int(t)]
        noise = (x - alpha_bar.sqrt() * self.card) / (1 - alpha_bar).sqrt()
        if self.prediction_type == "v_prediction":
            return SimpleNamespace(sample=alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * self.card)
        return SimpleNamespace(sample=noise)


@pytest.mark.parametrize("prediction_type", diffusion.PREDICTION_TYPES)
@pytest.mark.parametrize("sampler", diffusion.SCHEDULERS)
def test_samplers_follow_the_saved_prediction_type(prediction_type, sampler):
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                              prediction_type=prediction_type)
    assert diffusion.make_scheduler(dict(scheduler.config), sampler).config.prediction_type == prediction_type
    # end to end: with an exact ε (or v) model, sampling from pure noise lands on the card (for DPM-Solver++, whose
    # first step is at t = T where √ᾱ ≈ 1e-4, a v read as ε would blow up and clip the card to ±1)
    card = torch.linspace(-0.8, 0.8, 3 * 8 * 6).reshape(1, 3, 8, 6)
    model = diffusion.CardModel(unet=Oracle(card, scheduler), scheduler_config=dict(scheduler.config), categories=None)
    out = diffusion.sample(model, None, [torch.Generator().manual_seed(0)], 3, sampler)
    assert torch.allclose(out, card, atol=0.02), float((out - card).abs().max())


@pytest.mark.parametrize("levels", [1000, 50])
@pytest.mark.parametrize("sampler", diffusion.SCHEDULERS)
def test_every_sampler_runs_at_every_step_count_it_allows_and_refuses_more_before_any_work(levels, sampler):
    # ../shared/cases/replayed-reports/dpm_solver_1000_steps.json: DPM-Solver++ at 1000 of 1000 levels ran for minutes
    # and then failed inside the scheduler (IndexError)
    scheduler = DDPMScheduler(num_train_timesteps=levels, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")
    card = torch.linspace(-0.8, 0.8, 3 * 8 * 6).reshape(1, 3, 8, 6)
    oracle = Oracle(card, scheduler)
    model = served(diffusion.CardModel(unet=oracle, scheduler_config=dict(scheduler.config), categories=None))
    for steps in (1, 2, levels - 1, levels):
        oracle.timesteps.clear()
        out = diffusion.predict(model, "any", n=1, num_inference_steps=steps, scheduler=sampler, guidance_scale=1.0)[0]
        assert np.abs(np.asarray(out, dtype=np.float64) - np.asarray(diffusion._to_pil(card)[0])).max() <= 3, steps
        # one model call per step, from the last training timestep down (an exact denoiser lands on the card from
        # any timestep, so this is what tells a step at t = 0 from one at t = T - 1)
        assert len(oracle.timesteps) == steps and oracle.timesteps[0] == levels - 1, (steps, oracle.timesteps[:3])
        assert all(later < earlier for earlier, later in zip(oracle.timesteps, oracle.timesteps[1:]))
    oracle.timesteps.clear()
    with pytest.raises(ValueError, match=f"Steps must be between 1 and {levels}; got {levels + 1}"):
        diffusion.predict(model, "any", n=1, num_inference_steps=levels + 1, scheduler=sampler)
    assert oracle.timesteps == []


@pytest.mark.parametrize("sampler", diffusion.SCHEDULERS)
def test_the_first_step_is_the_last_training_timestep_for_any_number_of_steps(sampler):
    scheduler = diffusion.make_scheduler(diffusion.load().model.scheduler_config, sampler)
    for steps in (1, 2, 3, 5, 20, 50, 999, 1000):
        scheduler.set_timesteps(steps)
        assert len(scheduler.timesteps) == steps and int(scheduler.timesteps[0]) == 999, steps


def _roughness(batch: torch.Tensor) -> float:
    """Mean absolute difference between neighbouring pixels, (B, 3, H, W) in [-1, 1]: about 1.13 for pure noise."""
    return float((batch.diff(dim=-1).abs().mean() + batch.diff(dim=-2).abs().mean()) / 2)


@pytest.mark.parametrize("sampler", diffusion.SCHEDULERS)
def test_a_card_from_one_to_five_steps_is_a_card_not_the_starting_noise(sampler):
    # ../shared/cases/replayed-reports/ddim_1_step.json: with diffusers' default "leading" spacing one DDIM or DDPM
    # step is t = 0, and the card came back as the starting noise (roughness 0.82 against 0.11 with "trailing")
    model = diffusion.load()
    noise = torch.randn((1, 3, *model.model.size), generator=torch.Generator().manual_seed(5))
    for steps, guidance in [(steps, guidance) for steps in range(1, 6) for guidance in (1.0, diffusion.GUIDANCE)]:
        card = diffusion.predict(model, "FULL_CARD", seed=5, n=1, num_inference_steps=steps, scheduler=sampler, guidance_scale=guidance)[0]
        pixels = torch.from_numpy(np.asarray(card, dtype=np.float32)).permute(2, 0, 1)[None] / 127.5 - 1
        assert _roughness(pixels) < 0.25 * _roughness(noise), (steps, _roughness(pixels))
        stock = pixels[0, :, 20:60, 16:48].mean((1, 2))  # the middle of the card: cream-to-tan stock, not mid-gray
        assert float(stock[0] - stock[2]) > 0.1, (steps, stock.tolist())


def test_unknown_prediction_type_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="prediction_type must be one of"):
        diffusion.train(tiny_config(tmp_path, prediction_type="sample", render_per_category=1))


def test_stain_this_card_keeps_the_card_outside_the_region(trained):
    model = diffusion.load(str(trained))
    card = render_card(0, "CLEAN", size=(16, 16)).image
    region = Image.new("L", (16, 16), 0)
    region.paste(255, (4, 4, 12, 12))
    stained, mask = diffusion.stain(model, card, region, "SMALL", seed=0, num_inference_steps=5)
    outside = np.asarray(mask) == 0
    difference = np.abs(np.asarray(stained, dtype=np.float32) - np.asarray(card, dtype=np.float32))
    assert difference[outside].max() <= 1  # the known region is the original (up to rounding)
    assert difference[~outside].mean() > 5  # the region was regenerated


def test_stain_jumps_back_up_the_chain_as_repaint_does(trained, monkeypatch):
    model = diffusion.load(str(trained))
    card = render_card(0, "CLEAN", size=(16, 16)).image  # the model's size
    region = Image.new("L", (16, 16), 0)
    region.paste(255, (4, 4, 12, 12))
    calls = []
    real_unet = model.model.unet.forward
    monkeypatch.setattr(model.model.unet, "forward", lambda *args, **kwargs: calls.append(1) or real_unet(*args, **kwargs))
    plain, _ = diffusion.stain(model, card, region, "SMALL", seed=1, num_inference_steps=6, jump_n_sample=1)
    assert len(calls) == 6  # one (guided: conditional and "any" in one batch) UNet pass per step
    calls.clear()
    jumped, mask = diffusion.stain(model, card, region, "SMALL", seed=1, num_inference_steps=6, jump_length=2,
                                   jump_n_sample=3)
    assert len(calls) == 6 + 2 * 2 * 2  # jumps at levels 0 and 2 (none in the first jump_length steps from noise), 2 more each
    again, _ = diffusion.stain(model, card, region, "SMALL", seed=1, num_inference_steps=6, jump_length=2,
                               jump_n_sample=3)
    assert np.array_equal(np.asarray(jumped), np.asarray(again))  # seeded
    outside = np.asarray(mask) == 0
    assert np.abs(np.asarray(jumped, dtype=np.int16) - np.asarray(card, dtype=np.int16))[outside].max() <= 1
    assert not np.array_equal(np.asarray(plain), np.asarray(jumped))
    with pytest.raises(ValueError, match="jump_n_sample must be 1 or more"):
        diffusion.stain(model, card, region, "SMALL", jump_n_sample=0)


def test_evaluate_stain_counts_amber_marks_and_nothing_else(trained, monkeypatch):
    model = diffusion.load(str(trained))

    def amber(model, card, region, category, seed, **knobs):  # the region tinted like gum: yellower, darker
        tinted = Image.composite(Image.blend(card, Image.new("RGB", card.size, (200, 120, 20)), 0.5), card, region)
        return (tinted if category == "SMALL" else card), region

    monkeypatch.setattr(diffusion, "_stain", amber)
    result = diffusion.evaluate_stain(model, n=2, regions=("centre",), jump_n_samples=(1,))
    assert result["SMALL/centre/jumps1/shows"] == 1.0 and result["SMALL/centre/jumps1/yellowed"] > 0.9
    assert result["CLEAN/centre/jumps1/shows"] == 0.0 and result["CLEAN/centre/jumps1/yellowed"] == 0.0


def test_bench_cards_stain_writes_every_region_and_schedule(trained, tmp_path, capsys):
    from bench.__main__ import main

    out = tmp_path / "stain.json"
    main(["cards-stain", "--weights", str(trained), "--n_cards", "1", "--json", str(out)])
    result = json.loads(out.read_text())
    assert result["task"] == "cards-stain" and result["n"] == 1 and result["weights"] == str(trained)
    assert {key.rsplit("/", 2)[0] for key in result["quality"]} == {
        f"{category}/{where}" for category in ("SMALL", "CLEAN") for where in ("centre", "top left", "bottom right")}
    assert set(result["latency_ms_by_schedule"]) == {"jumps1", f"jumps{diffusion.JUMP_N_SAMPLE}"}
    assert "| SMALL/centre |" in capsys.readouterr().out


def test_landscape_scans_are_turned_upright(tmp_path):
    folder = tmp_path / "SMALL"
    folder.mkdir()
    Image.new("RGB", (40, 30), "red").save(folder / "landscape.jpg")
    (tmp_path / "notes").mkdir()  # not a category: skipped
    images, labels = diffusion.load_training_cards(str(tmp_path), (32, 24))
    assert images.shape == (1, 3, 32, 24) and labels.tolist() == [CATEGORIES.index("SMALL")]
    assert images.min() >= -1 and images.max() <= 1


def test_a_checkpoint_resumes_only_with_the_prediction_type_it_was_trained_for(tmp_path):
    # (resuming itself, to the weights of an unbroken run: tests/test_training_faults.py)
    render_dataset(2, tmp_path / "data", size=(16, 16), categories=("SMALL", "CLEAN"))
    diffusion.train(tiny_config(tmp_path, data=str(tmp_path / "data"), num_epochs=3, max_train_steps=1))
    with pytest.raises(ValueError, match="trained with --prediction_type v_prediction"):
        diffusion.train(tiny_config(tmp_path, data=str(tmp_path / "data"), num_epochs=3, max_train_steps=3,
                                    resume_from_checkpoint="latest", prediction_type="epsilon"))


def test_evaluate_reports_fidelity_per_category_and_diversity(trained):
    model = diffusion.load(str(trained))
    result = diffusion.evaluate(model, n_per_category=2, runs=(("DPM-Solver++", 2, 8, 3.0), ("DDIM", 2, 2, 1.0)),
                                 judge_cards_per_category=10)
    for sampler in ("DPM-Solver++@2,cfg3", "DDIM@2,cfg1"):
        assert 0.0 <= result[f"{sampler}/mean"] <= 1.0
        assert all(f"{sampler}/{category}" in result for category in CATEGORIES)
    for check in ("renders", "blurred_renders", "color_cast_renders"):
        assert 0.0 <= result[f"judge/accuracy_on_{check}"] <= 1.0
    assert result["diversity/min_rms"] > 0
    table = diffusion.fidelity_table(result).splitlines()
    assert table[0].startswith("| sampler@steps,guidance | FULL_CARD")
    assert table[2].startswith("| DPM-Solver++@2,cfg3 |") and table[3].startswith("| DDIM@2,cfg1 |")
    # coverage of the first run only (8 cards per category: enough for k = 3 radii), beside two sets of renders
    for prefix in ("coverage", "coverage/renders"):
        for category in CATEGORIES:
            assert 0.0 <= result[f"{prefix}/{category}/precision"] <= 1.0
            assert 0.0 <= result[f"{prefix}/{category}/stock_tv"] <= 1.0
            assert sum(result[f"{prefix}/{category}/ink_shares"]["generated"]) == pytest.approx(1.0)
        assert result[f"{prefix}/recall"] == pytest.approx(
            np.mean([result[f"{prefix}/{category}/recall"] for category in CATEGORIES]))
    assert not any(key.startswith("coverage") and "DDIM" in key for key in result)
    assert result["coverage/renders/recall"] > result["coverage/recall"]  # 2 steps of a 2-epoch model: not a render
    coverage = diffusion.coverage_table(result).splitlines()
    assert coverage[0] == "| category | precision | recall | stock mix TV | ink mix TV |" and len(coverage) == 2 + 6 + 2


def test_judge_shifts_change_the_cards_but_not_their_range():
    from tasks.cards import judge

    cards = judge.rendered((32, 24), 2, seed=3)[0]
    shifted = judge.shifts(cards, seed=3)
    assert set(shifted) == {"blurred", "color_cast"}
    for images in shifted.values():
        assert images.shape == cards.shape and images.min() >= -1 and images.max() <= 1
        assert 0.005 < (images - cards).abs().mean() < 0.1  # slight, not a different card
    assert torch.equal(shifted["color_cast"], judge.shifts(cards, seed=3)["color_cast"])  # seeded


def test_evaluate_scores_the_same_cards_whatever_the_batch_size(trained):
    model = diffusion.load(str(trained))
    runs = (("DPM-Solver++", 2, 3, 3.0),)
    one_by_one = diffusion.evaluate(model, n_per_category=3, runs=runs, judge_cards_per_category=10, batch_size=1)
    all_at_once = diffusion.evaluate(model, n_per_category=3, runs=runs, judge_cards_per_category=10, batch_size=3)
    assert one_by_one == all_at_once


def test_bench_cards_writes_strict_json_with_every_run_and_the_ddpm_speedup(trained, tmp_path, capsys):
    from bench.__main__ import main

    out = tmp_path / "cards.json"
    main(["cards", "--weights", str(trained), "--n_fidelity", "1", "--n_sweep", "2", "--n_ddpm", "0",
          "--n_latency", "2", "--json", str(out)])

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    result = json.loads(out.read_text(), parse_constant=refuse)  # no Infinity or NaN
    quality = result["quality"]
    assert result["n"] == len(CATEGORIES) and result["weights"] == str(trained)
    runs = [key[: -len("/mean")] for key in quality if key.endswith("/mean")]
    assert runs == ["DPM-Solver++@20,cfg3", "DPM-Solver++@20,cfg1", "DPM-Solver++@20,cfg2", "DPM-Solver++@20,cfg4",
                    "DPM-Solver++@20,cfg6"]
    assert quality["diversity/min_rms"] is None  # one card per category: no pair to measure
    assert quality["recall"] is None and quality["precision"] is None  # nor k-NN radii
    # DDPM runs every one of the model's noise levels: 50 for this one, not the bundled model's 1000
    assert quality["speedup_dpm20_vs_ddpm50"] == round(quality["ddpm50_ms_per_card"] / result["latency_ms"]["p50"], 1)
    printed = capsys.readouterr().out
    assert "| DPM-Solver++@20,cfg6 |" in printed and "not measured (one card per category)" in printed
    assert "Coverage: not measured (too few cards per category)." in printed


def test_ddpm_takes_every_noise_level_by_default(trained):
    model = diffusion.load(str(trained))
    steps = []
    diffusion.predict(model, "SMALL", n=1, scheduler="DDPM", progress=lambda done, total: steps.append(total))
    assert steps[-1] == diffusion.noise_levels(model.model) == 50


def test_the_ema_follows_optimizer_steps_not_batches(tmp_path, monkeypatch):
    # 8 rendered cards in batches of 4, two batches accumulated into each optimizer step: 2 epochs = 2 steps
    render_dataset(2, tmp_path / "data", size=(32, 24), categories=("FULL_CARD", "SMALL", "CLEAN", "LIGHT"))
    steps = []
    real_step = diffusion.EMAModel.step
    monkeypatch.setattr(diffusion.EMAModel, "step", lambda ema, parameters: steps.append(1) or real_step(ema, parameters))
    served = diffusion.train(tiny_config(tmp_path, data=str(tmp_path / "data"), num_epochs=2,
                                         gradient_accumulation_steps=2, save_images_epochs=10))
    assert served.metrics["steps"] == 2 and len(steps) == 2



@pytest.fixture(scope="module")
def cascaded(trained, tmp_path_factory):
    """The smoke model with a ×2 and a ×4 upscaler whose learned part is zeroed: each is exactly its bicubic skip
    (torch's), so what the cascade did to a card can be computed here."""
    import shutil

    from tasks import upscale

    folder = tmp_path_factory.mktemp("cascade") / "cards"
    shutil.copytree(trained, folder)
    for factor in (2, 4):
        net = upscale.FastSR(scale=factor, width=8, blocks=1)
        torch.nn.init.zeros_(net.tail[0].weight)
        torch.nn.init.zeros_(net.tail[0].bias)
        sub = folder / f"upscale-x{factor}"
        net.save_pretrained(sub)
        (sub / "upscale_config.json").write_text(json.dumps({"arch": "fast", "scale": factor}))
    return folder


def bicubic(picture: Image.Image, factor: int) -> np.ndarray:
    tensor = torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    big = torch.nn.functional.interpolate(tensor, scale_factor=factor, mode="bicubic", align_corners=False)
    return (big.clamp(0, 1) * 255).round()[0].permute(1, 2, 0).numpy()


def test_the_cascade_serves_the_same_cards_at_two_and_four_times_the_size(cascaded):
    model = diffusion.load(str(cascaded))
    height, width = model.model.size
    assert model.model.sizes == [(height, width), (2 * height, 2 * width), (4 * height, 4 * width)]
    small = diffusion.predict(model, "SMALL", seed=5, n=2, num_inference_steps=2)
    for factor in (2, 4):
        big = diffusion.predict(model, "SMALL", seed=5, n=2, num_inference_steps=2, size=(factor * height, factor * width))
        assert [card.size for card in big] == [(factor * width, factor * height)] * 2
        for card, native in zip(big, small):  # the cascade of these very cards (±1: rounding of the tiles' uint8)
            assert np.abs(np.asarray(card, dtype=np.float32) - bicubic(native, factor)).max() <= 1


def test_a_size_the_model_does_not_serve_is_refused_by_name(cascaded, trained):
    height, width = diffusion.load(str(trained)).model.size
    with pytest.raises(ValueError, match=rf"draws cards of {height}×{width} pixels .*got {2 * height}×{2 * width}"):
        diffusion.predict(diffusion.load(str(trained)), "SMALL", n=1, num_inference_steps=1,
                          size=(2 * height, 2 * width))  # no cascade in this folder
    with pytest.raises(ValueError, match=rf"{height}×{width}, {2 * height}×{2 * width}, {4 * height}×{4 * width}"):
        diffusion.predict(diffusion.load(str(cascaded)), "SMALL", n=1, num_inference_steps=1, size=(3 * height, 3 * width))
    assert diffusion.parse_size("160x128") == diffusion.parse_size("160×128") == (160, 128)
    with pytest.raises(ValueError, match="height×width"):
        diffusion.parse_size("big")


def test_a_stain_at_four_times_the_size_keeps_card_stain_and_mask_aligned(cascaded):
    model = diffusion.load(str(cascaded))
    height, width = model.model.size
    card = render_card(3, "CLEAN", size=(4 * height, 4 * width)).image  # uploaded at the large size
    region = Image.new("L", (width, height), 0)
    region.paste(255, (width // 4, height // 4, 3 * width // 4, 3 * height // 4))
    small, small_mask = diffusion.stain(model, card, region, "SMALL", seed=1, num_inference_steps=3, jump_n_sample=1)
    big, big_mask = diffusion.stain(model, card, region, "SMALL", seed=1, num_inference_steps=3, jump_n_sample=1,
                                    size=(4 * height, 4 * width))
    assert big.size == big_mask.size == card.size
    assert np.array_equal(np.asarray(big_mask), np.asarray(small_mask.resize(card.size, Image.Resampling.NEAREST)))
    inside = np.asarray(big_mask) > 0
    pixels = np.asarray(big, dtype=np.float32)
    assert np.array_equal(pixels[~inside], np.asarray(card, dtype=np.float32)[~inside])  # the upload, to the pixel
    assert np.abs(pixels[inside] - bicubic(small, 4)[inside]).max() <= 1  # the stain painted small, through the cascade


def test_the_cascade_figure_puts_each_card_beside_its_enlargements(cascaded, trained):
    model = diffusion.load(str(cascaded)).model
    height, width = model.sizes[-1]
    sheet = diffusion.cascade_examples(model, categories=("SMALL", "CLEAN"))
    assert sheet.size == (3 * width + 8, 2 * (height + 4))
    with pytest.raises(ValueError, match="no super-resolution cascade"):
        diffusion.cascade_examples(diffusion.load(str(trained)).model)
