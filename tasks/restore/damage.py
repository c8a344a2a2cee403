"""Synthetic photo damage, composable and seeded: what Restore trains on (a new damage for every batch) and is scored on.

Each kind takes a strength in [0, 1] (0 leaves the image exactly as it was); a recipe is a dict kind → strength, applied
in the order of `KINDS` (an old print fades and blurs, then gets scratched and stained, then is scanned: noise and
JPEG last). Everything is torch on the images' device, random only through the `torch.Generator` given, so the same
seed gives the same damage in the data loader, on a GPU or in the tab.

    images (B, 3, H, W) float [0, 1] ─damage(recipe, generator)─▶ Damaged(image (B, 3, H, W), mask (B, 1, H, W) bool)

`mask` marks the pixels a damage replaced (scratches, lines, blotches, holes, salt and pepper): what a classical
inpainter would need to be told, and what the learned restorer is never given. Noise, blur, fading and JPEG change
every pixel a little and replace none. Sizes and counts are in size units (by default the shorter side / 256):
marks are so many units across and so many per 256 × 256 units of area, so a recipe means the same on a small photo
and on a 12-megapixel upload, and a training crop damaged with its photo's `unit` gets what the photo would have.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

KINDS = ("fade", "blur", "blotches", "holes", "scratches", "lines", "salt_pepper", "gaussian_noise", "jpeg")
# An old print's damage at the original project's level (its DAMAGED row: 16.89 dB, LPIPS 0.300). On 30 BSDS *train*
# photos this recipe leaves 17.06 dB / LPIPS 0.354: fading dominates the PSNR, stains and holes are large, scratches,
# grain and JPEG light (LPIPS is most sensitive to those: 0.2% salt-and-pepper pixels alone cost 0.19, so there is
# none). It replaced "default-v1" (fade 0.9, blur 0.2, blotches 0.4, holes 0.3, scratches 0.5, lines 0.3, salt_pepper
# 0.3, gaussian_noise 0.6, jpeg 0.3, and a fixed number of marks per image: 17.7 dB but LPIPS 0.70, a photo buried in
# grain and dust), calibrated against the original's two damaged figures only, never against a restored score.
DEFAULT_RECIPE: dict[str, float] = {"fade": 0.9, "blur": 0.3, "blotches": 1.0, "holes": 1.0, "scratches": 0.2,
                                    "lines": 0.2, "gaussian_noise": 0.1, "jpeg": 0.1}
DEFAULT_RECIPE_NAME = "default-v2"  # named in model cards and figures; change the name when the recipe changes


@dataclass
class Damaged:
    """A damaged batch: `image` (B, 3, H, W) float in [0, 1] and `mask` (B, 1, H, W) bool, the pixels replaced."""

    image: torch.Tensor
    mask: torch.Tensor


def check_recipe(recipe: dict[str, float]) -> dict[str, float]:
    """The recipe, validated.

    Raises:
        ValueError: an unknown kind, or a strength outside [0, 1].
    """
    unknown = set(recipe) - set(KINDS)
    if unknown:
        raise ValueError(f"Unknown damage {', '.join(sorted(unknown))}; the kinds are {', '.join(KINDS)}.")
    for kind, strength in recipe.items():
        if not 0.0 <= float(strength) <= 1.0:
            raise ValueError(f"{kind}'s strength must be in [0, 1]; got {strength}.")
    return {kind: float(recipe[kind]) for kind in KINDS if kind in recipe}


def damage(images: torch.Tensor, recipe: dict[str, float] | None = None,
           generator: torch.Generator | None = None, unit: float | None = None) -> Damaged:
    """Damage a batch of RGB images by `recipe` (default `DEFAULT_RECIPE`).

    Args:
        images: (B, 3, H, W) float in [0, 1], any device.
        recipe: kind → strength in [0, 1]; kinds left out are not applied.
        generator: the only source of randomness (a CPU generator; seeded for the same damage every time).
        unit: pixels per size unit; default the images' shorter side / 256. A crop of a photo passes the photo's
            unit, so that it gets the photo's damage: marks of the photo's size, as many per pixel.

    Returns:
        Damaged(image, mask) on the images' device.

    Raises:
        ValueError: `check_recipe`'s, or images that are not (B, 3, H, W).
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (B, 3, H, W); got {tuple(images.shape)}.")
    recipe = check_recipe(DEFAULT_RECIPE if recipe is None else recipe)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    image = images.float().clamp(0, 1).clone()
    mask = torch.zeros(image.shape[0], 1, *image.shape[2:], dtype=torch.bool, device=image.device)
    unit = _unit(image) if unit is None else float(unit)
    for kind, strength in recipe.items():
        if strength > 0:
            image, replaced = APPLY[kind](image, strength, generator, unit)
            if replaced is not None:
                mask |= replaced
    return Damaged(image=image.clamp(0, 1), mask=mask)


# ---------------------------------------------------------------------------------------------------------------------
# The kinds: (image (B, 3, H, W), strength in (0, 1], generator) → (image, replaced mask or None)
# ---------------------------------------------------------------------------------------------------------------------


def _rand(generator: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=generator)


def _unit(image: torch.Tensor) -> float:
    """Pixels per size unit: the shorter side / 256 (at least 0.25)."""
    return max(min(image.shape[-2:]) / 256.0, 0.25)


def _count(strength: float, most: float, generator: torch.Generator, extent: float) -> int:
    """How many marks: `most` · strength · `extent` · U(0.5, 1), rounded up or down at random in proportion (so the
    mean is exact however small), where `extent` is how much of a 256 × 256-unit photo the image is (its area for
    stains, holes and scratches; its mean side for lines that cross it)."""
    mean = most * strength * extent * (0.5 + 0.5 * float(_rand(generator, 1)))
    return int(mean) + int(float(_rand(generator, 1)) < mean - int(mean))


def _area(image: torch.Tensor, unit: float) -> float:
    """The image's area in 256 × 256-unit photos (1 for a photo of 256 × 256 units)."""
    return image.shape[-2] * image.shape[-1] / (256.0 * unit) ** 2


def fade(image: torch.Tensor, strength: float, generator: torch.Generator, unit: float):
    """Yellowing and lost contrast: each photo pulled towards a warm paper tone by up to 0.8 · strength."""
    batch = image.shape[0]
    amount = (0.8 * strength * (0.5 + 0.5 * _rand(generator, batch))).view(batch, 1, 1, 1).to(image.device)
    tone = torch.tensor([0.92, 0.82, 0.60], device=image.device).view(1, 3, 1, 1)
    warm = image.mean(dim=1, keepdim=True) * 0.5 * tone + 0.45 * tone
    return image * (1 - amount) + warm * amount, None


def blur(image: torch.Tensor, strength: float, generator: torch.Generator, unit: float):
    """Gaussian blur of sigma up to 1.5 · strength size units (an out-of-focus print)."""
    sigma = 1.5 * strength * unit * (0.5 + 0.5 * float(_rand(generator, 1)))
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    padded = F.pad(image, (radius, radius, radius, radius), mode="replicate")
    out = F.conv2d(padded, kernel.view(1, 1, 1, -1).repeat(3, 1, 1, 1), groups=3)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).repeat(3, 1, 1, 1), groups=3), None


def _paint(image: torch.Tensor, index: int, region: torch.Tensor, color: torch.Tensor, top: int, left: int,
           mask: torch.Tensor) -> None:
    """Paint `color` (3,) or (3, h, w) where `region` (h, w) bool is set, at (top, left) of image `index`."""
    height, width = region.shape
    window = image[index, :, top:top + height, left:left + width]
    color = color.view(3, 1, 1) if color.dim() == 1 else color
    window[:] = torch.where(region, color.expand_as(window), window)
    mask[index, 0, top:top + height, left:left + width] |= region


def _ellipses(image: torch.Tensor, strength: float, generator: torch.Generator, unit: float, most: int, size: float,
              paper: bool):
    """Filled ellipses (soft noise on the edge), flat stain colors or paper-like ones; up to `most` per 256 × 256-unit
    photo."""
    batch, _, height, width = image.shape
    mask = torch.zeros(batch, 1, height, width, dtype=torch.bool, device=image.device)
    for index in range(batch):
        for _ in range(_count(strength, most, generator, _area(image, unit))):
            radius_y, radius_x = (size * unit * (0.4 + 0.6 * _rand(generator, 2)) * (0.5 + strength)).tolist()
            cy, cx = float(_rand(generator, 1)) * height, float(_rand(generator, 1)) * width
            angle = float(_rand(generator, 1)) * math.pi
            top, bottom = max(0, int(cy - max(radius_y, radius_x))), min(height, int(cy + max(radius_y, radius_x)) + 1)
            left, right = max(0, int(cx - max(radius_y, radius_x))), min(width, int(cx + max(radius_y, radius_x)) + 1)
            if bottom <= top or right <= left:
                continue
            ys = torch.arange(top, bottom, device=image.device).view(-1, 1) - cy
            xs = torch.arange(left, right, device=image.device).view(1, -1) - cx
            u = (xs * math.cos(angle) + ys * math.sin(angle)) / max(radius_x, 0.5)
            v = (-xs * math.sin(angle) + ys * math.cos(angle)) / max(radius_y, 0.5)
            ragged = 1 + 0.15 * (_rand(generator, bottom - top, right - left).to(image.device) - 0.5)
            region = (u**2 + v**2) <= ragged
            if paper:  # off-white paper with a little grain
                base = torch.tensor([0.93, 0.90, 0.82]) - 0.1 * _rand(generator, 1)
                grain = 0.04 * (_rand(generator, 1, bottom - top, right - left) - 0.5)
                color = (base.view(3, 1, 1) + grain).to(image.device)
            else:  # a stain: brown, gray or white, flat
                stains = torch.tensor([[0.45, 0.33, 0.20], [0.35, 0.35, 0.33], [0.95, 0.94, 0.90], [0.62, 0.50, 0.30]])
                color = stains[int(torch.randint(0, len(stains), (1,), generator=generator))].to(image.device)
            _paint(image, index, region, color, top, left, mask)
    return image, mask


def blotches(image: torch.Tensor, strength: float, generator: torch.Generator, unit: float):
    """Up to 6 stains per 256 × 256-unit photo (flat brown, gray or white ellipses, radii up to 10 size units)."""
    return _ellipses(image, strength, generator, unit, most=6, size=10.0, paper=False)


def holes(image: torch.Tensor, strength: float, generator: torch.Generator, unit: float):
    """Up to 3 torn-out patches per 256 × 256-unit photo showing the paper (radii up to 16 size units)."""
    return _ellipses(image, strength, generator, unit, most=3, size=16.0, paper=True)


def _polyline_region(points: torch.Tensor, half_width: float, top: int, left: int, bottom: int, right: int,
                     device: torch.device) -> torch.Tensor:
    """(bottom - top, right - left) bool: pixels within half_width of the polyline `points` (N, 2) in (y, x)."""
    ys = torch.arange(top, bottom, device=device, dtype=torch.float32).view(-1, 1, 1)
    xs = torch.arange(left, right, device=device, dtype=torch.float32).view(1, -1, 1)
    start, end = points[:-1].to(device), points[1:].to(device)
    seg = end - start
    length2 = (seg**2).sum(-1).clamp_min(1e-6)
    t = (((ys - start[:, 0]) * seg[:, 0] + (xs - start[:, 1]) * seg[:, 1]) / length2).clamp(0, 1)
    dy = ys - (start[:, 0] + t * seg[:, 0])
    dx = xs - (start[:, 1] + t * seg[:, 1])
    return ((dy**2 + dx**2).amin(-1)) <= half_width**2


def scratches(image: torch.Tensor, strength: float, generator: torch.Generator, unit: float):
    """Up to 8 thin curved scratches per 256 × 256-unit photo (quadratic Bézier, 50–180 size units long, 0.5–1.5
    wide), light or dark."""
    batch, _, height, width = image.shape
    mask = torch.zeros(batch, 1, height, width, dtype=torch.bool, device=image.device)
    t = torch.linspace(0, 1, 9).view(-1, 1)
    for index in range(batch):
        for _ in range(_count(strength, 8, generator, _area(image, unit))):
            length = (0.2 + 0.5 * float(_rand(generator, 1))) * 256 * unit
            start = _rand(generator, 2) * torch.tensor([height, width])
            angle = float(_rand(generator, 1)) * 2 * math.pi
            end = start + length * torch.tensor([math.sin(angle), math.cos(angle)])
            bend = (start + end) / 2 + (_rand(generator, 2) - 0.5) * length * 0.5
            points = (1 - t) ** 2 * start + 2 * (1 - t) * t * bend + t**2 * end
            half = (0.25 + 0.5 * float(_rand(generator, 1))) * unit
            top, left = (points.amin(0) - half - 1).floor().clamp_min(0).int().tolist()
            bottom = int(min(height, float(points[:, 0].max() + half + 2)))
            right = int(min(width, float(points[:, 1].max() + half + 2)))
            if bottom <= top or right <= left:
                continue
            region = _polyline_region(points, max(half, 0.5), top, left, bottom, right, image.device)
            shade = 0.9 + 0.1 * float(_rand(generator, 1)) if float(_rand(generator, 1)) < 0.7 else 0.1 * float(
                _rand(generator, 1))
            _paint(image, index, region, torch.full((3,), shade, device=image.device), top, left, mask)
    return image, mask


def lines(image: torch.Tensor, strength: float, generator: torch.Generator, unit: float):
    """Up to 4 straight lines across a 256 × 256-unit photo (a fold or a film line), 0.5–1 size unit wide, light or
    dark; as many per unit of length on any image, so a crop crossed by a line has it too."""
    batch, _, height, width = image.shape
    mask = torch.zeros(batch, 1, height, width, dtype=torch.bool, device=image.device)
    for index in range(batch):
        for _ in range(_count(strength, 4, generator, (height + width) / 2 / (256.0 * unit))):
            vertical = float(_rand(generator, 1)) < 0.5
            span = width if vertical else height
            thickness = max(1, round((0.5 + 0.5 * float(_rand(generator, 1))) * unit))
            at = int(float(_rand(generator, 1)) * max(1, span - thickness))
            region = torch.zeros(height, width, dtype=torch.bool, device=image.device)
            if vertical:
                region[:, at:at + thickness] = True
            else:
                region[at:at + thickness, :] = True
            shade = 0.92 if float(_rand(generator, 1)) < 0.6 else 0.08
            _paint(image, index, region, torch.full((3,), shade, device=image.device), 0, 0, mask)
    return image, mask


def salt_pepper(image: torch.Tensor, strength: float, generator: torch.Generator, unit: float):
    """Up to 4% of the pixels set to black or white (dust)."""
    batch, _, height, width = image.shape
    hit = (_rand(generator, batch, 1, height, width) < 0.04 * strength).to(image.device)
    white = (_rand(generator, batch, 1, height, width) < 0.5).to(image.device)
    return torch.where(hit, white.float().expand_as(image), image), hit


def gaussian_noise(image: torch.Tensor, strength: float, generator: torch.Generator, unit: float):
    """Film grain / sensor noise: Gaussian, sigma up to 0.08 · strength (about 20/255 at full strength)."""
    noise = torch.randn(image.shape, generator=generator).to(image.device)
    return image + 0.08 * strength * noise, None


def jpeg(image: torch.Tensor, strength: float, generator: torch.Generator, unit: float):
    """A JPEG round trip at quality 90 − 80 · strength (torchvision's libjpeg)."""
    from torchvision.io import decode_jpeg, encode_jpeg

    quality = max(5, round(90 - 80 * strength))
    as_bytes = [item for item in image.clamp(0, 1).mul(255).round().to(torch.uint8).cpu()]
    decoded = decode_jpeg(encode_jpeg(as_bytes, quality=quality))
    return torch.stack(decoded).to(image.device, image.dtype) / 255.0, None


APPLY = {"fade": fade, "blur": blur, "blotches": blotches, "holes": holes, "scratches": scratches, "lines": lines,
         "salt_pepper": salt_pepper, "gaussian_noise": gaussian_noise, "jpeg": jpeg}
