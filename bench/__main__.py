"""Quality on real data and latency on 2 threads, for the README's results tables.

    python -m bench classify --data /usr/share/datasets/fashion-mnist --json bench/results/classify.json
    python -m bench cards --json bench/results/cards.json  # fidelity (judge CNN), diversity, time per card
    python -m bench colorize --data ../shared/data/faces --json bench/results/colorize.json  # + --transfer scenes
    python -m bench mask --data ../shared/data/carvana --json bench/results/mask.json  # Dice at full resolution
    python -m bench app --json bench/results/app.json      # cold start: process start → first answer over HTTP
    python -m bench memory --json bench/results/memory.json  # the server's extra memory per 40 MP request

Each run writes {"task", "data", "n", "weights", "quality", "latency_ms": {"p50", "p95"}, "threads"} and prints a
markdown row. Latency is `predict` alone (decoded PIL image in, result out), after warm-up, one image at a time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
THREADS = 2


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


def bench_classify(data: str | None, weights: str | None, n_latency: int) -> dict:
    import torch
    from PIL import Image

    from tasks import classify

    torch.set_num_threads(THREADS)
    data = data or classify.DEFAULT_DATA
    model = classify.load(weights)
    quality = classify.evaluate(model, data)
    quality["parameters"] = float(classify.count_parameters(model))
    images, _ = classify.load_split(data, "test")
    pictures = [Image.fromarray(image) for image in images[:n_latency]]
    latency = time_calls(lambda picture: classify.predict(model, picture), pictures)
    return {"task": "classify", "data": data, "n": int(quality["n"]), "weights": model.weights.name,
            "quality": quality, "latency_ms": latency, "threads": THREADS}


def bench_cards(weights: str | None, n_fidelity: int, n_ddpm: int, n_sweep: int, n_latency: int,
                device: str = "cpu") -> dict:
    """Category fidelity (judge CNN) for DPM-Solver++ 20 and DDPM at the default guidance, a guidance sweep for
    DPM-Solver++ 20 on `n_sweep` cards per category, diversity, and time per card. DDPM takes a step per noise level
    the model was trained on: 1000 for the bundled model.

    Time per card: one card per call at the model's size, DPM-Solver++ 20 steps with the default guidance; and DDPM
    with the same guidance on the same model in the same run, for the speed-up. Always on the CPU;
    n_latency = 0 skips it. `device` is where the judged cards are sampled (e.g. cuda, where 1000-step DDPM on 100
    cards per category takes minutes, not the CPU's hours); the noise comes from the same CPU generators either way.
    """
    import torch

    from tasks import cards

    torch.set_num_threads(THREADS)
    model = cards.load(weights)
    ddpm_steps = cards.diffusion.noise_levels(model)  # DDPM takes every step (1000 for the bundled model)
    fast = slow = None
    if n_latency:
        fast = time_calls(lambda seed: cards.predict(model, "SMALL", seed=seed, n=1), list(range(n_latency)), warmup=2)
        slow = time_calls(lambda seed: cards.predict(model, "SMALL", seed=seed, n=1, sampler="DDPM"), [0, 1], warmup=0)
    sweep = tuple(("DPM-Solver++", 20, n_sweep, guidance) for guidance in (1.0, 2.0, 4.0, 6.0) if n_sweep)
    ddpm = (("DDPM", ddpm_steps, n_ddpm, cards.GUIDANCE),) if n_ddpm else ()  # 0 = skip (64 s per card on 2 cores)
    runs = (("DPM-Solver++", 20, n_fidelity, cards.GUIDANCE), *sweep, *ddpm)
    model.unet.to(device)
    batch_size = cards.MAX_CARDS if device == "cpu" else 100
    quality = cards.evaluate(model, n_per_category=n_fidelity, runs=runs, batch_size=batch_size)
    if fast and slow:
        quality[f"ddpm{ddpm_steps}_ms_per_card"] = slow["p50"]
        quality[f"speedup_dpm20_vs_ddpm{ddpm_steps}"] = round(slow["p50"] / fast["p50"], 1)
    return {"task": "cards", "data": "rendered cards (judge: render seeds 2/3)", "n": n_fidelity * len(cards.CATEGORIES),
            "weights": model.weights.name, "quality": quality, "latency_ms": fast, "threads": THREADS,
            "sampled_on": device}


def bench_colorize(data: str | None, transfer: str, weights: str | None, n_latency: int) -> dict:
    """MAE on the test people of `data` and on the `transfer` photos, each beside the training-mean baseline and the
    cast-matched oracle; a 95% interval over the test people, each split's MAE (and which parts it trained on), and
    each person's MAE and mean colour (true and predicted, under "people"); the spread of the people's mean a*, b*
    beside how far RGB scaling at ±15% and ±5% moves a photo's (standard deviations, CIELAB units); latency
    of a 1024×768 photo (a BSDS test photo resized, when there, else noise) through the full-resolution `predict`."""
    import torch
    from PIL import Image

    from tasks import colorize
    from tasks.images import load_rgb

    torch.set_num_threads(THREADS)
    data = data or colorize.DEFAULT_DATA
    model = colorize.load(weights)
    faces = colorize.evaluate(model, data)
    quality = {"faces_mae": faces["mae"], "faces_baseline_mae": faces["baseline_mae"], "faces_photos": faces["n"],
               "test_people": faces["test_people"], "faces_cast_matched_mae": faces["cast_matched_mae"],
               "faces_mae_interval95/low": faces["interval"][0], "faces_mae_interval95/high": faces["interval"][1]}
    quality.update({f"faces_mae_by_split/{part}": value for part, value in faces.get("by_split", {}).items()})
    if "mean_color_mse" in faces:
        quality.update(mean_color_mse=faces["mean_color_mse"], mean_color_baseline_mse=faces["mean_color_baseline_mse"])
    if faces.get("people"):  # the size of the tints RGB scaling invents, against real differences between people
        people_ab = torch.tensor([person["ab"] for person in faces["people"].values()])  # each person's mean a*, b*
        quality.update({f"tint_std/people/{axis}": float(value) for axis, value in zip("ab", people_ab.std(0))})

        def tints(rgb: torch.Tensor) -> torch.Tensor:  # each photo's mean a*, b* (CIELAB units)
            return colorize.ab_units(colorize.rgb_to_lab(rgb)[:, 1:].mean((2, 3)))

        photos = colorize.load_photos(colorize.folder_photos(data), model.size)
        for colour in (0.15, 0.05):
            scaled = colorize.augment(photos, torch.Generator().manual_seed(0), zoom=0.0, shift=0.0, colour=colour)
            quality.update({f"tint_std/rgb_scaling_{colour:g}/{axis}": float(value)
                            for axis, value in zip("ab", (tints(scaled) - tints(photos)).std(0))})
    if transfer and Path(transfer).is_dir():
        scenes = colorize.evaluate(model, transfer)
        quality.update(scenes_mae=scenes["mae"], scenes_baseline_mae=scenes["baseline_mae"], scenes_photos=scenes["n"],
                       scenes_cast_matched_mae=scenes["cast_matched_mae"])
        source = load_rgb(colorize.folder_photos(transfer)[0])
    else:
        source = Image.fromarray(np.random.default_rng(0).integers(0, 256, (768, 1024, 3), dtype=np.uint8))
    photo = source.resize((1024, 768), Image.Resampling.BICUBIC)
    quality["parameters"] = float(colorize.count_parameters(model))
    latency = time_calls(lambda _: colorize.predict(model, photo), list(range(n_latency)), warmup=3)
    return {"task": "colorize", "data": data, "n": int(faces["n"]), "weights": model.weights.name, "quality": quality,
            "latency_ms": latency, "threads": THREADS, "latency_input": "1024×768 photo",
            "trained_on": faces.get("trained_on"), "people": faces.get("people", {})}


def bench_mask(data: str | None, weights: str | None, n_latency: int) -> dict:
    """Dice at each photo's original resolution on the model's test cars; latency of a full-size photo → mask +
    cut-out through `predict` (a 1918×1280 test photo)."""
    import torch

    from tasks import mask
    from tasks.images import load_rgb

    torch.set_num_threads(THREADS)
    data = data or mask.DEFAULT_DATA
    model = mask.load(weights)
    report = mask.evaluate(model, data)
    quality = {"dice": report["dice"], "dice_cleaned": report["dice_cleaned"], "photos": report["n"],
               "parameters": float(mask.count_parameters(model))}
    photo = load_rgb(mask.scored_pairs(model, data)[0][0])
    latency = time_calls(lambda _: mask.predict(model, photo), list(range(n_latency)), warmup=3)
    return {"task": "mask", "data": data, "n": int(report["n"]), "weights": model.weights.name, "quality": quality,
            "latency_ms": latency, "threads": THREADS, "latency_input": f"{photo.width}×{photo.height} photo"}


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
    quality = ", ".join(f"{key} {value:.4g}" for key, value in result["quality"].items() if "/" not in key)
    latency = result["latency_ms"] or {"p50": float("nan"), "p95": float("nan")}  # None: not timed (n_latency 0)
    return (f"| {result['task']} | {quality} | {latency['p50']:.2f} | {latency['p95']:.2f} | {result['threads']} "
            f"| {result['n']} | {result['weights']} |")


def run_bench(args: argparse.Namespace) -> dict:
    """The bench `args.task` asks for, on the parsed flags."""
    if args.task == "app":
        result = bench_app(args.timeout, min(args.n_latency, 50))
    elif args.task == "memory":
        result = bench_memory(args.megapixels, args.timeout)
    elif args.task == "colorize":
        from tasks.colorize import DEFAULT_TRANSFER

        result = bench_colorize(args.data, args.transfer or DEFAULT_TRANSFER, args.weights, min(args.n_latency, 30))
    elif args.task == "mask":
        result = bench_mask(args.data, args.weights, min(args.n_latency, 30))
    elif args.task == "cards":
        result = bench_cards(args.weights, args.n_fidelity, args.n_ddpm, args.n_sweep, min(args.n_latency, 20),
                             args.device)
    else:
        result = bench_classify(args.data, args.weights, args.n_latency)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=["classify", "cards", "colorize", "mask", "app", "memory"])
    parser.add_argument("--data", help="evaluation data in the task's layout (default: the task's default)")
    parser.add_argument("--weights", help="folder or Hub id (default: $DARKROOM_<TASK>_MODEL or bundled)")
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument("--n_latency", type=int, default=200, help="timed predict calls")
    parser.add_argument("--timeout", type=float, default=120.0, help="app: give up after this many seconds")
    parser.add_argument("--transfer", default=None, help="colorize: out-of-domain photos (default: BSDS test)")
    parser.add_argument("--n_fidelity", type=int, default=100, help="cards: DPM-Solver++ cards judged per category")
    parser.add_argument("--n_ddpm", type=int, default=100, help="cards: DDPM-1000 cards judged per category (0 = none)")
    parser.add_argument("--n_sweep", type=int, default=20, help="cards: cards per category per guidance value (0 = none)")
    parser.add_argument("--device", default="cpu", help="cards: where the judged cards are sampled (cpu, cuda)")
    parser.add_argument("--megapixels", type=float, default=40.0, help="memory: the large photo's size")
    args = parser.parse_args(argv)
    try:
        result = run_bench(args)
    except FileNotFoundError as error:  # --weights or --data that is not there: say so, benchmark nothing
        parser.error(str(error))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.task == "memory":  # no quality or latency row: a table of requests
        print(memory_table(result["quality"]))
        return
    print("| task | quality | p50 ms | p95 ms | threads | n | weights |\n|---|---|---|---|---|---|---|")
    print(markdown_row(result))
    if args.task == "cards":
        from tasks.cards.diffusion import fidelity_table

        print("\n" + fidelity_table(result["quality"]))


if __name__ == "__main__":
    main()
