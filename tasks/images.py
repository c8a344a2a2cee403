"""The one way an uploaded file becomes an RGB image.

`load_rgb` accepts a path, bytes, a binary file object or a PIL image and returns an upright 8-bit RGB image, or
raises ValueError with a sentence a person can act on. It applies the EXIF orientation; converts L, LA, P, PA, RGBA,
CMYK, 1-bit and 16/32-bit grayscale (scaled, not clipped); composites transparency onto white, whether an alpha
channel or a color key (PNG tRNS) gives it; and refuses empty files, non-images, truncated files and images above
MAX_PIXELS before decoding them (decompression bombs).
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 40_000_000  # 40 megapixels: larger uploads are refused before they are decoded
SUPPORTED = "PNG, JPEG, WebP, GIF, BMP or TIFF"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")  # what a folder of training photos may hold

DEEP_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")  # more than 8 bits per pixel

ImageSource = str | os.PathLike | bytes | BinaryIO | Image.Image


def _open(source: ImageSource) -> Image.Image:
    """Open (but do not decode) `source`; bytes and file objects are read into memory first."""
    if isinstance(source, (str, os.PathLike)):
        if not os.path.isfile(source):
            raise ValueError(f"No file at {os.fspath(source)!r}: upload the image again.")
        if os.path.getsize(source) == 0:
            raise ValueError("The file is empty (0 bytes): the upload did not complete; upload it again.")
        return Image.open(source)
    data = source if isinstance(source, bytes) else source.read()
    if not data:
        raise ValueError("The file is empty (0 bytes): the upload did not complete; upload it again.")
    return Image.open(io.BytesIO(data))


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB; transparency, by alpha channel or by color key, is composited onto white.

    A color key is the PNG `tRNS` chunk of an RGB, grayscale or palette image (PIL's `info["transparency"]`): every
    pixel of that value is fully transparent, as a browser shows it.
    """
    if image.mode in DEEP_MODES:
        image = _deep_to_8_bit(image)
    if "transparency" in image.info and image.mode in ("1", "L", "RGB", "P") or image.mode in ("PA", "LA", "La", "RGBa"):
        image = image.convert("RGBA")  # PIL turns a color key (or a palette's transparent entries) into alpha
    if image.mode == "RGBA":
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, image).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV


def shrink(image: Image.Image, longest: int = 256) -> Image.Image:
    """`image` with its longer side at most `longest` pixels (box filter), resized straight from it: a large photo is
    never copied whole first. Returned as is when it is small enough (callers must not change it in place)."""
    scale = longest / max(image.size)
    if scale >= 1:
        return image
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.BOX)


def load_rgb(source: ImageSource, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode an uploaded image into an upright 8-bit RGB PIL image (transparency composited onto white).

    Args:
        source: a file path, the file's bytes, a binary file object, or an already opened PIL image.
        max_pixels: refuse images with more pixels than this (checked from the header, before decoding).

    Returns:
        A fully loaded RGB image with its EXIF orientation applied (first frame of an animation).

    Raises:
        ValueError: empty, unreadable, truncated or oversized input; the message says what to do.
    """
    return _to_rgb(decode(source, max_pixels))


@dataclass(frozen=True)
class Layers:
    """An upload split for image-to-image models: `rgb` as stored (not composited: the colors under transparent
    pixels are kept), `alpha` (mode L) when it had transparency, and whether it had more than 8 bits per channel
    (the models work at 8)."""

    rgb: Image.Image
    alpha: Image.Image | None
    deep: bool


def load_layers(source: ImageSource, max_pixels: int = MAX_PIXELS) -> Layers:
    """Decode an upload like `load_rgb`, but keep its alpha channel apart (alpha channel or color key alike).

    Raises:
        ValueError: as `load_rgb`.
    """
    image = decode(source, max_pixels)
    deep = image.mode in DEEP_MODES or bool(image.info.get("darkroom_16_bit"))
    if not ("transparency" in image.info or image.mode in ("RGBA", "PA", "LA", "La", "RGBa")):
        return Layers(rgb=_to_rgb(image), alpha=None, deep=deep)
    if image.mode in DEEP_MODES:
        image = _deep_to_8_bit(image)
    rgba = image.convert("RGBA")
    return Layers(rgb=rgba.convert("RGB"), alpha=rgba.getchannel("A"), deep=deep)


def _deep_to_8_bit(image: Image.Image) -> Image.Image:
    """A 16/32-bit gray image as 8-bit L, or LA when it has a color key. PIL's convert("L") clips such values at 255;
    the container's range is scaled to 0..255 instead."""
    values = np.asarray(image, dtype=np.float64)
    full_scale = {"F": 1.0 if values.max(initial=0) <= 1.0 else 255.0}.get(image.mode, 65535.0)
    gray = Image.fromarray(np.clip(np.round(values / full_scale * 255.0), 0, 255).astype(np.uint8))
    key = image.info.get("transparency")
    if isinstance(key, (int, float)) and not isinstance(key, bool):
        return Image.merge("LA", (gray, Image.fromarray(np.where(values == key, 0, 255).astype(np.uint8))))
    return gray


def decode(source: ImageSource, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open, check and decode an upload, upright (EXIF), in its own mode: what `load_rgb` and `load_layers` convert.

    Args:
        source: a file path, the file's bytes, a binary file object, or an already opened PIL image.
        max_pixels: refuse images with more pixels than this (checked from the header, before decoding).

    Returns:
        The fully loaded image in its own mode (first frame of an animation), EXIF orientation applied; a 16-bit RGB,
        RGBA or LA PNG (which PIL decodes to 8 bits) carries info["darkroom_16_bit"].

    Raises:
        ValueError: empty, unreadable, truncated or oversized input; the message says what to do.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = source if isinstance(source, Image.Image) else _open(source)
            width, height = image.size
            if width * height > max_pixels:
                raise ValueError(
                    f"The image is {width}×{height} = {width * height / 1e6:.1f} megapixels; the limit is "
                    f"{max_pixels / 1e6:.1f}. Downscale it and upload it again."
                )
            if width == 0 or height == 0:
                raise ValueError("The image has no pixels (width or height is 0).")
            image.seek(0)
            sixteen_bit = any(";16" in str(tile.args) for tile in getattr(image, "tile", []))  # stored at 16 bits
            image.load()
            if sixteen_bit and image.mode == "RGB" and isinstance(image.info.get("transparency"), tuple):
                # PIL keeps a 16-bit RGB PNG's high bytes but its color key at 16 bits: compare like with like
                image.info["transparency"] = tuple(value >> 8 for value in image.info["transparency"])
            if image.getexif().get(ExifTags.Base.Orientation, 1) != 1:  # exif_transpose copies even when there is nothing to turn
                image = ImageOps.exif_transpose(image)
            if sixteen_bit and image.mode not in DEEP_MODES:
                image.info["darkroom_16_bit"] = True  # PIL decoded it to 8 bits (RGB, RGBA, LA): say so to whoever asks
    except UnidentifiedImageError as error:
        raise ValueError(f"This file is not an image that can be read; upload a {SUPPORTED} file.") from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ValueError(f"The image is too large to decode safely; the limit is {max_pixels / 1e6:.0f} megapixels.") from error
    except (OSError, SyntaxError, EOFError) as error:  # PIL reports truncated/corrupt data as OSError or SyntaxError
        raise ValueError(
            f"The image file is damaged or truncated ({error}); re-save or re-export it and upload it again."
        ) from error
    return image


def image_files(data: str) -> list[Path]:
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


def photo_sources(data: str, split: str = "train") -> list[Path | Image.Image]:
    """The HR photos `data` names, comma-separated: image folders (their files, sorted) and `datasets` ids with an
    `image` column, as "owner/name" (its `split`) or "owner/name:split" (e.g. "eugenesiow/Div2k:validation").

    Returns:
        File paths and PIL images, each for `load_rgb`.

    Raises:
        FileNotFoundError: a part that is neither a folder nor a dataset that can be loaded (offline, unknown id,
            no `image` column), or no photo at all.
    """
    sources: list[Path | Image.Image] = []
    for part in (part for part in data.split(",") if part):
        if Path(part).is_dir() or part.startswith((".", "/")):
            sources += image_files(part)
            continue
        import datasets

        name, _, part_split = part.partition(":")
        try:
            dataset = datasets.load_dataset(name, split=part_split or split)
            sources += list(dataset["image"])
        except Exception as error:  # datasets raises many kinds (offline, missing, no such split or column)
            raise FileNotFoundError(f"{part} is neither a folder of photos nor a dataset with an 'image' column that "
                                    f"can be loaded here ({type(error).__name__}: {error}).") from error
    if not sources:
        raise FileNotFoundError(f"No photos in {data!r}.")
    return sources
