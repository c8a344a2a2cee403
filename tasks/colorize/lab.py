"""CIELAB, normalised the original project's way: L / 100, and a*, b* mapped to [0, 1] over their range on the full
sRGB gamut (D65). Every MAE in this task is on these [0, 1] a*b* values; `normalise_ab` is the one place the mapping is
defined. Also the tensor <-> PIL conversions every other module shares."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from tasks.images import shrink

A_RANGE = (-86.185, 98.254)  # a* over all sRGB colors: span 184.439
B_RANGE = (-107.863, 94.482)  # b* over all sRGB colors: span 202.345
_RGB_TO_XYZ = torch.tensor([[0.412453, 0.357580, 0.180423],
                            [0.212671, 0.715160, 0.072169],
                            [0.019334, 0.119193, 0.950227]])  # sRGB primaries, D65 (as scikit-image)
_XYZ_TO_RGB = torch.linalg.inv(_RGB_TO_XYZ)
_WHITE = torch.tensor([0.95047, 1.0, 1.08883])  # D65, 2° observer
_EPSILON, _KAPPA = 0.008856, 7.787  # CIE's f(t) knee and slope
_AB_LOW = torch.tensor([A_RANGE[0], B_RANGE[0]])
_AB_SPAN = torch.tensor([A_RANGE[1] - A_RANGE[0], B_RANGE[1] - B_RANGE[0]])


def _along(values: torch.Tensor, like: torch.Tensor, dim: int) -> torch.Tensor:
    """The (2,) a*, b* constants shaped to broadcast along `dim` of `like`."""
    shape = [1] * like.dim()
    shape[dim] = 2
    return values.to(like).view(shape)


def normalise_ab(ab: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """CIELAB a*, b* (2 along `dim`) → [0, 1] over their sRGB range: the one place the normalisation is defined."""
    return (ab - _along(_AB_LOW, ab, dim)) / _along(_AB_SPAN, ab, dim)


def ab_units(ab: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Normalised a*b* (2 along `dim`) → CIELAB a*, b*: the inverse of `normalise_ab`."""
    return ab * _along(_AB_SPAN, ab, dim) + _along(_AB_LOW, ab, dim)


def _mix(matrix: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Apply a 3×3 color matrix to (..., 3, H, W)."""
    return (matrix.to(image) @ image.flatten(-2)).view(image.shape)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB (..., 3, H, W) in [0, 1] → normalised L*a*b* (..., 3, H, W), each channel in [0, 1]."""
    linear = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = _mix(_RGB_TO_XYZ, linear) / _WHITE.to(rgb).view(3, 1, 1)
    f = torch.where(xyz > _EPSILON, xyz.clamp_min(_EPSILON) ** (1 / 3), _KAPPA * xyz + 16 / 116)
    fx, fy, fz = f.unbind(-3)
    ab = normalise_ab(torch.stack([500 * (fx - fy), 200 * (fy - fz)], dim=-3), dim=-3)
    return torch.cat([((116 * fy - 16) / 100).unsqueeze(-3), ab], dim=-3)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """Normalised L*a*b* (..., 3, H, W) → sRGB in [0, 1] (out-of-gamut colors clipped)."""
    a, b = ab_units(lab[..., 1:, :, :], dim=-3).unbind(-3)
    fy = (lab[..., 0, :, :] * 100 + 16) / 116
    fx = fy + a / 500
    fz = (fy - b / 200).clamp_min(0)
    f = torch.stack([fx, fy, fz], dim=-3)
    xyz = torch.where(f > 0.2068966, f ** 3, (f - 16 / 116) / _KAPPA) * _WHITE.to(lab).view(3, 1, 1)
    linear = _mix(_XYZ_TO_RGB, xyz).clamp(0, 1)
    return torch.where(linear > 0.0031308, 1.055 * linear.clamp_min(0.0031308) ** (1 / 2.4) - 0.055, 12.92 * linear)


def gray_from_lightness(lightness: torch.Tensor) -> torch.Tensor:
    """Normalised L (..., 1, H, W) → the sRGB gray (..., 3, H, W) of that lightness: lab_to_rgb with a* = b* = 0,
    computed on one channel (neutral colors have R = G = B = Y in linear light)."""
    fy = (lightness * 100 + 16) / 116
    linear = torch.where(fy > 0.2068966, fy ** 3, (fy - 16 / 116) / _KAPPA).clamp(0, 1)
    gray = torch.where(linear > 0.0031308, 1.055 * linear.clamp_min(0.0031308) ** (1 / 2.4) - 0.055, 12.92 * linear)
    return gray.expand(*gray.shape[:-3], 3, *gray.shape[-2:])


NEUTRAL_AB = normalise_ab(torch.zeros(2))  # a* = b* = 0


def to_tensor(pictures: list[Image.Image]) -> torch.Tensor:
    """PIL RGB images of one size → (N, 3, H, W) float in [0, 1]."""
    array = np.stack([np.asarray(picture.convert("RGB"), dtype=np.float32) for picture in pictures])
    return torch.from_numpy(array).permute(0, 3, 1, 2) / 255.0


def to_uint8(rgb: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] → (H, W, C) uint8, rounded."""
    return (rgb.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


COLOR_CHROMA = 6.0  # CIELAB a*b* units: the least chroma a photo's most colored 1% must have for it to count as color


def has_color(photo: Image.Image, chroma: float = COLOR_CHROMA) -> bool:
    """Whether a photo has color a person would see, as opposed to a gray photo with sensor, scanner or JPEG noise.

    The photo is shrunk to at most 256 px (box filter) and its a*, b* averaged over 5×5 neighbourhoods, which cancels
    per-pixel chroma noise but keeps any colored area of more than a few pixels; it has color when the 99th
    percentile of the chroma √(a*² + b*²) exceeds `chroma` CIELAB units (about where a color difference is noticeable
    at a glance). Measured (a*b* units, 99th percentile): gray photos with ±2 to ±10 per-channel noise 0.2-2.9 at 64,
    200 and 1024 px, JPEG-compressed gray 0.0, uniform casts of (+3, +1, -3) and (+5, +2, -5) RGB 3.1 and 5.3; a
    color photo at 10% saturation 5.9 (gray), at 15% 8.9, a sepia-toned print 8.6, scikit-image's color photos
    30-73. Not told apart: strong blotchy chroma noise (RGB standard deviation 3, 3 px blobs) on a small photo, 6.5.

    Args:
        photo: any PIL image (converted to RGB).
        chroma: threshold in CIELAB units (default COLOR_CHROMA).
    """
    ab = ab_units(rgb_to_lab(to_tensor([shrink(photo, 256)]))[:, 1:], dim=1)  # (1, 2, h, w) in CIELAB units
    if min(ab.shape[-2:]) >= 5:
        ab = torch.nn.functional.avg_pool2d(ab, 5, stride=1)
    return float(torch.quantile(torch.linalg.vector_norm(ab[0], dim=0).flatten(), 0.99)) > chroma
