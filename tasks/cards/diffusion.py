"""Cards: a class-conditional DDPM (diffusers `UNet2DModel`) that generates gum-stained card backs by category.

One model serves every category: the UNet's class embedding takes the category index, and an extra "any" class
(index len(CATEGORIES)) is learned by label dropout, so the model also samples without a category. The trained
folder is a `DDPMPipeline` layout (model_index.json, unet/, scheduler/) plus `cards_config.json` (the category
names), a model card, metrics and curves; so any DDPMPipeline from the Hub also loads here, and the original
project's unconditional per-category pipelines sample with the fast samplers too.

    noise x_T ──(UNet ε- or v-prediction, class c) × steps, scheduler = DDPM | DDIM | DPM-Solver++──▶ card x_0
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from diffusers import (DDIMScheduler, DDPMPipeline, DDPMScheduler, DPMSolverMultistepScheduler, RePaintScheduler,
                       UNet2DModel)
from diffusers.training_utils import EMAModel
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image, ImageDraw
from tqdm.auto import tqdm

from tasks import hub, training
from tasks.cards.options import (ANY, CASCADE_FACTORS, DEFAULT_STEPS, GUIDANCE, MAX_CARDS, MAX_GUIDANCE, SCHEDULERS,
                                 STAIN_REGIONS, STOCHASTIC, UPSCALER_FOLDER)
from tasks.cards.render import ANY_CATEGORY, CATEGORIES, render_card, render_dataset
from tasks.images import IMAGE_SUFFIXES, load_rgb

logger = logging.getLogger(__name__)

TASK = "cards"
CARDS_CONFIG = "cards_config.json"
PREDICTION_TYPES = ("epsilon", "v_prediction")


@dataclass
class Config(training.TrainingArgs):
    data: str = ""  # folder with one sub-folder per category (FULL_CARD/, ...), or a Hub dataset; "" = render cards
    render_per_category: int = 200  # with data = "": rendered training cards per category (render seed 1)
    output_dir: str = "outputs/cards"
    height: int = 80  # portrait; both sides multiples of 2^(levels-1)
    width: int = 64
    block_out_channels: tuple[int, ...] = (16, 32, 64, 64)  # per UNet level; 1.0M params, ~1.2 s/step on 2 CPU cores
    # (the original tutorial model: 128×160 with (128, 128, 256, 256, 512, 512) and attention, 113M params: GPU only)
    layers_per_block: int = 1  # resnet blocks per level
    norm_num_groups: int = 8  # GroupNorm groups; must divide every entry of block_out_channels
    attention: bool = False  # self-attention at the lowest resolution (the tutorial's 113M model has it)
    num_epochs: int = 60  # ~1,900 steps on 1,000 cards: what ~50 minutes on 2 CPU cores allow
    train_batch_size: int = 32
    learning_rate: float = 1e-3  # AdamW peak lr after warmup, cosine decay to 0 (high: the run is short)
    adam_weight_decay: float = 1e-6  # diffusers' unconditional example
    label_dropout: float = 0.15  # share of training cards shown as category "any" (learns the unconditional class)
    ema_max_decay: float = 0.999  # EMA of the weights, with warmup (inv_gamma 1, power 3/4): the saved weights
    num_train_timesteps: int = 1000  # DDPM noise levels
    beta_schedule: str = "squaredcos_cap_v2"  # cosine noise schedule: better than linear at small sizes
    # what the UNet predicts: "epsilon" (the noise, as in the tutorial) or "v_prediction" (v = √ᾱ·ε − √(1−ᾱ)·x0,
    # Salimans & Ho 2022). Near t = T of the cosine schedule ᾱ ≈ 1e-9, where an ε-model's x0 = (x − √(1−ᾱ)·ε)/√ᾱ is
    # ill-posed and v is not. At the bundled size and budget ε gave cards with random color casts (teal, pink stock)
    # and 53% category fidelity, v 100% (README). Samplers read it from the saved scheduler config.
    prediction_type: str = "v_prediction"
    save_images_epochs: int = 10  # write a sample grid (one row per category) every N epochs
    checkpointing_steps: int = 300


# ---------------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------------


def upright(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Rotate a landscape scan to portrait, then resize to (height, width)."""
    if image.width > image.height:
        image = image.transpose(Image.Transpose.ROTATE_90)
    return image.resize((size[1], size[0]), Image.Resampling.LANCZOS)


def load_training_cards(data: str, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Cards as (images (N, 3, H, W) in [-1, 1], class indices (N,)).

    Args:
        data: a folder whose sub-folders are categories (CATEGORIES, or ALL_GUM_STAIN_CARDS for "any"; `masks/` and
            other folders are skipped with a log line), or a `datasets` id whose `label` names are categories.
    """
    pictures: list[Image.Image] = []
    labels: list[int] = []
    folder = Path(data)
    if folder.is_dir():
        for sub in sorted(path for path in folder.iterdir() if path.is_dir()):
            if sub.name not in (*CATEGORIES, ANY_CATEGORY):
                logger.info("Skipping %s: not a category folder (%s).", sub, ", ".join((*CATEGORIES, ANY_CATEGORY)))
                continue
            label = class_index(CATEGORIES, sub.name if sub.name != ANY_CATEGORY else ANY)
            for path in sorted(sub.iterdir()):
                if path.suffix.lower() in IMAGE_SUFFIXES:
                    pictures.append(upright(load_rgb(path), size))
                    labels.append(label)
    else:
        import datasets

        dataset = datasets.load_dataset(data, split="train")
        names = dataset.features["label"].names
        for item in dataset:
            pictures.append(upright(item["image"].convert("RGB"), size))
            labels.append(class_index(CATEGORIES, names[item["label"]]))
    if not pictures:
        raise FileNotFoundError(f"No card images found in {data!r} (expected sub-folders {', '.join(CATEGORIES)}).")
    array = np.stack([np.asarray(picture, dtype=np.float32) for picture in pictures])  # (N, H, W, 3)
    images = torch.from_numpy(array).permute(0, 3, 1, 2).div(127.5).sub(1.0)
    return images, torch.tensor(labels)


def class_index(categories: tuple[str, ...] | None, category: str) -> int:
    """The class-embedding index of `category`; "any" (or ALL_GUM_STAIN_CARDS) is the last, unconditional class."""
    if categories is None or category in (ANY, ANY_CATEGORY):
        return len(categories or ())
    if category not in categories:
        raise ValueError(f"Unknown category {category!r}; choose one of {', '.join((*categories, ANY))}.")
    return categories.index(category)


# ---------------------------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------------------------


def build_unet(cfg: Config) -> UNet2DModel:
    """The tutorial's UNet2DModel shape at a configurable size, with a class embedding (categories + "any")."""
    levels = len(cfg.block_out_channels)
    if cfg.height % 2 ** (levels - 1) or cfg.width % 2 ** (levels - 1):
        raise ValueError(f"height and width must be multiples of 2^(levels-1) = {2 ** (levels - 1)}; "
                         f"got {cfg.height}×{cfg.width}.")
    last_down = "AttnDownBlock2D" if cfg.attention else "DownBlock2D"
    first_up = "AttnUpBlock2D" if cfg.attention else "UpBlock2D"
    return UNet2DModel(
        sample_size=(cfg.height, cfg.width),
        in_channels=3,
        out_channels=3,
        layers_per_block=cfg.layers_per_block,
        block_out_channels=tuple(cfg.block_out_channels),
        down_block_types=("DownBlock2D",) * (levels - 1) + (last_down,),
        up_block_types=(first_up,) + ("UpBlock2D",) * (levels - 1),
        norm_num_groups=cfg.norm_num_groups,
        num_class_embeds=len(CATEGORIES) + 1,
    )


@dataclass
class CardModel:
    """The served model of the Cards task (`hub.Served.model`): a denoiser and the noise schedule to sample it with.

    Attributes:
        unet: the denoiser (EMA weights), CPU, eval mode.
        scheduler_config: the training noise schedule; samplers are built from it.
        categories: the class names in embedding order, or None for an unconditional pipeline (e.g. the tutorial's).
        upscalers: the super-resolution cascade, factor → Upscale net trained on rendered cards (the folder's
            upscale-x2/, upscale-x4/: `tasks.upscale` folders); empty = cards at the model's size only.
    """

    unet: UNet2DModel
    scheduler_config: dict
    categories: tuple[str, ...] | None
    upscalers: dict[int, torch.nn.Module] = field(default_factory=dict)

    def parameters(self):
        """The denoiser's parameters (what a parameter count of the model counts)."""
        return self.unet.parameters()

    @property
    def size(self) -> tuple[int, int]:
        sample_size = self.unet.config.sample_size
        return tuple(sample_size) if isinstance(sample_size, (list, tuple)) else (sample_size, sample_size)

    @property
    def sizes(self) -> list[tuple[int, int]]:
        """(height, width) of every size the model serves: its own, then each upscaler's, smallest first."""
        height, width = self.size
        return [(height * factor, width * factor) for factor in (1, *sorted(self.upscalers))]

    def factor(self, size: tuple[int, int] | None) -> int:
        """The upscaling factor that gives `size` (None = the model's own size: 1).

        Raises:
            ValueError: a size the model does not serve, naming those it does.
        """
        if size is None or tuple(size) == self.size:
            return 1
        for factor, served_size in zip((1, *sorted(self.upscalers)), self.sizes):
            if tuple(size) == served_size:
                return factor
        raise ValueError(f"This model draws cards of {', '.join(size_name(s) for s in self.sizes)} pixels "
                         f"(height × width); got {size_name(tuple(size))}.")

    def upscale(self, pictures: list[Image.Image], factor: int) -> list[Image.Image]:
        """Cards at the model's size → × `factor` through its upscaler (1: unchanged)."""
        if factor == 1:
            return pictures
        from tasks.upscale import upscale_image

        return [upscale_image(self.upscalers[factor], picture) for picture in pictures]


def size_name(size: tuple[int, int]) -> str:
    """(160, 128) → "160×128" (height × width, the way the tab names card sizes)."""
    return f"{size[0]}×{size[1]}"


def parse_size(name: str) -> tuple[int, int]:
    """"160×128" (or "160x128") → (160, 128).

    Raises:
        ValueError: not two whole numbers joined by × or x.
    """
    parts = name.replace("x", "×").split("×")
    if len(parts) != 2 or not all(part.strip().isdigit() for part in parts):
        raise ValueError(f"A card size is height×width in pixels, e.g. 160×128; got {name!r}.")
    return int(parts[0]), int(parts[1])


def make_scheduler(scheduler_config: dict, sampler: str):
    """A fresh scheduler of kind `sampler` over the model's training noise schedule.

    Every sampler uses "trailing" timestep spacing (Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps
    are Flawed", Table 2): the first of any number of steps is the last training timestep T - 1, so even one step
    starts from pure noise. diffusers' default "leading" spacing (the spacing a DDPMScheduler saves) starts 1 step at
    t = 0, where the model is asked to denoise an image it believes is already clean, and gives back the noise.
    """
    spacing = {"timestep_spacing": "trailing"}
    if sampler == "DDPM":
        return DDPMScheduler.from_config(scheduler_config, **spacing)
    if sampler == "DDIM":
        return DDIMScheduler.from_config(scheduler_config, **spacing)
    if sampler == "DPM-Solver++":
        # DPM-Solver++(2M) SDE: the stochastic variant, which like DDPM keeps correcting the denoiser's small errors
        # (with the ODE variant, and with DDIM, a small CPU-trained model leaves visible grain at 20-50 steps).
        # x0 thresholding (Imagen's dynamic thresholding): at t = T of a cosine schedule ᾱ ≈ 2e-9, and the solver's
        # x0 estimate (x - σε)/α explodes without it; pixel-space cards live in [-1, 1]
        return DPMSolverMultistepScheduler.from_config(scheduler_config, algorithm_type="sde-dpmsolver++",
                                                       solver_order=2, thresholding=True, sample_max_value=1.0,
                                                       **spacing)
    raise ValueError(f"Unknown sampler {sampler!r}; choose one of {', '.join(SCHEDULERS)}.")


def load(source: str | None = None) -> hub.Served[CardModel]:
    """Load a DDPMPipeline folder or Hub repo: `source` > $DARKROOM_CARDS_MODEL > bundled.

    An explicit `source` that cannot be loaded raises FileNotFoundError with `hub.cannot_load`'s sentence (a person
    typed it and should know, but not whether a folder of that name exists on the server); the environment variable
    falls back to the bundled copy with a log line.
    """
    weights = hub.resolve(TASK, source)
    folder = Path(weights.path)
    try:
        if not (folder / "unet" / "config.json").is_file():
            raise FileNotFoundError(f"{weights.name} is not a DDPMPipeline folder (no unet/config.json).")
        # low_cpu_mem_usage=False: otherwise accelerate builds the UNet under a process-wide patch that puts every
        # parameter created meanwhile, in any thread, on the meta device (an app loading two models at once breaks one)
        unet = UNet2DModel.from_pretrained(folder, subfolder="unet", low_cpu_mem_usage=False).eval()
        scheduler_config = dict(DDPMScheduler.load_config(folder, subfolder="scheduler"))
        categories = None
        if unet.config.num_class_embeds and (folder / CARDS_CONFIG).is_file():
            categories = tuple(json.loads((folder / CARDS_CONFIG).read_text())["categories"])
        metrics = hub.read_json(folder, "metrics.json")
        upscalers = load_upscalers(folder)
    except (OSError, ValueError, KeyError, TypeError) as error:  # diffusers names the resolved files it could not read
        if source is None:
            raise
        logger.info("Cards model %r could not be loaded: %s", source, error)
        raise FileNotFoundError(hub.cannot_load(source)) from error
    return hub.Served(model=CardModel(unet=unet, scheduler_config=scheduler_config, categories=categories,
                                      upscalers=upscalers), weights=weights, metrics=metrics)


def load_upscalers(folder: Path) -> dict[int, torch.nn.Module]:
    """The cascade in a Cards folder: factor → net, for each upscale-x<factor>/ present (none: {})."""
    from tasks import upscale

    upscalers = {}
    for factor in CASCADE_FACTORS:
        sub = folder / UPSCALER_FOLDER.format(factor=factor)
        if (sub / "config.json").is_file():
            net = upscale.load(str(sub)).model
            if upscale.model_scale(net) != factor:
                raise ValueError(f"{sub} upscales ×{upscale.model_scale(net)}, not ×{factor}.")
            upscalers[factor] = net
    return upscalers


def _to_pil(batch: torch.Tensor) -> list[Image.Image]:
    """(B, 3, H, W) in [-1, 1] → PIL images."""
    array = ((batch.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(image) for image in array]


def _guided(model: CardModel, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None,
            guidance: float) -> torch.Tensor:
    """The UNet's ε or v at x, t; with classifier-free guidance (Ho & Salimans 2022) ε = ε_any + guidance ·
    (ε_category − ε_any) (the same for v), using the "any" class learned by label dropout. Unguided (one pass) for an
    unconditional UNet, for guidance 1 and for "any"."""
    unconditional = len(model.categories or ())
    if labels is None or guidance == 1.0 or not bool((labels != unconditional).any()):
        return model.unet(x, t, class_labels=labels).sample
    both = model.unet(torch.cat([x, x]), t, class_labels=torch.cat([labels, torch.full_like(labels, unconditional)])).sample
    output_category, output_any = both.chunk(2)
    return output_any + guidance * (output_category - output_any)


@torch.inference_mode()
def sample(model: CardModel, labels: torch.Tensor | None, generators: list[torch.Generator], steps: int,
           sampler: str, guidance: float = GUIDANCE, progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Reverse diffusion from noise; one generator per card, so card i depends only on its own seed.

    Args:
        labels: class indices (B,), or None for an unconditional UNet.
        guidance: classifier-free guidance scale (see `_guided`); 1 = plain conditional sampling at half the cost.
        progress: called with (step done, total) after each step.

    Returns:
        (B, 3, H, W) in [-1, 1].
    """
    scheduler = make_scheduler(model.scheduler_config, sampler)
    scheduler.set_timesteps(steps)
    height, width = model.size
    device = model.unet.device  # CPU in the app; the noise still comes from the CPU generators, so seeds mean the same
    # 1. start from pure noise (scaled for schedulers that use sigmas)
    x = randn_tensor((len(generators), 3, height, width), generator=generators, device=device)
    x = x * scheduler.init_noise_sigma
    if labels is not None:
        labels = labels.to(device)
    for index, t in enumerate(scheduler.timesteps):
        # 2. predict ε or v (guided), 3. step to the next level
        output = _guided(model, scheduler.scale_model_input(x, t), t, labels, guidance)
        x = scheduler.step(output, t, x, generator=generators if sampler in STOCHASTIC else None).prev_sample
        if progress is not None:
            progress(index + 1, len(scheduler.timesteps))
    return x


STAIN_STEPS, JUMP_LENGTH, JUMP_N_SAMPLE = 25, 5, 4  # "stain this card": RePaint's schedule (see `repaint`)


@torch.inference_mode()
def repaint(model: CardModel, labels: torch.Tensor | None, generator: torch.Generator, image: torch.Tensor,
            keep: torch.Tensor, steps: int = STAIN_STEPS, jump_length: int = JUMP_LENGTH,
            jump_n_sample: int = JUMP_N_SAMPLE, guidance: float = GUIDANCE) -> torch.Tensor:
    """Inpainting with a model trained on whole cards, by RePaint's sampler (Lugmayr et al. 2022, "RePaint:
    Inpainting using Denoising Diffusion Probabilistic Models"), through diffusers' RePaintScheduler: after each step the kept
    region is the original noised to the new level, and every `jump_length` steps the chain is noised back up
    `jump_length` steps and denoised again, `jump_n_sample` times in all, so that what the model paints inside the
    region can follow what it has learned of the fixed outside. Without those jumps (`jump_n_sample` 1) a SMALL stain
    asked for in a small box shows less often (`evaluate_stain`). The jumps are diffusers' `undo_step`, which noises
    with the betas from the level it is given upwards (exact at one level per step, slightly more noise at 40).

    Args:
        labels: class indices (B,), or None for an unconditional UNet.
        image: (B, 3, H, W) in [-1, 1], the card; keep: (B, 1, H, W) in {0, 1}, 1 where the card is kept.
        steps: denoising steps without the jumps ("leading" spacing, RePaintScheduler's own: 25 steps start at
            t = 960 of 1000); the UNet runs steps + ⌈steps / jump_length − 1⌉ · (jump_n_sample − 1) · jump_length
            times (25, 5, 4: 85), each pass a batch of 2 when guided.
        guidance: as in `sample`.

    Returns:
        (B, 3, H, W) in [-1, 1]: `image` where keep is 1.
    """
    scheduler = RePaintScheduler.from_config(model.scheduler_config, eta=1.0)  # eta 1: DDPM's posterior noise
    scheduler.set_timesteps(steps, jump_length=jump_length, jump_n_sample=jump_n_sample)
    alphas = scheduler.alphas_cumprod
    device = model.unet.device
    image, keep = image.to(device), keep.to(device)
    labels = labels.to(device) if labels is not None else None
    x = randn_tensor(image.shape, generator=generator, device=device)
    previous = scheduler.timesteps[0] + 1
    for t in scheduler.timesteps:
        if t < previous:  # a step down
            output = _guided(model, x, t, labels, guidance)
            if model.scheduler_config.get("prediction_type") == "v_prediction":  # RePaint steps with ε
                output = alphas[t].sqrt() * output + (1 - alphas[t]).sqrt() * x  # ε = √ᾱ·v + √(1−ᾱ)·x_t
            x = scheduler.step(output, t, x, image, keep, generator=generator).prev_sample
        else:  # a jump back up: x_t from x_{t-1}, q(x_t | x_{t-1})
            x = scheduler.undo_step(x, previous, generator=generator)
        previous = t
    return keep * image + (1 - keep) * x


def noise_levels(model: CardModel) -> int:
    """The number of noise levels the model was trained on: the most denoising steps any sampler can take."""
    return model.scheduler_config.get("num_train_timesteps", 1000)


def _check_knobs(model: CardModel, category: str, n: int, steps: int, sampler: str, guidance: float) -> None:
    if not 1.0 <= guidance <= MAX_GUIDANCE:
        raise ValueError(f"Guidance scale must be between 1 (none) and {MAX_GUIDANCE:g}; got {guidance:g}.")
    if sampler not in SCHEDULERS:
        raise ValueError(f"Unknown scheduler {sampler!r}; choose one of {', '.join(SCHEDULERS)}.")
    if not 1 <= n <= MAX_CARDS:
        raise ValueError(f"Number of cards must be between 1 and {MAX_CARDS}; got {n}.")
    limit = noise_levels(model)  # with trailing spacing every sampler takes 1..levels steps (tested at both ends)
    if not 1 <= steps <= limit:
        raise ValueError(f"Steps must be between 1 and {limit}; got {steps}.")
    class_index(model.categories, category)  # raises for an unknown category


def predict(served: hub.Served[CardModel], category: str = ANY, seed: int = 0, n: int = 4,
            num_inference_steps: int | None = None, scheduler: str = "DPM-Solver++", guidance_scale: float = GUIDANCE,
            progress: Callable[[int, int], None] | None = None, size: tuple[int, int] | None = None) -> list[Image.Image]:
    """Generate `n` card backs of `category`; card i comes from seed + i, identically on every machine.

    Args:
        served: what `load` or `train` returned.
        category: one of the model's categories, or "any"; ignored (must be "any" or a name) for unconditional models.
        num_inference_steps: denoising steps; None = the scheduler's default (DPM-Solver++ 20, DDIM 50, DDPM 1000),
            at most the model's noise levels (DDPM's default is all of them).
        scheduler: the sampler, one of SCHEDULERS (diffusers' DPMSolverMultistepScheduler, DDIMScheduler,
            DDPMScheduler; see `make_scheduler`).
        guidance_scale: classifier-free guidance, 1..MAX_GUIDANCE (1 = none, half the work); see `sample`.
        progress: called with (steps done, total) after each denoising step.
        size: (height, width) in pixels, one of `CardModel.sizes`: the model's own (None) or that × 2 or × 4 through
            its super-resolution cascade (the same cards, sharper; a few ms per card).

    Returns:
        `n` RGB images of `size`.

    Raises:
        ValueError: an unknown category or scheduler, n outside 1..MAX_CARDS, num_inference_steps outside
            1..noise levels, guidance_scale outside 1..MAX_GUIDANCE, a size the model does not serve; all before any
            denoising.
    """
    model = served.model
    steps = (min(DEFAULT_STEPS.get(scheduler, 20), noise_levels(model)) if num_inference_steps is None
             else int(num_inference_steps))
    _check_knobs(model, category, n, steps, scheduler, guidance_scale)
    factor = model.factor(size)
    return model.upscale(_generate(model, category, seed, n, steps, scheduler, guidance_scale, progress), factor)


def _generate(model: CardModel, category: str, seed: int, n: int, steps: int, sampler: str, guidance: float,
              progress: Callable[[int, int], None] | None = None) -> list[Image.Image]:
    """`predict` without its checks (and so without the MAX_CARDS cap, which is there for the app's CPU)."""
    labels = None
    if model.unet.config.num_class_embeds:
        labels = torch.full((n,), class_index(model.categories, category), dtype=torch.long)
    generators = [torch.Generator().manual_seed(int(seed) + i) for i in range(n)]
    return _to_pil(sample(model, labels, generators, steps, sampler, guidance, progress=progress))


def stain(served: hub.Served[CardModel], card: Image.Image, region: Image.Image, category: str = "SMALL",
          seed: int = 0, num_inference_steps: int = STAIN_STEPS, jump_length: int = JUMP_LENGTH,
          jump_n_sample: int = JUMP_N_SAMPLE, guidance_scale: float = GUIDANCE,
          size: tuple[int, int] | None = None) -> tuple[Image.Image, Image.Image]:
    """"Stain this card": inpaint a stain of `category` inside `region` of a clean card (RePaint, see `repaint`).

    Args:
        served: what `load` or `train` returned.
        card: any card image; turned upright and resized to the model size.
        region: mask image (white = where the stain may go), any size; resized like the card.
        num_inference_steps, jump_length, jump_n_sample: RePaint's schedule; the defaults (25, 5, 4: about 2 s for
            an 80×64 card on 2 threads) paint a SMALL stain that shows in a quarter-card box more often than without
            the jumps (jump_n_sample 1) in the centre and bottom right boxes (58% and 67% of 24 cards against 25% and
            33%; top left 46% against 38%: `python -m bench cards-stain`).
        guidance_scale: as in `predict`.
        size: as in `predict`. The stain is painted at the model's size and brought to `size` by the cascade; the
            card outside the region is the uploaded card resized to `size` (Lanczos), and the region mask is scaled
            by the same whole factor (nearest), so card, stain and mask stay aligned to the pixel.

    Returns:
        (stained card of `size`, the region mask of `size`, L 0/255: the stain's known mask).

    Raises:
        ValueError: as `predict`, for the category, the steps, the guidance and the size; jump_length or
            jump_n_sample below 1.
    """
    model = served.model
    factor = model.factor(size)
    stained, known = _stain(model, card, region, category, seed, num_inference_steps, guidance_scale, jump_length,
                            jump_n_sample)
    if factor == 1:
        return stained, known
    height, width = model.size
    big = (width * factor, height * factor)
    known = known.resize(big, Image.Resampling.NEAREST)
    backdrop = upright(card.convert("RGB"), (big[1], big[0]))
    return Image.composite(model.upscale([stained], factor)[0], backdrop, known), known


def _stain(model: CardModel, card: Image.Image, region: Image.Image, category: str, seed: int,
           steps: int = STAIN_STEPS, guidance: float = GUIDANCE, jump_length: int = JUMP_LENGTH,
           jump_n_sample: int = JUMP_N_SAMPLE) -> tuple[Image.Image, Image.Image]:
    _check_knobs(model, category, 1, steps, "DDPM", guidance)
    if jump_length < 1 or jump_n_sample < 1:
        raise ValueError(f"jump_length and jump_n_sample must be 1 or more; got {jump_length} and {jump_n_sample}.")
    height, width = model.size
    card = upright(card.convert("RGB"), (height, width))
    region = upright(region.convert("L"), (height, width)).point(lambda v: 255 if v >= 128 else 0)
    image = torch.from_numpy(np.asarray(card, dtype=np.float32)).permute(2, 0, 1)[None] / 127.5 - 1.0
    keep = 1.0 - torch.from_numpy(np.asarray(region, dtype=np.float32) / 255.0)[None, None]
    labels = None
    if model.unet.config.num_class_embeds:
        labels = torch.tensor([class_index(model.categories, category)])
    result = repaint(model, labels, torch.Generator().manual_seed(int(seed)), image, keep, steps, jump_length,
                     jump_n_sample, guidance)
    return _to_pil(result)[0], region


# ---------------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------------


def sample_grid(model: CardModel, per_category: int = 4, seed: int = 0, steps: int = 20,
                guidance: float = GUIDANCE) -> Image.Image:
    """One row per category (and "any"), `per_category` cards each, DPM-Solver++ at `steps` steps."""
    names = (*(model.categories or ()), ANY)
    rows = []
    for name in names:
        labels = torch.full((per_category,), class_index(model.categories, name), dtype=torch.long)
        generators = [torch.Generator().manual_seed(seed + i) for i in range(per_category)]
        rows.append(_to_pil(sample(model, labels, generators, steps, "DPM-Solver++", guidance)))
    height, width = model.size
    grid = Image.new("RGB", (per_category * width, len(rows) * height), "white")
    for r, row in enumerate(rows):
        for c, picture in enumerate(row):
            grid.paste(picture, (c * width, r * height))
    return grid


STAIN_EXAMPLES = (("SMALL", "centre"), ("WHITE_MARKS", "top left"), ("LIGHT", "most of the card"),
                  ("FULL_CARD", "most of the card"))  # (category, region of STAIN_REGIONS), on rendered CLEAN cards


def stain_examples(model: CardModel, steps: int = STAIN_STEPS, guidance: float = GUIDANCE) -> Image.Image:
    """"Stain this card" on rendered clean cards (render seeds 100, 101, ...; stain seeds 0, 1, ...): one row per entry
    of STAIN_EXAMPLES, the clean card beside the stained one with the region outlined."""
    height, width = model.size
    sheet = Image.new("RGB", (2 * width + 4, len(STAIN_EXAMPLES) * (height + 4)), "white")
    for row, (category, where) in enumerate(STAIN_EXAMPLES):
        left, top, right, bottom = STAIN_REGIONS[where]
        card = render_card(100 + row, "CLEAN", size=(height, width)).image
        box = (round(left * width), round(top * height), round(right * width), round(bottom * height))
        region = Image.new("L", (width, height), 0)
        region.paste(255, box)
        stained, _ = _stain(model, card, region, category, row, steps, guidance)
        ImageDraw.Draw(stained).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), outline=(220, 30, 30))
        sheet.paste(card, (0, row * (height + 4)))
        sheet.paste(stained, (width + 4, row * (height + 4)))
    return sheet


def cascade_examples(model: CardModel, categories: tuple[str, ...] = ("SMALL", "LIGHT", "WHITE_MARKS"),
                     seed: int = 0) -> Image.Image:
    """One row per category (card `seed`, DPM-Solver++ 20, the default guidance): the model's card enlarged to the
    largest size with square pixels (nearest), with PIL's bicubic, and through the cascade.

    Raises:
        ValueError: the model has no cascade.
    """
    if not model.upscalers:
        raise ValueError("This model has no super-resolution cascade (no upscale-x<factor>/ in its folder).")
    factor = max(model.upscalers)
    height, width = model.size[0] * factor, model.size[1] * factor
    sheet = Image.new("RGB", (3 * width + 8, len(categories) * (height + 4)), "white")
    for row, category in enumerate(categories):
        card = _generate(model, category, seed, 1, 20, "DPM-Solver++", GUIDANCE)[0]
        versions = (card.resize((width, height), Image.Resampling.NEAREST),
                    card.resize((width, height), Image.Resampling.BICUBIC), model.upscale([card], factor)[0])
        for column, version in enumerate(versions):
            sheet.paste(version, (column * (width + 4), row * (height + 4)))
    return sheet


def train(cfg: Config, accelerator: Accelerator | None = None) -> hub.Served[CardModel]:
    """Train the class-conditional DDPM and write `cfg.output_dir` as a DDPMPipeline folder plus report.

    Returns:
        `load(cfg.output_dir)`: the EMA weights, on the CPU.
    """
    # 1. set-up and data (rendered cards when no folder is given)
    accelerator = training.make_accelerator(cfg, accelerator)
    output_dir = Path(cfg.output_dir)
    set_seed(cfg.seed)
    data = cfg.data
    if not data:
        data = str(output_dir / "rendered")
        if not (Path(data) / CATEGORIES[0]).is_dir():
            render_dataset(cfg.render_per_category, data, (cfg.height, cfg.width), seed=1)
    images, labels = load_training_cards(data, (cfg.height, cfg.width))

    # 2. model, noise schedule, EMA, optimizer, lr schedule
    unet = build_unet(cfg)
    if cfg.prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"prediction_type must be one of {', '.join(PREDICTION_TYPES)}; got {cfg.prediction_type!r}.")
    noise_scheduler = DDPMScheduler(num_train_timesteps=cfg.num_train_timesteps, beta_schedule=cfg.beta_schedule,
                                    prediction_type=cfg.prediction_type)
    ema = EMAModel(unet.parameters(), decay=cfg.ema_max_decay, use_ema_warmup=True, inv_gamma=1.0, power=3 / 4,
                   model_cls=UNet2DModel, model_config=unet.config)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=cfg.learning_rate, betas=(0.95, 0.999),
                                  weight_decay=cfg.adam_weight_decay, eps=1e-8)
    epoch_steps = training.steps_per_epoch(len(images), cfg)
    lr_scheduler, total_steps = training.lr_schedule(optimizer, cfg, epoch_steps)

    # 3. resume
    state = training.LoopState(extra={"prediction_type": cfg.prediction_type, **training.loop_shape(cfg, accelerator)})
    checkpoint = training.find_checkpoint(output_dir, cfg.resume_from_checkpoint)
    if checkpoint is not None:
        state = training.load_checkpoint(checkpoint, unet, optimizer, lr_scheduler, training.loop_shape(cfg, accelerator),
                                         extra={"ema": ema})
        trained_for = state.extra.get("prediction_type", "epsilon")  # checkpoints older than the field were all ε
        if trained_for != cfg.prediction_type:
            raise ValueError(f"{checkpoint} was trained with --prediction_type {trained_for}; resume with the same "
                             f"(got {cfg.prediction_type}).")
        state.resumed.append({"from": checkpoint.name, "num_epochs": cfg.num_epochs})
        logger.info("Resumed from %s at step %d (epoch %d).", checkpoint, state.global_step, state.epoch)
    unet, optimizer = accelerator.prepare(unet, optimizer)
    ema.to(accelerator.device)
    logger.info(
        "***** cards: training *****\n  cards = %d (%s)\n  UNet parameters = %d, size = %d×%d\n  epochs = %d, "
        "steps/epoch = %d, total steps = %d\n  batch = %d × %d accumulated, lr = %g, device = %s, precision = %s",
        len(images), ", ".join(f"{name} {int((labels == i).sum())}" for i, name in enumerate((*CATEGORIES, ANY))),
        sum(p.numel() for p in unet.parameters()), cfg.height, cfg.width, cfg.num_epochs, epoch_steps,
        total_steps, cfg.train_batch_size, cfg.gradient_accumulation_steps, cfg.learning_rate, accelerator.device,
        accelerator.mixed_precision,
    )
    progress = tqdm(total=total_steps, initial=state.global_step, disable=not accelerator.is_local_main_process,
                    desc="cards")

    def ema_model() -> CardModel:  # on the training device: the sample grids are drawn there
        shadow = build_unet(cfg).to(accelerator.device)
        ema.copy_to(shadow.parameters())
        return CardModel(unet=shadow.eval(), scheduler_config=dict(noise_scheduler.config), categories=CATEGORIES)

    # 4. the loop (seeded order, label dropout, noise and timesteps per batch: exact resume)
    losses: list[float] = []
    while state.epoch < cfg.num_epochs and state.global_step < total_steps:
        unet.train()
        for batch in training.epoch_batches(len(images), cfg, state, accelerator, cfg.seed):
            if state.global_step >= total_steps:
                break
            generator = torch.Generator().manual_seed(batch.draw)
            clean, classes = images[batch.indices], labels[batch.indices].clone()
            classes[torch.rand(len(classes), generator=generator) < cfg.label_dropout] = len(CATEGORIES)  # → "any"
            noise = torch.randn(clean.shape, generator=generator)
            timesteps = torch.randint(0, cfg.num_train_timesteps, (len(clean),), generator=generator)
            noisy = noise_scheduler.add_noise(clean, noise, timesteps)  # forward process q(x_t | x_0)
            target = noise  # ε-prediction; v-prediction's target is v = √ᾱ·ε − √(1−ᾱ)·x0
            if cfg.prediction_type == "v_prediction":
                target = noise_scheduler.get_velocity(clean, noise, timesteps)
            noisy, target, timesteps, classes = (tensor.to(accelerator.device)
                                                 for tensor in (noisy, target, timesteps, classes))
            with training.accumulating(accelerator, unet, batch):
                predicted = unet(noisy, timesteps, class_labels=classes).sample
                loss = F.mse_loss(predicted.float(), target.float())  # loss in fp32
                stepped = training.backward_step(accelerator, unet, loss, batch, optimizer, lr_scheduler, cfg)
            if stepped:  # the EMA follows optimizer steps, not batches
                ema.step(accelerator.unwrap_model(unet).parameters())
            training.record_batch(state, progress, batch, losses, loss.item(), lr_scheduler.get_last_lr()[0])
            if stepped and state.global_step % cfg.checkpointing_steps == 0 and accelerator.is_main_process:
                training.save_checkpoint(output_dir, state.global_step, accelerator.unwrap_model(unet), optimizer,
                                         lr_scheduler, state, cfg.checkpoints_total_limit, extra={"ema": ema})
        else:
            state.epoch += 1
            state.step_in_epoch = 0
            if accelerator.is_main_process and state.epoch % cfg.save_images_epochs == 0:
                (output_dir / "samples").mkdir(parents=True, exist_ok=True)
                sample_grid(ema_model()).save(output_dir / "samples" / f"epoch-{state.epoch:04d}.png")
    progress.close()

    # 5. the EMA weights as a DDPMPipeline folder, plus our config, report and card
    model = ema_model()
    for trained in (unet, model.unet):  # the weights every process trained, and their EMA: the same everywhere
        training.check_replicas(accelerator, trained)
    if accelerator.is_main_process:
        write_output(model, noise_scheduler, cfg, state, len(images))
    accelerator.wait_for_everyone()
    return load(str(output_dir))


def write_output(model: CardModel, noise_scheduler: DDPMScheduler, cfg: Config, state: training.LoopState,
                 n_cards: int) -> None:
    output_dir = Path(cfg.output_dir)
    training.save_atomically(DDPMPipeline(unet=model.unet, scheduler=noise_scheduler).save_pretrained, output_dir)
    (output_dir / CARDS_CONFIG).write_text(json.dumps({"categories": list(CATEGORIES), "any": ANY}, indent=2))
    sample_grid(model).save(output_dir / "samples.png")
    if model.categories:
        stain_examples(model).save(output_dir / "stain_this_card.png")
    training.plot_training_curves(state.history, output_dir / "training_curves.png",
                                  f"cards: {cfg.prediction_type} MSE")
    parameters = sum(p.numel() for p in model.unet.parameters())
    summary = {"training_cards": n_cards, "steps": state.global_step, "epochs": state.epoch,
               "final_loss_mean_last_100": float(np.mean(state.history["loss"][-100:])) if state.history["loss"] else None,
               "parameters": parameters, "size": [cfg.height, cfg.width], "resumed": state.resumed,
               "config": asdict(cfg)}
    (output_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
    training.write_model_card(output_dir, title="Darkroom Cards: gum-stained card backs (class-conditional DDPM)",
                              body=_model_card(summary, cfg), metadata={
                                  "license": "mit", "library_name": "diffusers",
                                  "tags": ["unconditional-image-generation", "diffusers", "ddpm", "darkroom", "trading-cards"],
                                  "pipeline_tag": "unconditional-image-generation"})


def _model_card(summary: dict, cfg: Config) -> str:
    source = cfg.data or f"{cfg.render_per_category} procedurally rendered card backs per category (tasks/cards/render.py, seed 1)"
    resumed = "".join(f"\n- Resumed from `{entry['from']}` with `--num_epochs {entry['num_epochs']}` (the cosine schedule "
                      "stretched to the new length: the lr rises again, a warm restart)." for entry in summary["resumed"])
    return f"""
A {summary['parameters']:,}-parameter diffusers `UNet2DModel` that generates {cfg.height}×{cfg.width} (portrait)
trading-card backs with gum stains, by category: {', '.join(CATEGORIES)}, or `any`. It serves the Cards tab of the
Darkroom Space: synthetic training data for card-grading teams' stain detectors.

![samples](samples.png)

Rows: {', '.join(CATEGORIES)}, any; DPM-Solver++ 20 steps, guidance {GUIDANCE:g}, seeds 0–3.

## Training

- Data: {source}; {summary['training_cards']:,} cards.
- DDPM, {cfg.num_train_timesteps} noise levels ({cfg.beta_schedule}), {cfg.prediction_type} target, MSE; the class
  embedding takes the category, replaced by `any` for {cfg.label_dropout:.0%} of cards (label dropout) so the model
  also samples without one.
- AdamW (lr {cfg.learning_rate:g}, warmup {cfg.lr_warmup_steps} steps then cosine), batch {cfg.train_batch_size},
  gradient clipping {cfg.max_grad_norm:g}, EMA of the weights (max decay {cfg.ema_max_decay}); the EMA weights are saved.
- {summary['epochs']} epochs, {summary['steps']:,} steps; mean loss over the last 100 steps
  {summary['final_loss_mean_last_100']:.4f}. Curves: `training_curves.png`; grids during training: `samples/`.{resumed}

{training.config_table(cfg)}

## Use

```python
from tasks import cards
served = cards.load("path/or/user-repo")
images = cards.predict(served, "SMALL", seed=42, n=4, num_inference_steps=20, scheduler="DPM-Solver++",
                       guidance_scale=3.0)  # size=(2 * height, 2 * width) once upscale-x2/ is in the folder
```

Larger cards come from a super-resolution cascade: `tasks.upscale` folders trained on rendered cards, put in this
folder as `upscale-x2/` and `upscale-x4/` (`python training/train.py upscale --data <rendered card folders> --scale 2
--lr_blur 0.5 ...`; the bundled model's card says how its nets were trained).

The folder is a `DDPMPipeline` (`DDPMPipeline.from_pretrained` loads it, unconditionally); class-conditional
sampling needs the class label, as `predict` does. Samplers: DDPM (1000 steps), DDIM, DPM-Solver++ (2M SDE;
default, 20 steps); classifier-free guidance (default {GUIDANCE:g}) against the `any` class sharpens the category.

## Stain this card

![stain this card](stain_this_card.png)

`diffusion.stain` on rendered clean cards (left: the card; right: stained inside the red box), rows:
{', '.join(f"{category} ({where})" for category, where in STAIN_EXAMPLES)}. RePaint (diffusers' RePaintScheduler:
{STAIN_STEPS} steps, every {JUMP_LENGTH} steps {JUMP_N_SAMPLE - 1} jumps back), guidance {GUIDANCE:g}; outside the box the card is kept to the
pixel, so the box is the stain's known (if loose) mask. The box is regenerated whole: printing under the stain is
re-drawn, not kept. How often a stain shows: `python -m bench cards-stain`.

## Limits

Trained on rendered cards, not scans: stains and printing are as realistic as the renderer. Masks are known only for
rendered cards and for "stain this card" inpainting, not for generated cards.
"""


# ---------------------------------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------------------------------


def evaluate(served: hub.Served[CardModel], data: str = "", n_per_category: int = 100,
             runs: tuple[tuple[str, int, int, float], ...] = (("DPM-Solver++", 20, 100, GUIDANCE),
                                                              ("DDPM", 1000, 100, GUIDANCE)),
             judge_cards_per_category: int = 300, batch_size: int = MAX_CARDS) -> dict[str, Any]:
    """Category fidelity, diversity and coverage of generated cards, judged by a CNN trained on rendered cards.

    Args:
        served: what `load` or `train` returned; its UNet may be moved to a GPU first (the noise stays on the CPU).
        data: the judge's cards: "" = rendered (render seeds 2 and 3, never the generator's seed 1), the only source
            there is: no category-labelled card scans exist to judge by.
        n_per_category: cards per category for the diversity measure (seeds 0..n-1, first run's sampler).
        runs: (sampler, steps, cards per category, guidance) to judge; card seeds 0..n-1 in each category.
        judge_cards_per_category: rendered cards per category the judge trains on.
        batch_size: cards sampled at once; card i comes from seed i whatever the batch, so this changes only speed
            (raise it where the model is on a GPU).

    Returns:
        "judge/accuracy_on_renders" (the judge's own accuracy on held-out renders: the ceiling),
        "judge/accuracy_on_blurred_renders" and "judge/accuracy_on_color_cast_renders" (the same renders slightly
        changed, category kept: how far the judge can be trusted on cards that are not pixel-perfect renders), per run
        "<sampler>@<steps>,cfg<guidance>/<CATEGORY>" and ".../mean" accuracies, "diversity/min_rms" (0–255; None
        with fewer than two cards per category), and the first run's coverage (`coverage.coverage`, against as many
        held-out renders per category, render seed 3): "coverage/<CATEGORY>/<precision|recall|stock_tv|ink_tv>",
        ".../stock_shares" and ".../ink_shares", their means over categories "coverage/precision" and
        "coverage/recall", and the same for a second set of renders (seed 4) in place of the generated cards under
        "coverage/renders/...": the values a generator that draws exactly what the renderer draws would score with
        this many cards. No coverage with fewer than 2 · k + 2 cards per category.
        With a cascade, the first run's cards through each upscaler, judged by a second judge trained on renders of
        CASCADE_JUDGE_SIZE (cards larger than that are resized down to it, Lanczos, first): "fidelity_<height>/<CATEGORY>",
        ".../mean", and that judge's checks "judge_<height>/accuracy_on_renders", ".../accuracy_on_blurred_renders".
    """
    from tasks.cards import coverage
    from tasks.cards import judge as judging

    if data:
        raise ValueError(f"The judge trains on rendered cards only; pass data='' (got {data!r}).")
    model = served.model
    if model.categories is None:
        raise ValueError("Category fidelity needs a class-conditional model; this one has no categories.")
    judge, checks = judging.train_judge(model.size, judge_cards_per_category)
    result = {"judge/accuracy_on_renders": checks["renders"],
              "judge/accuracy_on_blurred_renders": checks["blurred"],
              "judge/accuracy_on_color_cast_renders": checks["color_cast"]}
    big_judge = None
    if model.upscalers:
        big_judge, big_checks = judging.train_judge(CASCADE_JUDGE_SIZE, judge_cards_per_category)
        big = CASCADE_JUDGE_SIZE[0]
        result[f"judge_{big}/accuracy_on_renders"] = big_checks["renders"]
        result[f"judge_{big}/accuracy_on_blurred_renders"] = big_checks["blurred"]
    diversity = []
    for run_index, (sampler, steps, count, guidance) in enumerate(runs):
        run = f"{sampler}@{steps},cfg{guidance:g}"
        accuracies = []
        for label, category in enumerate(CATEGORIES):
            cards = []
            _check_knobs(model, category, 1, steps, sampler, guidance)
            for start in range(0, count, batch_size):
                cards += _generate(model, category, start, min(batch_size, count - start), steps, sampler, guidance)
            verdicts = judging.classify(judge, judging.to_batch(cards))
            accuracies.append(float((verdicts == label).float().mean()))
            result[f"{run}/{category}"] = accuracies[-1]
            if run_index == 0 and len(cards[:n_per_category]) > 1:  # a distance needs two cards
                diversity.append(judging.min_pairwise_distance(cards[:n_per_category]))
            if run_index == 0 and count > 2 * coverage.K + 1:
                renders = [render_card(3_000_000 + i, category, model.size).image for i in range(count)]
                others = [render_card(4_000_000 + i, category, model.size).image for i in range(count)]
                for prefix, drawn in (("coverage", cards), ("coverage/renders", others)):
                    for key, value in coverage.coverage(judge, renders, drawn).items():
                        result[f"{prefix}/{category}/{key}"] = value
            if run_index == 0 and big_judge is not None:
                for factor in sorted(model.upscalers):
                    judged = [picture.resize(CASCADE_JUDGE_SIZE[::-1], Image.Resampling.LANCZOS)
                              if picture.size != CASCADE_JUDGE_SIZE[::-1] else picture
                              for picture in model.upscale(cards, factor)]
                    verdicts = judging.classify(big_judge, judging.to_batch(judged))
                    result[f"fidelity_{model.size[0] * factor}/{category}"] = float((verdicts == label).float().mean())
        result[f"{run}/mean"] = float(np.mean(accuracies))
    result["diversity/min_rms"] = float(min(diversity)) if diversity else None
    for factor in sorted(model.upscalers):
        height = model.size[0] * factor
        result[f"fidelity_{height}/mean"] = float(np.mean([result[f"fidelity_{height}/{category}"]
                                                           for category in CATEGORIES]))
    for prefix in ("coverage", "coverage/renders"):
        for name in ("precision", "recall"):
            values = [result[key] for key in (f"{prefix}/{category}/{name}" for category in CATEGORIES) if key in result]
            if values:
                result[f"{prefix}/{name}"] = float(np.mean(values))
    return result


CASCADE_JUDGE_SIZE = (160, 128)  # (height, width) of the judge that scores the cascade's cards: the original's size


STAIN_SHOWS = (10.0, 0.10)  # a stain shows: this share of the region's pixels this many b* units yellower


def evaluate_stain(served: hub.Served[CardModel], n: int = 24, categories: tuple[str, ...] = ("SMALL", "CLEAN"),
                   regions: tuple[str, ...] = ("centre", "top left", "bottom right"),
                   jump_n_samples: tuple[int, ...] = (1, JUMP_N_SAMPLE)) -> dict[str, float]:
    """How often "stain this card" leaves a stain that shows, on `n` rendered clean cards (card seeds 5,000,000 + i:
    never a training, judge or model-card card; stain seeds i), for each category, region of STAIN_REGIONS and RePaint
    schedule. CLEAN is the control: asked for no stain, what shows is the measure's own false alarms.

    A gum stain is amber: it shows where at least 10% of the region's pixels are at least 10 CIELAB b* units
    yellower than on the clean card (`STAIN_SHOWS`; b* from scikit-image's rgb2lab, D65), a test for the amber
    categories (SMALL, LIGHT, FULL_CARD), not WHITE_MARKS' pale residue.

    Returns:
        "<CATEGORY>/<region>/jumps<k>/shows" (share of the n cards, 0–1) and ".../yellowed" (mean share of the
        region's pixels past the b* threshold) per category, region and jump_n_sample k.
    """
    from skimage.color import rgb2lab

    model = served.model
    height, width = model.size
    units, share = STAIN_SHOWS
    result = {}
    for category in categories:
        for where in regions:
            left, top, right, bottom = STAIN_REGIONS[where]
            box = (round(left * width), round(top * height), round(right * width), round(bottom * height))
            region = Image.new("L", (width, height), 0)
            region.paste(255, box)
            for jumps in jump_n_samples:
                yellowed = []
                for i in range(n):
                    card = render_card(5_000_000 + i, "CLEAN", size=(height, width)).image
                    stained, _ = _stain(model, card, region, category, i, jump_n_sample=jumps)
                    before, after = (rgb2lab(np.asarray(picture.crop(box), dtype=np.float64) / 255)[..., 2]
                                     for picture in (card, stained))
                    yellowed.append(float((after - before >= units).mean()))
                key = f"{category}/{where}/jumps{jumps}"
                result[f"{key}/shows"] = float(np.mean(np.array(yellowed) >= share))
                result[f"{key}/yellowed"] = float(np.mean(yellowed))
    return result


def fidelity_table(result: dict[str, float | None]) -> str:
    """`evaluate`'s result as a markdown table: one row per run, one column per category, then the mean."""
    runs = [key[: -len("/mean")] for key in result if key.endswith("/mean") and "@" in key]  # not fidelity_<height>
    lines = ["| sampler@steps,guidance | " + " | ".join(CATEGORIES) + " | mean |",
             "|---" * (len(CATEGORIES) + 2) + "|"]
    for run in runs:
        cells = [f"{result[f'{run}/{name}']:.0%}" for name in (*CATEGORIES, "mean")]
        lines.append(f"| {run} | " + " | ".join(cells) + " |")
    distance = result["diversity/min_rms"]
    lines.append(f"\nJudge accuracy on held-out renders (the ceiling): {result['judge/accuracy_on_renders']:.1%} "
                 f"(the same renders blurred: {result['judge/accuracy_on_blurred_renders']:.0%}, with a color cast: "
                 f"{result['judge/accuracy_on_color_cast_renders']:.0%}); smallest RMS distance between two cards of "
                 + (f"one category: {distance:.1f} / 255." if distance is not None else
                    "one category: not measured (one card per category)."))
    return "\n".join(lines)


def coverage_table(result: dict[str, Any]) -> str:
    """`evaluate`'s coverage as a markdown table: per category the generated cards' precision, recall and the total
    variation of their stock and ink mix from the renders', each beside what a second set of renders scores."""
    lines = ["| category | precision | recall | stock mix TV | ink mix TV |", "|---|---|---|---|---|"]
    for category in CATEGORIES:
        if f"coverage/{category}/recall" not in result:
            continue
        cells = [f"{result[f'coverage/{category}/{name}']:.2f} ({result[f'coverage/renders/{category}/{name}']:.2f})"
                 for name in ("precision", "recall", "stock_tv", "ink_tv")]
        lines.append(f"| {category} | " + " | ".join(cells) + " |")
    if len(lines) == 2:
        return "Coverage: not measured (too few cards per category)."
    lines.append(f"| mean | {result['coverage/precision']:.2f} ({result['coverage/renders/precision']:.2f}) | "
                 f"{result['coverage/recall']:.2f} ({result['coverage/renders/recall']:.2f}) | | |")
    lines.append("\nIn brackets: a second set of renders in place of the generated cards (the most this many cards can "
                 "score). TV: total variation between the shares of each stock color (ink) among generated cards and "
                 "among renders, 0 = the same mix.")
    return "\n".join(lines)


def cascade_table(result: dict[str, Any], size: tuple[int, int]) -> str:
    """`evaluate`'s fidelity at each size as a markdown table: the first run's cards as drawn (`size`, the model's) and
    through each upscaler; empty when the model has no cascade."""
    first = next((key[: -len("/mean")] for key in result if key.endswith("/mean") and "@" in key), None)
    heights = sorted(int(key.split("/")[0][len("fidelity_"):]) for key in result
                     if key.startswith("fidelity_") and key.endswith("/mean"))
    if first is None or not heights:
        return ""
    lines = ["| size | judged at | " + " | ".join(CATEGORIES) + " | mean |", "|---" * (len(CATEGORIES) + 3) + "|"]
    lines.append(f"| {size_name(size)} (drawn) | {size_name(size)} | "
                 + " | ".join(f"{result[f'{first}/{name}']:.0%}" for name in (*CATEGORIES, "mean")) + " |")
    for height in heights:
        factor = height // size[0]
        lines.append(f"| {size_name((height, size[1] * factor))} | {size_name(CASCADE_JUDGE_SIZE)} | "
                     + " | ".join(f"{result[f'fidelity_{height}/{name}']:.0%}" for name in (*CATEGORIES, "mean"))
                     + " |")
    return "\n".join(lines)
