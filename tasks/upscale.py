"""Upscale: ×2 super-resolution of photos of any size, trained on the classic "291" images (T91 + BSDS train).

    HR photo ─bicubic ×½ (PIL, antialiased)─▶ LR ─model─▶ SR (×2) ── PSNR/SSIM on Y against HR, border shaved

Three architectures, one Config field (`arch`) apart:
- "srcnn": SRCNN as in Dong et al. 2014 and the original course project: bicubic ×2 first, then 9-5-5 convolutions
  with 64 and 32 filters in HR space (the reproduction row).
- "fast": a residual network that works in LR space and upsamples once at the end with a sub-pixel convolution
  (ESPCN's `PixelShuffle`, Shi et al. 2016), the family of FSRCNN, IMDN, RFDN and SPAN: every convolution runs on
  a quarter of the pixels SRCNN's do, and it learns only what bicubic misses (a global bicubic skip, as VDSR).
- "swin2sr": transformers' `Swin2SRForImageSuperResolution` with a small `Swin2SRConfig` (upsampler
  "pixelshuffledirect"), trained from scratch with the same loop.
"""

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
from huggingface_hub import PyTorchModelHubMixin
from PIL import Image
from torch import nn
from tqdm.auto import tqdm

from tasks import hub, metrics, training
from tasks.images import IMAGE_SUFFIXES, load_layers, load_rgb
from tasks.tiling import tiled
from tasks.training import count_parameters

logger = logging.getLogger(__name__)

TASK = "upscale"
PHOTOS = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "photos"
DEFAULT_DATA = f"{PHOTOS / 't91'},{PHOTOS / 'bsds-train'}"
DEFAULT_VAL = str(PHOTOS / "bsds-test")
ARCHS = ("srcnn", "fast", "swin2sr")


@dataclass
class Config(training.TrainingArgs):
    data: str = DEFAULT_DATA  # training photos: image folders, comma-separated (default: T91 + BSDS train, "291")
    val_data: str = DEFAULT_VAL  # validation photos for model selection (BSDS test); never Set5/Set14
    output_dir: str = "outputs/upscale"
    arch: str = "fast"  # "srcnn" (the original), "fast" (LR-space residual net), "swin2sr" (transformers)
    scale: int = 2  # the upscaling factor
    patch_size: int = 96  # HR side of a training patch (the LR patch is patch_size / scale)
    patches_per_image: int = 8  # random patches of each training photo per epoch (flips and 90° turns)
    width: int = 32  # fast: channels of the LR-space features
    blocks: int = 4  # fast: residual blocks (each conv-ReLU-conv)
    swin_embed_dim: int = 48  # swin2sr: the transformer's width
    swin_depths: tuple[int, ...] = (4, 4)  # swin2sr: Swin layers per residual group
    swin_heads: tuple[int, ...] = (4, 4)  # swin2sr: attention heads per group
    swin_window: int = 8  # swin2sr: window side (inputs are padded to a multiple of it)
    num_epochs: int = 100
    train_batch_size: int = 16
    learning_rate: float = 1e-3  # Adam; SRCNN's original: 1e-4
    lr_warmup_steps: int = 100
    max_grad_norm: float = 0.0  # no clipping (L1 loss is bounded)
    val_images: int = 50  # validation photos scored per epoch (the first N of val_data, sorted)
    checkpointing_steps: int = 500


# ---------------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------------


def folder_photos(data: str) -> list[Path]:
    """The image files of one or more folders (comma-separated), sorted within each.

    Raises:
        FileNotFoundError: a folder that is not there, or no image in any.
    """
    paths = []
    for folder in (part for part in data.split(",") if part):
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"{folder} is not a folder of photos.")
        paths += sorted(path for path in Path(folder).iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"No photos in {data!r}.")
    return paths


def crop_to_multiple(image: Image.Image, scale: int) -> Image.Image:
    """The top-left crop whose sides are multiples of `scale` (the SR convention before downscaling)."""
    return image.crop((0, 0, image.width - image.width % scale, image.height - image.height % scale))


def downscale(image: Image.Image, scale: int) -> Image.Image:
    """The low-resolution input: PIL's bicubic resize by 1/scale, antialiased (PIL always filters when reducing).
    Published tables use MATLAB's imresize, whose kernel differs: Set5 ×2 bicubic reads 33.67 dB here, 33.66 there."""
    return image.resize((image.width // scale, image.height // scale), Image.Resampling.BICUBIC)


def bicubic_upscale(image: Image.Image, scale: int) -> Image.Image:
    """The baseline: PIL's bicubic resize by `scale`."""
    return image.resize((image.width * scale, image.height * scale), Image.Resampling.BICUBIC)


def to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL → (1, 3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]


def training_patches(photos: list[np.ndarray], indices: torch.Tensor, cfg: Config,
                     generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(LR (B, 3, p/s, p/s), HR (B, 3, p, p)) float in [0, 1]: a random HR patch of photo index % len(photos), a
    random flip and quarter turn, its LR made by `downscale`."""
    lows, highs = [], []
    for index in indices.tolist():
        photo = photos[index % len(photos)]
        height, width = photo.shape[:2]
        size = min(cfg.patch_size, height - height % cfg.scale, width - width % cfg.scale)
        top = int(torch.randint(0, height - size + 1, (1,), generator=generator))
        left = int(torch.randint(0, width - size + 1, (1,), generator=generator))
        patch = photo[top:top + size, left:left + size]
        if bool(torch.rand(1, generator=generator) < 0.5):
            patch = patch[:, ::-1]
        patch = np.ascontiguousarray(np.rot90(patch, int(torch.randint(0, 4, (1,), generator=generator))))
        high = Image.fromarray(patch)
        if size != cfg.patch_size:  # a photo smaller than a patch: stretched to it
            high = high.resize((cfg.patch_size, cfg.patch_size), Image.Resampling.BICUBIC)
        lows.append(to_tensor(downscale(high, cfg.scale))[0])
        highs.append(to_tensor(high)[0])
    return torch.stack(lows), torch.stack(highs)


# ---------------------------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------------------------


class SRCNN(nn.Module, PyTorchModelHubMixin, library_name="darkroom", license="mit", tags=["super-resolution"]):
    """SRCNN (Dong et al. 2014, 9-5-5 with 64/32 filters) on the bicubic ×scale upsampled input, RGB.

        LR (B,3,h,w) ─bicubic ×s─▶ (B,3,sh,sw) ─conv9 64─ReLU─conv5 32─ReLU─conv5 3─▶ SR (B,3,sh,sw)
    """

    def __init__(self, scale: int = 2):
        super().__init__()
        self.scale = scale
        self.body = nn.Sequential(nn.Conv2d(3, 64, 9, padding=4), nn.ReLU(inplace=True),
                                  nn.Conv2d(64, 32, 5, padding=2), nn.ReLU(inplace=True), nn.Conv2d(32, 3, 5, padding=2))

    @property
    def receptive_radius(self) -> int:
        """LR pixels around a pixel that reach its output: (4 + 2 + 2) HR pixels, / scale, + bicubic's 2."""
        return -(-8 // self.scale) + 2

    def forward(self, low: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(low, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return self.body(up)


class ResidualBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(width, width, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class FastSR(nn.Module, PyTorchModelHubMixin, library_name="darkroom", license="mit", tags=["super-resolution"]):
    """A residual net in LR space with one sub-pixel upsampling at the end and a global bicubic skip.

        LR ─conv3 w─[conv3─ReLU─conv3 + skip] × blocks─conv3 + skip─conv3 3·s²─PixelShuffle s─(+ bicubic ×s of LR)─▶ SR
    """

    def __init__(self, scale: int = 2, width: int = 32, blocks: int = 4):
        super().__init__()
        self.scale, self.blocks = scale, blocks
        self.head = nn.Conv2d(3, width, 3, padding=1)
        self.body = nn.Sequential(*[ResidualBlock(width) for _ in range(blocks)], nn.Conv2d(width, width, 3, padding=1))
        self.tail = nn.Sequential(nn.Conv2d(width, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale))

    @property
    def receptive_radius(self) -> int:
        """LR pixels: head 1, 2 per block, body's conv 1, tail 1; bicubic's 2 are inside that."""
        return 3 + 2 * self.blocks

    def forward(self, low: torch.Tensor) -> torch.Tensor:
        features = self.head(low)
        features = features + self.body(features)
        bicubic = F.interpolate(low, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return bicubic + self.tail(features)


def build(cfg: Config) -> nn.Module:
    """The model `cfg.arch` names."""
    if cfg.arch == "srcnn":
        return SRCNN(scale=cfg.scale)
    if cfg.arch == "fast":
        return FastSR(scale=cfg.scale, width=cfg.width, blocks=cfg.blocks)
    if cfg.arch == "swin2sr":
        from transformers import Swin2SRConfig, Swin2SRForImageSuperResolution

        config = Swin2SRConfig(image_size=cfg.patch_size // cfg.scale, embed_dim=cfg.swin_embed_dim,
                               depths=list(cfg.swin_depths), num_heads=list(cfg.swin_heads),
                               window_size=cfg.swin_window, upscale=cfg.scale, upsampler="pixelshuffledirect",
                               img_range=1.0, mlp_ratio=2.0)
        return Swin2SRForImageSuperResolution(config)
    raise ValueError(f"Unknown arch {cfg.arch!r}; choose one of {', '.join(ARCHS)}.")


def forward(model: nn.Module, low: torch.Tensor) -> torch.Tensor:
    """SR (B, 3, s·h, s·w) for LR (B, 3, h, w), whatever the architecture (Swin2SR's output is `.reconstruction`)."""
    out = model(low)
    return out.reconstruction if hasattr(out, "reconstruction") else out


def multiple_of(model: nn.Module) -> int:
    """What the model needs the input's sides to be multiples of (Swin2SR: its window)."""
    return int(getattr(getattr(model, "config", None), "window_size", 1))


def context_of(model: nn.Module) -> int:
    """LR pixels of context each tile needs: the receptive radius for the CNNs; two windows for Swin2SR (whose
    shifted windows reach further, so its tiles are near, not exactly, the one-pass result)."""
    return int(getattr(model, "receptive_radius", 2 * multiple_of(model)))


# ---------------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------------


def train(cfg: Config, accelerator: Accelerator | None = None) -> hub.Served[nn.Module]:
    """Train `cfg.arch` on random patches (L1 loss), keep the weights with the best validation PSNR on Y, write
    `cfg.output_dir`.

    Returns:
        `load(cfg.output_dir)`.
    """
    accelerator = training.make_accelerator(cfg, accelerator)
    output_dir = Path(cfg.output_dir)
    set_seed(cfg.seed)
    if cfg.patch_size % cfg.scale:
        raise ValueError(f"patch_size must be a multiple of scale ({cfg.scale}); got {cfg.patch_size}.")
    photos = [np.asarray(load_rgb(path)) for path in folder_photos(cfg.data)]
    val_paths = folder_photos(cfg.val_data)[:cfg.val_images]

    model = build(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    n_items = len(photos) * cfg.patches_per_image
    scheduler, total_steps = training.lr_schedule(optimizer, cfg, training.steps_per_epoch(n_items, cfg))
    state = training.LoopState(extra={"arch": cfg.arch, **training.loop_shape(cfg, accelerator)})
    best_path = output_dir / training.CHECKPOINTS / "best.safetensors"
    checkpoint = training.find_checkpoint(output_dir, cfg.resume_from_checkpoint)
    if checkpoint is not None:
        state = training.load_checkpoint(checkpoint, model, optimizer, scheduler,
                                         {"arch": cfg.arch, **training.loop_shape(cfg, accelerator)})
        state.resumed.append({"from": checkpoint.name})
        logger.info("Resumed from %s at step %d (epoch %d).", checkpoint, state.global_step, state.epoch)
    else:
        best_path.unlink(missing_ok=True)
    model, optimizer = accelerator.prepare(model, optimizer)
    logger.info("***** upscale: training %s *****\n  %d photos × %d patches, %d parameters\n  epochs = %d, steps = %d, "
                "batch = %d, lr = %g, device = %s", cfg.arch, len(photos), cfg.patches_per_image,
                count_parameters(model), cfg.num_epochs, total_steps, cfg.train_batch_size, cfg.learning_rate,
                accelerator.device)
    progress = tqdm(total=total_steps, initial=state.global_step, disable=not accelerator.is_local_main_process,
                    desc=f"upscale {cfg.arch}")

    def save() -> None:
        if accelerator.is_main_process:
            training.save_checkpoint(output_dir, state.global_step, accelerator.unwrap_model(model), optimizer,
                                     scheduler, state, cfg.checkpoints_total_limit)

    losses: list[float] = []
    started = time.perf_counter()
    while state.epoch < cfg.num_epochs and state.global_step < total_steps:
        model.train()
        for batch in training.epoch_batches(n_items, cfg, state, accelerator, cfg.seed):
            if state.global_step >= total_steps:
                break
            low, high = training_patches(photos, batch.indices, cfg, torch.Generator().manual_seed(batch.draw))
            low, high = low.to(accelerator.device), high.to(accelerator.device)
            with training.accumulating(accelerator, model, batch):
                loss = F.l1_loss(forward(model, low).float(), high)
                training.backward_step(accelerator, model, loss, batch, optimizer, scheduler, cfg)
            training.record_batch(state, progress, batch, losses, loss.item(), scheduler.get_last_lr()[0])
            if batch.sync and state.global_step % cfg.checkpointing_steps == 0:
                save()
        else:
            score = score_folder(accelerator.unwrap_model(model), val_paths, cfg.scale)
            logger.info("epoch %d: validation PSNR-Y %.3f dB", state.epoch, score["psnr_y"])
            training.end_epoch(state, value=score["psnr_y"], val_loss=-score["psnr_y"],
                               improved=state.is_better(score["psnr_y"], maximize=True),
                               model=accelerator.unwrap_model(model), best_path=best_path)
            save()
    progress.close()
    seconds = time.perf_counter() - started

    model = training.best_model(accelerator.unwrap_model(model), best_path)
    if accelerator.is_main_process:
        write_output(model, cfg, state, seconds)
    accelerator.wait_for_everyone()
    return load(str(output_dir))


def write_output(model: nn.Module, cfg: Config, state: training.LoopState, seconds: float) -> None:
    output_dir = Path(cfg.output_dir)
    model.save_pretrained(output_dir)
    (output_dir / "upscale_config.json").write_text(json.dumps({"arch": cfg.arch, "scale": cfg.scale}, indent=2))
    training.plot_training_curves(state.history, output_dir / "training_curves.png", f"upscale {cfg.arch}: L1",
                                  "validation: -PSNR-Y (dB, per epoch)")
    summary = {"arch": cfg.arch, "parameters": count_parameters(model), "best_val_psnr_y": state.best_metric,
               "best_epoch": state.best_epoch, "epochs_trained": state.epoch, "steps": state.global_step,
               "training_seconds": round(seconds, 1), "resumed": state.resumed, "config": asdict(cfg)}
    (output_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
    training.write_model_card(output_dir, title=f"Darkroom Upscale: ×{cfg.scale} super-resolution ({cfg.arch})",
                              body=f"A {summary['parameters']:,}-parameter `{cfg.arch}` network. Best validation "
                                   f"PSNR on Y {training.figure(state.best_metric, '.3f')} dB (bsds-test, "
                                   f"epoch {state.best_epoch}).\n\n{training.config_table(cfg)}\n",
                              metadata={"license": "mit", "library_name": "darkroom", "pipeline_tag": "image-to-image",
                                        "tags": ["super-resolution", "darkroom"]})


# ---------------------------------------------------------------------------------------------------------------------
# Serving and scoring
# ---------------------------------------------------------------------------------------------------------------------


def load(source: str | None = None) -> hub.Served[nn.Module]:
    """The upscaler: `source` > $DARKROOM_UPSCALE_MODEL > bundled; CPU, eval mode."""
    weights = hub.resolve(TASK, source)
    arch = hub.read_json(weights.path, "upscale_config.json").get("arch", "fast")
    if arch == "swin2sr":
        from transformers import Swin2SRForImageSuperResolution

        model = Swin2SRForImageSuperResolution.from_pretrained(weights.path)
    else:
        model = {"srcnn": SRCNN, "fast": FastSR}[arch].from_pretrained(weights.path, map_location="cpu", strict=True)
    return hub.Served(model=model.eval(), weights=weights, metrics=hub.read_json(weights.path, "metrics.json"),
                      facts={"arch": arch})


@torch.inference_mode()
def upscale_image(model: nn.Module, low: Image.Image, tile: int = 256) -> Image.Image:
    """One ×scale pass over an RGB image of any size, in tiles."""
    out = tiled(lambda x: forward(model, x), to_tensor(low), scale=model_scale(model), tile=tile,
                context=context_of(model), multiple=multiple_of(model), dtype=torch.uint8)
    return Image.fromarray(out[0].permute(1, 2, 0).numpy())


def model_scale(model: nn.Module) -> int:
    return int(getattr(model, "scale", None) or model.config.upscale)


MAX_OUTPUT_PIXELS = 100_000_000  # a result larger than this is refused before any work (a 24 MP photo at ×2 fits)


@dataclass
class Upscaled:
    """What `predict` returns: the model's result and bicubic's, at the same size (RGBA when the upload had
    transparency: its alpha is upscaled with bicubic), and a note for the person when there is something to say."""

    image: Image.Image
    bicubic: Image.Image
    factor: int
    note: str | None = None


def predict(served: hub.Served[nn.Module], image: Image.Image | str, passes: int = 1) -> Upscaled:
    """Upscale one photo of any size by the model's scale, once or twice (×2, or ×4 as two ×2 passes).

    Args:
        served: what `load` or `train` returned.
        image: a PIL image or anything `images.load_layers` accepts; EXIF-upright, transparency kept apart.
        passes: 1 or 2.

    Returns:
        Upscaled at (width, height) × scale^passes.

    Raises:
        ValueError: passes not 1 or 2; a result over MAX_OUTPUT_PIXELS; an image `load_layers` refuses.
    """
    if passes not in (1, 2):
        raise ValueError(f"passes must be 1 (×2) or 2 (×4); got {passes}.")
    layers = load_layers(image)
    factor = model_scale(served.model) ** passes
    width, height = layers.rgb.width * factor, layers.rgb.height * factor
    if width * height > MAX_OUTPUT_PIXELS:
        raise ValueError(f"The result would be {width}×{height} = {width * height / 1e6:.0f} megapixels; the limit is "
                         f"{MAX_OUTPUT_PIXELS / 1e6:.0f}. Upload a smaller photo, or ask for ×2 instead of ×4.")
    result = layers.rgb
    for _ in range(passes):
        result = upscale_image(served.model, result)
    bicubic = layers.rgb.resize((width, height), Image.Resampling.BICUBIC)
    if layers.alpha is not None:
        alpha = layers.alpha.resize((width, height), Image.Resampling.BICUBIC)
        result, bicubic = result.convert("RGBA"), bicubic.convert("RGBA")
        result.putalpha(alpha)
        bicubic.putalpha(alpha)
    note = "Your image had more than 8 bits per channel; it was upscaled at 8." if layers.deep else None
    return Upscaled(image=result, bicubic=bicubic, factor=factor, note=note)


def score_folder(model: nn.Module, paths: list[Path], scale: int) -> dict[str, float]:
    """Mean PSNR and SSIM on Y (border of `scale` shaved) of the model and of bicubic over HR photos."""
    scores: dict[str, list[float]] = {"psnr_y": [], "ssim_y": [], "bicubic_psnr_y": [], "bicubic_ssim_y": []}
    with training.evaluating(model):
        for path in paths:
            high = crop_to_multiple(load_rgb(path), scale)
            low = downscale(high, scale)
            truth = np.asarray(high)
            for name, result in (("", upscale_image(model, low)), ("bicubic_", bicubic_upscale(low, scale))):
                scores[f"{name}psnr_y"].append(metrics.psnr_y(np.asarray(result), truth, shave=scale))
                scores[f"{name}ssim_y"].append(metrics.ssim_y(np.asarray(result), truth, shave=scale))
    return {key: float(np.mean(values)) for key, values in scores.items()} | {"n": float(len(paths))}


def evaluate(served: hub.Served[nn.Module], data: str = str(PHOTOS / "set5")) -> dict[str, float]:
    """Mean PSNR and SSIM on Y over the HR photos of `data`, the model's and bicubic's."""
    return score_folder(served.model, folder_photos(data), model_scale(served.model))
