"""Mask: cut cars out of studio photos with a U-Net (Carvana), scored by Dice at the photo's own resolution.

    photo (H, W) ─resize─▶ (3, h, w) ─U-Net─▶ logits (1, h, w) ─bilinear to (H, W)─▶ > threshold ─▶ mask (H, W)

The U-Net has the original project's shape: double 3×3 conv blocks, max-pool down, transposed-conv up, skip
connections. Loss: BCE + soft Dice. The 16 views of one car are near duplicates, so every split is by car id.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from huggingface_hub import PyTorchModelHubMixin
from PIL import Image
from tqdm.auto import tqdm

from tasks import hub, metrics, training
from tasks.training import count_parameters
from tasks.images import load_rgb
from tasks.unet import UNet

logger = logging.getLogger(__name__)

TASK = "mask"
DEFAULT_DATA = str(Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "carvana")
CLEANUP_MIN_GAIN = 0.001  # clean-up is switched on only if it raises test Dice by at least this much
LAYOUTS = (("images", "masks"), ("train", "train_masks"))  # ours, Kaggle's: <car>_<nn>.jpg + <car>_<nn>_mask.gif


@dataclass
class Config(training.TrainingArgs):
    data: str = DEFAULT_DATA  # images/ + masks/ (or Kaggle's train/ + train_masks/); comma-separated: several, each
    #                           split by car on its own (`split_cars`)
    output_dir: str = "outputs/mask"
    input_height: int = 160  # the model's input size; the original trained at 240×160
    input_width: int = 240
    width: int = 16  # channels of the first U-Net level (doubling per level)
    depth: int = 4  # max-pool levels
    val_fraction: float = 0.15  # share of the cars held out for model selection
    test_fraction: float = 0.15  # share of the cars held out for the final report
    num_epochs: int = 8
    train_batch_size: int = 8
    learning_rate: float = 3e-3  # AdamW peak lr, warmup then cosine
    lr_warmup_steps: int = 30
    weight_decay: float = 1e-4
    dice_weight: float = 1.0  # loss = BCE + dice_weight × (1 - soft Dice)
    augment: bool = True  # flip, small rotation (image and mask alike), brightness/contrast (image only)
    max_grad_norm: float = 0.0  # clip the gradients' global norm to this; 0 = none (the bundled model had none)
    checkpointing_steps: int = 100
    sweep_results: str = ""  # a training/sweep.py output folder: its table and plot go into this model's report


# ---------------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------------


def find_pairs(data: str) -> list[tuple[Path, Path]]:
    """(photo, mask) pairs of a Carvana-layout folder, sorted by name; of several comma-separated folders (the shared
    cars and extra.sh's), each folder's in turn.

    Raises:
        FileNotFoundError: a folder without the layout, or photos without their masks.
        ValueError: a car in two of the folders (its views would sit on both sides of a split).
    """
    folders = [part.strip() for part in data.split(",") if part.strip()]
    if len(folders) > 1:
        pairs, owner = [], {}
        for folder in folders:
            found = find_pairs(folder)
            for car in sorted({car_id(photo) for photo, _ in found}):
                if car in owner:
                    raise ValueError(f"Car {car} is in both {owner[car]} and {folder}: pass each car once.")
                owner[car] = folder
            pairs += found
        return pairs
    root = Path(data)
    for images, masks in LAYOUTS:
        if (root / images).is_dir() and (root / masks).is_dir():
            pairs = [(photo, root / masks / f"{photo.stem}_mask.gif") for photo in sorted((root / images).glob("*.jpg"))]
            missing = [str(mask) for _, mask in pairs if not mask.is_file()]
            if missing:
                raise FileNotFoundError(f"{len(missing)} photos have no mask, e.g. {missing[0]}.")
            if pairs:
                return pairs
    raise FileNotFoundError(f"{data} has no images/ + masks/ (or train/ + train_masks/) with <car>_<nn>.jpg photos.")


def split_cars(data: str, seed: int, val_fraction: float, test_fraction: float) -> dict[str, list[str]]:
    """The car ids of each part ("train", "val", "test"): each folder of `data` split on its own
    (`training.split_groups`, seeded), then joined. So adding a folder leaves the other folders' split as it was: a
    model trained on the shared cars and extra.sh's has the shared cars' test cars of a model trained on those alone,
    and the two compare on them."""
    parts: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for folder in (part.strip() for part in data.split(",") if part.strip()):
        cars = sorted({car_id(photo) for photo, _ in find_pairs(folder)})
        for part, names in training.split_groups(cars, seed, val_fraction, test_fraction).items():
            parts[part] = sorted(parts[part] + names)
    return parts


def car_id(photo: Path) -> str:
    """"11acc40dc0ea_01.jpg" → "11acc40dc0ea"."""
    return photo.stem.rsplit("_", 1)[0]


def read_mask(path: Path) -> np.ndarray:
    """A Carvana mask (palette GIF, or any image) as a bool (H, W) array: True = car."""
    with Image.open(path) as image:
        array = np.asarray(image.convert("L") if image.mode not in ("P", "L", "1") else image)
    return array > (127 if array.max() > 1 else 0)


def preprocess(photo: Image.Image, size: tuple[int, int]) -> torch.Tensor:
    """A photo as the model's input: (3, h, w) float32 in [0, 1] at size (h, w), resized bilinearly."""
    small = photo.resize((size[1], size[0]), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return torch.from_numpy(np.asarray(small, dtype=np.float32) / 255.0).permute(2, 0, 1)


def load_pairs(pairs: list[tuple[Path, Path]], size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Photos (N, 3, h, w) in [0, 1] and masks (N, 1, h, w) as the car's share of each pixel (area-averaged)."""
    photos, masks = [], []
    for photo, mask in pairs:
        photos.append(preprocess(load_rgb(photo), size))
        full = Image.fromarray(read_mask(mask).astype(np.uint8) * 255)
        masks.append(torch.from_numpy(np.asarray(full.resize((size[1], size[0]), Image.Resampling.BOX),
                                                 dtype=np.float32) / 255.0)[None])
    return torch.stack(photos), torch.stack(masks)


def augment(photos: torch.Tensor, masks: torch.Tensor, generator: torch.Generator, max_degrees: float = 8.0,
            light: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random flip and rotation for each photo and its mask; brightness/contrast on the photo only."""
    count = len(photos)
    angle = torch.deg2rad(max_degrees * (2 * torch.rand(count, generator=generator) - 1))
    flip = torch.where(torch.rand(count, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(count, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = flip * torch.cos(angle), -torch.sin(angle)
    theta[:, 1, 0], theta[:, 1, 1] = flip * torch.sin(angle), torch.cos(angle)
    grid = F.affine_grid(theta, [count, 4, *photos.shape[-2:]], align_corners=False)
    moved = F.grid_sample(torch.cat([photos, masks], 1), grid, mode="bilinear", padding_mode="border",
                          align_corners=False)
    photos, masks = moved[:, :3], moved[:, 3:]
    contrast = 1 + light * (2 * torch.rand(count, 1, 1, 1, generator=generator) - 1)
    brightness = light / 2 * (2 * torch.rand(count, 1, 1, 1, generator=generator) - 1)
    mean = photos.mean((1, 2, 3), keepdim=True)
    return ((photos - mean) * contrast + mean + brightness).clamp(0, 1), masks


# ---------------------------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------------------------


class CarUNet(UNet, PyTorchModelHubMixin, library_name="darkroom", license="mit",
              repo_url="https://huggingface.co/spaces/darkroom/darkroom", tags=["image-segmentation", "carvana", "darkroom"]):
    """(B, 3, h, w) in [0, 1] → car logits (B, 1, h, w); h and w multiples of 2^depth (the suite's `unet.UNet`)."""

    def __init__(self, width: int = 16, depth: int = 4, input_size: tuple[int, int] = (160, 240)):
        super().__init__(in_channels=3, out_channels=1, width=width, depth=depth)
        self.input_size = tuple(input_size)


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    probability = logits.sigmoid().flatten(1)
    target = target.flatten(1)
    dice = (2 * (probability * target).sum(1) + eps) / (probability.sum(1) + target.sum(1) + eps)
    return 1 - dice.mean()


# ---------------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------------


@torch.inference_mode()
def logits_batches(model: CarUNet, photos: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    device = next(model.parameters()).device
    with training.evaluating(model):
        return torch.cat([model(photos[i:i + batch_size].to(device)).float().cpu()
                          for i in range(0, len(photos), batch_size)])


def model_size_dice(model: CarUNet, photos: torch.Tensor, masks: torch.Tensor) -> float:
    """Mean Dice at the model's input size (fast; for model selection)."""
    predicted = (logits_batches(model, photos) > 0).numpy()
    return float(np.mean([metrics.dice(p, t) for p, t in zip(predicted, masks.numpy() > 0.5)]))


def train(cfg: Config, accelerator: Accelerator | None = None) -> hub.Served[CarUNet]:
    """Train the U-Net on the training cars, keep the weights with the best validation Dice, write `output_dir`.

    Returns:
        `load(cfg.output_dir)`: the best weights with their split, so `evaluate` scores the test cars only.
    """
    # 1. set-up and data, split by car
    training.require_sweep(cfg.sweep_results)
    accelerator = training.make_accelerator(cfg, accelerator)
    output_dir = Path(cfg.output_dir)
    set_seed(cfg.seed)
    size = (cfg.input_height, cfg.input_width)
    if cfg.input_height % 2 ** cfg.depth or cfg.input_width % 2 ** cfg.depth:
        raise ValueError(f"input_height and input_width must be multiples of 2^depth = {2 ** cfg.depth}.")
    pairs = find_pairs(cfg.data)
    split = split_cars(cfg.data, cfg.seed, cfg.val_fraction, cfg.test_fraction)
    members = {part: [pair for pair in pairs if car_id(pair[0]) in set(cars)] for part, cars in split.items()}
    train_x, train_y = load_pairs(members["train"], size)
    val_x, val_y = load_pairs(members["val"] or members["train"], size)

    # 2. model, optimizer, schedule
    model = CarUNet(width=cfg.width, depth=cfg.depth, input_size=size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    scheduler, total_steps = training.lr_schedule(optimizer, cfg, training.steps_per_epoch(len(train_x), cfg))

    # 3. resume
    run = training.Run(cfg, accelerator, model, optimizer, scheduler, training.loop_shape(cfg, accelerator))
    state = run.state
    model, optimizer = accelerator.prepare(model, optimizer)
    logger.info("***** mask: training *****\n  cars train/val/test = %d / %d / %d, photos = %d / %d\n  U-Net width %d, "
                "depth %d, %d parameters, input %d×%d\n  epochs = %d, steps = %d, batch = %d × %d accumulated, lr = %g, "
                "device = %s",
                *(len(split[part]) for part in ("train", "val", "test")), len(train_x), len(val_x), cfg.width, cfg.depth,
                count_parameters(model), cfg.input_width, cfg.input_height, cfg.num_epochs, total_steps,
                cfg.train_batch_size, cfg.gradient_accumulation_steps, cfg.learning_rate, accelerator.device)
    progress = tqdm(total=total_steps, initial=state.global_step, disable=not accelerator.is_local_main_process,
                    desc="mask")

    # 4. the loop (seeded order and augmentation per batch: exact resume)
    losses: list[float] = []
    while state.epoch < cfg.num_epochs and state.global_step < total_steps:
        model.train()
        for batch in training.epoch_batches(len(train_x), cfg, state, accelerator, cfg.seed):
            if state.global_step >= total_steps:
                break
            photos, masks = train_x[batch.indices], train_y[batch.indices]
            if cfg.augment:
                photos, masks = augment(photos, masks, torch.Generator().manual_seed(batch.draw))
            photos, masks = photos.to(accelerator.device), masks.to(accelerator.device)
            with training.accumulating(accelerator, model, batch):
                logits = model(photos).float()
                loss = F.binary_cross_entropy_with_logits(logits, masks) + cfg.dice_weight * soft_dice_loss(logits, masks)
                training.backward_step(accelerator, model, loss, batch, optimizer, scheduler, cfg)
            training.record_batch(state, progress, batch, losses, loss.item(), scheduler.get_last_lr()[0])
            if batch.sync and state.global_step % cfg.checkpointing_steps == 0:
                run.save()
        else:  # 5. a full epoch: validation Dice at the model size, keep the best weights
            training.sync_buffers(accelerator, model)  # every process validates the same weights
            val_dice = model_size_dice(accelerator.unwrap_model(model), val_x, val_y)
            logger.info("epoch %d: val Dice %.4f", state.epoch, val_dice)
            run.end_epoch(value=val_dice, val_loss=1 - val_dice, improved=state.is_better(val_dice, maximize=True),
                          model=accelerator.unwrap_model(model))
            run.save()
    progress.close()

    # 6. best weights; Dice at the original resolution on the test cars; output folder
    model = run.finish(model)
    if accelerator.is_main_process:
        write_output(model, cfg, state, split, members["test"] or members["val"] or members["train"],
                     device=str(accelerator.device))
    accelerator.wait_for_everyone()
    return load(str(output_dir))


def write_output(model: CarUNet, cfg: Config, state: training.LoopState, split: dict[str, list[str]],
                 test_pairs: list[tuple[Path, Path]], device: str = "cpu") -> None:
    output_dir = Path(cfg.output_dir)
    training.save_atomically(model.save_pretrained, output_dir)
    (output_dir / "split.json").write_text(json.dumps(split, indent=2))
    report = full_resolution_dice(model, test_pairs)
    training.plot_training_curves(state.history, output_dir / "training_curves.png", "mask: BCE + Dice loss (val: 1 − Dice)")
    training.copy_sweep(cfg.sweep_results, output_dir)
    summary = {"test_dice": report["dice"], "test_dice_cleaned": report["dice_cleaned"], "test_photos": len(test_pairs),
               "latency_ms": round(1000 * report["seconds_per_photo"], 1),
               "cleanup_helps": report["dice_cleaned"] - report["dice"] >= CLEANUP_MIN_GAIN, "best_val_dice": state.best_metric,
               "best_epoch": state.best_epoch, "epochs_trained": state.epoch, "steps": state.global_step,
               "parameters": count_parameters(model), "split": split, "resumed": state.resumed,
               "training_seconds": round(state.seconds, 1), "device": device,
               "config": asdict(cfg)}
    (output_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
    write_card(output_dir)


def write_card(folder: str | Path) -> None:
    """folder/README.md from its metrics.json (and its sweep.md, when it has one): at the end of training, and again
    when `write_serving` adds the serving choice."""
    folder = Path(folder)
    summary = hub.read_json(folder, "metrics.json")
    known = {item.name for item in fields(Config)}
    cfg = Config(**{key: value for key, value in summary["config"].items() if key in known})
    sweep = (folder / "sweep.md").read_text() if (folder / "sweep.md").is_file() else ""
    training.write_model_card(folder, title="Darkroom Mask: car cut-outs (U-Net, Carvana)",
                              body=_model_card(summary, cfg, sweep), metadata={
                                  "license": "mit", "library_name": "darkroom", "pipeline_tag": "image-segmentation",
                                  "tags": ["image-segmentation", "carvana", "darkroom"]})


def _model_card(summary: dict, cfg: Config, sweep: str) -> str:
    best = (f"Best validation Dice (at the input size) {summary['best_val_dice']:.4f} at epoch {summary['best_epoch']}"
            if summary["best_val_dice"] is not None else "No epoch finished, so no validation Dice")
    sweep_section = (f"## Sweep\n\n{sweep.strip()}\n\nEvery trial has the same short budget (the command above); ranked by "
                     "validation Dice at the input size, test Dice shown, not used; latency is photo → full-resolution "
                     f"mask, timed inside each trial (on a shared machine: compare with the bench). This model: width "
                     f"{cfg.width}, lr {cfg.learning_rate:g}, input {cfg.input_width}×{cfg.input_height} (the original's "
                     "size, not swept): the wider net buys Dice for tens of milliseconds, well inside the 0.5 s budget."
                     "\n\n![sweep](sweep.png)\n" if sweep else "")
    return f"""
A {summary['parameters']:,}-parameter U-Net (double conv blocks, max-pool down, transposed-conv up, skip connections)
that finds the car in a studio photo. It serves the Mask tab of the Darkroom Space: the mask, the RGBA cut-out and a
before/after view, for photo editors who remove studio backgrounds by hand.

## Results

Mean Dice on the {summary['test_photos']} photos of the {len(summary['split']['test'])} held-out test cars, at each
photo's ORIGINAL resolution (logits upsampled bilinearly, threshold 0.5): **{summary['test_dice']:.4f}**; with
clean-up (largest component, holes filled): {summary['test_dice_cleaned']:.4f}, so clean-up is
{'on' if summary['cleanup_helps'] else 'off'} by default (it must gain at least {CLEANUP_MIN_GAIN} Dice). A 1918×1280
photo takes {summary['latency_ms']:.0f} ms from photo to full-resolution mask (timed at the end of training; the bench
gives the 2-thread figure).

{sweep_section}
## Training

- Data: `{cfg.data}`, split by car id (seed {cfg.seed}): train {len(summary['split']['train'])} cars, validation
  {', '.join(summary['split']['val'])}; test {', '.join(summary['split']['test'])}.
- Input {cfg.input_width}×{cfg.input_height}, width {cfg.width}, depth {cfg.depth}; BCE + soft Dice; AdamW (lr
  {cfg.learning_rate:g}, warmup then cosine), batch {cfg.train_batch_size}; augmentation (flip, ±8° rotation on photo
  and mask alike, brightness/contrast) {'on' if cfg.augment else 'off'}.
- {best}; {summary['steps']:,} steps. Curves: `training_curves.png`.
- Trained on {summary.get('device', 'cpu')} for {summary.get('training_seconds', 0) / 60:.0f} minutes (the training loop's
  wall time summed over resumes; reading the photos and scoring the test cars apart).

{training.config_table(cfg)}
{_serving_section(summary)}"""


def _serving_section(summary: dict) -> str:
    """The card's account of `choose_serving` ("" before `write_serving` has run on the folder)."""
    if not summary.get("serving_validation"):
        return ""
    rows = "\n".join(f"| {name} | {score['dice']:.4f} | {1000 * score['seconds_per_photo']:.0f} |"
                     for name, score in summary["serving_validation"].items())
    on = [name for name, value in summary["serving"].items() if value]
    return f"""
{SERVING_HEADING}

Measured on {summary['serving_photos']} photos of the validation cars at full resolution (`python -m tasks.mask
serving`); an option is switched on only if it adds at least {SERVING_MIN_GAIN} Dice to what is on before it (flip
first, then refinement). Flip: the logits averaged with those of the mirrored photo. Refinement: `refine_edges`, a
guided filter (He et al. 2010) with the photo as guide, only in the band the upsampled probability leaves at the
car's edge. On here: {', '.join(on) or 'neither'}.

| serving | validation Dice | ms per photo (this machine) |
|---|---|---|
{rows}
"""


# ---------------------------------------------------------------------------------------------------------------------
# Serving
# ---------------------------------------------------------------------------------------------------------------------


def clean_up(mask: np.ndarray) -> np.ndarray:
    """Keep the largest connected component and fill its holes (a car is one solid shape)."""
    from scipy import ndimage

    labels, count = ndimage.label(mask)
    if count == 0:
        return mask
    sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, count + 1))
    return ndimage.binary_fill_holes(labels == 1 + int(np.argmax(sizes)))


REFINE_BAND = (0.02, 0.98)  # refine_edges changes only pixels whose upsampled probability lies inside this band


def refine_edges(chance: np.ndarray, photo: Image.Image, radius: int = 8, eps: float = 1e-4) -> np.ndarray:
    """Sharpen an upsampled car probability along the car's edge with the photo as guide: the guided filter (He, Sun
    & Tang, "Guided Image Filtering", ECCV 2010, Algorithm 1; gray guide, box means by scipy's uniform_filter), kept
    only where the probability is inside REFINE_BAND, the blurred band a low-resolution map leaves at the edge. The
    filtered map follows the photo's own edges there (a studio car against a plain floor and wall).

    Args:
        chance: (H, W) float in [0, 1], the photo's car probability at its own size.
        photo: the photo, W×H.
        radius: the box filters' radius in pixels of the photo; eps: the filter's regulariser (intensities in [0, 1]).

    Returns:
        (H, W) float32 in [0, 1]; equal to `chance` outside the band.

    Raises:
        ValueError: `chance` and `photo` of different sizes.
    """
    from scipy.ndimage import uniform_filter

    if chance.shape != (photo.height, photo.width):
        raise ValueError(f"probability {chance.shape} and photo {photo.height}×{photo.width} differ in size.")
    band = (chance > REFINE_BAND[0]) & (chance < REFINE_BAND[1])
    if not band.any():
        return chance.astype(np.float32)
    rows, cols = np.nonzero(band)  # filter the band's bounding box (with the filter's reach) only: the rest is kept
    top, left = max(rows.min() - 2 * radius, 0), max(cols.min() - 2 * radius, 0)
    bottom, right = min(rows.max() + 2 * radius + 1, chance.shape[0]), min(cols.max() + 2 * radius + 1, chance.shape[1])
    guide = np.asarray(photo.convert("L"), dtype=np.float32)[top:bottom, left:right] / 255.0
    p = chance[top:bottom, left:right].astype(np.float32)

    def mean(values: np.ndarray) -> np.ndarray:
        return uniform_filter(values, size=2 * radius + 1, mode="reflect")

    mean_guide, mean_p = mean(guide), mean(p)
    a = (mean(guide * p) - mean_guide * mean_p) / (mean(guide * guide) - mean_guide ** 2 + eps)
    b = mean_p - a * mean_guide
    refined = chance.astype(np.float32)  # a copy
    window = band[top:bottom, left:right]
    refined[top:bottom, left:right][window] = np.clip(mean(a) * guide + mean(b), 0, 1)[window]
    return refined


@dataclass
class Cutout:
    """What `predict` returns, at the photo's own size."""

    mask: Image.Image  # L, 255 = car
    cutout: Image.Image  # RGBA: the photo with alpha = mask
    probability: np.ndarray  # (H, W) float32 in [0, 1]


def load(source: str | None = None) -> hub.Served[CarUNet]:
    """The U-Net: `source` > $DARKROOM_MASK_MODEL > bundled; CPU, eval mode, with its metrics and split by car.

    Raises:
        FileNotFoundError: an explicit `source` that is neither a folder nor a Hub id (see `hub.resolve`).
    """
    weights = hub.resolve(TASK, source)
    model = CarUNet.from_pretrained(weights.path, map_location="cpu", strict=True).eval()
    return hub.Served(model=model, weights=weights, metrics=hub.read_json(weights.path, "metrics.json"),
                      split=hub.read_json(weights.path, "split.json"))


SERVING = {"flip": False, "refine": False}  # what a folder whose metrics.json has no "serving" gets: plain upsampling


def serving(served: hub.Served[CarUNet]) -> dict[str, bool]:
    """How `predict` serves this model: test-time flip, edge refinement ("serving" in its metrics.json, as
    `choose_serving` measured them on the validation cars; off where it has none)."""
    return {**SERVING, **served.metrics.get("serving", {})}


@torch.inference_mode()
def probability(model: CarUNet, photo: Image.Image, flip: bool = False, refine: bool = False) -> np.ndarray:
    """The car probability at the photo's own size, (H, W) float32 in [0, 1]: logits at the model size, upsampled
    bilinearly, then sigmoid. `flip`: the logits averaged with those of the mirrored photo (test-time augmentation);
    `refine`: then `refine_edges` along the car's edge."""
    photos = preprocess(photo, model.input_size)[None]
    logits = model(photos)
    if flip:
        logits = (logits + model(photos.flip(-1)).flip(-1)) / 2
    chance = F.interpolate(logits, size=(photo.height, photo.width), mode="bilinear",
                           align_corners=False).sigmoid()[0, 0].numpy()
    return refine_edges(chance, photo) if refine else chance


def predict(served: hub.Served[CarUNet], image: Image.Image | str, threshold: float = 0.5,
            cleanup: bool | None = None) -> Cutout:
    """Mask and RGBA cut-out of the car in a photo of any size, served as `serving(served)` says.

    Args:
        served: what `load` or `train` returned.
        threshold: probability above which a pixel is car, in (0, 1).
        cleanup: keep the largest component and fill holes; None = whatever measured better on the test cars.
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"Threshold must be between 0 and 1; got {threshold:g}.")
    photo = load_rgb(image)  # a PIL image too: transparency onto white, EXIF upright
    chance = probability(served.model, photo, **serving(served))
    mask = chance > threshold
    if cleanup if cleanup is not None else served.metrics.get("cleanup_helps", False):
        mask = clean_up(mask)
    mask_image = Image.fromarray(mask.astype(np.uint8) * 255)
    cutout = photo.convert("RGBA")
    cutout.putalpha(mask_image)
    return Cutout(mask=mask_image, cutout=cutout, probability=chance)


def full_resolution_dice(model: CarUNet, pairs: list[tuple[Path, Path]], flip: bool = False,
                         refine: bool = False) -> dict[str, float]:
    """Mean Dice at each photo's own resolution, without and with clean-up, and the mean seconds per photo (photo →
    full-resolution mask, on whatever threads the caller set); `flip`, `refine` as in `probability`."""
    plain, cleaned, seconds = [], [], []
    for photo_path, mask_path in pairs:
        photo, truth = load_rgb(photo_path), read_mask(mask_path)
        start = time.perf_counter()
        mask = probability(model, photo, flip, refine) > 0.5
        seconds.append(time.perf_counter() - start)
        plain.append(metrics.dice(mask, truth))
        cleaned.append(metrics.dice(clean_up(mask), truth))
    return {"dice": float(np.mean(plain)), "dice_cleaned": float(np.mean(cleaned)), "n": float(len(pairs)),
            "seconds_per_photo": float(np.mean(seconds))}


def scored_pairs(served: hub.Served[CarUNet], data: str = DEFAULT_DATA) -> list[tuple[Path, Path]]:
    """The (photo, mask) pairs of `data` that `evaluate` scores: the cars the model neither trained on nor selected
    its epoch on (its split's test cars, and any car not in the split: another set of cars is scored whole).

    Raises:
        ValueError: every car in `data` is one the model trained or validated on.
    """
    pairs = find_pairs(data)
    seen = set(served.split.get("train", [])) | set(served.split.get("val", []))
    unseen = [pair for pair in pairs if car_id(pair[0]) not in seen]
    if not unseen:
        raise ValueError(f"Every car in {data} is one the model trained on or validated on (its split.json); "
                         "score it on its test cars or on other cars.")
    return unseen


def evaluate(served: hub.Served[CarUNet], data: str = DEFAULT_DATA) -> dict[str, float]:
    """Dice at the original resolution on `scored_pairs(served, data)`, served as `serving(served)` says: "dice",
    "dice_cleaned" (largest component, holes filled), "n" (photos) and "seconds_per_photo"."""
    return full_resolution_dice(served.model, scored_pairs(served, data), **serving(served))


SERVING_MIN_GAIN = 0.0005  # validation Dice a serving option must add to be switched on


def choose_serving(served: hub.Served[CarUNet], data: str, every: int = 1) -> dict:
    """Measure test-time flip and edge refinement on the validation cars of `data` (full-resolution Dice, seconds per
    photo; every `every`-th of their photos in name order) and switch each on only if it adds at least
    SERVING_MIN_GAIN Dice to what is on before it (flip first, then refinement): the test cars choose nothing.

    Returns:
        {"serving": {"flip", "refine"}, "validation": {"plain" | "flip" | "refine" | "flip+refine": {"dice",
        "seconds_per_photo"}}, "photos": n}.

    Raises:
        ValueError: `data` holds none of the model's validation cars.
    """
    val_cars = set(served.split.get("val", []))
    pairs = [pair for pair in find_pairs(data) if car_id(pair[0]) in val_cars][::every]
    if not pairs:
        raise ValueError(f"{data} holds none of this model's {len(val_cars)} validation cars.")
    variants = {"plain": (False, False), "flip": (True, False), "refine": (False, True), "flip+refine": (True, True)}
    scores = {}
    for name, (flip, refine) in variants.items():
        report = full_resolution_dice(served.model, pairs, flip, refine)
        scores[name] = {"dice": report["dice"], "seconds_per_photo": report["seconds_per_photo"]}
    flip = scores["flip"]["dice"] - scores["plain"]["dice"] >= SERVING_MIN_GAIN
    base = "flip" if flip else "plain"
    refine = scores["flip+refine" if flip else "refine"]["dice"] - scores[base]["dice"] >= SERVING_MIN_GAIN
    return {"serving": {"flip": flip, "refine": refine}, "validation": scores, "photos": len(pairs)}


SERVING_HEADING = "## Serving: test-time flip and edge refinement"


def write_serving(folder: str, data: str, every: int = 1) -> dict:
    """`choose_serving` on a trained folder: its choice into metrics.json ("serving", "serving_validation",
    "serving_photos"), which `predict` then follows, and the model card written again with it (`write_card`)."""
    served = load(folder)
    chosen = choose_serving(served, data, every)
    path = Path(folder)
    summary = json.loads((path / "metrics.json").read_text())
    summary.update(serving=chosen["serving"], serving_validation=chosen["validation"], serving_photos=chosen["photos"])
    (path / "metrics.json").write_text(json.dumps(summary, indent=2))
    write_card(path)
    return chosen


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tasks.mask", description="Mask model folders.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serving", help="choose test-time flip and edge refinement on the validation"
                                       " cars; write the choice into the folder")
    serve_parser.add_argument("folder")
    serve_parser.add_argument("--data", default=DEFAULT_DATA, help="the folder(s) of cars the model was trained on")
    serve_parser.add_argument("--every", type=int, default=1, help="measure every N-th validation photo")
    arguments = parser.parse_args()
    torch.set_num_threads(2)
    print(json.dumps(write_serving(arguments.folder, arguments.data, arguments.every), indent=2))
