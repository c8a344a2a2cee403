"""Photos grouped by person (sub-folders) and split by group, never by photo (a person's photos are near duplicates);
the original's four augmentations, drawn on the fly."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from PIL import Image

from tasks import training
from tasks.colorize.lab import has_color, to_tensor
from tasks.images import IMAGE_SUFFIXES, load_rgb

if TYPE_CHECKING:
    from tasks.colorize.fit import Config


SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"  # the development machine's data
DEFAULT_DATA = str(SHARED_DATA / "faces")
DEFAULT_TRANSFER = str(SHARED_DATA / "photos" / "bsds-test")
DATA_FILE = "data.json"  # the split and the training set's mean a*b*, saved beside the weights


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
class ExtraPhotos:
    """The color photos of `extra_train`'s folders at the training size, and what was left out."""

    rgb: torch.Tensor  # (N, 3, S, S) in [0, 1]
    photos: dict[str, int]  # photos kept per folder
    skipped_gray: dict[str, int]  # photos already grayscale (`has_color` false) per folder: nothing to learn from


def load_extra_photos(folders: str, size: int) -> ExtraPhotos:
    """Every color photo in a comma-separated list of folders (each read as `folder_photos` reads one), squashed to
    size × size like the training photos; grayscale ones (`has_color`) are skipped and counted, as a gray photo
    teaches a colorizer that everything is gray.

    Raises:
        FileNotFoundError: a folder that does not exist or holds no photos.
    """
    pictures, kept, skipped = [], {}, {}
    for folder in (part.strip() for part in folders.split(",") if part.strip()):
        kept[folder] = skipped[folder] = 0
        for path in folder_photos(folder):
            photo = load_rgb(path)
            if has_color(photo):
                pictures.append(square(photo, size))
                kept[folder] += 1
            else:
                skipped[folder] += 1
    rgb = to_tensor(pictures) if pictures else torch.empty(0, 3, size, size)
    return ExtraPhotos(rgb=rgb, photos=kept, skipped_gray=skipped)


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
            color: float = 0.15, flip: bool = False) -> torch.Tensor:
    """The original's four augmentations on a batch (B, 3, H, W) in [0, 1], one draw per image, and optionally a
    horizontal flip of half of them (`flip`; drawn after the others, so the same generator gives the same zoom, shift
    and scaling with or without it).

    Zoom (crop up to 1/(1+zoom) of the side), horizontal and vertical shift (up to ±shift of the side, reflected at
    the border), and RGB scaling (each channel × U(1 - color, 1 + color)): the last one teaches the colorizer
    that skin and light come in more than one tint; at ±15% it outweighs the real spread of skin tones (bench, README).
    """
    count = len(rgb)
    scale = 1.0 / (1.0 + zoom * torch.rand(count, generator=generator))
    offsets = shift * (2 * torch.rand(count, 2, generator=generator) - 1)
    gains = 1 + color * (2 * torch.rand(count, 3, 1, 1, generator=generator) - 1)
    theta = torch.zeros(count, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = scale, scale
    theta[:, :, 2] = offsets
    if flip:  # a mirrored x axis in the same sampling grid: one resampling for all of it
        theta[:, 0, 0] *= 1 - 2 * (torch.rand(count, generator=generator) < 0.5).float()
    grid = F.affine_grid(theta, list(rgb.shape), align_corners=False)
    moved = F.grid_sample(rgb, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return (moved * gains).clamp(0, 1)
