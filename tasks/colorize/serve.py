"""Serving: `load` (a colorizer or an ensemble, as its config.json says), `predict` on any photo at its full
resolution, and `evaluate` (what `python -m bench colorize` reports)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from tasks import hub
from tasks.colorize.data import DATA_FILE, DEFAULT_DATA, load_photos, photo_groups
from tasks.colorize.lab import (NEUTRAL_AB, ab_units, gray_from_lightness, has_color, lab_to_rgb, rgb_to_lab, to_tensor,
                                to_uint8)
from tasks.colorize.models import Colorizer, ColorizerEnsemble, MeanColor, Model, PhotoColorizer
from tasks.colorize.scoring import by_group, mae, score_mean_color, score_people
from tasks.images import load_rgb

TASK = "colorize"


@dataclass
class Colorized:
    """What `predict` returns, all at the upload's full size."""

    image: Image.Image  # the colorized photo
    gray: Image.Image  # its lightness alone, mode L (what the model was given)
    mae: float | None = None  # vs the upload's own colors, when it had any
    was_color: bool = False


NoSuchModel = hub.NoSuchModel  # a one-model folder asked for "faces": nothing is broken


MODELS = {"photos": "", "faces": "faces"}  # each model the tab offers → its sub-folder of a Colorize model folder
DEFAULT_MODEL = "photos"


def load(source: str | None = None, model: str = DEFAULT_MODEL) -> hub.Served[Model]:
    """A colorizer (an ensemble of them, or the general-photo U-Net, as its config.json says); CPU, eval mode.

    The folder is `source` > $DARKROOM_COLORIZE_MODEL > bundled (`hub.resolve`). It holds the general-photo model
    ("photos") at its top and the faces model of the original experiment ("faces") in its faces/ sub-folder, as
    assets/models/colorize/ does; a folder of one trained model (training/train.py's output) is that model, "photos"
    whatever it was trained on. From data.json: the split by person, and as facts the rest (the training people's
    mean a*b* "train_mean_ab", the parts it "trained_on", its "data", "seed", "extra_train").

    Raises:
        ValueError: a model other than MODELS'.
        FileNotFoundError: an explicit `source` that is neither a folder nor a Hub id (see `hub.resolve`);
            NoSuchModel (one) for a folder without the sub-folder `model` names.
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}; got {model!r}.")
    weights = hub.resolve(TASK, source)
    if MODELS[model]:
        inside = weights.path / MODELS[model]
        if not (inside / "config.json").is_file():
            raise NoSuchModel(f"{weights.name} has no {model} model (no {MODELS[model]}/config.json in it): choose "
                              f"{DEFAULT_MODEL}.")
        weights = hub.Weights(path=inside, origin=weights.origin, name=f"{weights.name}/{MODELS[model]}")
    config = hub.read_json(weights.path, "config.json")
    kind = ColorizerEnsemble if "members" in config else PhotoColorizer if "depth" in config else Colorizer
    net = kind.from_pretrained(weights.path, map_location="cpu", strict=True).eval()
    facts = hub.read_json(weights.path, DATA_FILE)
    split = facts.pop("split", {})
    return hub.Served(model=net, weights=weights, metrics=hub.read_json(weights.path, "metrics.json"), split=split,
                      facts=facts)


BAND_PIXELS = 1 << 20  # pixels converted at once: about 60 MB of float tensors, whatever the photo's size


def predict(served: hub.Served[Model], image: Image.Image | str, saturation: float = 1.0) -> Colorized:
    """Colorize one photo of any size, color or gray.

    The model sees the photo's L resized to its training size; its a*b* is upsampled (bilinear) to the full size and
    joined with the full-resolution L, then scaled around neutral by `saturation` (0 = gray, 1 = as predicted). The
    full-resolution work runs in tiles of BAND_PIXELS (bands of rows, cut across as well in a photo wider than a band),
    so beyond the two output images (4 bytes a pixel together) and the float L (4 more) it holds a bounded working
    set at any size (the server's memory per request, with the upload and PNG encoding: README, `python -m bench
    memory`).

    Args:
        served: what `load` or `train` returned.
        image: a PIL image or anything `images.load_rgb` accepts.
        saturation: 0..3.

    Returns:
        Colorized at the photo's size; `was_color` by `has_color` (sensor or JPEG noise in a gray photo is not color),
        and then `mae` against the photo's own a*b* at full resolution.

    Raises:
        ValueError: saturation outside 0..3, or an image `load_rgb` refuses.
    """
    return colorize_photo(served.model, image, saturation)


@torch.inference_mode()
def colorize_photo(model: Model, image: Image.Image | str, saturation: float = 1.0) -> Colorized:
    """`predict` with the bare model (e.g. while it is being trained, before its folder exists)."""
    if not 0.0 <= saturation <= 3.0:
        raise ValueError(f"Saturation must be between 0 and 3; got {saturation:g}.")
    rgb = load_rgb(image)
    width, height = rgb.size
    rows, cols = max(1, BAND_PIXELS // width), min(width, BAND_PIXELS)  # a photo wider than a band is cut across too
    tiles = [(left, top, min(left + cols, width), min(top + rows, height))
             for top in range(0, height, rows) for left in range(0, width, cols)]

    def tile_lab(tile: tuple[int, int, int, int]) -> torch.Tensor:  # (1, 3, rows, cols)
        return rgb_to_lab(to_tensor([rgb.crop(tile)]))

    # 1. the photo's own L at full resolution, tile by tile (the first tile's LAB is kept for the error in step 3:
    #    a photo of one tile, most uploads, is converted once)
    first = tile_lab(tiles[0])
    lightness = torch.empty(1, 1, height, width)
    for index, (left, top, right, bottom) in enumerate(tiles):
        lightness[..., top:bottom, left:right] = (first if index == 0 else tile_lab(tiles[index]))[:, :1]
    # 2. a*b* at the model size from L at the model size; saturation scales around neutral (bilinear upsampling
    #    commutes with it: its weights sum to 1)
    small = F.interpolate(lightness, size=(model.size, model.size), mode="bilinear", antialias=True, align_corners=False)
    neutral = NEUTRAL_AB.view(2, 1, 1)
    ab_small = neutral + saturation * (model(small)[0] - neutral)  # (2, S, S)
    # 3. each tile: a*b* sampled bilinearly at its pixels' centres (grid_sample with border padding: what one
    #    F.interpolate of the whole photo gives, align_corners=False), joined with its L; the error against the photo's
    #    own a*b*
    was_color = has_color(rgb)
    colorized = np.empty((height, width, 3), np.uint8)
    gray = np.empty((height, width), np.uint8)
    error = 0.0
    for index, (left, top, right, bottom) in enumerate(tiles):
        xs = (torch.arange(left, right) + 0.5) * (2 / width) - 1  # pixel centres, normalised to [-1, 1]
        ys = (torch.arange(top, bottom) + 0.5) * (2 / height) - 1
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)[None]  # (1, rows, cols, 2) as (x, y)
        ab = F.grid_sample(ab_small[None], grid, mode="bilinear", padding_mode="border", align_corners=False)
        tile_l = lightness[..., top:bottom, left:right]
        colorized[top:bottom, left:right] = to_uint8(lab_to_rgb(torch.cat([tile_l, ab], 1))[0])
        gray[top:bottom, left:right] = to_uint8(gray_from_lightness(tile_l)[0, :1])[..., 0]
        if was_color:
            true_ab = (first if index == 0 else tile_lab(tiles[index]))[:, 1:]
            error += float(mae(ab, true_ab)[0]) * (bottom - top) * (right - left)
    return Colorized(image=Image.fromarray(colorized), gray=Image.fromarray(gray),
                     mae=error / (width * height) if was_color else None, was_color=was_color)


def evaluate(served: hub.Served[Model], data: str = DEFAULT_DATA) -> dict:
    """MAE at the model size on the test people of `data` when it is the model's training folder, else on every photo
    in `data` (one group per sub-folder, or per photo).

    Returns:
        mae, baseline_mae (the training mean a*b* everywhere), cast_matched_mae (see `match_cast`), neutral_mae (gray
        everywhere), colorfulness and true_colorfulness (`colorfulness`: the colorized photos', the photos'), n (photos),
        test_people, interval (95% bootstrap of the MAE over people, or photos), mean_color_mse and
        mean_color_baseline_mse (see `score_mean_color`; when the weights have mean_color/); on its training folder also
        by_split (MAE of each part of its split, the training people's own photos included), trained_on (the parts
        it was trained on: "val" too after a refit) and people (each person's part, MAE, and mean a*, b* in CIELAB
        units: true and predicted).
    """
    model, facts = served.model, served.facts
    groups = photo_groups(data)
    split = {part: [name for name in names if name in groups] for part, names in served.split.items()}
    units = split.get("test") or list(groups)
    mean_ab = torch.tensor(facts["train_mean_ab"]) if "train_mean_ab" in facts else NEUTRAL_AB

    def run(names: list[str]) -> tuple[torch.Tensor, dict]:
        photos = load_photos([p for name in names for p in groups[name]], model.size)
        return photos, score_people(model, photos, [name for name in names for _ in groups[name]], mean_ab)

    photos, result = run(units)
    report = {"mae": result["mae"], "baseline_mae": result["baseline_mae"], "cast_matched_mae": result["cast_matched_mae"],
              "neutral_mae": result["neutral_mae"], "colorfulness": result["colorfulness"],
              "true_colorfulness": result["true_colorfulness"],
              "n": float(len(result["per_image"])), "test_people": float(len(split.get("test", []))),
              "interval": result["interval"]}
    mean_color_folder = served.folder / "mean_color"
    if mean_color_folder.is_dir():
        mean_color = MeanColor.from_pretrained(mean_color_folder, map_location="cpu", strict=True)
        report.update({f"mean_color_{key}": value for key, value in score_mean_color(mean_color, photos, mean_ab).items()})
    if split.get("test"):
        report["by_split"], report["people"] = {}, {}
        report["trained_on"] = facts.get("trained_on", ["train"])
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
