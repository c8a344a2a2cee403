"""The app over real HTTP through gradio_client: right answers, clear errors, and a server that keeps serving."""

import json
import re
from pathlib import Path

import gradio as gr
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from tasks.hub import ASSETS_DIR

EXAMPLES = sorted((ASSETS_DIR / "examples" / "classify").glob("*.png"))


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


def test_api_lists_the_classify_endpoint(client):
    assert "/classify" in client.view_api(print_info=False, return_format="dict")["named_endpoints"]


def test_real_test_image_gets_its_true_label(client):
    sneaker = next(path for path in EXAMPLES if "sneaker" in path.name)
    model_input, label = client.predict(handle_file(str(sneaker)), api_name="/classify")
    assert label["label"] == "Sneaker"
    confidences = {item["label"]: item["confidence"] for item in label["confidences"]}
    assert len(confidences) == 5 and max(confidences, key=confidences.get) == "Sneaker"
    from PIL import Image

    with Image.open(model_input) as shown:
        assert shown.size == (224, 224)  # the 28×28 input at 8×


def test_text_file_gets_a_clear_error_and_the_server_keeps_serving(client, tmp_path):
    text = tmp_path / "coat.png"
    text.write_text("this is a text file, not a picture")
    with pytest.raises(AppError, match="not an image that can be read"):
        client.predict(handle_file(str(text)), api_name="/classify")
    trouser = next(path for path in EXAMPLES if "trouser" in path.name)
    _, label = client.predict(handle_file(str(trouser)), api_name="/classify")
    assert label["label"] == "Trouser"


def test_truncated_upload_gets_a_clear_error(client, tmp_path):
    import io

    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64), dtype=np.uint8)).save(buffer, "PNG")
    broken = tmp_path / "broken.png"
    broken.write_bytes(buffer.getvalue()[:300])
    with pytest.raises(AppError, match="damaged or truncated"):
        client.predict(handle_file(str(broken)), api_name="/classify")


def test_a_photo_with_no_item_gets_a_sentence_not_a_class(client, tmp_path):
    from PIL import Image

    blank = tmp_path / "wall.png"
    Image.new("RGB", (80, 60), (110, 110, 110)).save(blank)
    with pytest.raises(AppError, match="No item stands out from the background"):
        client.predict(handle_file(str(blank)), api_name="/classify")


def test_cards_endpoint_returns_n_cards_of_each_size_the_model_serves(client):
    from PIL import Image

    import app
    from tasks import cards

    sizes = cards.load().model.sizes
    assert app.card_sizes() == [f"{height}×{width}" for height, width in sizes] and len(sizes) == 3  # the cascade
    for height, width in sizes:
        gallery, serving = client.predict("SMALL", 3, 2, 4, "DPM-Solver++", 3, "", f"{height}×{width}",
                                          api_name="/cards")
        assert len(gallery) == 2
        for item in gallery:
            with Image.open(item["image"]) as card:
                assert card.size == (width, height)
    assert "Serving weights" in serving
    gallery, _ = client.predict("SMALL", 3, 1, 4, "DPM-Solver++", 3, "", api_name="/cards")  # the Size radio's default
    with Image.open(gallery[0]["image"]) as card:
        assert card.size == sizes[1][::-1]


def test_a_card_size_the_model_does_not_draw_is_an_error_naming_those_it_does(client):
    # Gradio's Radio refuses it first, naming the choices (a typed-in model's own sizes: diffusion.CardModel.factor)
    with pytest.raises(AppError, match=re.escape("not in the list of choices: ['80×64', '160×128', '320×256']")):
        client.predict("SMALL", 3, 1, 4, "DPM-Solver++", 3, "", "100×100", api_name="/cards")
    gallery, _ = client.predict("CLEAN", 1, 1, 2, "DPM-Solver++", 3, "", "80×64", api_name="/cards")
    assert len(gallery) == 1  # and keeps serving


def test_cards_same_seed_same_cards_over_http(client):
    first, _ = client.predict("LIGHT", 11, 1, 3, "DDIM", 1, "", api_name="/cards")
    again, _ = client.predict("LIGHT", 11, 1, 3, "DDIM", 1, "", api_name="/cards")
    assert open(first[0]["image"], "rb").read() == open(again[0]["image"], "rb").read()


@pytest.mark.parametrize("category, n, steps, source, message", [
    ("SMALL", 0, 4, "", "less than minimum value 1"),  # Gradio checks the slider's range
    ("SMALL", 1, 0, "", "less than minimum value 1"),
    ("COFFEE", 1, 4, "", "COFFEE is not in the list of choices"),  # and the dropdown's choices
    ("SMALL", 1, 4, "darkroom-tests/no-such-cards", "Could not load 'darkroom-tests/no-such-cards'"),
])
def test_cards_bad_values_give_errors_and_the_server_keeps_serving(client, category, n, steps, source, message):
    with pytest.raises(AppError, match=message):
        client.predict(category, 1, n, steps, "DPM-Solver++", 3, source, api_name="/cards")
    gallery, _ = client.predict("CLEAN", 1, 1, 2, "DPM-Solver++", 3, "", api_name="/cards")
    assert len(gallery) == 1


@pytest.mark.parametrize("allowed", [False, True], ids=["outside-the-model-roots", "under-a-model-root"])
def test_the_model_box_never_shows_server_paths_or_which_folders_exist(client, tmp_path, monkeypatch, allowed):
    if allowed:
        monkeypatch.setenv("DARKROOM_MODEL_ROOTS", str(tmp_path))
    (tmp_path / "not-a-pipeline").mkdir()
    messages = {}
    for typed in (str(tmp_path / "not-a-pipeline"), str(tmp_path / "missing")):
        with pytest.raises(AppError) as raised:
            client.predict("SMALL", 1, 1, 2, "DDIM", 1, typed, api_name="/cards")
        messages[typed] = str(raised.value)
        assert str(tmp_path) not in messages[typed].replace(repr(typed), "")
    # the same sentence, up to the name typed, for an existing folder and a missing one
    assert len({message.replace(repr(typed), "<typed>") for typed, message in messages.items()}) == 1, messages
    refused = "a folder under this server's model folders" in next(iter(messages.values()))
    assert refused is not allowed  # outside the roots: refused from the text; under one: tried, and failed alike


@pytest.mark.parametrize("typed", ["..", "../../etc", "/etc", "http://x", "outputs/../../etc", "a/..", "~root/.ssh"])
def test_a_typed_model_outside_the_model_roots_is_refused_before_any_file_is_read(client, typed, monkeypatch):
    import app

    touched = []
    monkeypatch.setattr(app.hub, "_local_folder", lambda source: touched.append(source))  # the first file access
    with pytest.raises(gr.Error, match="a Hub model id \\(user/name\\) or a folder under this server's model folders"):
        app.load_served("cards", typed)
    assert touched == []
    with pytest.raises(AppError, match=f"Could not load {re.escape(repr(typed))}: a model here is a Hub model id"):
        client.predict("SMALL", 1, 1, 2, "DDIM", 1, typed, api_name="/cards")


def test_leaving_the_model_box_sets_only_the_range_unless_the_steps_no_longer_fit(tmp_path, monkeypatch):
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    import app

    unet = UNet2DModel(sample_size=16, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(8, 16),
                       norm_num_groups=4, down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"))
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=50)).save_pretrained(tmp_path)
    monkeypatch.setenv("DARKROOM_MODEL_ROOTS", str(tmp_path))  # a typed folder must be under a model root
    # the CI race: clicking DPM-Solver++ blurs the box with the DDPM steps (50) after the radio set 20
    assert app.steps_slider("DDPM", str(tmp_path), 50) == {"__type__": "update", "maximum": 50}
    assert app.steps_slider("DDPM", str(tmp_path), 1000) == {"__type__": "update", "value": 50, "maximum": 50}
    assert app.steps_slider("DPM-Solver++", str(tmp_path)) == {"__type__": "update", "value": 20, "maximum": 50}
    assert app.steps_slider("DDPM", str(tmp_path / "missing"), 30) == {"__type__": "update"}


def test_models_asked_for_at_once_load_one_at_a_time_and_once(monkeypatch):
    import threading
    import time

    import app

    loading, most_at_once, loads = [0], [0], []

    def slow_load(source):
        loads.append(source)
        loading[0] += 1
        most_at_once[0] = max(most_at_once[0], loading[0])
        time.sleep(0.3)
        loading[0] -= 1
        return object()

    monkeypatch.setattr(app.cards, "load", slow_load)
    sources = ["darkroom-tests/slow-a", "darkroom-tests/slow-a", "darkroom-tests/slow-b"]
    models = {}
    threads = [threading.Thread(target=lambda i=i, source=source: models.update({i: app.load_served("cards", source)}))
               for i, source in enumerate(sources)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(loads) == ["darkroom-tests/slow-a", "darkroom-tests/slow-b"]  # a model asked for twice loads once
    assert most_at_once[0] == 1  # and no load runs beside another (diffusers patches torch while it loads)
    assert models[0] is models[1] and models[2] is not models[0]


def test_a_loaded_model_is_served_while_another_loads(monkeypatch):
    import threading

    import app

    started, release = threading.Event(), threading.Event()

    def load(source):
        if source.endswith("slow-download"):
            started.set()
            release.wait(timeout=10)
        return object()

    monkeypatch.setattr(app.cards, "load", load)
    loaded = app.load_served("cards", "darkroom-tests/loaded")
    downloading = threading.Thread(target=app.load_served, args=("cards", "darkroom-tests/slow-download"))
    downloading.start()
    assert started.wait(timeout=5)  # the slow load has begun, and holds the loading lock
    served = []
    asking = threading.Thread(target=lambda: served.append(app.load_served("cards", "darkroom-tests/loaded")))
    asking.start()
    asking.join(timeout=5)
    answered_during_the_download = not asking.is_alive()
    release.set()
    downloading.join()
    asking.join()
    assert answered_during_the_download and served == [loaded]


def test_the_app_keeps_the_last_eight_models_loaded(monkeypatch):
    import app

    loads = []
    monkeypatch.setattr(app.cards, "load", lambda source: loads.append(source) or object())
    sources = [f"darkroom-tests/kept-{i}" for i in range(9)]
    first = [app.load_served("cards", source) for source in sources]
    assert [app.load_served("cards", source) for source in sources[1:]] == first[1:] and len(loads) == 9
    assert app.load_served("cards", sources[0]) is not first[0] and loads[-1] == sources[0]  # the oldest was let go


def test_stain_endpoint_returns_before_after_and_mask(client, tmp_path):
    from PIL import Image

    from tasks.cards import render_card

    path = tmp_path / "clean.png"
    render_card(0, "CLEAN").image.save(path)
    (before, after), mask = client.predict(handle_file(str(path)), "centre", "SMALL", 0, "", api_name="/stain")
    with Image.open(after) as stained, Image.open(mask) as region:
        assert stained.size == region.size


def test_colorize_a_color_photo_returns_full_size_images_and_its_error(client, tmp_path):
    import numpy as np
    from PIL import Image

    photo = tmp_path / "tinted.png"
    ramp = np.linspace(40, 230, 90)[None, :, None] * np.ones((60, 90, 1))
    Image.fromarray(np.clip(ramp * [1.0, 0.8, 0.6], 0, 255).astype(np.uint8)).save(photo)
    (gray, colorized), original, note = client.predict(handle_file(str(photo)), 1.0, api_name="/colorize")
    for path in (gray, colorized):
        with Image.open(path) as image:
            assert image.size == (90, 60)
    # the original is shown only for color uploads: the endpoint returns it as a visibility update
    assert original["visible"] is True and "error" in note
    with Image.open(original["value"]) as shown:
        assert shown.size == (90, 60)


def test_colorize_a_grayscale_photo_says_there_is_nothing_to_compare(client, tmp_path):
    from PIL import Image

    photo = tmp_path / "gray.png"
    Image.linear_gradient("L").resize((64, 48)).save(photo)
    (gray, colorized), original, note = client.predict(handle_file(str(photo)), 1.5, api_name="/colorize")
    with Image.open(colorized) as image:
        assert image.size == (64, 48)
    assert original["visible"] is False and original["value"] is None and "grayscale" in note


def test_colorize_serves_both_models_by_the_model_parameter(client, tmp_path):
    import numpy as np
    from PIL import Image

    import app
    from tasks import colorize
    from tasks.images import load_rgb

    path = _texture(tmp_path, "L")
    results = {}
    for model in colorize.MODELS:
        (_, colorized), _, _ = client.predict(handle_file(str(path)), 1.0, model, api_name="/colorize")
        expected = colorize.predict(app.load_served("colorize", "", model), load_rgb(path))
        _assert_same(colorized, expected.image)
        results[model] = np.asarray(expected.image, dtype=np.int16)
    assert np.abs(results["photos"] - results["faces"]).mean() > 1  # two models, not one served twice
    (_, default), _, _ = client.predict(handle_file(str(path)), 1.0, api_name="/colorize")  # the default: photos
    _assert_same(default, Image.fromarray(results["photos"].astype(np.uint8)))
    with pytest.raises(AppError, match="photos|faces"):
        client.predict(handle_file(str(path)), 1.0, "../../etc", api_name="/colorize")


def test_colorize_bad_upload_is_a_clear_error(client, tmp_path):
    text = tmp_path / "face.jpg"
    text.write_text("not a photo")
    with pytest.raises(AppError, match="not an image that can be read"):
        client.predict(handle_file(str(text)), 1.0, api_name="/colorize")


@pytest.mark.parametrize("task, model", [("cards", ""), ("classify", ""), ("mask", ""), ("colorize", "photos"),
                                         ("colorize", "faces"), ("upscale", "")])
def test_each_tab_reports_its_serving_model_card_and_its_figures(task, model):
    import app
    from tasks import TASKS

    assert task in TASKS
    serving, text, figures = app.report_view(task, model)
    folder = ASSETS_DIR / "models" / task / ("faces" if model == "faces" else "")
    card = (folder / "README.md").read_text()
    assert "(bundled)" in serving and f"assets/models/{task}{'/faces' if model == 'faces' else ''}" in serving
    assert card.split("\n# ", 1)[1].splitlines()[0] in text and "license:" not in text  # the title, no Hub metadata
    assert "](" not in text  # the page cannot show the card's relative image links: they are figures instead
    shown = {Path(path).name for path, _ in figures}
    assert "training_curves.png" in shown and all(Path(path).parent == folder for path, _ in figures)
    summary = json.loads((folder / "metrics.json").read_text())
    headline = {"classify": f"{summary.get('test_accuracy', 0):.2%}", "mask": f"{summary.get('test_dice', 0):.4f}",
                "colorize": f"{summary.get('test_mae', 0):.4f}", "cards": f"{summary.get('parameters', 0):,}",
                "upscale": f"{summary.get('best_val_psnr_y', 0):.3f}"}[task]
    assert headline in text
    if model == "photos":  # the scenes it is for, and how colourful it paints them
        assert f"{summary['scenes_mae']:.4f}" in text and f"{summary['scenes_colorfulness']:.1f}" in text
    if model == "faces":  # each test person's MAE, and the interval over people
        low, high = summary["test_mae_interval95"]
        assert f"[{low:.4f}, {high:.4f}]" in text
        for person, value in summary["test_mae_by_person"].items():
            assert f"{person} {value:.4f}" in text


def test_a_model_folder_without_a_card_says_so(tmp_path, monkeypatch):
    import app

    monkeypatch.setenv("DARKROOM_CLASSIFY_MODEL", str(tmp_path / "plain"))
    import shutil

    shutil.copytree(ASSETS_DIR / "models" / "classify", tmp_path / "plain", ignore=shutil.ignore_patterns("README.md"))
    monkeypatch.setattr(app, "load_served", app.model_loader(app.load_served.__wrapped__))  # a fresh cache
    serving, text, figures = app.report_view("classify")
    assert "(environment)" in serving and "without a model card" in text and figures == []


def test_mask_endpoint_returns_full_size_mask_and_cutout(client, tmp_path):
    import numpy as np
    from PIL import Image, ImageDraw

    photo = tmp_path / "car.jpg"
    picture = Image.new("RGB", (300, 200), (225, 225, 230))
    ImageDraw.Draw(picture).rounded_rectangle((40, 80, 260, 160), radius=30, fill=(20, 30, 60))
    picture.save(photo)
    mask_path, cutout_path, (before, after) = client.predict(handle_file(str(photo)), 0.5, "#00ff00", api_name="/mask")
    with Image.open(mask_path) as mask, Image.open(cutout_path) as cutout, Image.open(after) as composed:
        assert mask.size == cutout.size == composed.size == (300, 200)
        assert cutout.mode == "RGBA"
        assert np.array_equal(np.asarray(cutout)[..., 3], np.asarray(mask.convert("L")))


def test_mask_of_a_photo_without_a_car_is_valid_and_bad_colors_are_refused(client, tmp_path):
    from PIL import Image

    photo = tmp_path / "field.png"
    Image.new("RGB", (120, 90), (40, 150, 50)).save(photo)
    mask_path, _, _ = client.predict(handle_file(str(photo)), 0.5, "#ffffff", api_name="/mask")
    with Image.open(mask_path) as mask:
        assert mask.size == (120, 90)
    with pytest.raises(AppError, match="not a color"):
        client.predict(handle_file(str(photo)), 0.5, "chartreusey", api_name="/mask")


def test_bench_app_times_a_fresh_server_from_start_to_first_answer(tmp_path, capsys):
    from bench.__main__ import main

    main(["app", "--n_latency", "3", "--json", str(tmp_path / "app.json")])
    result = json.loads((tmp_path / "app.json").read_text())
    assert result["task"] == "app" and result["n"] == 3 and result["threads"] == 2
    assert 0.0 < result["latency_ms"]["p50"] <= result["latency_ms"]["p95"]
    # the cold start is a process start, the imports and a first answer: in seconds, and longer than a warm answer
    assert result["quality"]["cold_start_s"] * 1000 > result["latency_ms"]["p50"]
    assert f"| app | cold_start_s {result['quality']['cold_start_s']:.4g} |" in capsys.readouterr().out


def test_bench_app_says_when_the_server_never_answers():
    from bench.__main__ import bench_app

    with pytest.raises(RuntimeError, match="app did not answer within 0 s"):
        bench_app(timeout_s=0.0, n_latency=1)


def test_the_load_bench_reads_memory_after_each_round_so_a_leak_shows_as_growth_every_round():
    from bench.load import bench_load, load_table

    with pytest.raises(ValueError, match="rounds must be 1 or more"):
        bench_load(users=1, seconds=1, timeout_s=1, rounds=0)  # refused before any server starts
    endpoint = {"requests": 9, "errors": 0, "p50_ms": 300.0, "p95_ms": 400.0, "queue_p50_ms": 1.0, "queue_p95_ms": 2.0}
    result = {"users": 16, "seconds": 60.0, "warmup_seconds": 60.0, "rounds": 2, "requests": 90, "errors": 0,
              "memory_mb": {"after_warmup": 1300, "after_rounds": [1400, 1410], "after": 1410},
              "memory_growth": 0.0846, "memory_growth_per_round": [0.0769, 0.0071], "classify_p95_ratio": 1.5,
              "phases": {"crowd": {"endpoints": {"classify": endpoint}}}}
    table = load_table(result)
    assert "| classify | 9 | 0 | 300.0 | 400.0 | 1.0 | 2.0 |" in table
    assert "memory 1,300 → 1,400 → 1,410 MiB (+8.5%; per round +7.7%, +0.7%)" in table


def _malloc_heaps() -> int:
    """How many malloc arenas ("heaps") glibc has in this process, from its malloc_info(3) report."""
    import ctypes
    import tempfile

    libc = ctypes.CDLL("libc.so.6")
    libc.fopen.restype = ctypes.c_void_p
    with tempfile.NamedTemporaryFile(suffix=".xml") as report:
        stream = ctypes.c_void_p(libc.fopen(report.name.encode(), b"w"))
        libc.malloc_info(0, stream)
        libc.fclose(stream)
        return Path(report.name).read_text().count("<heap nr=")


def test_new_threads_allocate_in_the_arenas_there_are_once_they_are_limited():
    import threading

    import app

    def allocate():  # small blocks, freed: what a request thread leaves in an arena of its own
        blocks = [bytearray(1000) for _ in range(20_000)]
        del blocks

    heaps = _malloc_heaps()
    assert app.limit_malloc_arenas(heaps)  # no arena beyond those already made (glibc's default: 8 per core)
    threads = [threading.Thread(target=allocate) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _malloc_heaps() == heaps


def test_freed_heap_memory_goes_back_to_the_system_and_the_trimming_thread_stops_when_told(monkeypatch):
    import threading

    import app
    from bench.__main__ import process_memory_mb

    blocks = [bytearray(64 * 1024) for _ in range(3000)]  # ~190 MiB of 64-KiB chunks: glibc's heap, not mmap
    for block in blocks:
        block[::4096] = b"x" * len(block[::4096])  # resident
    del blocks[:-1]  # freed, but the live chunk at the top keeps glibc from shrinking the heap by itself
    before = process_memory_mb("self")["rss"]
    assert app.release_freed_memory()
    assert process_memory_mb("self")["rss"] < before - 100
    import ctypes.util  # the C library is looked up once, not every 10 s (find_library runs ldconfig)

    monkeypatch.setattr(ctypes.util, "find_library", lambda name: pytest.fail("looked up again"))
    assert app.release_freed_memory()
    stop = threading.Event()
    thread = threading.Thread(target=app.keep_trimming, args=(0.01, stop), daemon=True)
    thread.start()
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_every_image_the_app_shows_or_offers_for_download_is_png():
    import gradio as gr

    import app

    images = [block for block in app.demo.blocks.values() if isinstance(block, (gr.Image, gr.ImageSlider, gr.Gallery))]
    assert len(images) >= 15
    assert {block.label: block.format for block in images if block.format != "png"} == {}


def _pixels(path):
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG", path  # lossless: WebP changed a texture's lightness by up to 14 L*
        return np.asarray(image)


def _assert_same(path, expected) -> None:
    import numpy as np

    np.testing.assert_array_equal(_pixels(path), np.asarray(expected))


def _texture(tmp_path, mode: str = "L"):
    """../shared/cases/replayed-reports/min_texture_gray_64.png's kind: fine gray texture, where lossy codecs show."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(7)
    pixels = rng.integers(60, 200, (64, 64, 3), dtype=np.uint8)
    path = tmp_path / f"texture-{mode}.png"
    Image.fromarray(pixels).convert(mode).save(path)
    return path


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_colorize_returns_predicts_pixels_losslessly(client, tmp_path, mode):
    import app
    from tasks import colorize
    from tasks.images import load_rgb

    path = _texture(tmp_path, mode)
    (gray, colorized), original, _ = client.predict(handle_file(str(path)), 1.0, api_name="/colorize")
    expected = colorize.predict(app.load_served("colorize"), load_rgb(path))
    _assert_same(gray, expected.gray)
    _assert_same(colorized, expected.image)
    if mode == "RGB":
        _assert_same(original["value"], load_rgb(path))


def test_mask_classify_and_stain_return_their_pixels_losslessly(client, tmp_path):
    from PIL import Image

    import app
    from tasks import cards, classify, mask
    from tasks.images import load_rgb

    path = _texture(tmp_path, "RGB")
    photo = load_rgb(path)
    mask_path, cutout_path, (before, after) = client.predict(handle_file(str(path)), 0.5, "#102030", api_name="/mask")
    expected = mask.predict(app.load_served("mask"), photo)
    _assert_same(mask_path, expected.mask)
    _assert_same(cutout_path, expected.cutout)
    _assert_same(before, photo)
    backdrop = Image.new("RGB", photo.size, "#102030")
    backdrop.paste(photo, mask=expected.mask)
    _assert_same(after, backdrop)

    shown, _ = client.predict(handle_file(str(path)), api_name="/classify")  # a colour photo: the photo model's input
    seen = classify.predict(app.load_served("classify"), photo)
    assert seen.model == "photos"
    _assert_same(shown, seen.model_input)
    picture = ASSETS_DIR / "examples" / "classify" / "1-trouser.png"  # a Fashion-MNIST one: the CNN's, at 8×
    shown, _ = client.predict(handle_file(str(picture)), api_name="/classify")
    seen = classify.predict(app.load_served("classify"), load_rgb(picture))
    assert seen.model == "fashion-mnist"
    _assert_same(shown, seen.model_input.resize((8 * classify.SIZE,) * 2, Image.Resampling.NEAREST))

    model = app.load_served("cards")
    height, width = model.model.size
    big = model.model.sizes[-1]
    (_, stained), region = client.predict(handle_file(str(path)), "centre", "SMALL", 3, "", f"{big[0]}×{big[1]}",
                                          api_name="/stain")
    box = Image.new("L", (width, height), 0)
    left, top, right, bottom = cards.STAIN_REGIONS["centre"]
    box.paste(255, (round(left * width), round(top * height), round(right * width), round(bottom * height)))
    expected_stain, expected_region = cards.stain(model, photo, box, "SMALL", seed=3, size=big)
    _assert_same(stained, expected_stain)
    _assert_same(region, expected_region)

    gallery, _ = client.predict("SMALL", 3, 2, 2, "DDIM", 1, "", f"{big[0]}×{big[1]}", api_name="/cards")
    for item, card in zip(gallery, cards.predict(model, "SMALL", seed=3, n=2, num_inference_steps=2, scheduler="DDIM",
                                                 guidance_scale=1, size=big), strict=True):
        _assert_same(item["image"], card)


def test_upscale_a_real_photo_gives_bicubic_and_the_network_at_twice_its_size_and_the_png(client):
    import numpy as np

    import app
    from tasks import upscale
    from tasks.images import load_rgb

    path = ASSETS_DIR / "examples" / "upscale" / "chelsea.png"
    (bicubic, network), download, note = client.predict(handle_file(str(path)), "×2", api_name="/upscale")
    expected = upscale.predict(app.load_served("upscale"), load_rgb(path))
    _assert_same(network, expected.image)
    _assert_same(download, expected.image)
    _assert_same(bicubic, expected.bicubic)
    assert expected.image.size == (450, 300) and note.startswith("×2: 450×300 pixels")
    assert np.abs(_pixels(network).astype(int) - _pixels(bicubic)).mean() > 0.5  # the network did something


def test_upscale_a_one_pixel_image_four_times_and_refuse_a_non_image(client, tmp_path):
    from PIL import Image

    dot = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (200, 30, 90)).save(dot)
    (_, network), download, note = client.predict(handle_file(str(dot)), "×4 (two ×2 passes)", api_name="/upscale")
    assert _pixels(network).shape == (4, 4, 3) and note.startswith("×4: 4×4 pixels")
    text = tmp_path / "photo.png"
    text.write_text("not a photo")
    with pytest.raises(AppError, match="not an image that can be read"):
        client.predict(handle_file(str(text)), "×2", api_name="/upscale")
    (_, network), _, _ = client.predict(handle_file(str(dot)), "×2", api_name="/upscale")  # still serving
    assert _pixels(network).shape == (2, 2, 3)


def test_download_files_are_pngs_and_only_the_newest_are_kept_on_disk(tmp_path, monkeypatch):
    from PIL import Image

    import app

    monkeypatch.setattr(app, "DOWNLOAD_DIR", tmp_path / "downloads")
    monkeypatch.setattr(app, "DOWNLOADS_KEPT", 2)
    paths = [app.download_file(Image.new("RGB", (2, 2), (index, 0, 0)), "upscaled-x2.png") for index in range(3)]
    kept = sorted(str(path) for path in (tmp_path / "downloads").glob("*/*"))
    assert kept == sorted(paths[1:]) and {Path(path).name for path in paths} == {"upscaled-x2.png"}
    assert _pixels(paths[2])[0, 0, 0] == 2


def test_a_large_upscale_is_previewed_in_the_slider_and_downloaded_whole(monkeypatch, tmp_path):
    from PIL import Image

    import app

    monkeypatch.setattr(app, "SLIDER_PIXELS", 10_000)
    photo = tmp_path / "photo.png"
    Image.new("RGB", (90, 60), (30, 60, 90)).save(photo)
    (bicubic, network), download, note = app.run_upscale(str(photo), "×2")
    bicubic, network = Image.open(bicubic), Image.open(network)  # every image output is a PNG file of its own
    assert network.width * network.height <= 10_000 and network.size == bicubic.size and network.width > network.height
    assert _pixels(download).shape == (120, 180, 3) and "the download is full size" in note


def test_restore_damages_a_real_photo_restores_it_and_scores_it_against_the_original(client):
    import app
    from tasks import restore
    from tasks.images import load_rgb

    path = ASSETS_DIR / "examples" / "restore" / "chelsea.png"
    kinds = list(app.DAMAGE_LABELS.values())
    (damaged, restored), original, note, gallery = client.predict(
        handle_file(str(path)), app.DAMAGE_FOR_ME, kinds, 1.0, 3, api_name="/restore")
    photo = load_rgb(path)
    expected_damage = restore.damaged_copy(photo, 3, app.damage_recipe(kinds, 1.0))
    _assert_same(damaged, expected_damage)
    served = app.load_served("restore")
    result = restore.predict(served, expected_damage)
    _assert_same(restored, result.image)
    _assert_same(original["value"], photo)
    assert original["visible"] is True and "PSNR" in note and "dB" in note
    if served.facts["clusterer"].k == 1:  # the bundled model's: nothing to tell apart, no examples shown as "alike"
        assert "found no groups among its training photos (k = 1)" in note and not gallery["visible"]
        return
    assert f"cluster **{result.photo_class}**" in note
    # the examples shown are those the clusterer puts in the same cluster (each damaged by the recipe, seed 0)
    same = [example for example in app.examples("restore")
            if restore.cluster_of(served, restore.damaged_copy(load_rgb(example), 0)) == result.photo_class]
    shown = [load_rgb(item["image"]) for item in gallery["value"] or []] if gallery["visible"] else []
    assert len(shown) == len(same) and all(a.tobytes() == load_rgb(b).tobytes() for a, b in zip(shown, same))


def test_restore_an_already_damaged_one_pixel_image_and_refuse_a_non_image(client, tmp_path):
    from PIL import Image

    import app

    dot = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (200, 30, 90)).save(dot)
    (damaged, restored), original, note, _ = client.predict(handle_file(str(dot)), app.ALREADY_DAMAGED, [], 1.0, 0,
                                                            api_name="/restore")
    assert _pixels(restored).shape == (1, 1, 3) and original["visible"] is False and "PSNR" not in note
    text = tmp_path / "photo.png"
    text.write_text("not a photo")
    with pytest.raises(AppError, match="not an image that can be read"):
        client.predict(handle_file(str(text)), app.ALREADY_DAMAGED, [], 1.0, 0, api_name="/restore")
    with pytest.raises(AppError, match="Pick at least one kind of damage"):
        client.predict(handle_file(str(dot)), app.DAMAGE_FOR_ME, [], 1.0, 0, api_name="/restore")
    # a photo too small for SSIM's window and AlexNet still gets its PSNR, and says what it lacks
    (_, restored), original, note, _ = client.predict(handle_file(str(dot)), app.DAMAGE_FOR_ME, ["stains"], 1.0, 0,
                                                      api_name="/restore")
    assert "PSNR" in note and "SSIM needs at least 7×7 pixels" in note and "LPIPS needs images of at least 31" in note
    assert ".)." not in note
    with pytest.raises(AppError, match="Seed is empty"):
        client.predict(handle_file(str(dot)), app.DAMAGE_FOR_ME, ["stains"], 1.0, None, api_name="/restore")


def test_a_corrupt_weights_file_stops_its_tab_with_the_file_named_and_the_other_tabs_serve(tmp_path, monkeypatch,
                                                                                          caplog):
    import shutil

    import app

    folder = tmp_path / "classify"
    shutil.copytree(ASSETS_DIR / "models" / "classify", folder)
    (folder / "model.safetensors").write_bytes((ASSETS_DIR / "models" / "classify" / "model.safetensors").read_bytes()[:1000])
    monkeypatch.setenv("DARKROOM_CLASSIFY_MODEL", str(folder))
    app.load_served.forget("classify")  # the other tabs keep their loaded models
    try:
        failed = app.check_models()
        assert set(failed) == {"classify"}  # every other tab loaded
        message = failed["classify"]
        assert "model.safetensors" in message and "corrupt or truncated" in message and "DARKROOM_CLASSIFY_MODEL" in message
        assert message in caplog.text  # logged at startup
        serving, card, figures = app.report_view("classify")
        assert serving == f"**This tab cannot serve:** {message}" and card == "" and figures == []
        with pytest.raises(gr.Error, match="corrupt or truncated"):
            app.run_classify(str(EXAMPLES[0]))
        assert app.report_view("mask")[0].startswith("Serving weights")
    finally:
        app.load_served.forget("classify")  # the next tests load the bundled classifier again


def test_a_model_asked_for_in_any_spelling_is_loaded_once(monkeypatch):
    import app
    from tasks import colorize

    loads, original = [], colorize.load
    monkeypatch.setattr(colorize, "load", lambda *args, **kwargs: loads.append(kwargs) or original(*args, **kwargs))
    for model in ("", "faces"):
        app.load_served.forget("colorize", "", model)
    try:
        photos = [app.load_served("colorize"), app.load_served("colorize", "", ""),
                  app.load_served("colorize", "", "photos")]  # the startup check, a page open, a request
        app.report_view("colorize")
        assert len(loads) == 1 and all(served is photos[0] for served in photos)
        faces = app.load_served("colorize", "", "faces")
        app.report_view("colorize", "faces")
        assert len(loads) == 2 and faces is not photos[0] and isinstance(faces.model, colorize.ColorizerEnsemble)
    finally:
        for model in ("", "faces"):
            app.load_served.forget("colorize", "", model)  # loaded again, unpatched, by the next test that asks


def test_a_colorize_folder_of_one_model_says_it_has_no_faces_model(tmp_path, monkeypatch):
    import shutil

    import app

    folder = shutil.copytree(ASSETS_DIR / "models" / "colorize", tmp_path / "photos-only",
                             ignore=shutil.ignore_patterns("faces"))
    monkeypatch.setenv("DARKROOM_COLORIZE_MODEL", str(folder))
    app.load_served.forget("colorize", "", "faces")
    try:
        with pytest.raises(gr.Error, match="has no faces model") as raised:
            app.load_served("colorize", "", "faces")
        assert "Replace the file" not in raised.value.message  # not the broken-file sentence: nothing is broken
    finally:
        app.load_served.forget("colorize", "", "faces")


def test_slow_endpoints_share_one_worker_and_each_fast_one_keeps_its_own_queue():
    import app

    events = {fn.api_name: fn for fn in app.demo.fns.values() if fn.api_name}
    slow, fast = ("cards", "stain", "upscale", "restore"), ("classify", "colorize", "mask")
    assert {(events[name].concurrency_limit, events[name].concurrency_id) for name in slow} == {(1, "slow")}
    assert all(events[name].concurrency_limit == "default" for name in fast)  # the queue's default: 2 workers each
    assert len({events[name].concurrency_id for name in fast} | {"slow"}) == len(fast) + 1
    assert app.QUEUE["default_concurrency_limit"] == 2 and app.demo.delete_cache == app.DELETE_CACHE


def test_image_outputs_are_files_of_their_own_so_equal_results_never_share_a_file_being_written():
    from PIL import Image

    import app

    image = Image.new("RGB", (4, 3), (10, 20, 30))
    nested = app.as_files(([image, (image, "caption")], {"__type__": "update", "value": image, "visible": True}, 7))
    (first, (second, caption)), update, number = nested
    paths = [first, second, update["value"]]
    assert len(set(paths)) == 3 and caption == "caption" and number == 7 and update["visible"] is True
    assert all(Image.open(path).tobytes() == image.tobytes() and path.endswith(".png") for path in paths)
    # the handlers return such files: two equal requests, two files with equal bytes
    results = [app.run_classify(str(EXAMPLES[0])) for _ in range(2)]
    assert all(isinstance(result[0], str) for result in results) and results[0][0] != results[1][0]
    assert open(results[0][0], "rb").read() == open(results[1][0], "rb").read() and results[0][1] == results[1][1]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 2.5])
def test_a_seed_that_is_no_whole_number_is_a_sentence(value):
    import app

    with pytest.raises(gr.Error, match="must be a whole number"):
        app.whole(value, "Seed")
    assert app.whole(7.0, "Seed") == 7
