"""Quality on real data and latency on 2 threads, for the README's results tables.

    python -m bench classify --data /usr/share/datasets/fashion-mnist --json bench/results/classify.json
    python -m bench cards --json bench/results/cards.json  # fidelity (judge CNN), diversity, time per card
    python -m bench colorize --data ../shared/data/faces --json bench/results/colorize.json  # + --transfer scenes
    python -m bench mask --data ../shared/data/carvana --json bench/results/mask.json  # Dice at full resolution
    python -m bench upscale --data ../shared/data/photos/set5 --json bench/results/upscale.json  # ×2 PSNR-Y
    python -m bench cards-stain --json bench/results/cards-stain.json  # how often "stain this card" shows a stain
    python -m bench upscale-archs --card --json bench/results/upscale-archs.json  # every bundled net, Set5/14, BSDS
    python -m bench app --json bench/results/app.json      # cold start: process start → first answer over HTTP
    python -m bench memory --json bench/results/memory.json  # the server's extra memory per 40 MP request

Each run writes {"task", "data", "n", "weights", "quality", "latency_ms": {"p50", "p95"}, "threads"} and prints a
markdown row. Latency is `predict` alone (decoded PIL image in, result out), after warm-up, one image at a time.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tasks import TASKS, task_module
from tasks.hub import Served
from tasks.training import count_parameters

ROOT = Path(__file__).resolve().parent.parent
THREADS = 2
SERVER_BENCHES = ("app", "memory", "load")  # benches of the whole server rather than of one task
OTHER_BENCHES = ("upscale-archs", "cards-stain")  # a task's comparison of its bundled nets; "stain this card"


def percentiles(seconds: list[float]) -> dict[str, float]:
    values = np.asarray(seconds) * 1000.0
    return {"p50": round(float(np.percentile(values, 50)), 3), "p95": round(float(np.percentile(values, 95)), 3)}


def time_calls(call, inputs: list, warmup: int = 10) -> dict[str, float]:
    """Run `call` on each input once after `warmup` calls; p50/p95 in milliseconds."""
    for item in inputs[:warmup]:
        call(item)
    timings = []
    for item in inputs:
        start = time.perf_counter()
        call(item)
        timings.append(time.perf_counter() - start)
    return percentiles(timings)


@dataclass
class Hook:
    """What one task's bench needs beyond the generic path (load → evaluate → time predict); every field optional.

    Attributes:
        quality: (served, data, args) → (the flat quality figures, more entries for the JSON: "n", the items scored,
            among them); default: the numbers of evaluate(served, data), its "n" included.
        latency_calls: (served, data, n, args) → (a list of predict's arguments after `served`, one tuple per timed
            call; a line naming the input); default: the same 1024×768 photo n times.
        max_latency_calls: at most this many timed calls (slow predicts); None = as many as --n_latency.
        warmup: untimed calls first.
        finish: (result, served, args) → result, for figures made from both the quality and the latency.
    """

    quality: Callable[[Served, str, argparse.Namespace], tuple[dict[str, Any], dict[str, Any]]] | None = None
    latency_calls: Callable[[Served, str, int, argparse.Namespace], tuple[list[tuple], str]] | None = None
    max_latency_calls: int | None = None
    warmup: int = 10
    finish: Callable[[dict, Served, argparse.Namespace], dict] | None = None


def numbers(report: dict[str, Any]) -> dict[str, float]:
    """The numeric entries of an `evaluate` report (lists, tables and text are left to the task's hook)."""
    return {key: float(value) for key, value in report.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}


def photo_1024x768() -> Image.Image:
    """The generic latency input: scikit-image's public-domain astronaut photo resized to 1024×768."""
    from skimage import data

    return Image.fromarray(data.astronaut()).resize((1024, 768), Image.Resampling.BICUBIC)


def evaluation_data(module: Any) -> str:
    """What a task's `evaluate` scores when given no data (Upscale: Set5, not its training photos), else the
    task's DEFAULT_DATA."""
    import inspect

    default = inspect.signature(module.evaluate).parameters.get("data")
    if default is not None and isinstance(default.default, str) and default.default:
        return default.default
    return getattr(module, "DEFAULT_DATA", "")


def bench_task(task: str, args: argparse.Namespace) -> dict:
    """The one bench path for a registered task: load the weights `args.weights` names (or the serving default),
    evaluate on `args.data` (or the task's DEFAULT_DATA), then time `predict` on THREADS threads after warm-up."""
    import torch

    torch.set_num_threads(THREADS)
    module = task_module(task)
    hook = HOOKS.get(task, Hook())
    data = args.data or evaluation_data(module)
    served = module.load(args.weights)
    quality, extra = hook.quality(served, data, args) if hook.quality else (numbers(module.evaluate(served, data)), {})
    quality.setdefault("parameters", float(count_parameters(served.model)))
    n = int(extra.pop("n", quality.get("n", 0)))
    n_latency = min(args.n_latency, hook.max_latency_calls or args.n_latency)
    if hook.latency_calls:
        calls, latency_input = hook.latency_calls(served, data, n_latency, args)
    else:
        calls, latency_input = [(photo_1024x768(),)] * n_latency, "1024×768 photo"
    latency = time_calls(lambda call: module.predict(served, *call), calls, warmup=hook.warmup) if calls else None
    result = {"task": task, "data": data, "n": n, "weights": served.weights.name,
              "quality": quality, "latency_ms": latency, "threads": THREADS, "latency_input": latency_input, **extra}
    return hook.finish(result, served, args) if hook.finish else result


# ---------------------------------------------------------------------------------------------------------------------
# Task hooks
# ---------------------------------------------------------------------------------------------------------------------


def classify_quality(served: Served, data: str, args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fashion-MNIST test accuracy (the CNN; skipped for a photo model's folder alone) and, with --photos, the photo
    model on that clothing folder's photos of senders it never trained or chose its epoch on: "photos_accuracy" (the
    mean over the six labels) and "photos_per_class"."""
    from tasks import classify

    quality: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    if isinstance(served.model, classify.ClothingCNN):
        quality.update(numbers(classify.evaluate(served, data)))
    if args.photos:
        scored = classify.evaluate_photos(served, args.photos)
        quality.update(photos_accuracy=scored["photos_accuracy"], photos_per_class=scored["photos_per_class"],
                       photos_accuracy_low=scored["interval"][0], photos_accuracy_high=scored["interval"][1])
        if "cnn_photos_accuracy" in scored:
            quality.update(cnn_photos_accuracy=scored["cnn_photos_accuracy"],
                           cnn_photos_per_class=scored["cnn_photos_per_class"])
        extra.update(photos=args.photos, photos_n=scored["n"], photos_senders=scored["senders"],
                     photos_answers=scored["answers"],
                     photos_parameters=count_parameters(classify.photo_model(served).model))
        if "n" not in quality:  # a photo model's folder alone: n is the photos scored (else Fashion-MNIST's test set)
            extra["n"] = scored["n"]
    return quality, extra


def classify_latency(served: Served, data: str, n: int, args: argparse.Namespace) -> tuple[list[tuple], str]:
    """Fashion-MNIST test images, one per call; with --photos, that folder's photos (the photo model's path)."""
    from tasks import classify
    from tasks.classify import photos
    from tasks.images import load_rgb

    if args.photos:
        paths = photos.read_clothing(args.photos).paths[:n]
        return [(load_rgb(path),) for path in paths], "clothing photo (about 400×533)"
    images, _ = classify.load_split(data, "test")
    return [(Image.fromarray(image),) for image in images[:n]], "28×28 Fashion-MNIST test image"


def cards_quality(served: Served, data: str, args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """Category fidelity (judge CNN) for DPM-Solver++ 20 and DDPM at the default guidance, a guidance sweep for
    DPM-Solver++ 20 on `n_sweep` cards per category, and diversity. DDPM takes a step per noise level the model was
    trained on: 1000 for the bundled model. `args.device` is where the judged cards are sampled (e.g. cuda, where 1000-step DDPM on 100 cards
    per category takes minutes, not the CPU's hours); the noise comes from the same CPU generators either way."""
    from tasks import cards

    ddpm_steps = cards.diffusion.noise_levels(served.model)
    quality: dict[str, Any] = {}
    sweep = tuple(("DPM-Solver++", 20, args.n_sweep, guidance) for guidance in (1.0, 2.0, 4.0, 6.0) if args.n_sweep)
    ddpm = (("DDPM", ddpm_steps, args.n_ddpm, cards.GUIDANCE),) if args.n_ddpm else ()  # 64 s per card on 2 cores
    runs = (("DPM-Solver++", 20, args.n_fidelity, cards.GUIDANCE), *sweep, *ddpm)
    served.model.unet.to(args.device)
    batch_size = cards.MAX_CARDS if args.device == "cpu" else 100
    try:
        quality.update(cards.evaluate(served, data, n_per_category=args.n_fidelity, runs=runs, batch_size=batch_size))
    finally:
        served.model.unet.to("cpu")  # predict is timed on the CPU
    for name in ("precision", "recall"):  # the default run's coverage, mean over categories (the keys)
        quality[name] = quality.get(f"coverage/{name}")
    for height, _ in served.model.sizes[1:]:
        quality[f"fidelity_{height}"] = quality.get(f"fidelity_{height}/mean")
    return quality, {"data": "rendered cards (judge: render seeds 2/3)", "sampled_on": args.device,
                     "n": args.n_fidelity * len(cards.CATEGORIES), "size": list(served.model.size),
                     "sizes": [list(size) for size in served.model.sizes]}


def cards_latency(served: Served, data: str, n: int, args: argparse.Namespace) -> tuple[list[tuple], str]:
    """One SMALL card per call (seeds 0..n-1) at the model's size, DPM-Solver++ 20 steps, the default guidance."""
    height, width = served.model.size
    return [("SMALL", seed, 1) for seed in range(n)], f"1 card ({width}×{height}), DPM-Solver++ 20 steps"


def cards_finish(result: dict, served: Served, args: argparse.Namespace) -> dict:
    """Time per card through the cascade at each larger size ("p50_<height>", "p95_<height>"), and DDPM's time per
    card (2 cards, every noise level, the same guidance, on the CPU), right after the DPM-Solver++ timing so that all
    meet the machine in the same state, and the speed-up of one over the other."""
    from tasks import cards

    if not result["latency_ms"]:
        return result
    for height, width in served.model.sizes[1:]:  # the cascade: the same card, then ×2 or ×4 (10 cards, 1 warm-up)
        timed = time_calls(lambda seed: cards.predict(served, "SMALL", seed=seed, n=1, size=(height, width)),
                           list(range(10)), warmup=1)
        result["latency_ms"][f"p50_{height}"], result["latency_ms"][f"p95_{height}"] = timed["p50"], timed["p95"]
    ddpm_steps = cards.diffusion.noise_levels(served.model)
    slow = time_calls(lambda seed: cards.predict(served, "SMALL", seed=seed, n=1, scheduler="DDPM"), [0, 1], warmup=0)
    result["quality"][f"ddpm{ddpm_steps}_ms_per_card"] = slow["p50"]
    result["quality"][f"speedup_dpm20_vs_ddpm{ddpm_steps}"] = round(slow["p50"] / result["latency_ms"]["p50"], 1)
    return result


def colorize_quality(served: Served, data: str, args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both models of a Colorize folder (the general-photo one at its top, the faces one in faces/; a folder of one
    model is both). The photos model on the `--transfer` scenes (scenes_*: MAE beside the training-mean and all-gray
    baselines and the cast-matched oracle, colourfulness of its results and of the photos) and on the test people of
    `data` (photos_faces_*). The faces model as before (faces_*): MAE on the test people of `data` beside the baseline
    and the oracle, a 95% interval over the test people, each split's MAE (and which parts it trained on), each
    person's MAE and mean color (true and predicted, under "people" in the JSON), the spread of the people's mean a*,
    b* beside how far RGB scaling at ±15% and ±5% moves a photo's (standard deviations, CIELAB units); and on the
    scenes (faces_model_scenes_mae)."""
    import torch

    from tasks import colorize

    has_faces = (served.folder / colorize.MODELS["faces"] / "config.json").is_file()
    faces_served = colorize.load(str(served.folder), model="faces") if has_faces else served
    faces = colorize.evaluate(faces_served, data)
    quality: dict[str, Any] = {
        "faces_mae": faces["mae"], "faces_baseline_mae": faces["baseline_mae"], "faces_photos": faces["n"],
        "test_people": faces["test_people"], "faces_cast_matched_mae": faces["cast_matched_mae"],
        "faces_colorfulness": faces["colorfulness"], "faces_true_colorfulness": faces["true_colorfulness"],
        "faces_mae_interval95/low": faces["interval"][0], "faces_mae_interval95/high": faces["interval"][1]}
    quality.update({f"faces_mae_by_split/{part}": value for part, value in faces.get("by_split", {}).items()})
    if "mean_color_mse" in faces:
        quality.update(mean_color_mse=faces["mean_color_mse"], mean_color_baseline_mse=faces["mean_color_baseline_mse"])
    if faces.get("people"):  # the size of the tints RGB scaling invents, against real differences between people
        people_ab = torch.tensor([person["ab"] for person in faces["people"].values()])  # each person's mean a*, b*
        quality.update({f"tint_std/people/{axis}": float(value) for axis, value in zip("ab", people_ab.std(0))})

        def tints(rgb: torch.Tensor) -> torch.Tensor:  # each photo's mean a*, b* (CIELAB units)
            return colorize.ab_units(colorize.rgb_to_lab(rgb)[:, 1:].mean((2, 3)))

        photos = colorize.load_photos(colorize.folder_photos(data), faces_served.model.size)
        for color in (0.15, 0.05):
            scaled = colorize.augment(photos, torch.Generator().manual_seed(0), zoom=0.0, shift=0.0, color=color)
            quality.update({f"tint_std/rgb_scaling_{color:g}/{axis}": float(value)
                            for axis, value in zip("ab", (tints(scaled) - tints(photos)).std(0))})
    if has_faces:
        on_faces = colorize.evaluate(served, data)
        quality.update(photos_faces_mae=on_faces["mae"], photos_faces_colorfulness=on_faces["colorfulness"],
                       photos_faces_vs_faces_model=on_faces["mae"] - faces["mae"])
    transfer = args.transfer or colorize.DEFAULT_TRANSFER
    if transfer and Path(transfer).is_dir():
        scenes = colorize.evaluate(served, transfer)
        quality.update(scenes_mae=scenes["mae"], scenes_baseline_mae=scenes["baseline_mae"],
                       scenes_neutral_mae=scenes["neutral_mae"], scenes_photos=scenes["n"],
                       scenes_cast_matched_mae=scenes["cast_matched_mae"], scenes_colorfulness=scenes["colorfulness"],
                       scenes_true_colorfulness=scenes["true_colorfulness"])
        if has_faces:
            quality["faces_model_scenes_mae"] = colorize.evaluate(faces_served, transfer)["mae"]
    return quality, {"n": faces["n"], "trained_on": faces.get("trained_on"), "people": faces.get("people", {}),
                     "faces_model": f"{served.weights.name}/{colorize.MODELS['faces']}" if has_faces else served.weights.name}


def colorize_latency(served: Served, data: str, n: int, args: argparse.Namespace) -> tuple[list[tuple], str]:
    """A 1024×768 photo (the first `--transfer` photo resized, BSDS test by default, when there; else the generic
    photo) through `predict`."""
    from tasks import colorize
    from tasks.images import load_rgb

    transfer = Path(args.transfer or colorize.DEFAULT_TRANSFER)
    photo = (load_rgb(colorize.folder_photos(str(transfer))[0]).resize((1024, 768), Image.Resampling.BICUBIC)
             if transfer.is_dir() else photo_1024x768())
    return [(photo,)] * n, "1024×768 photo"


def mask_quality(served: Served, data: str, args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """Dice at each photo's original resolution on the model's test cars, without and with clean-up, served as the
    folder says (`mask.serving`: test-time flip, edge refinement)."""
    from tasks import mask

    report = mask.evaluate(served, data)
    return ({"dice": report["dice"], "dice_cleaned": report["dice_cleaned"], "photos": report["n"]},
            {"n": report["n"], "serving": mask.serving(served)})


def mask_latency(served: Served, data: str, n: int, args: argparse.Namespace) -> tuple[list[tuple], str]:
    """A full-size test photo → mask + cut-out through `predict` (a 1918×1280 Carvana photo)."""
    from tasks import mask
    from tasks.images import load_rgb

    photo = load_rgb(mask.scored_pairs(served, data)[0][0])
    return [(photo,)] * n, f"{photo.width}×{photo.height} photo"


def upscale_quality(served: Served, data: str, args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """PSNR and SSIM on Y (border shaved by the scale) over the HR photos of `data`: the serving model, bicubic, and
    the SRCNN bundled beside it (its srcnn/ folder) when there is one, in the same run."""
    from tasks import upscale

    quality = upscale.evaluate(served, data)
    if (served.folder / "srcnn").is_dir():
        srcnn = upscale.load(str(served.folder / "srcnn"))
        reference = upscale.evaluate(srcnn, data)
        quality.update(srcnn_psnr_y=reference["psnr_y"], srcnn_ssim_y=reference["ssim_y"])
    return quality, {"n": quality.pop("n")}


def upscale_latency(served: Served, data: str, n: int, args: argparse.Namespace) -> tuple[list[tuple], str]:
    """One 512×512 → 1024×1024 call: the generic photo's centre."""
    photo = photo_1024x768().crop((256, 128, 768, 640))
    return [(photo,)] * n, "512×512 photo → 1024×1024"


def bench_upscale_archs(args: argparse.Namespace) -> dict:
    """Every net an upscale folder bundles (`upscale.bundled_archs`: the serving one and its sub-folders) on the same
    HR photos (--data: folders, comma-separated; default Set5, Set14, BSDS test), bicubic beside them, each with its
    512→1024 latency, training time and best validation PSNR-Y within the shortest run's time (equal CPU time).
    With --card, the table and a crop figure go into that folder's model card."""
    import torch

    from tasks import hub, upscale

    torch.set_num_threads(THREADS)
    folder = hub.resolve("upscale", args.weights).path
    folders = args.data.split(",") if args.data else [str(upscale.PHOTOS / name) for name in upscale.REPORT_SETS]
    sets = {upscale.REPORT_SETS.get(Path(data).name, Path(data).name): data for data in folders}
    bicubic, rows = {}, []
    calls, latency_input = upscale_latency(None, "", min(args.n_latency, 10), args)
    for arch, arch_folder in upscale.bundled_archs(folder).items():
        served = upscale.load(str(arch_folder))
        row = {"arch": arch, "serving": arch_folder == folder, "parameters": count_parameters(served.model),
               "training_seconds": served.metrics["training_seconds"], "steps": served.metrics["steps"],
               "val_psnr_y": served.metrics.get("val_psnr_y", []), "val_seconds": served.metrics.get("val_seconds", [])}
        for name, data in sets.items():
            scores = upscale.evaluate(served, data)
            row[name] = {"psnr_y": scores["psnr_y"], "ssim_y": scores["ssim_y"], "n": scores["n"]}
            bicubic[name] = {"psnr_y": scores["bicubic_psnr_y"], "ssim_y": scores["bicubic_ssim_y"]}
        row["latency_ms"] = time_calls(lambda call, served=served: upscale.predict(served, *call), calls,
                                       warmup=min(2, len(calls)))
        rows.append(row)
    equal_seconds = min(row["training_seconds"] for row in rows)
    for row in rows:
        reached = [psnr for psnr, seconds in zip(row["val_psnr_y"], row["val_seconds"]) if seconds <= equal_seconds]
        row["best_val_psnr_y_within"] = max(reached) if reached else None
    config = hub.read_json(folder, "metrics.json")["config"]
    result = {"task": "upscale-archs", "data": sets, "weights": str(folder), "threads": THREADS,
              "latency_input": latency_input, "equal_seconds": equal_seconds, "bicubic": bicubic, "rows": rows,
              "val_images": int(config["val_images"]), "val_data": Path(config["val_data"]).name,
              "command": "python -m bench upscale-archs" + (f" --data {args.data}" if args.data else "")
                         + (f" --weights {args.weights}" if args.weights else "") + " --card"}
    if args.card:
        upscale.write_card(folder, result)
    return result


def bench_cards_stain(args: argparse.Namespace) -> dict:
    """"Stain this card" (`cards.diffusion.evaluate_stain`): how often a SMALL stain shows in each region, plain
    inpainting (jump_n_sample 1) against the served RePaint schedule, with CLEAN as the measure's control; and the
    time of one stained card for each (2 threads)."""
    import torch

    from tasks import cards
    from tasks.cards import diffusion

    torch.set_num_threads(THREADS)
    served = cards.load(args.weights)
    quality = diffusion.evaluate_stain(served, n=args.n_cards)
    height, width = served.model.size
    card = cards.render_card(5_000_000, "CLEAN", size=(height, width)).image
    region = Image.new("L", (width, height), 0)
    region.paste(255, (width // 4, height // 4, 3 * width // 4, 3 * height // 4))
    latency = {f"jumps{jumps}": time_calls(lambda seed, jumps=jumps: diffusion.stain(served, card, region, seed=seed,
                                                                                      jump_n_sample=jumps),
                                          list(range(5)), warmup=1)
               for jumps in (1, diffusion.JUMP_N_SAMPLE)}
    return {"task": "cards-stain", "data": f"rendered clean cards (seeds 5,000,000 + 0..{args.n_cards - 1})",
            "n": args.n_cards, "weights": served.weights.name, "threads": THREADS, "quality": quality,
            "latency_ms": latency[f"jumps{diffusion.JUMP_N_SAMPLE}"], "latency_ms_by_schedule": latency,
            "schedule": {"num_inference_steps": diffusion.STAIN_STEPS, "jump_length": diffusion.JUMP_LENGTH,
                         "jump_n_sample": diffusion.JUMP_N_SAMPLE},
            "command": "python -m bench cards-stain" + (f" --weights {args.weights}" if args.weights else "")
                       + f" --n_cards {args.n_cards}"}


def cards_stain_table(result: dict) -> str:
    """`bench_cards_stain`'s result: one row per category and region, how often a stain shows and the yellowed share,
    for each schedule."""
    quality = result["quality"]
    rows = sorted({key.rsplit("/", 2)[0] for key in quality})
    schedules = sorted({key.rsplit("/", 2)[1] for key in quality})
    head = "| category / region | " + " | ".join(f"{name}: shows (yellowed)" for name in schedules) + " |"
    lines = [head, "|---" * (len(schedules) + 1) + "|"]
    for row in rows:
        cells = [f"{quality[f'{row}/{name}/shows']:.0%} ({quality[f'{row}/{name}/yellowed']:.0%})" for name in schedules]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    timing = ", ".join(f"{name} p50 {value['p50']:.0f} ms" for name, value in result["latency_ms_by_schedule"].items())
    return "\n".join(lines) + f"\n\none stained card: {timing}"


def upscale_archs_table(result: dict) -> str:
    sets = list(result["data"])
    lines = ["| net | params | " + " | ".join(f"{name} PSNR-Y" for name in sets) + " | p50 ms |",
             "|---" * (len(sets) + 3) + "|",
             "| bicubic | – | " + " | ".join(f"{result['bicubic'][name]['psnr_y']:.3f}" for name in sets) + " | – |"]
    for row in result["rows"]:
        lines.append(f"| {row['arch']} | {row['parameters']:,} | "
                     + " | ".join(f"{row[name]['psnr_y']:.3f}" for name in sets) + f" | {row['latency_ms']['p50']:.0f} |")
    return "\n".join(lines)


def large_photo_finish(result: dict, served: Served, args: argparse.Namespace, largest: float) -> dict:
    """One large photo through the task's predict, in this process (image-to-image tasks): a phone-like JPEG of
    --megapixels, at most `largest`; its seconds and the extra resident memory at the peak (MiB): the photo, the
    result and their copies, while the model's working memory is bounded by a tile."""
    import tempfile

    from tasks.images import load_rgb

    with tempfile.TemporaryDirectory() as folder:
        photo = load_rgb(large_photo(Path(folder), min(args.megapixels, largest)))
    reset_peak_memory(os.getpid())
    before = process_memory_mb(os.getpid())["rss"]
    started = time.perf_counter()
    output = task_module(result["task"]).predict(served, photo).image
    seconds = time.perf_counter() - started
    result["large_photo"] = {"input": f"{photo.width}×{photo.height}", "output": f"{output.width}×{output.height}",
                             "seconds": round(seconds, 2),
                             "extra_mib": round(process_memory_mb(os.getpid())["peak"] - before, 1)}
    return result


def restore_quality(served: Served, data: str, args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """The original's table on the same damaged photos (default recipe, photo i damaged with seed i): DAMAGED, the
    served net as REAL (its clusterer's class), BASELINE (the net bundled in its baseline/ folder, class 0 always;
    else the served net at class 0), MAX_CLASS (each class tried, the best PSNR kept: an oracle), and the classical
    tools given the true damage mask (`bench.classical`). PSNR / SSIM on RGB, LPIPS (alex)."""
    from bench.classical import TOOLS, run_tools
    from tasks.images import load_rgb, photo_sources
    from tasks import restore

    from tasks.restore.damage import DEFAULT_RECIPE_NAME

    if served.facts.get("recipe") != DEFAULT_RECIPE_NAME:
        raise ValueError(f"{served.weights.name} was trained on the damage recipe {served.facts.get('recipe')!r}; this "
                         f"code damages with {DEFAULT_RECIPE_NAME!r}, so its scores would not be its own.")
    photos = [load_rgb(source) for source in photo_sources(data, split="test")][:args.n_photos or None]
    baseline = restore.load(str(served.folder / "baseline")) if (served.folder / "baseline").is_dir() else None
    rows: dict[str, list[dict[str, float]]] = {}
    for index, photo in enumerate(photos):
        damaged, mask = restore.damaged_pair(photo, index)
        cluster = restore.cluster_of(served, damaged)
        k = restore.task.n_classes(served)
        oracle = max((restore.restore_image(served.model, damaged, c) for c in range(k)),
                     key=lambda image: restore.image_scores(image, photo, lpips=False)["psnr"])
        outputs = {"damaged": damaged, "real": restore.restore_image(served.model, damaged, cluster),
                   "baseline": restore.restore_image((baseline or served).model, damaged, 0), "max_class": oracle}
        outputs |= {name: Image.fromarray(image) for name, image in run_tools(np.asarray(damaged), mask).items()}
        for name, image in outputs.items():
            rows.setdefault(name, []).append(restore.image_scores(image, photo, lpips=True))
    table = {name: {key: float(np.mean([item[key] for item in items])) for key in items[0]}
             for name, items in rows.items()}
    best_classical = max(TOOLS, key=lambda name: table[name]["psnr"])
    quality = {"psnr": table["real"]["psnr"], "ssim": table["real"]["ssim"], "lpips": table["real"]["lpips"],
               "damaged_psnr": table["damaged"]["psnr"], "damaged_ssim": table["damaged"]["ssim"],
               "damaged_lpips": table["damaged"]["lpips"], "classical_psnr": table[best_classical]["psnr"],
               "classical_lpips": table[best_classical]["lpips"], "psnr_gain": table["real"]["psnr"]
               - table["damaged"]["psnr"]}
    return quality, {"n": len(photos), "table": table, "best_classical": best_classical,
                     "by_strength": restore_by_strength(served, photos[:STRENGTH_PHOTOS]),
                     "recipe": served.facts.get("recipe"), "baseline_weights": "baseline/" if baseline else "class 0"}


STRENGTH_SCALES = (0.0, 0.25, 0.5, 1.0)  # the default recipe with every strength × this: 0 = the clean photo itself
STRENGTH_PHOTOS = 20


def restore_by_strength(served: Served, photos: list[Image.Image]) -> dict[str, dict[str, float | None]]:
    """What the served net does to lighter damage, and to none: for each scale in STRENGTH_SCALES, the mean PSNR (dB,
    RGB) of the damaged and of the restored photo against the clean one, photo i damaged with seed i. A user's
    photo is rarely damaged exactly as the recipe is; a net that learned only the full recipe "repairs" a clean photo
    into a worse one. {scale: {"damaged_psnr" (None at 0: no damage), "psnr", "gain" (None at 0)}}."""
    from tasks import restore
    from tasks.restore.damage import DEFAULT_RECIPE

    result: dict[str, dict[str, float | None]] = {}
    for scale in STRENGTH_SCALES:
        recipe = {kind: strength * scale for kind, strength in DEFAULT_RECIPE.items()}
        damaged_psnr, psnr = [], []
        for index, photo in enumerate(photos):
            damaged = restore.damaged_copy(photo, index, recipe)
            restored = restore.restore_image(served.model, damaged, restore.cluster_of(served, damaged))
            psnr.append(restore.image_scores(restored, photo, lpips=False)["psnr"])
            if scale > 0:
                damaged_psnr.append(restore.image_scores(damaged, photo, lpips=False)["psnr"])
        row = {"psnr": float(np.mean(psnr)), "damaged_psnr": float(np.mean(damaged_psnr)) if damaged_psnr else None}
        row["gain"] = row["psnr"] - row["damaged_psnr"] if damaged_psnr else None
        result[f"{scale:g}"] = row
    return result


def restore_finish(result: dict, served: Served, args: argparse.Namespace) -> dict:
    """A 12 MP photo's memory (`large_photo_finish`); with --card, the table goes into the served folder's card."""
    from tasks.restore.task import write_card

    result = large_photo_finish(result, served, args, largest=12.0)
    result["command"] = "python -m bench restore" + (f" --weights {args.weights}" if args.weights else "") + (
        f" --data {args.data}" if args.data else "") + (f" --n_photos {args.n_photos}" if args.n_photos else "")
    if args.card:
        write_card(served.folder, result)
    return result


def restore_latency(served: Served, data: str, n: int, args: argparse.Namespace) -> tuple[list[tuple], str]:
    """One 512×512 photo: the generic photo's centre."""
    return [(photo_1024x768().crop((256, 128, 768, 640)),)] * n, "512×512 photo"


HOOKS: dict[str, Hook] = {  # only what is truly task-specific; a task without an entry takes the generic path whole
    "classify": Hook(quality=classify_quality, latency_calls=classify_latency),
    "cards": Hook(quality=cards_quality, latency_calls=cards_latency, max_latency_calls=20, warmup=2,
                  finish=cards_finish),
    "colorize": Hook(quality=colorize_quality, latency_calls=colorize_latency, max_latency_calls=30, warmup=3),
    "mask": Hook(quality=mask_quality, latency_calls=mask_latency, max_latency_calls=30, warmup=3),
    "upscale": Hook(quality=upscale_quality, latency_calls=upscale_latency, max_latency_calls=20, warmup=2,
                    finish=functools.partial(large_photo_finish, largest=6.0)),  # a 24 MP result
    "restore": Hook(quality=restore_quality, latency_calls=restore_latency, max_latency_calls=20, warmup=2,
                    finish=restore_finish),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def app_server(timeout_s: float):
    """`python app.py` in a fresh process on a free port, bundled weights, 2 threads: yields (client, process, start),
    `start` being perf_counter() just before the process started. Stops the server on exit.

    Raises:
        RuntimeError: the server did not answer within `timeout_s` seconds, or exited.
    """
    from gradio_client import Client

    port = free_port()
    env = dict(os.environ, GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1",
               OMP_NUM_THREADS=str(THREADS))
    start = time.perf_counter()
    server = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        client = None
        while client is None:
            if time.perf_counter() - start > timeout_s or server.poll() is not None:
                raise RuntimeError(f"app did not answer within {timeout_s:.0f} s (exit code {server.poll()})")
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            except Exception:  # the server is not up yet: any connection error means "try again"
                time.sleep(0.1)
        yield client, server, start
    finally:
        server.terminate()
        server.wait(timeout=30)


def bench_app(timeout_s: float, n_latency: int) -> dict:
    """Start `python app.py` in a fresh process; time until the Classify endpoint first answers, then warm calls."""
    from gradio_client import handle_file

    example = sorted((ROOT / "assets" / "examples" / "classify").glob("*.png"))[0]
    with app_server(timeout_s) as (client, _, start):
        client.predict(handle_file(str(example)), api_name="/classify")
        cold_start = time.perf_counter() - start
        latency = time_calls(lambda _: client.predict(handle_file(str(example)), api_name="/classify"),
                             list(range(n_latency)), warmup=3)
    return {"task": "app", "data": str(example.relative_to(ROOT)), "n": n_latency, "weights": "bundled",
            "quality": {"cold_start_s": round(cold_start, 2)}, "latency_ms": latency, "threads": THREADS}


def process_memory_mb(pid: int | str) -> dict[str, float]:
    """A process's resident memory now ("rss") and its peak since the last `reset_peak_memory` ("peak"), in MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {"rss": int(fields["VmRSS"].split()[0]) / 1024, "peak": int(fields["VmHWM"].split()[0]) / 1024}


def reset_peak_memory(pid: int | str) -> None:
    """Start a new peak: Linux resets VmHWM to the current resident size when "5" is written to clear_refs."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def large_photo(folder: Path, megapixels: float) -> Path:
    """A phone-like JPEG (quality 90, 3:2) of about `megapixels`, never above the upload limit: scikit-image's
    astronaut enlarged."""
    from PIL import Image
    from skimage import data

    from tasks.images import MAX_PIXELS

    pixels = min(megapixels * 1e6, MAX_PIXELS)
    width = int((pixels * 1.5) ** 0.5)
    height = int(pixels // width)
    path = folder / f"large-{width}x{height}.jpg"
    Image.fromarray(data.astronaut()).resize((width, height), Image.Resampling.BICUBIC).save(path, quality=90)
    return path


MEMORY_CALLS = {  # image endpoint -> its arguments after the photo
    "classify": (), "colorize": (1.0,), "mask": (0.5, "#ffffff"), "stain": ("centre", "SMALL", 0, ""),
}


def bench_memory(megapixels: float, timeout_s: float, endpoints: tuple[str, ...] = tuple(MEMORY_CALLS),
                 concurrent: str | None = "colorize") -> dict:
    """The server's memory for one request of each image endpoint with a `megapixels` photo, each in a fresh server
    (memory an earlier request freed, but the allocator kept, would hide part of the next one's): its resident size
    before the request, its peak during it (MiB), the difference ("extra"), and the request's seconds. Each endpoint is
    warmed up on a small photo first, so loading its model is not counted. With `concurrent`, that endpoint also gets
    two large requests at once (`python app.py` serves two at a time)."""
    import tempfile
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import handle_file
    from PIL import Image

    quality: dict[str, float] = {}
    runs = [(endpoint, 1) for endpoint in endpoints] + ([(concurrent, 2)] if concurrent else [])
    with tempfile.TemporaryDirectory() as folder:
        photo = large_photo(Path(folder), megapixels)
        small = Path(folder) / "small.jpg"
        with Image.open(photo) as image:
            size = f"{image.width}×{image.height}"
            image.resize((300, 200)).save(small)
        for endpoint, at_once in runs:
            name = endpoint if at_once == 1 else f"{endpoint}_x{at_once}"
            with app_server(timeout_s) as (client, server, _), ThreadPoolExecutor(at_once) as pool:

                def call(path: Path) -> None:
                    client.predict(handle_file(str(path)), *MEMORY_CALLS[endpoint], api_name=f"/{endpoint}")

                call(small)
                before = process_memory_mb(server.pid)["rss"]
                reset_peak_memory(server.pid)
                start = time.perf_counter()
                list(pool.map(lambda _: call(photo), range(at_once)))
                quality[f"seconds/{name}"] = round(time.perf_counter() - start, 2)
                peak = process_memory_mb(server.pid)["peak"]
            quality.update({f"before_mb/{name}": round(before), f"peak_mb/{name}": round(peak),
                            f"extra_mb/{name}": round(peak - before)})
    return {"task": "memory", "data": f"{size} JPEG ({megapixels:g} MP)", "n": len(runs), "weights": "bundled",
            "quality": quality, "latency_ms": None, "threads": THREADS}


def memory_table(quality: dict[str, float]) -> str:
    """bench_memory's figures as a markdown table: one row per request (or pair of requests)."""
    names = [key.removeprefix("extra_mb/") for key in quality if key.startswith("extra_mb/")]
    rows = [f"| {name} | {quality[f'before_mb/{name}']:,.0f} | {quality[f'peak_mb/{name}']:,.0f} | "
            f"{quality[f'extra_mb/{name}']:,.0f} | {quality[f'seconds/{name}']:.1f} |" for name in names]
    return ("| request (fresh server) | resident before (MiB) | peak during (MiB) | extra (MiB) | seconds |\n"
            "|---|---|---|---|---|\n" + "\n".join(rows))


def markdown_row(result: dict) -> str:
    quality = ", ".join(f"{key} {value:.4g}" for key, value in result["quality"].items()
                        if "/" not in key and isinstance(value, (int, float)))
    latency = result["latency_ms"] or {"p50": float("nan"), "p95": float("nan")}  # None: not timed (n_latency 0)
    return (f"| {result['task']} | {quality} | {latency['p50']:.2f} | {latency['p95']:.2f} | {result['threads']} "
            f"| {result['n']} | {result['weights']} |")


def run_bench(args: argparse.Namespace) -> dict:
    """The bench `args.task` asks for, on the parsed flags: a registered task, or the app's start-up or memory."""
    if args.task == "app":
        return bench_app(args.timeout, min(args.n_latency, 50))
    if args.task == "memory":
        return bench_memory(args.megapixels, args.timeout)
    if args.task == "upscale-archs":
        return bench_upscale_archs(args)
    if args.task == "cards-stain":
        return bench_cards_stain(args)
    if args.task == "load":
        from bench.load import bench_load

        return bench_load(args.users, args.seconds, args.timeout, warmup_s=args.warmup_seconds, rounds=args.rounds)
    return bench_task(args.task, args)


def build_parser() -> argparse.ArgumentParser:
    """`python -m bench`'s flags: the task (a registered one, or a server bench) and every task's options."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=[*TASKS, *SERVER_BENCHES, *OTHER_BENCHES])
    parser.add_argument("--data", help="evaluation data in the task's layout (default: the task's default)")
    parser.add_argument("--weights", help="folder or Hub id (default: $DARKROOM_<TASK>_MODEL or bundled)")
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument("--n_latency", type=int, default=200, help="timed predict calls")
    parser.add_argument("--timeout", type=float, default=120.0, help="app: give up after this many seconds")
    parser.add_argument("--transfer", default=None, help="colorize: out-of-domain photos (default: BSDS test)")
    parser.add_argument("--n_fidelity", type=int, default=100, help="cards: DPM-Solver++ cards judged per category")
    parser.add_argument("--n_ddpm", type=int, default=100, help="cards: DDPM-1000 cards judged per category (0 = none)")
    parser.add_argument("--n_sweep", type=int, default=20, help="cards: cards per category per guidance value (0 = none)")
    parser.add_argument("--n_cards", type=int, default=24, help="cards-stain: clean cards stained per category and region")
    parser.add_argument("--device", default="cpu", help="cards: where the judged cards are sampled (cpu, cuda)")
    parser.add_argument("--photos", default="", help="classify: a clothing folder (images/ + labels.csv) for the photo model")
    parser.add_argument("--n_photos", type=int, default=0, help="restore: score the first N photos (0 = all)")
    parser.add_argument("--card", action="store_true",
                        help="upscale-archs, restore: also write the table (and figures) into the served folder's model card")
    parser.add_argument("--users", type=int, default=16, help="load: concurrent gradio_client users")
    parser.add_argument("--seconds", type=float, default=60.0, help="load: how long each measured round of the crowd runs")
    parser.add_argument("--warmup_seconds", type=float, default=60.0, help="load: the crowd's warm-up before the rounds")
    parser.add_argument("--rounds", type=int, default=2, help="load: measured rounds of the crowd, one after another")
    parser.add_argument("--megapixels", type=float, default=40.0, help="memory: the large photo's size (upscale: at most 6 MP)")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = run_bench(args)
    except (FileNotFoundError, ValueError) as error:  # --weights or --data that is not there or not usable: say
        parser.error(str(error))  # so, benchmark nothing
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.task == "memory":  # no quality or latency row: a table of requests
        print(memory_table(result["quality"]))
        return
    if args.task == "upscale-archs":
        print(upscale_archs_table(result))
        return
    if args.task == "cards-stain":
        print(cards_stain_table(result))
        return
    if args.task == "load":
        from bench.load import load_table

        print(load_table(result))
        return
    print("| task | quality | p50 ms | p95 ms | threads | n | weights |\n|---|---|---|---|---|---|---|")
    print(markdown_row(result))
    if args.task == "cards":
        from tasks.cards.diffusion import cascade_table, coverage_table, fidelity_table

        size = tuple(result["size"])
        print("\n" + fidelity_table(result["quality"]) + "\n\n" + cascade_table(result["quality"], size) + "\n\n"
              + coverage_table(result["quality"]))


if __name__ == "__main__":
    main()
