"""Ensembles: colorizers trained alike on one split with different seeds, written as one model folder
(`python -m tasks.colorize ensemble OUT A B ...`)."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

from tasks.colorize.data import load_split_photos
from tasks.colorize.fit import Config, write_output
from tasks.colorize.models import ColorizerEnsemble, MeanColor, PhotoColorizer
from tasks.colorize.scoring import score
from tasks.colorize.serve import load
from tasks.hub import Served
from tasks.training import LoopState

RENAMED_FIELDS = {"colour_jitter": "color_jitter"}  # Config fields by their names in folders trained before a rename
# the data.json entries an ensemble's members must share, each with its value in folders written before it existed
MEMBER_KEYS = {"data": None, "seed": None, "split": None, "trained_on": ["train"], "extra_train": "", "train_mean_ab": None}


def build_ensemble(member_dirs: list[str], output_dir: str) -> Served[ColorizerEnsemble]:
    """Colorizers trained on the same split with different `init_seed`s, as one model in `output_dir`: shaped like a
    trained folder and scored the same way by `write_output` (the mean-color regressor is the first member's, and so
    is the config in the card, `init_seed` aside); training_curves.png stacks the members' own.

    Raises:
        ValueError: fewer than two members, one that is itself an ensemble, a general-photo U-Net or has no
            metrics.json, members trained on
            different people or photos (data.json), or two with the same seed (the same model twice).
    """
    if len(member_dirs) < 2:
        raise ValueError("An ensemble needs two or more trained colorizer folders.")
    if any(Path(folder).resolve() == Path(output_dir).resolve() for folder in member_dirs):
        raise ValueError(f"{output_dir} is one of the members: write the ensemble to a folder of its own.")
    members = [load(folder) for folder in member_dirs]

    def recorded(served: Served, key: str):  # a data.json entry (the split is kept apart from the other facts)
        return (served.split or None) if key == "split" else served.facts.get(key, MEMBER_KEYS[key])

    for folder, served in zip(member_dirs, members):
        if isinstance(served.model, ColorizerEnsemble) or "config" not in served.metrics:
            raise ValueError(f"{folder} is not a trained colorizer folder (an ensemble, or no metrics.json).")
        if isinstance(served.model, PhotoColorizer):
            raise ValueError(f"{folder} is a general-photo U-Net (--arch unet): an ensemble averages faces colorizers.")
        differs = [key for key in MEMBER_KEYS if recorded(served, key) != recorded(members[0], key)]
        if differs:
            raise ValueError(f"{folder} was trained on other people or photos than {member_dirs[0]} (data.json: "
                             f"{', '.join(differs)}); an ensemble's members must share them.")
    configs = [Config(**{RENAMED_FIELDS.get(key, key): value for key, value in served.metrics["config"].items()
                         if RENAMED_FIELDS.get(key, key) in Config.__dataclass_fields__}) for served in members]
    seeds = [config.run_seed for config in configs]
    if len(set(seeds)) < len(seeds):
        raise ValueError(f"Two members were trained with the same seed ({seeds}): they are the same model.")

    ensemble = ColorizerEnsemble([json.loads((served.folder / "config.json").read_text()) for served in members])
    for part, served in zip(ensemble.members, members):
        part.load_state_dict(served.model.state_dict())
    ensemble.eval()
    first = members[0].folder
    cfg = replace(configs[0], output_dir=output_dir, init_seed=-1,
                  sweep_results=str(first) if (first / "sweep.md").is_file() else "")

    data = load_split_photos(cfg)
    val_x = data.rgb["val"] if len(data.rgb["val"]) else data.rgb["train"]
    test_x = data.rgb["test"] if len(data.rgb["test"]) else data.rgb["val"]
    report = [{"folder": str(folder), "init_seed": seed, "val_mae": score(served.model, val_x)["mae"],
               "test_mae": score(served.model, test_x)["mae"]}
              for folder, seed, served in zip(member_dirs, seeds, members)]
    state = LoopState(best_metric=score(ensemble, val_x)["mae"], best_epoch=members[0].metrics.get("best_epoch", -1),
                      epoch=members[0].metrics.get("epochs_trained", 0),
                      global_step=sum(served.metrics.get("steps", 0) for served in members), history={})
    mean_color = MeanColor.from_pretrained(first / "mean_color", map_location="cpu", strict=True)
    write_output(ensemble, mean_color, cfg, state, data, torch.tensor(members[0].facts["train_mean_ab"]), report)
    curves = [(Path(folder) / "training_curves.png", f"member trained with seed {seed}: {folder}")
              for folder, seed in zip(member_dirs, seeds)]
    _stack_pictures([(path, label) for path, label in curves if path.is_file()],
                    Path(output_dir) / "training_curves.png")
    return load(output_dir)


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
