"""LPIPS is the published metric: the real AlexNet weights (offline), the reference pair's published distances, and
a sentence instead of random weights when the file is missing."""

import pickle

import numpy as np
import pytest
from PIL import Image

from tasks import perceptual

DATA = perceptual.Path(__file__).parent / "data" / "lpips"  # the LPIPS repository's example pair (BSD-2, LICENSE)


def _rgb(name: str) -> np.ndarray:
    return np.asarray(Image.open(DATA / f"{name}.png").convert("RGB"))


def test_the_reference_pair_gives_the_published_distances_and_an_image_is_at_zero_from_itself():
    reference = _rgb("ex_ref")
    assert perceptual.lpips_distance(reference, _rgb("ex_p0")) == pytest.approx(0.722, abs=5e-4)
    assert perceptual.lpips_distance(reference, _rgb("ex_p1")) == pytest.approx(0.138, abs=5e-4)
    assert perceptual.lpips_distance(reference, reference) == 0.0


def test_without_the_weights_lpips_is_unavailable_with_a_sentence(monkeypatch):
    monkeypatch.setattr(perceptual, "weights_path", lambda: None)
    perceptual.lpips_model.cache_clear()
    try:
        with pytest.raises(perceptual.LPIPSUnavailable, match="python -m tasks.perceptual rebuild"):
            perceptual.lpips_distance(np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32, 3), np.uint8))
    finally:
        perceptual.lpips_model.cache_clear()


def test_an_image_too_small_for_alexnet_is_a_sentence_and_the_smallest_one_works():
    with pytest.raises(ValueError, match="at least 31×31 pixels; got 30×40"):
        perceptual.lpips_distance(np.zeros((40, 30, 3), np.uint8), np.zeros((40, 30, 3), np.uint8))
    side = perceptual.MIN_SIDE
    assert perceptual.lpips_distance(np.zeros((side, side, 3), np.uint8), np.full((side, side, 3), 9, np.uint8)) > 0


def test_the_checkpoint_reader_transposes_kernels_and_runs_no_code():
    rng = np.random.default_rng(0)
    convs = {name: {"kernel": rng.standard_normal((3, 5, 2, 4)).astype(np.float32),  # HWIO
                    "bias": rng.standard_normal(4).astype(np.float32)} for name in perceptual.CONV_INDEX}
    tensors = perceptual.features_from_checkpoint(pickle.dumps({"params": {"AlexNet_0": convs}}))
    assert tensors["features.3.weight"].shape == (4, 2, 3, 5)  # OIHW
    np.testing.assert_array_equal(tensors["features.3.weight"].numpy()[1, 0], convs["Conv_1"]["kernel"][:, :, 0, 1])

    class Payload:
        def __reduce__(self):
            return (print, ("ran",))

    with pytest.raises(pickle.UnpicklingError, match="builtins.print is not allowed"):
        perceptual.features_from_checkpoint(pickle.dumps(Payload()))


def test_images_of_different_sizes_are_refused():
    with pytest.raises(ValueError, match="one size"):
        perceptual.lpips_distance(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8))
