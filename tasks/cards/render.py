"""A procedural renderer of vintage trading-card backs with gum stains, and the pixel mask of each stain.

Labelled data a card-grading team can train stain detectors on, and the training set of the Cards diffusion model.
Deterministic by seed: `render_card(seed, category)` gives the same card and mask on every machine (NumPy's
PCG64 generator and PIL resampling only).

Card stock colors are the medians of the borders of the public-domain 1887–1933 scans in ../shared/data/cards-pd
(white-border T206s to toned Old Judges); ink colors are those of period card-back printing.

    python -m tasks.cards render --n 200 --out cards/        # 200 cards per category, with masks
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

# The original project's folder names: one per stain category, plus clean backs for contrast.
CATEGORIES = ("FULL_CARD", "WHITE_MARKS", "LIGHT", "SMALL", "CLEAN")
ANY_CATEGORY = "ALL_GUM_STAIN_CARDS"  # the original's folder of every stained card, any category

# Border medians (RGB) of the cards-pd scans, light to toned.
STOCK_COLORS = np.array([
    (244, 237, 222), (239, 228, 220), (236, 229, 214), (242, 232, 211), (243, 227, 202),
    (237, 218, 191), (231, 218, 201), (230, 217, 195), (220, 202, 175), (218, 202, 182),
], dtype=np.float32) / 255.0
INK_COLORS = np.array([
    (38, 30, 26), (30, 58, 44), (118, 36, 30), (28, 40, 88), (74, 52, 36), (52, 52, 56),
], dtype=np.float32) / 255.0
GUM_TINT = np.array((0.86, 0.70, 0.46), dtype=np.float32)  # multiplicative amber of dried gum
RESIDUE_COLORS = np.array([(248, 246, 238), (242, 222, 226), (236, 236, 226)], dtype=np.float32) / 255.0


@dataclass
class RenderedCard:
    """One card back: RGB image, stain mask (L, 255 = stain) and its category, and what the renderer drew: the stock
    color (index into STOCK_COLORS), the ink (index into INK_COLORS) and whether the header is a solid block."""

    image: Image.Image
    mask: Image.Image
    category: str
    seed: int
    stock: int = -1
    ink: int = -1
    solid_header: bool = False


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: float) -> np.ndarray:
    """Smooth random field in [0, 1], (H, W): a coarse random grid (one value per `cell` px) upsampled bicubically."""
    grid = rng.random((max(2, int(height / cell) + 2), max(2, int(width / cell) + 2)), dtype=np.float32)
    field = np.asarray(Image.fromarray(grid, mode="F").resize((width, height), Image.Resampling.BICUBIC))
    low, high = field.min(), field.max()
    return (field - low) / max(high - low, 1e-6)


def _blob(rng: np.random.Generator, height: int, width: int, centre: tuple[float, float], radius: float,
          roughness: float) -> np.ndarray:
    """A soft irregular blob in [0, 1], (H, W): an ellipse at `centre` (fractions of H, W) with radius a fraction of
    the card's shorter side, its outline perturbed by smooth noise (`roughness` in [0, 1])."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    stretch = rng.uniform(0.7, 1.4)
    dy, dx = yy - centre[0] * height, xx - centre[1] * width
    u = (dx * np.cos(angle) + dy * np.sin(angle)) / stretch
    v = (-dx * np.sin(angle) + dy * np.cos(angle)) * stretch
    distance = np.sqrt(u**2 + v**2) / (radius * min(height, width))
    distance = distance + roughness * (_smooth_noise(rng, height, width, cell=min(height, width) / 5) - 0.5)
    return np.clip((1.0 - distance) * 6.0, 0.0, 1.0)  # soft edge a sixth of the radius wide


def _card_back(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, dict]:
    """An unstained printed card back, float RGB (H, W, 3) in [0, 1], and its choices {"stock", "ink",
    "solid_header"} (see RenderedCard)."""
    # 1. card stock: a scan color, a slow toning gradient, paper grain
    stock_index = int(rng.integers(len(STOCK_COLORS)))
    stock = STOCK_COLORS[stock_index] * rng.uniform(0.97, 1.02)
    toning = 1.0 - 0.06 * _smooth_noise(rng, height, width, cell=height / 2)[..., None]
    grain = 1.0 + 0.025 * (rng.random((height, width, 1), dtype=np.float32) - 0.5)
    card = stock * toning * grain

    # 2. printing: border, header block, stat-table rows of word-like dashes
    ink_index = int(rng.integers(len(INK_COLORS)))
    ink = INK_COLORS[ink_index]
    coverage = np.zeros((height, width), np.float32)
    margin = int(rng.uniform(0.05, 0.09) * width)
    line = max(1, round(width / 90))
    top, bottom, left, right = margin, height - margin, margin, width - margin
    coverage[top:top + line, left:right] = coverage[bottom - line:bottom, left:right] = 1
    coverage[top:bottom, left:left + line] = coverage[top:bottom, right - line:right] = 1
    if rng.random() < 0.5:  # a second, inner rule
        gap = 2 * line
        coverage[top + gap:top + gap + line, left + gap:right - gap] = 1
        coverage[bottom - gap - line:bottom - gap, left + gap:right - gap] = 1
    header_bottom = top + int(rng.uniform(0.14, 0.22) * height)
    inner_left, inner_right = left + 3 * line, right - 3 * line
    solid_header = bool(rng.random() < 0.6)
    if solid_header:  # a solid header with the title knocked out
        coverage[top + 3 * line:header_bottom, inner_left:inner_right] = 1
        title = _dash_row(rng, inner_right - inner_left - 8 * line, max(2, (header_bottom - top) // 3))
        y0 = (top + 3 * line + header_bottom) // 2 - title.shape[0] // 2
        coverage[y0:y0 + title.shape[0], inner_left + 4 * line:inner_left + 4 * line + title.shape[1]] -= title
    else:  # a large printed title
        title = _dash_row(rng, inner_right - inner_left, max(2, (header_bottom - top) // 2))
        y0 = (top + header_bottom) // 2 - title.shape[0] // 2
        coverage[y0:y0 + title.shape[0], inner_left:inner_left + title.shape[1]] = title
    rows = int(rng.integers(6, 12))
    row_height = max(1, round(height / 110))
    pitch = (bottom - 3 * line - header_bottom) / (rows + 1)
    for row in range(rows):
        y = int(header_bottom + (row + 1) * pitch)
        text = _dash_row(rng, inner_right - inner_left, row_height)
        coverage[y:y + row_height, inner_left:inner_left + text.shape[1]] = text
    coverage = np.clip(coverage, 0, 1) * rng.uniform(0.75, 0.95)  # ink never quite solid
    card = card * (1 - coverage[..., None]) + ink * coverage[..., None]

    # 3. wear: whitened, slightly rounded corners and grimy edges
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    edge = np.minimum.reduce([yy, xx, height - 1 - yy, width - 1 - xx])
    card *= (1.0 - 0.10 * np.exp(-edge / (0.03 * width)))[..., None]
    for cy, cx in ((0, 0), (0, width - 1), (height - 1, 0), (height - 1, width - 1)):
        wear = np.exp(-np.hypot(yy - cy, xx - cx) / (rng.uniform(0.02, 0.07) * width))
        card = card * (1 - 0.6 * wear[..., None]) + 0.95 * 0.6 * wear[..., None]
    return np.clip(card, 0, 1), {"stock": stock_index, "ink": ink_index, "solid_header": solid_header}


def _dash_row(rng: np.random.Generator, length: int, thickness: int) -> np.ndarray:
    """A row of "words": dashes of random length separated by gaps, (thickness, ≤ length) in {0, 1}."""
    row = np.zeros((thickness, max(length, 1)), np.float32)
    x = 0
    while x < length:
        word = int(rng.integers(max(2, length // 20), max(3, length // 6)))
        row[:, x:min(x + word, length)] = 1
        x += word + int(rng.integers(max(1, length // 40), max(2, length // 16)))
        if rng.random() < 0.12:  # lines end early, like text
            break
    return row


def _stain(rng: np.random.Generator, card: np.ndarray, category: str) -> tuple[np.ndarray, np.ndarray]:
    """Apply a gum stain of `category` to `card`; returns (stained card, boolean stain mask)."""
    height, width = card.shape[:2]
    shape = np.zeros((height, width), np.float32)
    if category == "CLEAN":
        return card, shape > 0
    if category == "WHITE_MARKS":  # opaque pale residue in several rough patches
        for _ in range(int(rng.integers(2, 6))):
            centre = (rng.uniform(0.15, 0.85), rng.uniform(0.15, 0.85))
            shape = np.maximum(shape, _blob(rng, height, width, centre, rng.uniform(0.06, 0.16), roughness=0.9))
        color = RESIDUE_COLORS[rng.integers(len(RESIDUE_COLORS))]
        texture = 0.75 + 0.25 * _smooth_noise(rng, height, width, cell=width / 24)
        alpha = shape * rng.uniform(0.7, 0.9) * texture
        stained = card * (1 - alpha[..., None]) + color * alpha[..., None]
        return stained, shape > 0.5
    # the translucent amber stains: one blob (FULL, LIGHT) or one or two (SMALL), with a darker dried rim
    if category == "FULL_CARD":
        blobs, radius, strength = 1, rng.uniform(0.75, 1.0), rng.uniform(0.55, 0.85)
        centres = [(rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.6))]
    elif category == "LIGHT":
        blobs, radius, strength = 1, rng.uniform(0.3, 0.5), rng.uniform(0.25, 0.4)
        centres = [(rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7))]
    elif category == "SMALL":
        blobs, radius, strength = int(rng.integers(1, 3)), rng.uniform(0.09, 0.16), rng.uniform(0.6, 0.9)
        centres = [(rng.uniform(0.15, 0.85), rng.uniform(0.15, 0.85)) for _ in range(blobs)]
    else:
        raise ValueError(f"Unknown stain category {category!r}; choose one of {', '.join(CATEGORIES)}.")
    for centre in centres:
        shape = np.maximum(shape, _blob(rng, height, width, centre, radius, roughness=0.5))
    rim = np.clip(4 * shape * (1 - shape), 0, 1) * 0.5
    density = np.clip(shape + rim, 0, 1.5) * strength
    tint = 1 - density[..., None] * (1 - GUM_TINT)
    return card * tint, shape > 0.5


def render_card(seed: int, category: str, size: tuple[int, int] = (160, 128), supersample: int = 2) -> RenderedCard:
    """Render one card back with a gum stain of `category`.

    Args:
        seed: the card; the same (seed, category, size) gives the same pixels everywhere.
        category: one of CATEGORIES.
        size: (height, width) of the output, portrait.
        supersample: render this many times larger, then downsample (anti-aliased print and stain edges).

    Returns:
        RenderedCard with an RGB image and an L mask (255 where the stain is) of `size`.
    """
    if category not in CATEGORIES:
        raise ValueError(f"Unknown stain category {category!r}; choose one of {', '.join(CATEGORIES)}.")
    height, width = size
    rng = np.random.default_rng([seed, CATEGORIES.index(category)])
    card, drawn = _card_back(rng, height * supersample, width * supersample)
    card, mask = _stain(rng, card, category)
    image = Image.fromarray(np.round(np.clip(card, 0, 1) * 255).astype(np.uint8)).resize((width, height), Image.Resampling.LANCZOS)
    mask_image = Image.fromarray(mask.astype(np.uint8) * 255).resize((width, height), Image.Resampling.BOX)
    image = image.filter(ImageFilter.GaussianBlur(0.3))  # a scanner's softness
    return RenderedCard(image=image, mask=mask_image.point(lambda v: 255 if v >= 128 else 0), category=category, seed=seed,
                        **drawn)


def render_dataset(n_per_category: int, out: str | Path, size: tuple[int, int] = (160, 128), seed: int = 0,
                   categories: tuple[str, ...] = CATEGORIES) -> Path:
    """Write `out/<CATEGORY>/<seed>.png` and `out/masks/<CATEGORY>/<seed>.png` for n cards per category.

    Card seeds are `seed * 1_000_000 + i`, so two datasets with different `seed` never share a card.
    """
    out = Path(out)
    for category in categories:
        (out / category).mkdir(parents=True, exist_ok=True)
        (out / "masks" / category).mkdir(parents=True, exist_ok=True)
        for index in range(n_per_category):
            card_seed = seed * 1_000_000 + index
            card = render_card(card_seed, category, size)
            card.image.save(out / category / f"{card_seed:07d}.png")
            card.mask.save(out / "masks" / category / f"{card_seed:07d}.png")
    return out
