"""tasks.images: every upload becomes an upright 8-bit RGB image, or a ValueError a person can act on."""

import io

import numpy as np
import pytest
from PIL import Image

from tasks import images
from tasks.images import MAX_PIXELS, load_rgb


def encode(image: Image.Image, format: str = "PNG", **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **params)
    return buffer.getvalue()


def test_rgb_png_from_path_bytes_and_file_object(tmp_path):
    image = Image.fromarray(np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3))
    path = tmp_path / "x.png"
    image.save(path)
    for source in (path, str(path), path.read_bytes(), io.BytesIO(path.read_bytes())):
        result = load_rgb(source)
        assert result.mode == "RGB" and result.size == (6, 4)
        np.testing.assert_array_equal(np.asarray(result), np.asarray(image))


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (40, 20), "red")
    image.paste((0, 0, 255), (0, 0, 10, 20))  # blue strip on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    result = load_rgb(encode(image, "JPEG", exif=exif, quality=95))
    assert result.size == (20, 40)  # portrait once upright
    top = np.asarray(result)[2, 10]
    assert top[2] > 200 and top[0] < 60  # the left strip is now on top


def test_grayscale_and_one_bit_become_gray_rgb():
    gray = Image.fromarray(np.full((5, 5), 77, np.uint8), "L")
    assert np.asarray(load_rgb(encode(gray)))[0, 0].tolist() == [77, 77, 77]
    assert np.asarray(load_rgb(encode(gray.convert("1"))))[0, 0].tolist() == [0, 0, 0]


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_transparency_is_composited_onto_white(mode):
    image = Image.new("RGBA", (4, 4), (0, 0, 0, 0))  # fully transparent black
    image.putpixel((0, 0), (10, 10, 10, 255))  # one opaque dark pixel
    result = np.asarray(load_rgb(encode(image.convert(mode))))
    assert result[3, 3].tolist() == [255, 255, 255]
    assert result[0, 0].tolist() == [10, 10, 10]


def test_palette_with_transparency_is_composited_onto_white():
    image = Image.new("P", (3, 3), 0)
    image.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    image.putpixel((1, 1), 1)
    data = encode(image, transparency=0)
    result = np.asarray(load_rgb(data))
    assert result[0, 0].tolist() == [255, 255, 255]
    assert result[1, 1].tolist() == [0, 255, 0]


@pytest.mark.parametrize("mode, key, color", [
    ("RGB", (0, 0, 0), (255, 0, 0)),  # ../shared/cases/replayed-reports/min_rgb_trns_2x2.png: black keyed out
    ("L", 0, 200),
    ("I;16", 0, 40000),
])
def test_a_color_key_is_transparency_composited_onto_white(mode, key, color):
    # a PNG tRNS chunk: every pixel of the key's value is transparent, as a browser shows it
    image = Image.new(mode, (2, 2), color)
    image.putpixel((0, 0), key)
    decoded = Image.open(io.BytesIO(encode(image, transparency=key)))
    assert decoded.info["transparency"] == key
    result = np.asarray(load_rgb(encode(image, transparency=key)))
    assert result[0, 0].tolist() == [255, 255, 255]
    assert result[1, 1].tolist() != [255, 255, 255]  # the other pixels keep their value
    # a PIL image handed over directly is treated the same
    assert np.asarray(load_rgb(decoded))[0, 0].tolist() == [255, 255, 255]


def _sixteen_bit_rgb_png(pixels: np.ndarray, key: tuple[int, int, int] | None, color_type: int = 2) -> bytes:
    """A 16-bit PNG written by hand (PIL cannot write 16-bit color): RGB (color type 2) with a tRNS color key, or
    gray + alpha (4) or RGBA (6) without one."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    height, width, _ = pixels.shape
    rows = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(height))
    key_chunk = chunk(b"tRNS", struct.pack(">HHH", *key)) if key is not None else b""
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0))
            + key_chunk + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("color_type, channels", [(2, 3), (4, 2), (6, 4)])
def test_sixteen_bit_color_and_alpha_pngs_are_said_to_be_deep_and_keep_their_alpha(color_type, channels):
    pixels = np.full((2, 3, channels), 0x8000, dtype=np.uint16)
    if channels in (2, 4):
        pixels[..., -1] = 0xFFFF
        pixels[0, 0, -1] = 0  # one transparent pixel
    layers = images.load_layers(_sixteen_bit_rgb_png(pixels, None, color_type))
    assert layers.deep and layers.rgb.size == (3, 2) and np.asarray(layers.rgb)[1, 1].tolist() == [128, 128, 128]
    assert (layers.alpha is not None) == (channels in (2, 4))
    if layers.alpha is not None:
        assert layers.alpha.getpixel((0, 0)) == 0 and layers.alpha.getpixel((1, 0)) == 255


def test_a_sixteen_bit_rgb_color_key_is_matched_at_the_pixels_depth():
    # PIL decodes 16-bit RGB to its high bytes but keeps the key at 16 bits: (0x00FF, 0, 0) would key out (255, 0, 0)
    pixels = np.array([[[0x00FF, 0, 0], [0xFF00, 0, 0], [0x8000, 0x8000, 0x8000]]], dtype=np.uint16)
    result = np.asarray(load_rgb(_sixteen_bit_rgb_png(pixels, (0x00FF, 0, 0))))
    assert result[0].tolist() == [[255, 255, 255], [255, 0, 0], [128, 128, 128]]


def test_cmyk_is_converted():
    cmyk = Image.new("CMYK", (3, 3), (0, 255, 255, 0))  # pure red in CMYK
    result = np.asarray(load_rgb(encode(cmyk, "JPEG", quality=100)))
    assert result[1, 1, 0] > 230 and result[1, 1, 1] < 30 and result[1, 1, 2] < 30


def test_sixteen_bit_gray_is_scaled_not_clipped():
    values = np.array([[0, 32768, 65535]], dtype=np.uint16)
    image = Image.fromarray(values)  # mode I;16
    assert image.mode.startswith("I")
    result = np.asarray(load_rgb(encode(image)))[0, :, 0]
    assert result.tolist() == [0, 128, 255]  # convert("L") alone would give [0, 255, 255]


def test_animated_gif_gives_first_frame():
    frames = [Image.new("RGB", (4, 4), color) for color in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    assert np.asarray(load_rgb(buffer.getvalue()))[0, 0, 0] > 200


def test_empty_file_is_refused(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    for source in (empty, b""):
        with pytest.raises(ValueError, match="empty"):
            load_rgb(source)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(ValueError, match="No file"):
        load_rgb(tmp_path / "nothing.png")


def test_text_file_is_refused(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("these are not pixels\n" * 20)
    with pytest.raises(ValueError, match="not an image"):
        load_rgb(text)


@pytest.mark.parametrize("format", ["PNG", "JPEG"])
def test_truncated_file_is_refused(format):
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    data = encode(noise, format)
    with pytest.raises(ValueError, match="damaged or truncated"):
        load_rgb(data[: len(data) // 2])


def test_decompression_bomb_is_refused_before_decoding():
    # a 1-bit PNG of 8000×6000 = 48 MP compresses to a few kB; it must be refused from its header
    bomb = encode(Image.new("1", (8000, 6000)))
    assert len(bomb) < 100_000
    with pytest.raises(ValueError, match="megapixels"):
        load_rgb(bomb)
    assert 8000 * 6000 > MAX_PIXELS


def test_custom_pixel_limit():
    with pytest.raises(ValueError, match="limit"):
        load_rgb(encode(Image.new("RGB", (100, 100))), max_pixels=5000)


def test_predict_reads_a_pil_image_handed_to_it_like_the_same_upload():
    # classify, colorize and mask used to take a PIL image through a bare convert("RGB"): transparent black stayed black
    from tasks import classify, mask

    image = Image.new("RGBA", (64, 48), (0, 0, 0, 0))
    image.paste((30, 30, 120, 255), (28, 4, 36, 44))  # a tall, narrow item
    upload = load_rgb(encode(image))
    assert np.asarray(upload)[0, 0].tolist() == [255, 255, 255]
    shown = classify.predict(classify.load(), image).model_input
    assert np.array_equal(np.asarray(shown), np.asarray(classify.predict(classify.load(), upload).model_input))
    pixels = np.asarray(shown)  # a colour photo: the photo model's letterbox, the transparent part white
    assert pixels[0, 0].tolist() == [255, 255, 255] and np.abs(pixels[80, 80].astype(int) - (30, 30, 120)).max() < 20
    cutout = mask.predict(mask.load(), image).cutout
    assert np.array_equal(np.asarray(cutout)[..., :3], np.asarray(upload))


def test_data_may_be_a_hub_dataset_with_an_image_column_and_a_clear_error_when_it_cannot_be_had(tmp_path, monkeypatch):
    import datasets

    asked = []

    def fake_load_dataset(name, split):
        asked.append((name, split))
        return {"image": [Image.new("RGB", (8, 6), (10, 20, 30))]}

    photos = tmp_path
    (photos / "val").mkdir()
    for name in ("1.png", "0.png"):
        Image.new("RGB", (4, 4)).save(photos / "val" / name)
    (photos / "val" / "notes.txt").write_text("not a photo")
    sources = images.photo_sources(str(photos / "val"))
    assert [path.name for path in sources] == ["0.png", "1.png"]
    with pytest.raises(FileNotFoundError, match="nobody/nothing is neither a folder of photos nor a dataset"):
        images.photo_sources("nobody/nothing")  # offline in the tests: HF_HUB_OFFLINE=1
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    sources = images.photo_sources(f"{photos / 'val'},you/photos,you/more:validation")
    assert len(sources) == 4 and sources[2].size == (8, 6)
    assert asked == [("you/photos", "train"), ("you/more", "validation")]
