"""Colorize: predict a photo's a*b* colour channels from its lightness L (CIELAB), trained on face photos.

Two models, as in the original course project: a tiny regressor for an image's mean a*b* (`MeanColor`), and the
colorizer (`Colorizer`), a fully convolutional net with one BatchNorm at the input, 3 stride-2 convolutions down, 3
convolutions, 3 upsampling convolutions back up, MAE loss; `skip=True` adds U-Net skip connections.

    RGB ─▶ L*a*b* ─▶ L (B,1,128,128) ─BN─down ×3─▶ (B,w,16,16) ─conv ×3─up ×3─▶ a*b* (B,2,128,128) in [0, 1]

`ColorizerEnsemble` averages the a*b* of several colorizers trained alike with different seeds (`--init_seed`).
`predict` runs the model at its training resolution and joins the upsampled a*b* with the ORIGINAL full-resolution L,
so no detail is lost. All MAE figures are on a*b* normalised as below, comparable with the original's.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from huggingface_hub import PyTorchModelHubMixin
from PIL import Image, ImageDraw, ImageFont
from torch import nn
from tqdm.auto import tqdm

from tasks import hub, metrics, training
from tasks.images import load_rgb

logger = logging.getLogger(__name__)

TASK = "colorize"
SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"  # the development machine's data
DEFAULT_DATA = str(SHARED_DATA / "faces")
DEFAULT_TRANSFER = str(SHARED_DATA / "photos" / "bsds-test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
DATA_FILE = "data.json"  # the split and the training set's mean a*b*, saved beside the weights

# ---------------------------------------------------------------------------------------------------------------------
# CIELAB, normalised the original project's way: L / 100, and a*, b* mapped to [0, 1] over their range on the full
# sRGB gamut (D65). Every MAE in this task is on these [0, 1] a*b* values.
# ---------------------------------------------------------------------------------------------------------------------

A_RANGE = (-86.185, 98.254)  # a* over all sRGB colours: span 184.439
B_RANGE = (-107.863, 94.482)  # b* over all sRGB colours: span 202.345
_RGB_TO_XYZ = torch.tensor([[0.412453, 0.357580, 0.180423],
                            [0.212671, 0.715160, 0.072169],
                            [0.019334, 0.119193, 0.950227]])  # sRGB primaries, D65 (as scikit-image)
_XYZ_TO_RGB = torch.linalg.inv(_RGB_TO_XYZ)
_WHITE = torch.tensor([0.95047, 1.0, 1.08883])  # D65, 2° observer
_EPSILON, _KAPPA = 0.008856, 7.787  # CIE's f(t) knee and slope
_AB_LOW = torch.tensor([A_RANGE[0], B_RANGE[0]])
_AB_SPAN = torch.tensor([A_RANGE[1] - A_RANGE[0], B_RANGE[1] - B_RANGE[0]])


def _along(values: torch.Tensor, like: torch.Tensor, dim: int) -> torch.Tensor:
    """The (2,) a*, b* constants shaped to broadcast along `dim` of `like`."""
    shape = [1] * like.dim()
    shape[dim] = 2
    return values.to(like).view(shape)


def normalise_ab(ab: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """CIELAB a*, b* (2 along `dim`) → [0, 1] over their sRGB range: the one place the normalisation is defined."""
    return (ab - _along(_AB_LOW, ab, dim)) / _along(_AB_SPAN, ab, dim)


def ab_units(ab: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Normalised a*b* (2 along `dim`) → CIELAB a*, b*: the inverse of `normalise_ab`."""
    return ab * _along(_AB_SPAN, ab, dim) + _along(_AB_LOW, ab, dim)


def _mix(matrix: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Apply a 3×3 colour matrix to (..., 3, H, W)."""
    return (matrix.to(image) @ image.flatten(-2)).view(image.shape)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB (..., 3, H, W) in [0, 1] → normalised L*a*b* (..., 3, H, W), each channel in [0, 1]."""
    linear = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = _mix(_RGB_TO_XYZ, linear) / _WHITE.to(rgb).view(3, 1, 1)
    f = torch.where(xyz > _EPSILON, xyz.clamp_min(_EPSILON) ** (1 / 3), _KAPPA * xyz + 16 / 116)
    fx, fy, fz = f.unbind(-3)
    ab = normalise_ab(torch.stack([500 * (fx - fy), 200 * (fy - fz)], dim=-3), dim=-3)
    return torch.cat([((116 * fy - 16) / 100).unsqueeze(-3), ab], dim=-3)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """Normalised L*a*b* (..., 3, H, W) → sRGB in [0, 1] (out-of-gamut colours clipped)."""
    a, b = ab_units(lab[..., 1:, :, :], dim=-3).unbind(-3)
    fy = (lab[..., 0, :, :] * 100 + 16) / 116
    fx = fy + a / 500
    fz = (fy - b / 200).clamp_min(0)
    f = torch.stack([fx, fy, fz], dim=-3)
    xyz = torch.where(f > 0.2068966, f ** 3, (f - 16 / 116) / _KAPPA) * _WHITE.to(lab).view(3, 1, 1)
    linear = _mix(_XYZ_TO_RGB, xyz).clamp(0, 1)
    return torch.where(linear > 0.0031308, 1.055 * linear.clamp_min(0.0031308) ** (1 / 2.4) - 0.055, 12.92 * linear)


def gray_from_lightness(lightness: torch.Tensor) -> torch.Tensor:
    """Normalised L (..., 1, H, W) → the sRGB gray (..., 3, H, W) of that lightness: lab_to_rgb with a* = b* = 0,
    computed on one channel (neutral colours have R = G = B = Y in linear light)."""
    fy = (lightness * 100 + 16) / 116
    linear = torch.where(fy > 0.2068966, fy ** 3, (fy - 16 / 116) / _KAPPA).clamp(0, 1)
    gray = torch.where(linear > 0.0031308, 1.055 * linear.clamp_min(0.0031308) ** (1 / 2.4) - 0.055, 12.92 * linear)
    return gray.expand(*gray.shape[:-3], 3, *gray.shape[-2:])


NEUTRAL_AB = normalise_ab(torch.zeros(2))  # a* = b* = 0


def to_tensor(pictures: list[Image.Image]) -> torch.Tensor:
    """PIL RGB images of one size → (N, 3, H, W) float in [0, 1]."""
    array = np.stack([np.asarray(picture.convert("RGB"), dtype=np.float32) for picture in pictures])
    return torch.from_numpy(array).permute(0, 3, 1, 2) / 255.0


def to_image(rgb: torch.Tensor) -> Image.Image:
    """(3, H, W) in [0, 1] → PIL RGB."""
    return Image.fromarray((rgb.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy())


# ---------------------------------------------------------------------------------------------------------------------
# Data: photos grouped by person (sub-folders), split by group, never by photo
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class Config(training.TrainingArgs):
    data: str = DEFAULT_DATA  # folder of per-person sub-folders (faces/sNN/), a flat image folder, or a Hub dataset id
    transfer_data: str = DEFAULT_TRANSFER  # out-of-domain test photos (natural scenes); "" = skip
    extra_train: str = ""  # a folder of photos added to training only (e.g. scenes): never validated or tested on
    output_dir: str = "outputs/colorize"
    size: int = 128  # training resolution (square); a multiple of 8
    width: int = 64  # filters per conv layer of the colorizer
    skip: bool = False  # U-Net skip connections between the down and up paths
    context: bool = False  # a global-context branch: the whole photo's pooled features bias the middle convs
    val_fraction: float = 0.16  # share of the people held out for model selection
    test_fraction: float = 0.20  # share of the people held out for the final report
    init_seed: int = -1  # init, data order and augmentation (-1: seed); others on one split train ensemble members
    refit: bool = False  # train on the training and validation people together, with a recipe chosen beforehand on
    #                      the validation people: the last epoch is kept, and validation MAE is no longer held out
    num_epochs: int = 10
    repeats: int = 10  # augmented views of each training photo per epoch (the original: itself + 9 copies)
    train_batch_size: int = 20
    learning_rate: float = 1e-3  # Adam's peak learning rate
    lr_warmup_steps: int = 50
    lr_decay: str = "constant"  # after warmup: "constant" (the original's plain Adam) or "cosine" (to zero)
    augment: bool = True  # zoom/crop, horizontal and vertical shift, RGB scaling, on the fly
    colour_jitter: float = 0.15  # RGB scaling: each channel × U(1 ± colour_jitter); the bundled model: 0.05
    checkpointing_steps: int = 200
    sweep_results: str = ""  # a training/sweep.py output folder: its table and plot go into this model's report
    report_photos: bool = True  # draw the best/worst photos into examples.png (off when the data may not be shared)

    @property
    def run_seed(self) -> int:
        """The seed of the init, data order and augmentation draws: `init_seed`, or `seed` when that is -1."""
        return self.seed if self.init_seed < 0 else self.init_seed


def photo_groups(data: str) -> dict[str, list[Path]]:
    """Photos by group: one group per sub-folder (a person), or one per photo in a flat folder."""
    folder = Path(data)
    if not folder.is_dir():
        raise FileNotFoundError(f"{data} is not a folder of photos.")
    groups = {sub.name: sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
              for sub in sorted(folder.iterdir()) if sub.is_dir()}
    groups = {name: paths for name, paths in groups.items() if paths}
    if not groups:
        groups = {p.stem: [p] for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    if not groups:
        raise FileNotFoundError(f"No photos ({', '.join(IMAGE_SUFFIXES)}) in {data}.")
    return groups


def folder_photos(data: str) -> list[Path]:
    """Every photo of a folder, group after group (see `photo_groups`)."""
    return [path for paths in photo_groups(data).values() for path in paths]


def square(image: Image.Image, size: int) -> Image.Image:
    """The whole photo resized to size × size: what the model sees in `predict` too."""
    return image.resize((size, size), Image.Resampling.LANCZOS)


def load_photos(paths: list[Path], size: int) -> torch.Tensor:
    return to_tensor([square(load_rgb(path), size) for path in paths])


@dataclass
class SplitPhotos:
    """The photos of each part of the split ("train", "val", "test"), at the training size."""

    split: dict[str, list[str]]  # group (person) names per part
    rgb: dict[str, torch.Tensor]  # (N, 3, S, S) in [0, 1] per part
    names: dict[str, list[str]]  # each photo's name: its path under the data folder, or dataset[row]
    groups: dict[str, list[str]]  # each photo's group (person)


def load_split_photos(cfg: Config) -> SplitPhotos:
    """The photos of a folder or a Hub dataset, split by group (person) with `cfg.seed`."""
    folder = Path(cfg.data)
    if folder.is_dir():
        groups = photo_groups(cfg.data)
        split = training.split_groups(list(groups), cfg.seed, cfg.val_fraction, cfg.test_fraction)
        paths = {part: [p for name in names for p in groups[name]] for part, names in split.items()}
        return SplitPhotos(split, {part: load_photos(files, cfg.size) for part, files in paths.items()},
                           {part: [str(p.relative_to(folder)) for p in files] for part, files in paths.items()},
                           {part: [name for name in names for _ in groups[name]] for part, names in split.items()})
    import datasets

    dataset = datasets.load_dataset(cfg.data, split="train")
    group_column = "label" if "label" in dataset.column_names else None
    groups = [str(item) for item in dataset[group_column]] if group_column else [str(i) for i in range(len(dataset))]
    split = training.split_groups(sorted(set(groups)), cfg.seed, cfg.val_fraction, cfg.test_fraction)
    indices = {part: [i for i, group in enumerate(groups) if group in set(names)] for part, names in split.items()}
    return SplitPhotos(split, {part: to_tensor([square(dataset[i]["image"].convert("RGB"), cfg.size) for i in rows])
                               for part, rows in indices.items()},
                       {part: [f"{cfg.data}[{i}]" for i in rows] for part, rows in indices.items()},
                       {part: [groups[i] for i in rows] for part, rows in indices.items()})


def augment(rgb: torch.Tensor, generator: torch.Generator, zoom: float = 0.25, shift: float = 0.1,
            colour: float = 0.15) -> torch.Tensor:
    """The original's four augmentations on a batch (B, 3, H, W) in [0, 1], one draw per image.

    Zoom (crop up to 1/(1+zoom) of the side), horizontal and vertical shift (up to ±shift of the side, reflected at
    the border), and RGB scaling (each channel × U(1 - colour, 1 + colour)): the last one teaches the colorizer
    that skin and light come in more than one tint; at ±15% it outweighs the real spread of skin tones (bench, README).
    """
    count = len(rgb)
    scale = 1.0 / (1.0 + zoom * torch.rand(count, generator=generator))
    offsets = shift * (2 * torch.rand(count, 2, generator=generator) - 1)
    theta = torch.zeros(count, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = scale, scale
    theta[:, :, 2] = offsets
    grid = F.affine_grid(theta, list(rgb.shape), align_corners=False)
    moved = F.grid_sample(rgb, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    gains = 1 + colour * (2 * torch.rand(count, 3, 1, 1, generator=generator) - 1)
    return (moved * gains).clamp(0, 1)


# ---------------------------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------------------------

HUB_KWARGS = dict(library_name="darkroom", license="mit", repo_url="https://huggingface.co/spaces/darkroom/darkroom",
                  tags=["image-to-image", "colorization", "darkroom"])


class MeanColor(nn.Module, PyTorchModelHubMixin, **HUB_KWARGS):
    """The original's mean-colour regressor: 3 stride-2 convs of 3 filters, then dense 2 with a sigmoid.

        L (B,1,S,S) ─conv 3, s2 ×3─▶ (B,3,S/8,S/8) ─flatten, dense─▶ mean a*b* (B,2) in [0, 1]
    """

    def __init__(self, size: int = 128):
        super().__init__()
        layers, channels = [], 1
        for _ in range(3):
            layers += [nn.Conv2d(channels, 3, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
            channels = 3
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Sequential(nn.Linear(3 * (size // 8) ** 2, 2), nn.Sigmoid())

    def forward(self, lightness: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(lightness))


def conv(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1), nn.ReLU(inplace=True))


class Up(nn.Module):
    """×2 bilinear upsampling, then a 3×3 conv (no checkerboard artefacts, unlike a strided transposed conv)."""

    def __init__(self, in_channels: int, out_channels: int, last: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.activation = nn.Sigmoid() if last else nn.ReLU(inplace=True)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.activation(self.conv(F.interpolate(features, scale_factor=2, mode="bilinear", align_corners=False)))


class Colorizer(nn.Module, PyTorchModelHubMixin, **HUB_KWARGS):
    """L (B,1,S,S) in [0,1] → a*b* (B,2,S,S) in [0,1]; S a multiple of 8.

        BN ─ down(w,s2) ─ down(w,s2) ─ down(w,s2) ─(+)─ conv ×3 ─ up(w) ─ up(w) ─ up(2, sigmoid)
                 │           │            ├─────────┘ context=True: global average pool, 2 dense, added per channel
                 └───────────┴────────────┴── skip=True: concatenated into the up path at the same size (U-Net)

    The context branch lets the whole photo bear on every pixel's colour (the conv path reaches ~80 px of a 128-px
    photo, and weighs the near ones most): a small global prior in the spirit of Iizuka et al. (2016).
    """

    def __init__(self, width: int = 64, skip: bool = False, size: int = 128, context: bool = False):
        super().__init__()
        self.skip, self.size = skip, size
        self.norm = nn.BatchNorm2d(1)
        self.down = nn.ModuleList([conv(1, width, 2), conv(width, width, 2), conv(width, width, 2)])
        self.context = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, width), nn.ReLU(),
                                     nn.Linear(width, width)) if context else None
        self.middle = nn.Sequential(conv(width, width), conv(width, width), conv(width, width))
        extra = width if skip else 0
        self.up = nn.ModuleList([Up(width + extra, width), Up(width + extra, width), Up(width + extra, 2, last=True)])

    def forward(self, lightness: torch.Tensor) -> torch.Tensor:
        x, skips = self.norm(lightness), []
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        if self.context is not None:  # what the whole photo looks like, as one bias per channel
            x = x + self.context(x)[:, :, None, None]
        x = self.middle(x)
        for layer, skipped in zip(self.up, reversed(skips)):
            x = layer(torch.cat([x, skipped], 1) if self.skip else x)
        return x


class ColorizerEnsemble(nn.Module, PyTorchModelHubMixin, **HUB_KWARGS):
    """Colorizers trained alike on the same people with different seeds (`init_seed`): predicts the mean of their
    a*b*. Averaging cuts what is seed noise in each member's guess of a photo's tint, never the bias they share.

    Made from trained folders by `build_ensemble`; `load` tells it from a `Colorizer` by its config.json.
    """

    def __init__(self, members: list[dict]):  # each member's Colorizer config: width, skip, size, context
        super().__init__()
        if not members:
            raise ValueError("An ensemble needs at least one member.")
        self.members = nn.ModuleList([Colorizer(**config) for config in members])
        sizes = {member.size for member in self.members}
        if len(sizes) > 1:
            raise ValueError(f"An ensemble's members must share one input size; got {sorted(sizes)}.")
        self.size = sizes.pop()

    def forward(self, lightness: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(lightness) for member in self.members]).mean(0)


Model = Colorizer | ColorizerEnsemble  # what `load` returns; every scoring and serving function takes either


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def mae(predicted_ab: torch.Tensor, true_ab: torch.Tensor) -> torch.Tensor:
    """Mean absolute error per image over normalised a*b*: (B, 2, H, W) pairs → (B,)."""
    return (predicted_ab - true_ab).abs().flatten(1).mean(1)


@torch.inference_mode()
def colorize_batch(model: Model, rgb: torch.Tensor, batch_size: int = 50) -> torch.Tensor:
    """Predicted normalised a*b* (N, 2, S, S) for RGB (N, 3, S, S) at the model size, in eval mode."""
    device = next(model.parameters()).device
    with training.evaluating(model):
        return torch.cat([model(rgb_to_lab(rgb[i:i + batch_size].to(device))[:, :1]).float().cpu()
                          for i in range(0, len(rgb), batch_size)])


def match_cast(predicted_ab: torch.Tensor, true_ab: torch.Tensor) -> torch.Tensor:
    """The prediction with each image's mean a*b* moved onto the true mean: an oracle for the photo's overall tint
    (skin tone, white balance, the colour of the light), which its lightness barely tells. Diagnostic only."""
    return predicted_ab - predicted_ab.mean((2, 3), keepdim=True) + true_ab.mean((2, 3), keepdim=True)


def score(model: Model, rgb: torch.Tensor, mean_ab: torch.Tensor | None = None) -> dict:
    """Per-image MAE of the model (and of predicting `mean_ab` everywhere, the trivial baseline) on RGB photos, and
    the MAE left once each photo's overall colour is given (`match_cast`); each photo's true and predicted mean a*b*."""
    if rgb.shape[-1] != model.size:
        rgb = F.interpolate(rgb, size=(model.size, model.size), mode="bilinear", antialias=True, align_corners=False)
    true_ab = rgb_to_lab(rgb)[:, 1:]
    predicted_ab = colorize_batch(model, rgb)
    errors = mae(predicted_ab, true_ab)
    result = {"mae": float(errors.mean()), "per_image": errors,
              "cast_matched_mae": float(mae(match_cast(predicted_ab, true_ab), true_ab).mean()),
              "tint": true_ab.mean((2, 3)), "predicted_tint": predicted_ab.mean((2, 3))}  # (N, 2) each
    if mean_ab is not None:
        result["baseline_mae"] = float(mae(mean_ab.view(1, 2, 1, 1).expand_as(true_ab), true_ab).mean())
    return result


def by_group(per_image: torch.Tensor, groups: list[str]) -> dict[str, torch.Tensor]:
    """Mean of per-image values (N, ...) per group (`groups`: each image's person), in first-seen order."""
    if len(per_image) != len(groups):
        raise ValueError(f"{len(per_image)} values for {len(groups)} group names.")
    rows: dict[str, list[int]] = {}
    for index, group in enumerate(groups):
        rows.setdefault(group, []).append(index)
    return {group: per_image[indices].mean(0) for group, indices in rows.items()}


def score_people(model: Model, rgb: torch.Tensor, groups: list[str], mean_ab: torch.Tensor) -> dict:
    """`score` on the photos of several people (`groups`: each photo's person), plus the MAE of each person and a 95%
    bootstrap interval over people: with a handful of test people, which ones were drawn moves the MAE more than
    anything about the photos."""
    result = score(model, rgb, mean_ab)
    result["per_person"] = {person: float(value) for person, value in by_group(result["per_image"], groups).items()}
    result["interval"] = metrics.bootstrap_interval(np.array(list(result["per_person"].values())))
    return result


@torch.inference_mode()
def score_mean_color(mean_color: MeanColor, rgb: torch.Tensor, mean_ab: torch.Tensor) -> dict[str, float]:
    """MSE of the mean-colour regressor on each photo's mean a*b*, beside a constant guess (the training mean):
    whether lightness tells a photo's overall colour at all."""
    lab = rgb_to_lab(rgb)
    true_mean = lab[:, 1:].mean((2, 3))
    with training.evaluating(mean_color):
        predicted = mean_color(lab[:, :1])
    return {"mse": float(F.mse_loss(predicted, true_mean)),
            "baseline_mse": float(F.mse_loss(mean_ab.expand_as(true_mean), true_mean))}


# ---------------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------------


class _Pair(nn.Module):
    """Colorizer and mean-colour regressor as one module: one optimizer, one checkpoint, one `prepare`."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.colorizer = Colorizer(width=cfg.width, skip=cfg.skip, size=cfg.size, context=cfg.context)
        self.mean_color = MeanColor(size=cfg.size)

    def forward(self, lightness: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.colorizer(lightness), self.mean_color(lightness)


def train(cfg: Config, accelerator: Accelerator | None = None) -> Colorizer:
    """Train the colorizer (MAE) and the mean-colour regressor (MSE) on the training people; keep the colorizer with
    the lowest validation MAE; write `cfg.output_dir` (weights, data.json, report, card).

    Returns:
        The best colorizer, on CPU in eval mode.
    """
    # 1. set-up and data, split by person
    if cfg.size % 8:
        raise ValueError(f"size must be a multiple of 8; got {cfg.size}.")
    training.require_sweep(cfg.sweep_results)
    accelerator = accelerator or Accelerator(mixed_precision=cfg.mixed_precision)
    output_dir = Path(cfg.output_dir)
    set_seed(cfg.run_seed)
    data = load_split_photos(cfg)
    split, photos = data.split, data.rgb
    train_x, val_x = photos["train"], photos["val"] if len(photos["val"]) else photos["train"]
    if cfg.refit:
        train_x = torch.cat([train_x, photos["val"]])
    mean_ab = rgb_to_lab(train_x)[:, 1:].mean((0, 2, 3))  # the training people's mean colour: the trivial baseline
    if cfg.extra_train:  # never validated or tested on, and not part of the baseline's mean colour
        extra = load_photos(folder_photos(cfg.extra_train), cfg.size)
        train_x = torch.cat([train_x, extra])
        logger.info("colorize: %d extra training photos from %s", len(extra), cfg.extra_train)

    # 2. models (one module), Adam, warmup then constant or cosine
    pair = _Pair(cfg)
    optimizer = torch.optim.Adam(pair.parameters(), lr=cfg.learning_rate)
    steps_per_epoch = -(-len(train_x) * cfg.repeats // cfg.train_batch_size)
    scheduler, total_steps = training.lr_schedule(optimizer, cfg, steps_per_epoch, decay=cfg.lr_decay)

    # 3. resume
    state = {"global_step": 0, "epoch": 0, "step_in_epoch": 0, "best_val_mae": float("inf"), "best_epoch": -1,
             "history": {"step": [], "loss": [], "lr": [], "val_step": [], "val_loss": []}}
    best_path = output_dir / training.CHECKPOINTS / "best.safetensors"
    checkpoint = training.find_checkpoint(output_dir, cfg.resume_from_checkpoint)
    if checkpoint is not None:
        state = training.load_checkpoint(checkpoint, pair, optimizer, scheduler)
        state.setdefault("resumed", []).append({"from": checkpoint.name})
        logger.info("Resumed from %s at step %d (epoch %d).", checkpoint, state["global_step"], state["epoch"])
    else:
        best_path.unlink(missing_ok=True)
    pair, optimizer = accelerator.prepare(pair, optimizer)
    logger.info(
        "***** colorize: training *****\n  people train/val/test = %d / %d / %d, photos = %d / %d / %d\n  colorizer "
        "width %d%s, %d parameters\n  epochs = %d × %d augmented views, steps = %d, batch = %d, lr = %g, device = %s",
        *(len(split[part]) for part in ("train", "val", "test")), *(len(photos[part]) for part in ("train", "val", "test")),
        cfg.width, " + skips" if cfg.skip else "", count_parameters(accelerator.unwrap_model(pair).colorizer),
        cfg.num_epochs, cfg.repeats, total_steps, cfg.train_batch_size, cfg.learning_rate, accelerator.device,
    )
    progress = tqdm(total=total_steps, initial=state["global_step"], disable=not accelerator.is_local_main_process,
                    desc="colorize")

    def save() -> None:
        if accelerator.is_main_process:
            training.save_checkpoint(output_dir, state["global_step"], accelerator.unwrap_model(pair), optimizer,
                                     scheduler, state, cfg.checkpoints_total_limit)

    # 4. the loop: `repeats` shuffled passes per epoch, augmentation keyed by step (exact resume)
    while state["epoch"] < cfg.num_epochs and state["global_step"] < total_steps:
        pair.train()
        epoch_order = torch.randperm(len(train_x) * cfg.repeats,
                                     generator=torch.Generator().manual_seed(cfg.run_seed * 1000 + state["epoch"]))
        for indices in (epoch_order % len(train_x)).split(cfg.train_batch_size)[state["step_in_epoch"]:]:
            if state["global_step"] >= total_steps:
                break
            indices = indices[accelerator.process_index::accelerator.num_processes]
            rgb = train_x[indices]
            if cfg.augment:
                rgb = augment(rgb, torch.Generator().manual_seed(cfg.run_seed * 1_000_003 + state["global_step"]),
                              colour=cfg.colour_jitter)
            lab = rgb_to_lab(rgb.to(accelerator.device))
            lightness, true_ab = lab[:, :1], lab[:, 1:]
            with accelerator.accumulate(pair), accelerator.autocast():
                predicted_ab, predicted_mean = pair(lightness)
                loss = F.l1_loss(predicted_ab.float(), true_ab)  # the colorizer's MAE
                mean_loss = F.mse_loss(predicted_mean.float(), true_ab.mean((2, 3)))  # the regressor's MSE
                accelerator.backward(loss + mean_loss)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            training.record_step(state, progress, loss.item(), scheduler.get_last_lr()[0])
            if state["global_step"] % cfg.checkpointing_steps == 0:
                save()
        else:  # 5. a full epoch: validation MAE (on held-out people unless refit), keep the best colorizer
            val_mae = score(accelerator.unwrap_model(pair).colorizer, val_x)["mae"]
            logger.info("epoch %d: val MAE %.4f", state["epoch"], val_mae)
            training.end_epoch(state, metric="val_mae", value=val_mae, val_loss=val_mae,  # refit: keep the last
                               improved=cfg.refit or val_mae < state["best_val_mae"],
                               model=accelerator.unwrap_model(pair), best_path=best_path)
            save()
    progress.close()

    # 6. best weights, report on the test people and the transfer photos, output folder
    pair = training.best_model(accelerator.unwrap_model(pair), best_path)
    if accelerator.is_main_process:
        write_output(pair.colorizer, pair.mean_color, cfg, state, data, mean_ab)
    accelerator.wait_for_everyone()
    return pair.colorizer


def write_output(colorizer: Model, mean_color: MeanColor, cfg: Config, state: dict, data: SplitPhotos,
                 mean_ab: torch.Tensor, members: list[dict] | None = None) -> None:
    """Weights (colorizer at the top, mean-colour regressor in mean_color/), data.json, report, metrics, card; the
    training curves from `state["history"]` when there is one. `members`: an ensemble's (see `build_ensemble`)."""
    output_dir = Path(cfg.output_dir)
    colorizer.save_pretrained(output_dir)
    mean_color.save_pretrained(output_dir / "mean_color")
    (output_dir / DATA_FILE).write_text(json.dumps({"data": cfg.data, "seed": cfg.seed, "split": data.split,
                                                      "trained_on": ["train", "val"] if cfg.refit else ["train"],
                                                      "extra_train": cfg.extra_train,
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
    if state.get("history"):
        val_label = "validation people (per epoch)" + (", trained on: refit" if cfg.refit else "")
        training.plot_training_curves(state["history"], output_dir / "training_curves.png", "colorize: a*b* MAE",
                                      val_label)
    sweep = training.copy_sweep(cfg.sweep_results, output_dir)
    summary = {
        "test_mae": faces["mae"], "test_baseline_mae": faces["baseline_mae"], "test_photos": len(test_x),
        "test_mae_interval95": faces["interval"], "test_mae_by_person": faces["per_person"],
        "test_cast_matched_mae": faces["cast_matched_mae"], "mae_by_split": by_split,
        "scenes_mae": scenes["mae"] if scenes else None, "scenes_baseline_mae": scenes["baseline_mae"] if scenes else None,
        "scenes_photos": len(scene_x) if scenes else 0, "mean_color_test_mse": mean_color_scores["mse"],
        "mean_color_test_baseline_mse": mean_color_scores["baseline_mse"],
        "best_test_photos": ranked[:3], "worst_test_photos": ranked[::-1][:3],
        "best_val_mae": state["best_val_mae"], "best_epoch": state["best_epoch"], "epochs_trained": state["epoch"],
        "steps": state["global_step"], "parameters": count_parameters(colorizer),
        "latency_ms_1024x768": time_predict(colorizer), "split": data.split, "resumed": state.get("resumed", []),
        "members": members or [], "config": asdict(cfg),
    }
    (output_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
    training.write_model_card(output_dir, title="Darkroom Colorize: L*a*b* colorization trained on faces",
                              body=_model_card(summary, cfg, sweep), metadata={
                                  "license": "mit", "library_name": "darkroom", "pipeline_tag": "image-to-image",
                                  "tags": ["image-to-image", "colorization", "darkroom"]})


def time_predict(model: Model, size: tuple[int, int] = (1024, 768), repeats: int = 5) -> float:
    """Median milliseconds of `predict` on a size (width, height) photo (threads as set by the caller)."""
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    predict(model, photo)
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict(model, photo)
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
    augmentation = (f" (zoom/crop, shifts, RGB scaling by ±{cfg.colour_jitter:.0%} per channel)" if cfg.augment
                    else "")
    parts = {"train": "training people (photos as taken, no augmentation)",
             "val": "validation people" + (" (trained on: refit)" if cfg.refit else ""), "test": "test people"}
    members = summary.get("members") or []
    refit = ("trained on the training and validation people together (`refit`, the recipe chosen beforehand on the"
             " validation people); " if cfg.refit else "")
    if members:
        kept = refit + ("each member's last epoch is kept" if cfg.refit else "each member keeps its epoch with the lowest"
                        " validation MAE") + f"; the ensemble's validation MAE: {summary['best_val_mae']:.4f}" + (
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
                        f" (epoch {summary['best_epoch']}, {summary['best_val_mae']:.4f})")
        model_line, ensemble = f"a {summary['parameters']:,}-parameter\n{architecture} of width {cfg.width}", ""
    by_split = summary["mae_by_split"]
    people = ", ".join(f"{name} {value:.4f}" for name, value in summary["test_mae_by_person"].items())
    low, high = summary["test_mae_interval95"]
    extra = (f"\n- Also trained on every photo in `{cfg.extra_train}` (`extra_train`: never validated or tested on;"
             " not part of the baseline's mean colour)." if cfg.extra_train else "")
    return f"""
Predicts the a*b* colour channels of a photo from its lightness L (CIELAB): {model_line}, trained on face photos at
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
how far the learned palette transfers (the original project saw the same: brown fruit). Mean-colour regressor:
test MSE {summary['mean_color_test_mse']:.6f} on each photo's mean a*b*, against {summary['mean_color_test_baseline_mse']:.6f} for the
training mean as a constant guess. {examples}

## Where the error is

| | {' | '.join(parts[part] for part in by_split)} |
|---|{'---|' * len(by_split)}
| MAE | {' | '.join(f"{value:.4f}" for value in by_split.values())} |

MAE of each test person: {people}. With so few test people, which ones were drawn matters: a 95% bootstrap interval
over them is [{low:.4f}, {high:.4f}]. Given each test photo's true overall colour (its mean a*b*, an oracle nothing
has at use), the MAE would be {summary['test_cast_matched_mae']:.4f}: the difference is the photo's overall tint (skin
tone, white balance, the colour of the light), which its lightness barely tells.

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


# ---------------------------------------------------------------------------------------------------------------------
# Serving
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class Colorized:
    """What `predict` returns, all at the upload's full size."""

    image: Image.Image  # the colorized photo
    gray: Image.Image  # its lightness alone (what the model was given)
    mae: float | None = None  # vs the upload's own colours, when it had any
    was_color: bool = False


def load(source: str | None = None) -> Model:
    """The colorizer (or an ensemble of them, as its config.json says): `source` > $DARKROOM_COLORIZE_MODEL > bundled;
    CPU, eval mode, with `.weights`, `.data` (the split and training mean a*b*, from data.json) and `.metrics`
    (metrics.json); {} when absent."""
    weights = hub.resolve(TASK, source)
    config_file = Path(weights.path) / "config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    kind = ColorizerEnsemble if "members" in config else Colorizer
    model = kind.from_pretrained(weights.path, map_location="cpu", strict=True).eval()
    model.weights = weights
    data_file = Path(weights.path) / DATA_FILE
    model.data = json.loads(data_file.read_text()) if data_file.is_file() else {}
    metrics_file = Path(weights.path) / "metrics.json"
    model.metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    return model


@torch.inference_mode()
def predict(model: Model, image: Image.Image | str, saturation: float = 1.0) -> Colorized:
    """Colorize one photo of any size, colour or gray.

    The model sees the photo's L resized to its training size; its a*b* is upsampled (bilinear) to the full size and
    joined with the full-resolution L, then scaled around neutral by `saturation` (0 = gray, 1 = as predicted).
    """
    if not 0.0 <= saturation <= 3.0:
        raise ValueError(f"Saturation must be between 0 and 3; got {saturation:g}.")
    rgb = image.convert("RGB") if isinstance(image, Image.Image) else load_rgb(image)
    lab = rgb_to_lab(to_tensor([rgb]))  # (1, 3, H, W)
    lightness = lab[:, :1]
    small = F.interpolate(lightness, size=(model.size, model.size), mode="bilinear", antialias=True, align_corners=False)
    ab = F.interpolate(model(small), size=lightness.shape[-2:], mode="bilinear", align_corners=False)
    neutral = NEUTRAL_AB.view(1, 2, 1, 1)
    ab = neutral + saturation * (ab - neutral)
    colorized = lab_to_rgb(torch.cat([lightness, ab], 1))[0]
    gray = gray_from_lightness(lightness)[0]
    true_ab = lab[:, 1:]
    was_color = bool((true_ab - neutral).abs().amax() > 0.01)  # more than ~2 a*/b* units anywhere
    error = float(mae(ab, true_ab)[0]) if was_color else None
    return Colorized(image=to_image(colorized), gray=to_image(gray), mae=error, was_color=was_color)


def evaluate(model: Model, data: str = DEFAULT_DATA) -> dict:
    """MAE at the model size on the test people of `data` when it is the model's training folder, else on every photo
    in `data` (one group per sub-folder, or per photo).

    Returns:
        mae, baseline_mae (the training mean a*b* everywhere), cast_matched_mae (see `match_cast`), n (photos),
        test_people, interval (95% bootstrap of the MAE over people, or photos), mean_color_mse and
        mean_color_baseline_mse (see `score_mean_color`; when the weights have mean_color/); on its training folder also
        by_split (MAE of each part of its split, the training people's own photos included), trained_on (the parts
        it was trained on: "val" too after a refit) and people (each person's part, MAE, and mean a*, b* in CIELAB
        units: true and predicted).
    """
    groups = photo_groups(data)
    split = {part: [name for name in names if name in groups] for part, names in model.data.get("split", {}).items()}
    units = split.get("test") or list(groups)
    mean_ab = torch.tensor(model.data["train_mean_ab"]) if "train_mean_ab" in model.data else NEUTRAL_AB

    def run(names: list[str]) -> tuple[torch.Tensor, dict]:
        photos = load_photos([p for name in names for p in groups[name]], model.size)
        return photos, score_people(model, photos, [name for name in names for _ in groups[name]], mean_ab)

    photos, result = run(units)
    report = {"mae": result["mae"], "baseline_mae": result["baseline_mae"], "cast_matched_mae": result["cast_matched_mae"],
              "n": float(len(result["per_image"])), "test_people": float(len(split.get("test", []))),
              "interval": result["interval"]}
    mean_color_folder = Path(model.weights.path) / "mean_color" if hasattr(model, "weights") else None
    if mean_color_folder is not None and mean_color_folder.is_dir():
        mean_color = MeanColor.from_pretrained(mean_color_folder, map_location="cpu", strict=True)
        report.update({f"mean_color_{key}": value for key, value in score_mean_color(mean_color, photos, mean_ab).items()})
    if split.get("test"):
        report["by_split"], report["people"] = {}, {}
        report["trained_on"] = model.data.get("trained_on", ["train"])
        for part, names in split.items():
            part_result = result if part == "test" else run(names)[1]
            report["by_split"][part] = part_result["mae"]
            owners = [name for name in names for _ in groups[name]]
            tint, predicted = (by_group(ab_units(part_result[key]), owners) for key in ("tint", "predicted_tint"))
            for name in names:
                report["people"][name] = {"part": part, "mae": part_result["per_person"][name],
                                          "ab": [round(v, 2) for v in tint[name].tolist()],
                                          "predicted_ab": [round(v, 2) for v in predicted[name].tolist()]}
    return report


# ---------------------------------------------------------------------------------------------------------------------
# Ensembles: colorizers trained alike on one split, as one model
# ---------------------------------------------------------------------------------------------------------------------

# the data.json entries an ensemble's members must share, each with its value in folders written before it existed
MEMBER_KEYS = {"data": None, "seed": None, "split": None, "trained_on": ["train"], "extra_train": "", "train_mean_ab": None}


def build_ensemble(member_dirs: list[str], output_dir: str) -> ColorizerEnsemble:
    """Colorizers trained on the same split with different `init_seed`s, as one model in `output_dir`: shaped like a
    trained folder and scored the same way by `write_output` (the mean-colour regressor is the first member's, and so
    is the config in the card, `init_seed` aside); training_curves.png stacks the members' own.

    Raises:
        ValueError: fewer than two members, one that is itself an ensemble or has no metrics.json, members trained on
            different people or photos (data.json), or two with the same seed (the same model twice).
    """
    if len(member_dirs) < 2:
        raise ValueError("An ensemble needs two or more trained colorizer folders.")
    if any(Path(folder).resolve() == Path(output_dir).resolve() for folder in member_dirs):
        raise ValueError(f"{output_dir} is one of the members: write the ensemble to a folder of its own.")
    members = [load(folder) for folder in member_dirs]
    for folder, model in zip(member_dirs, members):
        if isinstance(model, ColorizerEnsemble) or "config" not in model.metrics:
            raise ValueError(f"{folder} is not a trained colorizer folder (an ensemble, or no metrics.json).")
        differs = [key for key, before in MEMBER_KEYS.items()
                   if model.data.get(key, before) != members[0].data.get(key, before)]
        if differs:
            raise ValueError(f"{folder} was trained on other people or photos than {member_dirs[0]} (data.json: "
                             f"{', '.join(differs)}); an ensemble's members must share them.")
    configs = [Config(**{key: value for key, value in model.metrics["config"].items()
                         if key in Config.__dataclass_fields__}) for model in members]
    seeds = [config.run_seed for config in configs]
    if len(set(seeds)) < len(seeds):
        raise ValueError(f"Two members were trained with the same seed ({seeds}): they are the same model.")

    ensemble = ColorizerEnsemble([json.loads((Path(model.weights.path) / "config.json").read_text())
                                  for model in members])
    for part, model in zip(ensemble.members, members):
        part.load_state_dict(model.state_dict())
    ensemble.eval()
    first = Path(members[0].weights.path)
    cfg = replace(configs[0], output_dir=output_dir, init_seed=-1,
                  sweep_results=str(first) if (first / "sweep.md").is_file() else "")

    data = load_split_photos(cfg)
    val_x = data.rgb["val"] if len(data.rgb["val"]) else data.rgb["train"]
    test_x = data.rgb["test"] if len(data.rgb["test"]) else data.rgb["val"]
    report = [{"folder": str(folder), "init_seed": seed, "val_mae": score(model, val_x)["mae"],
               "test_mae": score(model, test_x)["mae"]} for folder, seed, model in zip(member_dirs, seeds, members)]
    state = {"best_val_mae": score(ensemble, val_x)["mae"], "best_epoch": members[0].metrics.get("best_epoch", -1),
             "epoch": members[0].metrics.get("epochs_trained", 0),
             "global_step": sum(model.metrics.get("steps", 0) for model in members), "history": None}
    mean_color = MeanColor.from_pretrained(first / "mean_color", map_location="cpu", strict=True)
    write_output(ensemble, mean_color, cfg, state, data, torch.tensor(members[0].data["train_mean_ab"]), report)
    curves = [(Path(folder) / "training_curves.png", f"member trained with seed {seed}: {folder}")
              for folder, seed in zip(member_dirs, seeds)]
    _stack_pictures([(path, label) for path, label in curves if path.is_file()],
                    Path(output_dir) / "training_curves.png")
    return ensemble


def _stack_pictures(pictures: list[tuple[Path, str]], path: Path) -> None:
    """PNG files one above the other, each under a line of text naming it."""
    images = [(Image.open(file).convert("RGB"), label) for file, label in pictures]
    if not images:
        return
    band, font = 26, ImageFont.load_default(size=15)
    sheet = Image.new("RGB", (max(image.width for image, _ in images), sum(image.height + band for image, _ in images)),
                      "white")
    draw, top = ImageDraw.Draw(sheet), 0
    for image, label in images:
        draw.text((8, top + 5), label, fill="black", font=font)
        sheet.paste(image, (0, top + band))
        top += band + image.height
    sheet.save(path)


def main(argv: list[str] | None = None) -> None:
    """`python -m tasks.colorize ensemble OUTPUT_DIR MEMBER_DIR MEMBER_DIR ...`: see `build_ensemble`."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tasks.colorize")
    commands = parser.add_subparsers(dest="command", required=True)
    ensemble_parser = commands.add_parser("ensemble", help="average colorizers trained on one split with other seeds")
    ensemble_parser.add_argument("output_dir")
    ensemble_parser.add_argument("members", nargs="+", help="trained colorizer folders (train.py --init_seed N)")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    try:
        build_ensemble(args.members, args.output_dir)
    except (ValueError, FileNotFoundError) as error:  # bad member folders: say which and why, no traceback
        raise SystemExit(f"python -m tasks.colorize ensemble: {error}") from error
    print(Path(args.output_dir).resolve())


if __name__ == "__main__":
    main()
