"""Image-to-image inference over tiles: a fully convolutional model on a photo of any size, with no seam, its working
memory (activations) bounded by the tile rather than the photo; the photo and the result themselves stay whole.

Each output tile is the model's answer for a core of `tile` × `tile` input pixels, computed on that core together
with `context` pixels of the photo around it (fewer where the photo ends) and then cropped back to the core. With
`context` at least the model's receptive-field radius (in input pixels) every output pixel sees exactly what it would
see in one pass over the whole photo, so the tiles join without blending and the result equals the untiled one up to
float rounding (Restore and Upscale share this).

    photo (H, W) ─cores of tile×tile, each + context─▶ model ─crop to core × scale─▶ output (H·scale, W·scale)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def tiled(model: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, *, scale: int = 1, tile: int = 256,
          context: int = 16, multiple: int = 1, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Run `model` over `image` tile by tile.

    Args:
        model: (1, C, h, w) float → (1, C', h·scale, w·scale); fully convolutional (no global pooling or attention
            across the whole input: those see only their tile).
        image: (1, C, H, W) float, any H, W ≥ 1.
        scale: the model's output size over its input size (1 for restoration, 2 for ×2 super-resolution).
        tile: the side of a core, in input pixels; the working set is about (tile + 2·context)² pixels.
        context: input pixels of the photo around each core that the model sees and the output drops; at least the
            model's receptive-field radius for a seamless result.
        multiple: the model needs h and w to be multiples of this (e.g. a Swin window): each tile's input is padded
            at its right and bottom by repeating its edge, and the padding's output is cut off.
        dtype: of the result; torch.uint8 turns each tile's output into 0..255 at once (clamped to [0, 1], rounded),
            so a large result never exists as floats (4× the memory).

    Returns:
        (1, C', H·scale, W·scale) of `dtype`.

    Raises:
        ValueError: an image that is not (1, C, H, W), or tile < 1, context < 0, scale < 1, multiple < 1.
    """
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"Expected one image as (1, C, H, W); got shape {tuple(image.shape)}.")
    if tile < 1 or context < 0 or scale < 1 or multiple < 1:
        raise ValueError(f"Need tile ≥ 1, context ≥ 0, scale ≥ 1, multiple ≥ 1; got {tile}, {context}, {scale}, "
                         f"{multiple}.")
    height, width = image.shape[-2:]
    result = None
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            bottom, right = min(top + tile, height), min(left + tile, width)
            # the core plus its context, clipped to the photo: at the photo's edge the model pads as it would there
            y0, x0 = max(0, top - context), max(0, left - context)
            y1, x1 = min(height, bottom + context), min(width, right + context)
            patch = image[..., y0:y1, x0:x1]
            pad_h, pad_w = -patch.shape[-2] % multiple, -patch.shape[-1] % multiple
            if pad_h or pad_w:
                patch = F.pad(patch, (0, pad_w, 0, pad_h), mode="replicate")
            out = model(patch)
            core = out[..., (top - y0) * scale:(bottom - y0) * scale, (left - x0) * scale:(right - x0) * scale]
            if dtype == torch.uint8:
                core = core.clamp(0, 1).mul(255).round().to(torch.uint8)
            if result is None:  # the output's channels are known once the model has answered
                result = torch.empty((1, out.shape[1], height * scale, width * scale), dtype=dtype)
            result[..., top * scale:bottom * scale, left * scale:right * scale] = core.to(dtype)
    return result
