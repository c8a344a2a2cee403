"""Upscale: ×2 super-resolution of photos of any size, trained on the classic "291" images (T91 + BSDS train).

    HR photo ─bicubic ×½ (PIL, antialiased)─▶ LR ─model─▶ SR (×2) ── PSNR/SSIM on Y against HR, border shaved

Three architectures, one Config field (`arch`) apart:
- "srcnn": SRCNN as in the original course project: bicubic ×2 first, then 9-5-5 convolutions with 64 and 32
  filters in HR space on RGB (Dong et al.'s TPAMI 2016 variant; their ECCV 2014 net was 9-1-5 on Y): the
  reproduction row.
- "fast": a residual network that works in LR space and upsamples once at the end with a sub-pixel convolution
  (ESPCN's `PixelShuffle`, Shi et al. 2016), the family of FSRCNN, IMDN, RFDN and SPAN: every convolution runs on
  a quarter of the pixels SRCNN's do, and it learns a residual over a global bicubic skip (as VDSR; torch's bicubic,
  a = −0.75, a little sharper than the PIL kernel, a = −0.5, that makes the LR inputs).
- "swin2sr": transformers' `Swin2SRForImageSuperResolution` with a small `Swin2SRConfig` (upsampler
  "pixelshuffledirect"), trained from scratch with the same loop.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from dataclasses import fields as dataclass_fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from huggingface_hub import PyTorchModelHubMixin
from PIL import Image, ImageFilter
from torch import nn
from tqdm.auto import tqdm

from tasks import hub, metrics, training
from tasks.images import MAX_PIXELS, load_layers, load_rgb, photo_sources
from tasks.tiling import tiled
from tasks.training import count_parameters

logger = logging.getLogger(__name__)

TASK = "upscale"
PHOTOS = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "photos"
DEFAULT_DATA = f"{PHOTOS / 't91'},{PHOTOS / 'bsds-train'}"
DEFAULT_VAL = str(PHOTOS / "bsds-test")
ARCHS = ("srcnn", "fast", "swin2sr")
REPORT_SETS = {"set5": "Set5", "set14": "Set14", "bsds-test": "BSDS test"}  # folders under PHOTOS the table scores


@dataclass
class Config(training.TrainingArgs):
    data: str = DEFAULT_DATA  # training photos: folders or datasets ids (owner/name[:split]), comma-separated
    val_data: str = DEFAULT_VAL  # validation photos that select the epoch (BSDS test); never Set5/Set14
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
    max_grad_norm: float = 0.0  # no clipping (the SR literature's L1 recipes do not clip)
    val_images: int = 50  # validation photos scored per epoch (the first N of val_data, sorted)
    lr_blur: float = 0.0  # σ (LR pixels) of a Gaussian blur after the bicubic downscale, for inputs softer than that
    # (the Cards cascade: the DDPM's 80×64 samples are softer than bicubic-reduced renders); 0 = plain bicubic
    checkpointing_steps: int = 500


# ---------------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------------


def crop_to_multiple(image: Image.Image, scale: int) -> Image.Image:
    """The top-left crop whose sides are multiples of `scale` (the SR convention before downscaling)."""
    return image.crop((0, 0, image.width - image.width % scale, image.height - image.height % scale))


def downscale(image: Image.Image, scale: int, blur: float = 0.0) -> Image.Image:
    """The low-resolution input: PIL's bicubic resize by 1/scale, antialiased (PIL always filters when reducing), then
    with `blur` > 0 a Gaussian blur of that σ in LR pixels (PIL's GaussianBlur).
    Published tables use MATLAB's imresize, whose kernel differs: Set5 ×2 bicubic reads 33.67 dB here, 33.66 there."""
    low = image.resize((image.width // scale, image.height // scale), Image.Resampling.BICUBIC)
    return low.filter(ImageFilter.GaussianBlur(blur)) if blur > 0 else low


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
        lows.append(to_tensor(downscale(high, cfg.scale, cfg.lr_blur))[0])
        highs.append(to_tensor(high)[0])
    return torch.stack(lows), torch.stack(highs)


# ---------------------------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------------------------


class SRCNN(nn.Module, PyTorchModelHubMixin, library_name="darkroom", license="mit", tags=["super-resolution"]):
    """SRCNN (Dong et al., TPAMI 2016's 9-5-5 with 64/32 filters) on the bicubic ×scale upsampled input, RGB.

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


CNN_CLASSES = {"srcnn": SRCNN, "fast": FastSR}  # arch -> class (Swin2SR is transformers')


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
    """LR pixels of context each tile needs: the receptive radius for the CNNs (exact); six windows for Swin2SR, whose
    shifted windows chain without a hard limit: measured on the default config, tiles differ from the one-pass
    result by 1.9/255 with two windows, 0.01/255 with four and 0.0001/255 with six (tiles of 32 LR pixels)."""
    return int(getattr(model, "receptive_radius", 6 * multiple_of(model)))


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
    photos = [np.asarray(load_rgb(source)) for source in photo_sources(cfg.data)]
    val_photos = photo_sources(cfg.val_data, split="test")[:cfg.val_images]

    model = build(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    n_items = len(photos) * cfg.patches_per_image
    scheduler, total_steps = training.lr_schedule(optimizer, cfg, training.steps_per_epoch(n_items, cfg))
    shape = {"arch": cfg.arch, **training.loop_shape(cfg, accelerator)}
    run = training.Run(cfg, accelerator, model, optimizer, scheduler, shape)
    state = run.state
    model, optimizer = accelerator.prepare(model, optimizer)
    logger.info("***** upscale: training %s *****\n  %d photos × %d patches, %d parameters\n  epochs = %d, steps = %d, "
                "batch = %d, lr = %g, device = %s", cfg.arch, len(photos), cfg.patches_per_image,
                count_parameters(model), cfg.num_epochs, total_steps, cfg.train_batch_size, cfg.learning_rate,
                accelerator.device)
    progress = tqdm(total=total_steps, initial=state.global_step, disable=not accelerator.is_local_main_process,
                    desc=f"upscale {cfg.arch}")

    losses: list[float] = []
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
                run.save()
        else:
            training.sync_buffers(accelerator, model)  # every process validates the same weights
            score = score_photos(accelerator.unwrap_model(model), val_photos, cfg.scale, cfg.lr_blur)
            logger.info("epoch %d: validation PSNR-Y %.3f dB", state.epoch, score["psnr_y"])
            state.history.setdefault("val_seconds", []).append(run.elapsed())
            run.end_epoch(value=score["psnr_y"], val_loss=-score["psnr_y"],
                          improved=state.is_better(score["psnr_y"], maximize=True), model=accelerator.unwrap_model(model))
            run.save()
    progress.close()

    model = run.finish(model)
    if accelerator.is_main_process:
        write_output(model, cfg, state, device=str(accelerator.device))
    accelerator.wait_for_everyone()
    return load(str(output_dir))


def write_output(model: nn.Module, cfg: Config, state: training.LoopState, device: str = "cpu") -> None:
    """The served folder: weights + config.json, upscale_config.json (arch, scale), metrics.json (the run's summary
    and its validation curve against training time), training_curves.png and the model card."""
    output_dir = Path(cfg.output_dir)
    training.save_atomically(model.save_pretrained, output_dir)
    (output_dir / "upscale_config.json").write_text(json.dumps({"arch": cfg.arch, "scale": cfg.scale}, indent=2))
    training.plot_training_curves(state.history, output_dir / "training_curves.png", f"upscale {cfg.arch}: L1",
                                  "validation: -PSNR-Y (dB, per epoch)")
    summary = {"arch": cfg.arch, "parameters": count_parameters(model), "best_val_psnr_y": state.best_metric,
               "best_epoch": state.best_epoch, "epochs_trained": state.epoch, "steps": state.global_step,
               "training_seconds": round(state.seconds, 3), "device": device,
               "val_psnr_y": [-value for value in state.history["val_loss"]],
               "val_seconds": [round(value, 3) for value in state.history.get("val_seconds", [])],
               "resumed": state.resumed, "config": asdict(cfg)}
    (output_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
    write_card(output_dir)


ARCH_NAMES = {"srcnn": "SRCNN 9-5-5, Dong et al. TPAMI 2016, as in the original project",
              "fast": "an LR-space residual CNN with a sub-pixel upsampler and a bicubic skip",
              "swin2sr": "transformers' Swin2SR, Conde et al. 2022, small and from scratch"}


DESIGN = {"fast": """
## Design
Every convolution runs on the low-resolution grid (a quarter of SRCNN's pixels at ×2, which upsamples first), and
one sub-pixel convolution (`nn.PixelShuffle`, ESPCN) makes the ×{scale} output at the end; a global bicubic skip
(VDSR) leaves the net only what bicubic misses, so it trains fast from scratch. The blocks are EDSR's plain
conv-ReLU-conv residuals without batch norm ({blocks} blocks of width {width}: `--blocks`, `--width`); IMDN/RFDN's
channel distillation and SPAN's parameter-free attention refine this same skeleton and were not tried here.
"""}


def write_card(folder: str | Path, comparison: dict | None = None) -> None:
    """folder/README.md, from its metrics.json: the net, its training and selection, the metric; with `comparison`
    (the result of `python -m bench upscale-archs`) the architecture table and `comparison.png` too."""
    folder = Path(folder)
    summary = hub.read_json(folder, "metrics.json")
    cfg = summary["config"]
    hours = summary["training_seconds"] / 3600
    data = " + ".join(Path(part).name for part in cfg["data"].split(",") if part)
    note = f"\n- {summary['note']}" if summary.get("note") else ""  # what the run's history needs said
    subject = summary.get("subject") or ("photos (tiled inference: any size up to the app's limits, 25 MP for ×2 and "
                                         "6 MP for ×4 as two passes; transparency is upscaled apart with bicubic, gray "
                                         "photos come back as RGB)")  # what else it was trained for, e.g. Cards'
    blur = (f", then a Gaussian blur of σ {cfg['lr_blur']:g} LR pixels (`--lr_blur`: inputs softer than bicubic's)"
            if cfg.get("lr_blur") else "")
    body = f"""The `{summary['arch']}` network ({ARCH_NAMES[summary['arch']]}), {summary['parameters']:,} parameters,
for ×{cfg['scale']} super-resolution of {subject}.

## Training
- Data: random {cfg['patch_size']}×{cfg['patch_size']} patches of {data} ({cfg['patches_per_image']} per photo per
  epoch) with random flips and quarter turns.
- Low-resolution input: PIL's bicubic resize by 1/{cfg['scale']} (`Image.BICUBIC`, antialiased), made on the fly{blur}.
  Published tables use MATLAB's `imresize`, whose kernel differs by a few hundredths of a dB: Set5 ×2 bicubic reads
  33.67 dB here, 33.66 dB in the papers.
- L1 loss; Adam, lr {cfg['learning_rate']:g} with {cfg['lr_warmup_steps']} warm-up steps and cosine decay; batch
  {cfg['train_batch_size']}; {summary['steps']:,} steps ({summary['epochs_trained']} epochs) in {hours:.2f} h on
  `{summary.get('device', 'cpu')}` (wall clock; on this project's 2 CPU cores, shared with other work).{note}
- Selection: the epoch with the best PSNR on Y over the first {cfg['val_images']} photos of
  {' + '.join(Path(part).name for part in cfg['val_data'].split(',') if part)} (epoch {summary['best_epoch']}: {training.figure(summary['best_val_psnr_y'], '.3f')}
  dB). Set5 and Set14 chose nothing.

## Metric
PSNR and SSIM on the Y channel of YCbCr (ITU-R BT.601, 16–235), a border of {cfg['scale']} pixels shaved, the HR
photo cropped to a multiple of {cfg['scale']}: the convention of the super-resolution literature (`tasks/metrics.py`).
"""
    if summary["arch"] in DESIGN:
        body += DESIGN[summary["arch"]].format(**cfg)
    if comparison is not None:
        body += "\n" + comparison_section(comparison, folder)
    body += "\n![Training curves](training_curves.png)\n"
    known = {item.name for item in dataclass_fields(Config)}
    body += "\n## Config\n" + training.config_table(Config(**{k: v for k, v in cfg.items() if k in known})) + "\n"
    training.write_model_card(folder, title=f"Darkroom Upscale: ×{cfg['scale']} super-resolution ({summary['arch']})",
                              body=body, metadata={"license": "mit", "library_name": "darkroom",
                                                   "pipeline_tag": "image-to-image",
                                                   "tags": ["super-resolution", "darkroom"]})


def comparison_section(result: dict, folder: Path) -> str:
    """The model card's architecture table (and crop figure, written to folder/comparison.png) from the bench's
    upscale-archs result."""
    sets = list(result["data"])
    header = "| net | parameters | " + " | ".join(f"{name} PSNR / SSIM" for name in sets) + (
        " | 512→1024 p50 (s) | training (h) | best val PSNR-Y within the shortest run's time |")
    rule = "|---" * (len(sets) + 5) + "|"
    bicubic = result["bicubic"]
    rows = ["| bicubic | – | " + " | ".join(f"{bicubic[name]['psnr_y']:.2f} / {bicubic[name]['ssim_y']:.4f}"
                                          for name in sets) + " | – | – | – |"]
    for row in result["rows"]:
        within = row.get("best_val_psnr_y_within")
        rows.append(f"| {row['arch']}{' (serving)' if row['serving'] else ''} | {row['parameters']:,} | "
                    + " | ".join(f"{row[name]['psnr_y']:.2f} / {row[name]['ssim_y']:.4f}" for name in sets)
                    + f" | {row['latency_ms']['p50'] / 1000:.2f} | {row['training_seconds'] / 3600:.2f} | "
                    + (f"{within:.3f}" if within is not None else "–") + " |")
    comparison_figure(folder, folder / "comparison.png")
    counts = ", ".join(f"{name} {int(result['rows'][0][name]['n'])}" for name in sets)
    caveat = (" Set14 here is 13 photos (lenna removed), and its bridge.png is grayscale, scored like the rest "
              "through RGB → Y." if "Set14" in sets else "")
    reached = {row["arch"]: row.get("best_val_psnr_y_within") for row in result["rows"]
               if row.get("best_val_psnr_y_within") is not None}
    verdict = f" {equal_time_verdict(reached)}" if len(reached) > 1 else ""
    return f"""## Architectures
Every net bundled in this folder (the serving one and its sub-folders), scored in one run:
`{result['command']}` ({result['threads']} threads; dB, means over each folder: {counts} photos).{caveat} The last
column is each run's best validation PSNR-Y (first {result['val_images']} photos of {result['val_data']}) reached
within {result['equal_seconds'] / 60:.0f} minutes of training, the shortest run's length: the comparison at equal
CPU time.{verdict}

{header}
{rule}
{chr(10).join(rows)}

![Crops: bicubic, each net, the original](comparison.png)
"""


def figure_photo() -> Image.Image:
    """The crop figure's HR photo: scikit-image's `chelsea` (CC0, 451×300), which may ship in a model card, unlike
    Set5, Set14 or BSDS photos."""
    from skimage import data

    return Image.fromarray(data.chelsea())


def equal_time_verdict(reached: dict[str, float]) -> str:
    """The sentence the equal-time column supports: which net is ahead, whether Swin2SR beats the CNNs, and how far
    the budget's conditions carry the conclusion."""
    order = sorted(reached.items(), key=lambda item: -item[1])
    best = order[0][0]
    if best == "swin2sr":
        swin = "Swin2SR beats the CNNs at equal CPU time here."
    elif "swin2sr" in reached:
        swin = "Swin2SR does not beat the CNN at equal CPU time here."
    else:
        swin = ""
    return (f"At that budget `{best}` is ahead ({', '.join(f'{arch} {value:.3f} dB' for arch, value in order)}). "
            f"{swin} The budget is wall-clock time on 2 shared CPU cores, validation included (slowest for Swin2SR), "
            "with one recipe for all (Adam 1e-3, warm-up, cosine); a longer budget, or SwinIR's own recipe (lr 2e-4 "
            "and far longer schedules), may order them differently.")


def comparison_figure(folder: Path, path: Path, box: int = 80) -> None:
    """A crop of `figure_photo` as bicubic, each net of `folder` and the original side by side, nearest-neighbour
    enlarged, each titled with the whole photo's PSNR-Y."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    high = crop_to_multiple(figure_photo(), 2)
    low = downscale(high, 2)
    truth = np.asarray(high)
    panels = [("bicubic", bicubic_upscale(low, 2))]
    nets = list(bundled_archs(folder).items())
    for arch, arch_folder in nets[1:] + nets[:1]:  # the references, then the serving net beside the original
        panels.append((arch, upscale_image(load(str(arch_folder)).model, low)))
    panels.append(("original", high))
    top, left = (high.height - box) // 2, (high.width - box) // 2
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.9))
    for ax, (name, image) in zip(axes, panels):
        ax.imshow(np.asarray(image)[top:top + box, left:left + box], interpolation="nearest")
        score = "" if name == "original" else f"\n{metrics.psnr_y(np.asarray(image), truth, shave=2):.2f} dB"
        ax.set_title(f"{name}{score}", fontsize=9)
        ax.axis("off")
    fig.suptitle("scikit-image's chelsea (CC0), ×2 from PIL bicubic ×½; PSNR-Y of the whole photo", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def bundled_archs(folder: str | Path) -> dict[str, Path]:
    """The nets an upscale folder holds, arch → folder: itself (the serving net) first, then each sub-folder with an
    upscale_config.json (e.g. srcnn/ for the bench's reference row)."""
    folder = Path(folder)
    nets = {hub.read_json(folder, "upscale_config.json").get("arch", "fast"): folder}
    for sub in sorted(path for path in folder.iterdir() if (path / "upscale_config.json").is_file()):
        nets.setdefault(hub.read_json(sub, "upscale_config.json")["arch"], sub)
    return nets


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
        model = CNN_CLASSES[arch].from_pretrained(weights.path, map_location="cpu", strict=True)
    return hub.Served(model=model.eval(), weights=weights, metrics=hub.read_json(weights.path, "metrics.json"),
                      facts={"arch": arch})


@torch.inference_mode()
def upscale_image(model: nn.Module, low: Image.Image, tile: int = 256) -> Image.Image:
    """One ×scale pass over an RGB image of any size, in tiles, on the model's device (the result on the CPU)."""
    device = next(model.parameters()).device
    out = tiled(lambda x: forward(model, x.to(device)).cpu(), to_tensor(low), scale=model_scale(model), tile=tile,
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
        ValueError: passes not 1 or 2; a photo whose result would be over MAX_OUTPUT_PIXELS (refused before
            decoding); an image `load_layers` refuses.
    """
    if passes not in (1, 2):
        raise ValueError(f"passes must be 1 (×2) or 2 (×4); got {passes}.")
    factor = model_scale(served.model) ** passes
    largest = min(MAX_PIXELS, MAX_OUTPUT_PIXELS // factor**2)  # the largest photo whose result fits
    try:
        layers = load_layers(image, max_pixels=largest)  # a file is refused from its header, before decoding
    except ValueError as error:
        if str(error).startswith("The image is "):  # too many pixels: say why the limit is what it is
            raise ValueError(f"{error} A ×{factor} result may have at most {MAX_OUTPUT_PIXELS / 1e6:.0f} megapixels"
                             + (", so ×2 takes larger photos than ×4." if passes == 2 else ".")) from error
        raise
    result = layers.rgb
    for _ in range(passes):
        result = upscale_image(served.model, result)
    bicubic = bicubic_upscale(layers.rgb, factor)
    if layers.alpha is not None:
        alpha = bicubic_upscale(layers.alpha, factor)
        result, bicubic = result.convert("RGBA"), bicubic.convert("RGBA")
        result.putalpha(alpha)
        bicubic.putalpha(alpha)
    note = "Your image had more than 8 bits per channel; it was upscaled at 8." if layers.deep else None
    return Upscaled(image=result, bicubic=bicubic, factor=factor, note=note)


def score_photos(model: nn.Module, photos: list[Path | Image.Image], scale: int, blur: float = 0.0) -> dict[str, float]:
    """Mean PSNR and SSIM on Y (`metrics.psnr_y`, `metrics.ssim_y`: border of `scale` shaved, HR cropped to a
    multiple of it), of the model and of bicubic, over HR photos (paths or PIL images) made LR by `downscale` (with
    `blur`).

    Returns:
        {"psnr_y", "ssim_y", "bicubic_psnr_y", "bicubic_ssim_y"} in dB / [0, 1], and "n", the photos scored.
    """
    scores: dict[str, list[float]] = {"psnr_y": [], "ssim_y": [], "bicubic_psnr_y": [], "bicubic_ssim_y": []}
    with training.evaluating(model):
        for photo in photos:
            high = crop_to_multiple(load_rgb(photo), scale)
            low = downscale(high, scale, blur)
            truth = np.asarray(high)
            for name, result in (("", upscale_image(model, low)), ("bicubic_", bicubic_upscale(low, scale))):
                scores[f"{name}psnr_y"].append(metrics.psnr_y(np.asarray(result), truth, shave=scale))
                scores[f"{name}ssim_y"].append(metrics.ssim_y(np.asarray(result), truth, shave=scale))
    return {key: float(np.mean(values)) for key, values in scores.items()} | {"n": float(len(photos))}


def evaluate(served: hub.Served[nn.Module], data: str = str(PHOTOS / "set5")) -> dict[str, float]:
    """`score_photos` over the HR photos `data` names (`photo_sources`; a dataset's "test" split by default).

    Raises:
        FileNotFoundError: `data` holds no photo or cannot be loaded.
    """
    return score_photos(served.model, photo_sources(data, split="test"), model_scale(served.model))
