"""Training: `Config` (the command-line flags of `training/train.py colorize`), `train`, and the output folder it
writes (weights, data.json, metrics, examples, model card)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from PIL import Image
from torch import nn
from tqdm.auto import tqdm

from tasks import hub, training
from tasks.colorize.data import (DATA_FILE, DEFAULT_DATA, DEFAULT_TRANSFER, ExtraPhotos, SplitPhotos, augment,
                                 folder_photos, load_extra_photos, load_photos, load_split_photos)
from tasks.colorize.lab import A_RANGE, B_RANGE, gray_from_lightness, lab_to_rgb, rgb_to_lab
from tasks.colorize.models import Colorizer, MeanColor, Model, PhotoColorizer, count_parameters
from tasks.colorize.scoring import colorize_batch, score, score_mean_color, score_people
from tasks.colorize.serve import colorize_photo, load

logger = logging.getLogger(__name__)


@dataclass
class Config(training.TrainingArgs):
    data: str = DEFAULT_DATA  # folder of per-person sub-folders (faces/sNN/), a flat image folder, or a Hub dataset id
    transfer_data: str = DEFAULT_TRANSFER  # out-of-domain test photos (natural scenes); "" = skip
    extra_train: str = ""  # comma-separated folders of photos added to training only (e.g. scenes): never validated
    #                        or tested on; grayscale ones are skipped and counted
    output_dir: str = "outputs/colorize"
    arch: str = "colorizer"  # "colorizer" (the original's small net: faces) or "unet" (PhotoColorizer: any photo)
    size: int = 128  # training resolution (square); a multiple of 8 ("colorizer") or of 2^depth ("unet")
    width: int = 64  # filters per conv layer of the colorizer; the U-Net's first level ("unet")
    depth: int = 4  # "unet": poolings down to the bottleneck
    skip: bool = False  # "colorizer": U-Net skip connections between the down and up paths
    context: bool = False  # "colorizer": a global-context branch (the whole photo's pooled features bias the middle
    #                        convs); "unet" always has one
    people_repeats: int = 1  # each training person's photo this many times an epoch (weighs faces against extras)
    validate_on_transfer: bool = False  # validation MAE over the validation people's photos and `transfer_data`'s
    keep_last: bool = False  # keep the last epoch, not the one with the lowest validation MAE (validation is then a
    #                          curve only: nothing is chosen on photos that are also reported)
    val_fraction: float = 0.16  # share of the people held out for model selection
    test_fraction: float = 0.20  # share of the people held out for the final report
    init_seed: int = -1  # init, data order and augmentation (-1: seed); others on one split train ensemble members
    init_weights: str = ""  # a trained colorizer folder (train's output, this arch and shape) to fine-tune from;
    #                         "" = a fresh init. A resumed checkpoint replaces it.
    refit: bool = False  # train on the training and validation people together, with a recipe chosen beforehand on
    #                      the validation people: the last epoch is kept, and validation MAE is no longer held out
    num_epochs: int = 10
    repeats: int = 10  # augmented views of each training photo per epoch (the original: itself + 9 copies)
    train_batch_size: int = 20
    learning_rate: float = 1e-3  # Adam's peak learning rate
    lr_warmup_steps: int = 50
    lr_decay: str = "constant"  # after warmup: "constant" (the original's plain Adam) or "cosine" (to zero)
    augment: bool = True  # zoom/crop, horizontal and vertical shift, RGB scaling, on the fly
    flip: bool = False  # and a horizontal flip of half the views
    color_jitter: float = 0.15  # RGB scaling: each channel × U(1 ± color_jitter); the bundled model: 0.05
    max_grad_norm: float = 0.0  # clip the gradients' global norm to this; 0 = none (the bundled model had none)
    checkpointing_steps: int = 200
    sweep_results: str = ""  # a training/sweep.py output folder: its table and plot go into this model's report
    report_photos: bool = True  # draw the best/worst photos into examples.png (off when the data may not be shared)

    @property
    def run_seed(self) -> int:
        """The seed of the init, data order and augmentation draws: `init_seed`, or `seed` when that is -1."""
        return self.seed if self.init_seed < 0 else self.init_seed


ARCHS = ("colorizer", "unet")


def make_colorizer(cfg: Config) -> Colorizer | PhotoColorizer:
    """The untrained colorizer `cfg.arch` names.

    Raises:
        ValueError: an unknown arch, or a size the architecture cannot take.
    """
    if cfg.arch not in ARCHS:
        raise ValueError(f"arch must be one of {', '.join(ARCHS)}; got {cfg.arch!r}.")
    multiple = 8 if cfg.arch == "colorizer" else 2 ** cfg.depth
    if cfg.size % multiple:
        raise ValueError(f"size must be a multiple of {multiple} for arch {cfg.arch!r}; got {cfg.size}.")
    if cfg.arch == "unet":
        return PhotoColorizer(width=cfg.width, depth=cfg.depth, size=cfg.size)
    return Colorizer(width=cfg.width, skip=cfg.skip, size=cfg.size, context=cfg.context)


class _Pair(nn.Module):
    """Colorizer and mean-color regressor as one module: one optimizer, one checkpoint, one `prepare`."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.colorizer = make_colorizer(cfg)
        self.mean_color = MeanColor(size=cfg.size)

    def forward(self, lightness: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.colorizer(lightness), self.mean_color(lightness)


def train(cfg: Config, accelerator: Accelerator | None = None) -> hub.Served[Colorizer]:
    """Train the colorizer (MAE) and the mean-color regressor (MSE) on the training people; keep the colorizer with
    the lowest validation MAE; write `cfg.output_dir` (weights, data.json, report, card).

    Returns:
        `load(cfg.output_dir)`: the best colorizer, on CPU in eval mode, with its split and training mean a*b*.
    """
    # 1. set-up and data, split by person
    make_colorizer(cfg)  # an arch or size it cannot build is refused before any photo is read
    if cfg.people_repeats < 1:
        raise ValueError(f"people_repeats must be 1 or more; got {cfg.people_repeats}.")
    training.require_sweep(cfg.sweep_results)
    accelerator = training.make_accelerator(cfg, accelerator)
    output_dir = Path(cfg.output_dir)
    set_seed(cfg.run_seed)
    data = load_split_photos(cfg)
    split, photos = data.split, data.rgb
    train_x, val_x = photos["train"], photos["val"] if len(photos["val"]) else photos["train"]
    if cfg.refit:
        train_x = torch.cat([train_x, photos["val"]])
    mean_ab = rgb_to_lab(train_x)[:, 1:].mean((0, 2, 3))  # the training people's mean color: the trivial baseline
    train_x = train_x.repeat(cfg.people_repeats, 1, 1, 1)  # each repeat its own augmentation draw
    extra = None
    if cfg.extra_train:  # never validated or tested on, and not part of the baseline's mean color
        extra = load_extra_photos(cfg.extra_train, cfg.size)
        train_x = torch.cat([train_x, extra.rgb])
        logger.info("colorize: %d extra training photos (%s); grayscale, skipped: %s", len(extra.rgb),
                    ", ".join(f"{folder} {count}" for folder, count in extra.photos.items()),
                    ", ".join(f"{folder} {count}" for folder, count in extra.skipped_gray.items()))
    if cfg.validate_on_transfer and cfg.transfer_data:
        val_x = torch.cat([photos["val"], load_photos(folder_photos(cfg.transfer_data), cfg.size)])

    # 2. models (one module), fresh or from `init_weights`, Adam, warmup then constant or cosine
    pair = _Pair(cfg)
    first_stage = start_from(pair, cfg) if cfg.init_weights else {}
    if first_stage.get("split"):  # a first stage that trained on this run's validation or test people would leak
        first_config = first_stage.get("config", {})
        taught = set(first_stage["split"].get("train", [])) | (
            set(first_stage["split"].get("val", [])) if first_config.get("refit") else set())
        leaked = sorted(taught & (set(split["val"]) | set(split["test"])))
        if leaked:
            raise ValueError(f"init_weights {cfg.init_weights} trained on {', '.join(leaked)}, whom this run's split"
                             " holds out: use the first stage's seed and fractions.")
    optimizer = torch.optim.Adam(pair.parameters(), lr=cfg.learning_rate)
    scheduler, total_steps = training.lr_schedule(optimizer, cfg, training.steps_per_epoch(len(train_x), cfg, cfg.repeats),
                                                  decay=cfg.lr_decay)

    # 3. resume
    run = training.Run(cfg, accelerator, pair, optimizer, scheduler, training.loop_shape(cfg, accelerator))
    state = run.state
    pair, optimizer = accelerator.prepare(pair, optimizer)
    logger.info(
        "***** colorize: training *****\n  people train/val/test = %d / %d / %d, photos = %d / %d / %d\n  colorizer "
        "width %d%s, %d parameters\n  epochs = %d × %d augmented views, steps = %d, batch = %d, lr = %g, device = %s",
        *(len(split[part]) for part in ("train", "val", "test")), *(len(photos[part]) for part in ("train", "val", "test")),
        cfg.width, " + skips" if cfg.skip else "", count_parameters(accelerator.unwrap_model(pair).colorizer),
        cfg.num_epochs, cfg.repeats, total_steps, cfg.train_batch_size, cfg.learning_rate, accelerator.device,
    )
    progress = tqdm(total=total_steps, initial=state.global_step, disable=not accelerator.is_local_main_process,
                    desc="colorize")

    # 4. the loop: `repeats` shuffled passes per epoch, augmentation keyed by batch (exact resume)
    losses: list[float] = []
    while state.epoch < cfg.num_epochs and state.global_step < total_steps:
        pair.train()
        for batch in training.epoch_batches(len(train_x), cfg, state, accelerator, cfg.run_seed, repeats=cfg.repeats):
            if state.global_step >= total_steps:
                break
            rgb = train_x[batch.indices]
            if cfg.augment:
                rgb = augment(rgb, torch.Generator().manual_seed(batch.draw), color=cfg.color_jitter, flip=cfg.flip)
            lab = rgb_to_lab(rgb.to(accelerator.device))
            lightness, true_ab = lab[:, :1], lab[:, 1:]
            with training.accumulating(accelerator, pair, batch):
                predicted_ab, predicted_mean = pair(lightness)
                loss = F.l1_loss(predicted_ab.float(), true_ab)  # the colorizer's MAE
                mean_loss = F.mse_loss(predicted_mean.float(), true_ab.mean((2, 3)))  # the regressor's MSE
                training.backward_step(accelerator, pair, loss + mean_loss, batch, optimizer, scheduler, cfg)
            training.record_batch(state, progress, batch, losses, loss.item(), scheduler.get_last_lr()[0])
            if batch.sync and state.global_step % cfg.checkpointing_steps == 0:
                run.save()
        else:  # 5. a full epoch: validation MAE (on held-out people unless refit), keep the best colorizer
            training.sync_buffers(accelerator, pair)  # every process validates the same weights
            val_mae = score(accelerator.unwrap_model(pair).colorizer, val_x)["mae"]
            logger.info("epoch %d: val MAE %.4f", state.epoch, val_mae)
            run.end_epoch(value=val_mae, val_loss=val_mae, model=accelerator.unwrap_model(pair),
                          improved=cfg.refit or cfg.keep_last or state.is_better(val_mae))  # refit, keep_last: the last
            run.save()
    progress.close()

    # 6. best weights, report on the test people and the transfer photos, output folder
    pair = run.finish(pair)
    if accelerator.is_main_process:
        write_output(pair.colorizer, pair.mean_color, cfg, state, data, mean_ab, extra=extra, first_stage=first_stage)
    accelerator.wait_for_everyone()
    return load(str(output_dir))


def start_from(pair: _Pair, cfg: Config) -> dict:
    """Load `cfg.init_weights`' colorizer (its top) and mean-color regressor (its mean_color/) into `pair`.

    Returns:
        what the folder's metrics.json says of its training ("config", "steps", "epochs_trained", "split"; {}
        without one), for this model's card and the check that it never trained on this run's held-out people.

    Raises:
        FileNotFoundError: a folder without config.json, model.safetensors or mean_color/.
        ValueError: weights of another arch or shape than `cfg` builds (width, depth, size, skip, context).
    """
    folder = Path(cfg.init_weights)
    for part in (folder, folder / "mean_color"):
        if not (part / "config.json").is_file() or not (part / "model.safetensors").is_file():
            raise FileNotFoundError(f"init_weights: {part} has no config.json and model.safetensors (a folder"
                                    " training/train.py colorize wrote).")
    for module, part in ((pair.colorizer, folder), (pair.mean_color, folder / "mean_color")):
        saved, built = json.loads((part / "config.json").read_text()), module._hub_mixin_config
        if saved != built:
            raise ValueError(f"init_weights: {part} holds a model of {saved}, not the {built} these flags build"
                             f" (arch {cfg.arch!r}): pass the flags it was trained with.")
        module.load_state_dict(type(module).from_pretrained(part, map_location="cpu", strict=True).state_dict())
    logger.info("colorize: fine-tuning from %s", folder)
    metrics = json.loads((folder / "metrics.json").read_text()) if (folder / "metrics.json").is_file() else {}
    return {key: metrics[key] for key in ("config", "steps", "epochs_trained", "split") if key in metrics}


def write_output(colorizer: Model, mean_color: MeanColor, cfg: Config, state: training.LoopState, data: SplitPhotos,
                 mean_ab: torch.Tensor, members: list[dict] | None = None, extra: ExtraPhotos | None = None,
                 first_stage: dict | None = None) -> None:
    """Weights (colorizer at the top, mean-color regressor in mean_color/), data.json, report, metrics, card; the
    training curves from `state.history` when there is one. `members`: an ensemble's (see `build_ensemble`);
    `extra`: the `extra_train` photos trained on (their counts go into data.json and the card); `first_stage`: what
    `start_from` read of the `init_weights` model."""
    output_dir = Path(cfg.output_dir)
    training.save_atomically(colorizer.save_pretrained, output_dir)
    training.save_atomically(mean_color.save_pretrained, output_dir / "mean_color")
    (output_dir / DATA_FILE).write_text(json.dumps({"data": cfg.data, "seed": cfg.seed, "split": data.split,
                                                      "trained_on": ["train", "val"] if cfg.refit else ["train"],
                                                      "extra_train": cfg.extra_train,
                                                      "extra_photos": extra.photos if extra else {},
                                                      "skipped_gray": extra.skipped_gray if extra else {},
                                                      "train_mean_ab": mean_ab.tolist()}, indent=2))
    test_part = "test" if len(data.rgb["test"]) else "val"
    test_x, test_names = data.rgb[test_part], data.names[test_part]
    faces = score_people(colorizer, test_x, data.groups[test_part], mean_ab)
    by_split = {part: faces["mae"] if part == test_part else score(colorizer, rgb)["mae"]
                for part, rgb in data.rgb.items() if len(rgb)}
    ranked = [{"photo": test_names[i], "mae": float(faces["per_image"][i])} for i in faces["per_image"].argsort().tolist()]
    mean_color_scores = score_mean_color(mean_color, test_x, mean_ab)
    scenes, scene_x = None, None
    if cfg.transfer_data and Path(cfg.transfer_data).is_dir():
        scene_x = load_photos(folder_photos(cfg.transfer_data), cfg.size)
        scenes = score(colorizer, scene_x, mean_ab)
    if cfg.report_photos:
        examples = [("test faces", test_x, faces)] + ([("scenes", scene_x, scenes)] if scenes else [])
        plot_examples(colorizer, examples, output_dir / "examples.png")
    else:
        (output_dir / "examples.png").unlink(missing_ok=True)  # never leave an earlier run's pictures behind
    if state.history:
        val_label = ("validation people" + (f" + {Path(cfg.transfer_data).name}" if cfg.validate_on_transfer else "")
                     + " (per epoch)" + (", trained on: refit" if cfg.refit else ""))
        training.plot_training_curves(state.history, output_dir / "training_curves.png", "colorize: a*b* MAE",
                                      val_label)
    sweep = training.copy_sweep(cfg.sweep_results, output_dir)
    summary = {
        "test_mae": faces["mae"], "test_baseline_mae": faces["baseline_mae"], "test_photos": len(test_x),
        "test_mae_interval95": faces["interval"], "test_mae_by_person": faces["per_person"],
        "test_cast_matched_mae": faces["cast_matched_mae"], "mae_by_split": by_split,
        "scenes_mae": scenes["mae"] if scenes else None, "scenes_baseline_mae": scenes["baseline_mae"] if scenes else None,
        "scenes_neutral_mae": scenes["neutral_mae"] if scenes else None,
        "scenes_colorfulness": scenes["colorfulness"] if scenes else None,
        "scenes_true_colorfulness": scenes["true_colorfulness"] if scenes else None,
        "test_neutral_mae": faces["neutral_mae"], "test_colorfulness": faces["colorfulness"], "test_true_colorfulness": faces["true_colorfulness"],
        "extra_photos": extra.photos if extra else {}, "skipped_gray": extra.skipped_gray if extra else {},
        "scenes_photos": len(scene_x) if scenes else 0, "mean_color_test_mse": mean_color_scores["mse"],
        "mean_color_test_baseline_mse": mean_color_scores["baseline_mse"],
        "best_test_photos": ranked[:3], "worst_test_photos": ranked[::-1][:3],
        "best_val_mae": state.best_metric, "best_epoch": state.best_epoch, "epochs_trained": state.epoch,
        "steps": state.global_step, "parameters": count_parameters(colorizer),
        "latency_ms_1024x768": time_predict(colorizer), "split": data.split, "resumed": state.resumed,
        "members": members or [], "config": asdict(cfg), "first_stage": first_stage or {},
    }
    (output_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
    title, card = (("Darkroom Colorize: a general-photo colorizer", _photos_card(summary, cfg)) if cfg.arch == "unet"
                   else ("Darkroom Colorize: L*a*b* colorization trained on faces", _model_card(summary, cfg, sweep)))
    training.write_model_card(output_dir, title=title, body=card, metadata={
                                  "license": "mit", "library_name": "darkroom", "pipeline_tag": "image-to-image",
                                  "tags": ["image-to-image", "colorization", "darkroom"]})


def time_predict(model: Model, size: tuple[int, int] = (1024, 768), repeats: int = 5) -> float:
    """Median milliseconds of `predict` on a size (width, height) photo (threads as set by the caller)."""
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    colorize_photo(model, photo)
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        colorize_photo(model, photo)
        timings.append(time.perf_counter() - start)
    return round(1000 * float(np.median(timings)), 1)


def plot_examples(model: Model, sets: list[tuple[str, torch.Tensor, dict]], path: Path, count: int = 3) -> None:
    """Best and worst `count` photos of each set: grayscale input, colorized, original, with the MAE."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(name, kind, int(index), rgb, result) for name, rgb, result in sets
            for kind, indices in (("best", result["per_image"].argsort()[:count]),
                                  ("worst", result["per_image"].argsort(descending=True)[:count]))
            for index in indices]
    fig, axes = plt.subplots(len(rows), 3, figsize=(6, 2 * len(rows)), squeeze=False)
    for (name, kind, index, rgb, result), row in zip(rows, axes):
        photo = rgb[index:index + 1]
        lab = rgb_to_lab(photo)
        colorized = lab_to_rgb(torch.cat([lab[:, :1], colorize_batch(model, photo)], 1))[0]
        gray = gray_from_lightness(lab[:, :1])[0]
        for axis, picture, title in zip(row, (gray, colorized, photo[0]),
                                        (f"{name}, {kind}", f"colorized (MAE {float(result['per_image'][index]):.4f})", "original")):
            axis.imshow(picture.permute(1, 2, 0).numpy())
            axis.set_title(title, fontsize=8)
            axis.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _model_card(summary: dict, cfg: Config, sweep: str) -> str:
    architecture = ("U-Net (skip connections)" if cfg.skip else "plain encoder-decoder (the original's shape)") + (
        " with a global-context branch" if cfg.context else "")
    scenes = (f"| natural scenes (`{Path(cfg.transfer_data).name}`, {summary['scenes_photos']} photos) | "
              f"{summary['scenes_mae']:.4f} | {summary['scenes_baseline_mae']:.4f} |" if summary["scenes_mae"] else "")
    best = ", ".join(f"`{item['photo']}` ({item['mae']:.4f})" for item in summary["best_test_photos"])
    worst = ", ".join(f"`{item['photo']}` ({item['mae']:.4f})" for item in summary["worst_test_photos"])
    examples = (f"Best test photos: {best}; worst: {worst}."
                + ("\n\n![best and worst examples](examples.png)" if cfg.report_photos else
                   " (No pictures of them here: the face photos may not be redistributed.)"))
    sweep_section = (f"## Width sweep\n\n{sweep.strip()}\n\nEach trial trains on the same short budget (the command above),"
                     " selected on the validation people; test MAE is shown, not used. The latency column is timed at"
                     " the end of each trial, on whatever else the machine was running then: the bench gives the"
                     " bundled model's clean 2-thread figure.\n\n![sweep](sweep.png)\n" if sweep else "")
    augmentation = (f" (zoom/crop, shifts, RGB scaling by ±{cfg.color_jitter:.0%} per channel)" if cfg.augment
                    else "")
    parts = {"train": "training people (photos as taken, no augmentation)",
             "val": "validation people" + (" (trained on: refit)" if cfg.refit else ""), "test": "test people"}
    members = summary.get("members") or []
    refit = ("trained on the training and validation people together (`refit`, the recipe chosen beforehand on the"
             " validation people); " if cfg.refit else "")
    if members:
        kept = refit + ("each member's last epoch is kept" if cfg.refit else "each member keeps its epoch with the lowest"
                        " validation MAE") + f"; the ensemble's validation MAE: {training.figure(summary['best_val_mae'])}" + (
                        " (people it trained on)" if cfg.refit else "")
        model_line = (f"the mean of {len(members)} colorizers, each a {summary['parameters'] // len(members):,}-parameter"
                      f"\n{architecture} of width {cfg.width}")
        seeds = ", ".join(str(member["init_seed"]) for member in members)
        alone = ", ".join(f"{member['test_mae']:.4f}" for member in members)
        ensemble = (f"\n\nIts {len(members)} members were trained alike on the same people with different seeds (init,"
                    f" data order and augmentation draws: {seeds}); averaging their a*b* cuts what is seed noise in"
                    f" each one's guess of a photo's tint. Alone on the test people they score {alone}; together"
                    f" {summary['test_mae']:.4f}.")
    else:
        kept = refit + ("the last epoch is kept" if cfg.refit else "the epoch with the lowest validation MAE is kept"
                        f" (epoch {summary['best_epoch']}, {training.figure(summary['best_val_mae'])})")
        model_line, ensemble = f"a {summary['parameters']:,}-parameter\n{architecture} of width {cfg.width}", ""
    by_split = summary["mae_by_split"]
    people = ", ".join(f"{name} {value:.4f}" for name, value in summary["test_mae_by_person"].items())
    low, high = summary["test_mae_interval95"]
    extra = (f"\n- Also trained on every photo in `{cfg.extra_train}` (`extra_train`: never validated or tested on;"
             " not part of the baseline's mean color)." if cfg.extra_train else "")
    return f"""
Predicts the a*b* color channels of a photo from its lightness L (CIELAB): {model_line}, trained on face photos at
{cfg.size}×{cfg.size}. It serves the Colorize tab of the Darkroom Space; at use the predicted a*b* is upsampled and
joined with the photo's own full-resolution L.
{"The architecture (with or without skips) and the width were chosen by validation MAE in the sweep below, never by"
 " the test people." if sweep else ""}{" The context branch was kept for a lower validation MAE than the same model"
 " without it, on each of three draws of people (the Darkroom README has the numbers)." if cfg.context else ""}{ensemble}

## Results

MAE over a*b* normalised to [0, 1] (L/100; a* over [{A_RANGE[0]}, {A_RANGE[1]}], b* over [{B_RANGE[0]}, {B_RANGE[1]}],
the sRGB gamut), at {cfg.size}×{cfg.size}. Baseline: the training set's mean a*b* everywhere.

| test set | MAE | baseline MAE |
|---|---|---|
| faces of the {len(summary['split']['test'])} test people ({summary['test_photos']} photos) | {summary['test_mae']:.4f} | {summary['test_baseline_mae']:.4f} |
{scenes}

Faces are one narrow palette, so a small model learns it well; scenes are not faces, and the gap to the baseline is
how far the learned palette transfers (the original project saw the same: brown fruit). Mean-color regressor:
test MSE {summary['mean_color_test_mse']:.6f} on each photo's mean a*b*, against {summary['mean_color_test_baseline_mse']:.6f} for the
training mean as a constant guess. {examples}

## Where the error is

| | {' | '.join(parts[part] for part in by_split)} |
|---|{'---|' * len(by_split)}
| MAE | {' | '.join(f"{value:.4f}" for value in by_split.values())} |

MAE of each test person: {people}. With so few test people, which ones were drawn matters: a 95% bootstrap interval
over them is [{low:.4f}, {high:.4f}]. Given each test photo's true overall color (its mean a*b*, an oracle nothing
has at use), the MAE would be {summary['test_cast_matched_mae']:.4f}: the difference is the photo's overall tint (skin
tone, white balance, the color of the light), which its lightness barely tells.

{sweep_section}
## Training

- Data: `{cfg.data}`, split by person (seed {cfg.seed}): train {', '.join(summary['split']['train'])}; validation
  {', '.join(summary['split']['val'])}; test {', '.join(summary['split']['test'])}.{extra}
- Adam (lr {cfg.learning_rate:g}, {cfg.lr_warmup_steps}-step warmup, then {cfg.lr_decay}), batch {cfg.train_batch_size},
  {cfg.num_epochs} epochs × {cfg.repeats} augmented views per photo{augmentation}, MAE
  loss; {kept}.
- {summary['steps']:,} steps{f" over its {len(members)} members" if members else ""}; `predict` on a 1024×768 photo:
  {summary['latency_ms_1024x768']:.0f} ms on the training machine (the bench gives the 2-thread figure). Curves:
  `training_curves.png`.

{training.config_table(cfg)}
"""


def _photos_card(summary: dict, cfg: Config) -> str:
    """The model card of a general-photo colorizer (`arch` "unet")."""
    def counted(counts: dict[str, int]) -> str:
        return ", ".join(f"`{folder}` {count:,}" for folder, count in counts.items()) or "none"

    scenes = (f"| natural scenes (`{Path(cfg.transfer_data).name}`, {summary['scenes_photos']} photos) | "
              f"{summary['scenes_mae']:.4f} | {summary['scenes_baseline_mae']:.4f} | {summary['scenes_neutral_mae']:.4f} | "
              f"{summary['scenes_colorfulness']:.1f} | {summary['scenes_true_colorfulness']:.1f} |"
              if summary["scenes_mae"] is not None else "")
    first = summary.get("first_stage") or {}
    started = (f"Fine-tuned from `{cfg.init_weights}` (`init_weights`: {first.get('steps', 0):,} steps, "
               f"{first.get('epochs_trained', 0)} epochs, its flags in the last table); this stage below.\n- "
               if cfg.init_weights else "")
    first_flags = ("\n\nThe first stage (`init_weights`):\n\n| field | value |\n|---|---|\n" + "\n".join(
        f"| `{key}` | `{value}` |" for key, value in first["config"].items() if key != "hub_private")
        if first.get("config") else "")
    kept = ("the last epoch is kept: the validation MAE is a curve, never a choice"
            if cfg.keep_last or cfg.refit else
            f"the epoch with the lowest validation MAE is kept (epoch {summary['best_epoch']}, "
            f"{training.figure(summary['best_val_mae'])})")
    validation = (f"the validation people's photos and `{Path(cfg.transfer_data).name}`" if cfg.validate_on_transfer
                  else "the validation people's photos")
    pictures = ("\n\n![best and worst examples](examples.png)" if cfg.report_photos else
                "\n\n(No pictures of the photos here: neither the face photos nor the training photos may be"
                " redistributed.)")
    return f"""
Predicts the a*b* color channels of any photo from its lightness L (CIELAB): a {summary['parameters']:,}-parameter
U-Net (the suite's `tasks/unet.py`, width {cfg.width}, depth {cfg.depth}) with a global-context branch at its
bottleneck, seeing the whole photo at {cfg.size}×{cfg.size}. It is the default model of the Colorize tab of the
Darkroom Space; at use the predicted a*b* is upsampled and joined with the photo's own full-resolution L.

Why this model: the score people compare colorizers by here is the MAE over a*b*, and an L1 regression optimises
exactly that. Its known fault is that it paints the median color where it is unsure, which is grayish brown, so the
colourfulness of its results is reported beside the MAE (Hasler & Süsstrunk 2003, M^(3): 0 gray, 33 moderately,
59 quite colourful) against that of the true photos. Classification over quantised a*b* with class rebalancing (Zhang
et al., "Colorful Image Colorization", 2016) paints more saturated colors, at a higher MAE, and needs far more data and
training than {summary['steps']:,} steps on 2 CPU cores to learn where they go. The U-Net's skips keep the color
edges on the objects' edges; the context branch (as Iizuka et al., 2016, fuse a global feature) lets the whole scene
(a beach, a street, a face) bear on every pixel.

## Results

MAE over a*b* normalised to [0, 1] (L/100; a* over [{A_RANGE[0]}, {A_RANGE[1]}], b* over [{B_RANGE[0]}, {B_RANGE[1]}],
the sRGB gamut), at {cfg.size}×{cfg.size}. Baseline: the training people's mean a*b* everywhere (as for the faces
model); gray: a* = b* = 0 everywhere, the guess an L1 regression drifts towards where it is unsure. Colourfulness: of
the colorized photos (their L, the predicted a*b*) and of the photos themselves.

| test set | MAE | baseline MAE | gray MAE | colourfulness | true colourfulness |
|---|---|---|---|---|---|
{scenes}
| faces of the {len(summary['split']['test'])} test people ({summary['test_photos']} photos) | {summary['test_mae']:.4f} | {summary['test_baseline_mae']:.4f} | {summary['test_neutral_mae']:.4f} | {summary['test_colorfulness']:.1f} | {summary['test_true_colorfulness']:.1f} |{pictures}

## Training

- {started}Data: the training {"and validation " if cfg.refit else ""}people of `{Path(cfg.data).name}` (split by person, seed {cfg.seed}: the faces model's split;
  test people {', '.join(summary['split']['test'])}){f", each photo {cfg.people_repeats} times an epoch" if
  cfg.people_repeats > 1 else ""}, and every color photo of the extra folders (`extra_train`):
  {counted(summary['extra_photos'])}; skipped as already grayscale: {counted(summary['skipped_gray'])}.
- Augmentation on the fly: zoom/crop (up to 1/{1 + 0.25:g} of the side), shifts (±10%),
  {"horizontal flips, " if cfg.flip else ""}RGB scaling by ±{cfg.color_jitter:.0%} per channel.
- Adam (lr {cfg.learning_rate:g}, {cfg.lr_warmup_steps}-step warmup, then {cfg.lr_decay}), batch {cfg.train_batch_size},
  {summary['epochs_trained']} epochs, {summary['steps']:,} steps, L1 loss; validation on {validation} after each
  epoch; {kept}.
- `predict` on a 1024×768 photo: {summary['latency_ms_1024x768']:.0f} ms on the training machine (the bench gives the
  2-thread figure). Curves: `training_curves.png`.

{training.config_table(cfg)}{first_flags}
"""
