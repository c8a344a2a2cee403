"""The classical tools a person would otherwise reach for, as Restore's reference rows: OpenCV's Telea inpainting
(given the true damage mask) then non-local-means denoising, the same followed by auto levels (what a photo editor's
"auto contrast" does for a faded print), and scikit-image's biharmonic inpainting then its non-local means. Only the
bench uses them (opencv-python-headless is a dev requirement)."""

from __future__ import annotations

import numpy as np


def opencv_telea_nlm(damaged: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """cv2.inpaint (Telea 2004, radius 3) over `mask`, then cv2.fastNlMeansDenoisingColored (h = hColor = 10,
    template 7, search 21: OpenCV's documented defaults for colour photos).

    Args:
        damaged: (H, W, 3) uint8 RGB. mask: (H, W) bool, the pixels to fill.
    Returns:
        (H, W, 3) uint8 RGB.
    """
    import cv2

    bgr = cv2.cvtColor(damaged, cv2.COLOR_RGB2BGR)
    filled = cv2.inpaint(bgr, mask.astype(np.uint8) * 255, 3, cv2.INPAINT_TELEA)
    return cv2.cvtColor(cv2.fastNlMeansDenoisingColored(filled, None, 10, 10, 7, 21), cv2.COLOR_BGR2RGB)


def auto_levels(image: np.ndarray) -> np.ndarray:
    """A photo editor's auto levels: each channel's 0.5th-99.5th percentiles stretched to 0-255
    (skimage.exposure.rescale_intensity), undoing a fade's lost contrast and colour cast as far as a global
    per-channel map can. (H, W, 3) uint8 → (H, W, 3) uint8."""
    from skimage.exposure import rescale_intensity

    channels = [rescale_intensity(channel, in_range=tuple(np.percentile(channel, (0.5, 99.5))), out_range=(0, 255))
                for channel in np.moveaxis(image, -1, 0)]
    return np.clip(np.round(np.stack(channels, axis=-1)), 0, 255).astype(np.uint8)


def opencv_telea_nlm_levels(damaged: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`opencv_telea_nlm`, then `auto_levels`. Args and returns as `opencv_telea_nlm`."""
    return auto_levels(opencv_telea_nlm(damaged, mask))


def skimage_biharmonic_nlm(damaged: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """skimage.restoration.inpaint_biharmonic over `mask`, then denoise_nl_means (fast mode, patch 5, distance 6,
    h = 0.8 × the noise sigma estimate_sigma finds, as scikit-image's own example does).

    Args and returns as `opencv_telea_nlm`.
    """
    from skimage.restoration import denoise_nl_means, estimate_sigma, inpaint_biharmonic

    filled = inpaint_biharmonic(damaged.astype(np.float64) / 255.0, mask, channel_axis=-1)
    sigma = float(np.mean(estimate_sigma(filled, channel_axis=-1)))
    out = denoise_nl_means(filled, h=0.8 * sigma, sigma=sigma, fast_mode=True, patch_size=5, patch_distance=6,
                           channel_axis=-1)
    return np.clip(np.round(out * 255), 0, 255).astype(np.uint8)


TOOLS = {"opencv_telea_nlm": opencv_telea_nlm, "opencv_telea_nlm_levels": opencv_telea_nlm_levels,
         "skimage_biharmonic_nlm": skimage_biharmonic_nlm}
THEN = {"opencv_telea_nlm_levels": ("opencv_telea_nlm", auto_levels)}  # a row that is another row's result, post-processed


def run_tools(damaged: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """Every row of TOOLS on one damaged photo, each computed once (a THEN row from the row it follows)."""
    outputs = {name: tool(damaged, mask) for name, tool in TOOLS.items() if name not in THEN}
    outputs |= {name: then(outputs[first]) for name, (first, then) in THEN.items()}
    return {name: outputs[name] for name in TOOLS}
