"""Bad input on every image endpoint, over HTTP: each upload gets a correct result or a sentence a person can act on
(never a stack trace, never a silently wrong image), and the next good request on the same server succeeds."""

import io

import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from tasks.hub import ASSETS_DIR

GOOD = ASSETS_DIR / "examples" / "restore" / "chelsea.png"
ENDPOINTS = {  # endpoint -> (the arguments after the upload, whether the main output keeps the upload's upright size)
    "classify": ((), False),
    "colorize": ((1.0,), True),
    "mask": ((0.5, "#ffffff"), True),
    "stain": (("centre", "SMALL", 3, ""), False),
    "upscale": (("×2",), True),
    "restore": (("It is already damaged", [], 1.0, 0), True),
}
REFUSED = ("text", "truncated", "empty", "huge")  # never an image out of these
KEY, KEYED_BLOCK = (1, 2, 3), (slice(10, 30), slice(0, 20))  # the "keyed" upload's transparent colour, and where


@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


def _save(image: Image.Image, path, **options):
    image.save(path, **options)
    return path


@pytest.fixture(scope="module")
def uploads(tmp_path_factory):
    """Name -> (file, the upright size (w, h) a correct result keeps, or None)."""
    root = tmp_path_factory.mktemp("uploads")
    rng = np.random.default_rng(0)
    photo = Image.open(GOOD).convert("RGB").resize((60, 40))
    jpeg = io.BytesIO()
    photo.save(jpeg, "JPEG", quality=90)
    (root / "text.jpg").write_text("this is not a photo\n")
    (root / "truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    (root / "empty.png").write_bytes(b"")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": upright it is 40 wide, 60 tall
    frames = [Image.new("RGB", (24, 16), color) for color in ((200, 30, 30), (30, 30, 200))]
    frames[0].save(root / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    palette = Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).convert("P", palette=Image.ADAPTIVE)
    rgba = photo.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(photo.size))
    deep = Image.fromarray((np.asarray(photo.convert("L"), dtype=np.uint16) * 257).astype(np.uint16))
    keyed = np.asarray(photo).copy()
    keyed[KEYED_BLOCK] = KEY  # a block of the PNG's transparent colour (tRNS), which must not show as that colour
    noise = rng.integers(-6, 7, (40, 60, 3))
    near_gray = np.clip(np.asarray(photo.convert("L"), dtype=int)[..., None] + noise, 0, 255).astype(np.uint8)
    return {
        "text": (root / "text.jpg", None),
        "truncated": (root / "truncated.jpg", None),
        "empty": (root / "empty.png", None),
        "huge": (_save(Image.new("L", (7800, 7800), 128), root / "huge.png"), None),  # 61 MP, refused from its header
        "dot": (_save(Image.new("RGB", (1, 1), (200, 30, 90)), root / "dot.png"), (1, 1)),
        "strip": (_save(Image.new("RGB", (3, 20000), (90, 120, 60)), root / "strip.png"), (3, 20000)),
        "16-bit": (_save(deep, root / "deep.png"), (60, 40)),
        "cmyk": (_save(photo.convert("CMYK"), root / "cmyk.jpg", quality=90), (60, 40)),
        "palette-gif": (_save(palette, root / "palette.gif", transparency=0), (30, 20)),
        "animated-gif": (root / "animated.gif", (24, 16)),
        "rgba": (_save(rgba, root / "rgba.png"), (60, 40)),
        "exif-rotated": (_save(photo, root / "phone.jpg", exif=exif, quality=90), (40, 60)),
        "webp": (_save(photo, root / "photo.webp", quality=90), (60, 40)),
        "keyed": (_save(Image.fromarray(keyed), root / "keyed.png", transparency=KEY), (60, 40)),
        "near-gray": (_save(Image.fromarray(near_gray), root / "near-gray.png"), (60, 40)),
    }


def _images(value):
    """Every image file path in an endpoint's result (slider pairs, galleries, plain images)."""
    if isinstance(value, str) and value.endswith((".png", ".webp", ".jpg")):
        return [value]
    if isinstance(value, dict):
        return _images(value.get("value")) if "value" in value else _images(value.get("image") or value.get("path"))
    if isinstance(value, (list, tuple)):
        return [path for item in value for path in _images(item)]
    return []


def _is_a_sentence(message: str) -> bool:
    return len(message) > 20 and message[0].isupper() and not any(
        marker in message for marker in ("Traceback", 'File "', "Error(", "Exception:"))


@pytest.mark.parametrize("upload", ["text", "truncated", "empty", "huge", "dot", "strip", "16-bit", "cmyk",
                                    "palette-gif", "animated-gif", "rgba", "exif-rotated", "webp", "keyed",
                                    "near-gray"])
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_every_image_endpoint_answers_each_upload_rightly_and_keeps_serving(client, uploads, endpoint, upload):
    arguments, keeps_size = ENDPOINTS[endpoint]
    path, upright = uploads[upload]
    try:
        result = client.predict(handle_file(str(path)), *arguments, api_name=f"/{endpoint}")
    except AppError as error:
        assert _is_a_sentence(str(error)), repr(str(error))
        if upload == "huge":
            assert "megapixels" in str(error)
        client.predict(handle_file(str(uploads["webp"][0])), *arguments, api_name=f"/{endpoint}")  # still serving
        return
    assert upload not in REFUSED, f"{upload} gave a result: {result}"
    images = _images(result)
    assert images, result
    assert all(Image.open(image).format == "PNG" for image in images), images  # lossless, what predict gave
    scale = 2 if endpoint == "upscale" else 1
    if upload == "keyed":  # the colour-keyed block is transparent: kept so, or composited onto white, in every
        for image in map(Image.open, images):  # colour image of the photo's size; never the key colour itself
            if image.size == (scale * upright[0], scale * upright[1]) and image.mode in ("RGB", "RGBA"):
                block = np.asarray(image.convert("RGBA").resize((60, 40), Image.Resampling.BOX))[KEYED_BLOCK]
                inner = block[3:-3, 3:-3]
                assert inner[..., 3].max() < 128 or inner[..., :3].mean() > 200, (endpoint, image.mode, inner.mean())
    if upload == "near-gray" and endpoint == "colorize":  # sensor noise on a gray photo is not colour to score
        assert "grayscale" in result[-1] and "error" not in result[-1], result[-1]
    if keeps_size:  # upright, and the photo's own size (x2 for the upscaler), in every image that is the photo
        first = Image.open(images[0])
        assert first.size == (scale * upright[0], scale * upright[1]), (endpoint, upload, first.size)
    if upload == "animated-gif" and endpoint == "restore":  # the first frame (red), not the second
        assert np.asarray(Image.open(images[0]).convert("RGB"))[..., 0].mean() > 150


CARDS_OK = ("SMALL", 1, 1, 2, "DPM-Solver++", 3.0, "")
KNOBS = {  # case -> (endpoint, arguments); an upload is the good photo
    "cards negative seed": ("cards", ("SMALL", -5, 1, 2, "DPM-Solver++", 3.0, "")),
    "cards n = 10^6": ("cards", ("SMALL", 1, 10**6, 2, "DPM-Solver++", 3.0, "")),
    "cards steps = 0": ("cards", ("SMALL", 1, 1, 0, "DPM-Solver++", 3.0, "")),
    "cards guidance 0": ("cards", ("SMALL", 1, 1, 2, "DPM-Solver++", 0.0, "")),
    "cards steps = 10^6": ("cards", ("SMALL", 1, 1, 10**6, "DPM-Solver++", 3.0, "")),
    "cards DDIM steps = 10^6": ("cards", ("SMALL", 1, 1, 10**6, "DDIM", 3.0, "")),
    "cards sampler unknown": ("cards", ("SMALL", 1, 1, 2, "Euler", 3.0, "")),
    "cards model ../../etc": ("cards", ("SMALL", 1, 1, 2, "DPM-Solver++", 3.0, "../../etc")),
    "cards model /etc": ("cards", ("SMALL", 1, 1, 2, "DPM-Solver++", 3.0, "/etc")),
    "cards model http://x": ("cards", ("SMALL", 1, 1, 2, "DPM-Solver++", 3.0, "http://x")),
    "stain negative seed": ("stain", ("upload", "centre", "SMALL", -1, "")),
    "stain model /etc": ("stain", ("upload", "centre", "SMALL", 1, "/etc")),
    "colorize saturation -1": ("colorize", ("upload", -1.0)),
    "mask threshold 0": ("mask", ("upload", 0.0, "#ffffff")),
    "mask threshold 1": ("mask", ("upload", 1.0, "#ffffff")),
    "mask background not a colour": ("mask", ("upload", 0.5, "not-a-colour")),
    "mask background rgba()": ("mask", ("upload", 0.5, "rgba(12, 200, 40, 0.5)")),
    "upscale factor x3": ("upscale", ("upload", "×3")),
    "restore negative seed": ("restore", ("upload", "Damage it for me", ["stains"], 1.0, -3)),
    "restore strength 10": ("restore", ("upload", "Damage it for me", ["stains"], 10.0, 0)),
    "cards seed emptied": ("cards", ("SMALL", None, 1, 2, "DPM-Solver++", 3.0, "")),
    "stain seed emptied": ("stain", ("upload", "centre", "SMALL", None, "")),
    "restore seed emptied": ("restore", ("upload", "Damage it for me", ["stains"], 1.0, None)),
    "restore seed 2.5": ("restore", ("upload", "Damage it for me", ["stains"], 1.0, 2.5)),
    "cards seed 2.5": ("cards", ("SMALL", 2.5, 1, 2, "DPM-Solver++", 3.0, "")),
    "stain seed 2.5": ("stain", ("upload", "centre", "SMALL", 2.5, "")),
    "colorize model unknown": ("colorize", ("upload", 1.0, "../../etc")),
}
GOOD_CALLS = {"cards": CARDS_OK, "stain": ("upload", "centre", "SMALL", 1, ""), "colorize": ("upload", 1.0),
              "mask": ("upload", 0.5, "#ffffff"), "upscale": ("upload", "×2"),
              "restore": ("upload", "It is already damaged", [], 1.0, 0)}


def _with_upload(arguments: tuple) -> tuple:
    return tuple(handle_file(str(GOOD)) if item == "upload" else item for item in arguments)


@pytest.mark.parametrize("case", list(KNOBS))
def test_an_out_of_range_knob_gets_a_result_or_a_sentence_and_the_server_keeps_serving(client, case):
    endpoint, arguments = KNOBS[case]
    try:
        result = client.predict(*_with_upload(arguments), api_name=f"/{endpoint}")
    except AppError as error:
        assert _is_a_sentence(str(error)), repr(str(error))
        if case.endswith("seed 2.5"):  # said as what it is, not rounded
            assert "whole number" in str(error), str(error)
    else:
        assert case.startswith(("mask threshold", "cards guidance 0")), f"{case} was not refused: {result}"
        assert _images(result)
        if case == "mask threshold 1":  # nothing is car at a threshold of 1: an empty mask, not an error
            assert np.asarray(Image.open(_images(result)[0])).max() == 0
    client.predict(*_with_upload(GOOD_CALLS[endpoint]), api_name=f"/{endpoint}")
