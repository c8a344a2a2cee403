"""Darkroom: small vision models behind one Gradio app (a Hugging Face Space).

Thin by design: each tab wires inputs to a task's `predict` and shows the serving weights and their report. Models are
loaded on first use, once, from $DARKROOM_<TASK>_MODEL (a Hub id or folder) or the copies bundled in assets/models/.

    python app.py          # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT override)
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import random
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr
from PIL import Image

from tasks import TASKS, cards, classify, colorize, hub, mask, task_module, upscale
from tasks import restore
from tasks.cards.options import CASCADE_FACTORS, UPSCALER_FOLDER
from tasks.restore import damage as damages
from tasks.hub import ASSETS_DIR, Served
from tasks.images import load_rgb
from tasks.training import read_model_card

EXAMPLES_DIR = ASSETS_DIR / "examples"
T = TypeVar("T")


def image_upload(**kwargs) -> gr.Image:
    """A gr.Image whose uploads reach tasks.images as the raw file, so every bad upload gets the same clear message.

    gr.Image alone opens the file with PIL before our code runs, and a non-image fails there with PIL's words.
    Gradio's own checks on the uploaded path happen before `preprocess`, so replacing it skips none of them. (A
    subclass would do the same, but Gradio writes a .pyi stub beside any module that defines a component.)
    """
    upload = gr.Image(type="filepath", sources=["upload", "clipboard"], format="png", **kwargs)

    def raw_path(payload):
        if payload is None or payload.path is None:  # nothing uploaded, or a data: URL from the clipboard
            return gr.Image.preprocess(upload, payload)
        return payload.path

    upload.preprocess = raw_path
    return upload


def whole(value: float | None, name: str) -> int:
    """A number field's value as an int; an emptied field (None) or a fraction (2.5: which seed was meant?) is a
    gr.Error naming it."""
    if value is None:
        raise gr.Error(f"{name} is empty: type a whole number.")
    if not math.isfinite(float(value)) or float(value) != int(value):
        raise gr.Error(f"{name} must be a whole number; got {float(value):g}.")
    return int(value)


def said(error: ValueError) -> gr.Error:
    """The gr.Error a person reads for `error`: itself when it is one already (gr.Error is a ValueError, and its str()
    is the message in quotes, so wrapping it again would show them), else its message."""
    return error if isinstance(error, gr.Error) else gr.Error(str(error))


def open_upload(path: str | None) -> Image.Image:
    """The one UI-edge wrapper around images.load_rgb: missing or bad uploads become a gr.Error for the person."""
    if path is None:
        raise gr.Error("Upload an image first.")
    try:
        return load_rgb(path)
    except ValueError as error:
        raise said(error) from error


DOWNLOADS_KEPT = 16  # the newest full-resolution PNGs kept on disk for the download links (Gradio serves its copy)
DOWNLOAD_DIR = Path(tempfile.gettempdir()) / "darkroom-downloads"


OUTPUTS_KEPT = 256  # image outputs on disk at once; Gradio copies each into its cache as the handler returns
OUTPUT_DIR = Path(tempfile.gettempdir()) / "darkroom-outputs"


def download_file(image: Image.Image, name: str, root: Path | None = None, kept: int | None = None) -> str:
    """Save `image` as a PNG (`name`) in a folder of its own under `root` (default DOWNLOAD_DIR) and return its path;
    folders beyond the newest `kept` (default DOWNLOADS_KEPT) are removed, so a long-running server's disk holds a bounded number of (possibly
    100-megapixel) results."""
    root, kept = DOWNLOAD_DIR if root is None else root, DOWNLOADS_KEPT if kept is None else kept
    folder = root / f"{time.time_ns()}-{uuid.uuid4().hex[:8]}"  # one per file, so it keeps its own name;
    folder.mkdir(parents=True)  # the folders' names sort oldest first
    image.save(folder / name)
    for old in sorted(root.iterdir())[:-kept]:
        shutil.rmtree(old, ignore_errors=True)
    return str(folder / name)


def as_files(value: Any) -> Any:
    """A handler's result with every PIL image in it (also inside tuples, lists and gr.update dicts) saved as a PNG
    file of its own (`download_file` under OUTPUT_DIR), its path in the image's place.

    Why: Gradio 6 writes a returned PIL image to a cache path named by the hash of its bytes and rewrites that file in
    place every time (processing_utils.save_pil_to_cache), so two requests that produce the same image (the same
    example photo, the same seed) truncate the file while it is being sent to the other ("Too little data for
    declared Content-Length", a dropped connection). A returned file is copied into the cache under a temporary name
    and renamed (save_file_to_cache), which a concurrent reader never sees half written."""
    if isinstance(value, Image.Image):
        return download_file(value, "image.png", OUTPUT_DIR, OUTPUTS_KEPT)
    if isinstance(value, tuple):
        return tuple(as_files(item) for item in value)
    if isinstance(value, list):
        return [as_files(item) for item in value]
    if isinstance(value, dict) and value.get("__type__") == "update" and "value" in value:
        return {**value, "value": as_files(value["value"])}
    return value


def files_out(handler: Callable[..., Any]) -> Callable[..., Any]:
    """`handler` with `as_files` applied to what it returns (its signature kept, so Gradio still sees gr.Progress)."""
    @functools.wraps(handler)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        return as_files(handler(*args, **kwargs))

    return wrapped


def serving_line(served: Served, name: str = "") -> str:
    """"Serving weights: **folder** (origin)."; "Serving the <name> model: ..." where a tab serves several."""
    what = f"Serving the {name} model" if name else "Serving weights"
    return f"{what}: **{served.weights.name}** ({served.weights.origin})."


logger = logging.getLogger("darkroom.app")

# The queue on a 2-core Space. Each fast endpoint (classify, colorize, mask: well under a second) has its own queue
# of two workers; the slow ones (cards, stain, upscale, restore: seconds each) share one worker, so a crowd of card
# or restore jobs waits behind itself and never in front of a classification. A queue longer than max_size is refused
# with Gradio's "queue is full" rather than growing without bound.
QUEUE = {"default_concurrency_limit": 2, "max_size": 64}
SLOW = {"concurrency_limit": 1, "concurrency_id": "slow"}
MAX_FILE_SIZE = "100mb"  # uploads: a 40-megapixel PNG (the pixel limit, tasks/images.py) fits; larger is refused
DELETE_CACHE = (1800, 3600)  # every 30 min, delete Gradio's cached uploads and results older than an hour
TRIM_SECONDS = 10.0  # how often the C heap's freed pages go back to the system (`release_freed_memory`)


MALLOC_ARENAS = 2  # glibc malloc arenas for the whole server (`limit_malloc_arenas`): one per core here


@functools.cache
def _libc() -> Any | None:
    """glibc, looked up once (find_library runs ldconfig: ~13 ms and a subprocess); None where there is none."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
    except OSError:  # musl, macOS, Windows: nothing to tune this way
        return None


def _malloc_trim() -> Callable[[int], int] | None:
    libc = _libc()
    return libc.malloc_trim if libc is not None else None


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas (mallopt(M_ARENA_MAX), glibc's mallopt(3); the MALLOC_ARENA_MAX variable's
    setting, made from inside): by default glibc gives threads up to 8 × cores arenas, and each keeps the pages its
    threads freed, so a server whose requests run on many worker threads holds more than it uses. Call it before the
    server's threads start. False where there is no glibc or the call failed."""
    libc = _libc()
    return bool(libc.mallopt(-8, int(arenas))) if libc is not None else False  # M_ARENA_MAX is -8 in malloc.h


def release_freed_memory() -> bool:
    """Hand the pages that requests freed back to the system (glibc's `malloc_trim(0)`); False where there is no
    glibc. Under a crowd, glibc keeps what the request threads freed in its per-thread arenas: the server's resident
    memory climbed ~60-120 MiB a minute with no Python object left behind (measured over four 40-s rounds of 16
    users: Python objects flat, resident memory +200 MiB, ~200 MiB of it returned by malloc_trim)."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False


def keep_trimming(every: float = TRIM_SECONDS, stop: threading.Event | None = None) -> None:
    """`release_freed_memory` every `every` seconds until `stop` is set (a daemon thread beside the server)."""
    stop = stop or threading.Event()
    while not stop.wait(every):
        release_freed_memory()


_LOADING = threading.Lock()


def model_loader(load: Callable[..., T]) -> Callable[..., T]:
    """Keep the loaded models (per model asked for, the last eight) and run loads one at a time, app-wide.

    One model is one key however it is asked for: the arguments are bound to `load`'s signature with its defaults,
    and the task's default model (its module's DEFAULT_MODEL, where it has several) counts as "" (the default), so
    `load_served("colorize")`, `load_served("colorize", "", "")` and `load_served("colorize", "", "photos")` share
    one loaded copy.

    Opening the page asks every tab for its model at once, each in its own worker thread, and diffusers is not safe to
    load beside anything else: its first imports fail in a second thread ("cannot import name"), and while it builds a
    UNet it switches torch's weight init off for the whole process. A caller that waited gets the model the first one
    loaded. A model already loaded is returned without the lock, so a slow load (a Hub download) never holds up a
    request that has its model."""
    models: dict[tuple, T] = {}
    signature = inspect.signature(load)

    def key(*args: str) -> tuple:
        bound = signature.bind(*args)
        bound.apply_defaults()
        values = dict(bound.arguments)
        if "model" in values and values["model"] == getattr(task_module(values["task"]), "DEFAULT_MODEL", None):
            values["model"] = ""
        return tuple(values.values())

    @functools.wraps(load)
    def one_at_a_time(*args: str) -> T:
        asked = key(*args)
        model = models.get(asked)
        if model is None:
            with _LOADING:
                model = models.get(asked)
                if model is None:
                    model = models[asked] = load(*args)
                    if len(models) > 8:
                        models.pop(next(iter(models)))
        return model

    one_at_a_time.cache_clear = models.clear  # type: ignore[attr-defined]
    one_at_a_time.forget = lambda *args: models.pop(key(*args), None)  # type: ignore[attr-defined]  # one model, reloaded next
    return one_at_a_time


@model_loader
def load_served(task: str, source: str = "", model: str = "") -> Served:
    """A task's serving weights: for "" the default ($DARKROOM_<TASK>_MODEL or the bundled copy), else exactly the
    folder or Hub id a person typed, whose failure is theirs to read (`hub.cannot_load`'s sentence: no server paths).
    `model`: which of a task's models ("" its default; Colorize: "photos" or "faces", `colorize.MODELS`)."""
    module = task_module(task)
    options = {"model": model} if model else {}
    if not source.strip():
        try:
            return module.load(**options)
        except hub.NoSuchModel as error:  # a folder of one model asked for the other: nothing is corrupt
            raise said(error) from error
        except Exception as error:  # the operator's weights: a corrupt file stops this tab only, and says which
            message = hub.load_failure(task, hub.resolve(task), error)
            logger.error(message)
            raise gr.Error(message) from error
    try:
        hub.check_typed_source(source.strip())  # a Hub id or a folder under the model roots, else refused unread
        return module.load(source.strip(), **options)
    except (FileNotFoundError, OSError, ValueError) as error:
        raise said(error) from error


def report_view(task: str, model: str = "", name: str = "") -> tuple[str, str, list[tuple[str, str]]]:
    """The serving line (`serving_line`, naming the model `name` where a tab has several), and the serving weights'
    model card (written when they were trained) with its figures; the sentence saying why, in place of the serving
    line, when the tab's model cannot be loaded. `model`: as for `load_served`."""
    try:
        served = load_served(task, "", model)
    except gr.Error as error:
        return f"**This tab cannot serve:** {error.message}", "", []
    card, figures = read_model_card(served.folder)
    return serving_line(served, name), card or "These weights came without a model card (README.md).", figures


def model_report(demo: gr.Blocks, task: str, serving: gr.Markdown, model: str = "", title: str = "Model report",
                 name: str = "") -> None:
    """The tab's "Model report" accordion (`report_view`), filled in with the serving line when the page opens; one
    per model where a tab has several (`model`, as for `load_served`; `name`, the model's name in the serving line)."""
    with gr.Accordion(title, open=False, elem_id=f"{task}-{model}-report" if model else f"{task}-report"):
        text = gr.Markdown()
        figures = gr.Gallery(label="Figures from the model folder", columns=2, height="auto", object_fit="contain",
                             format="png", interactive=False)
    demo.load(functools.partial(report_view, task, model, name), outputs=[serving, text, figures], api_visibility="private")


TABS: dict[str, tuple[str, Callable[[gr.Blocks], None]]] = {}  # task -> (tab title, builder), one per registered task


def tab(task: str, title: str) -> Callable[[Callable[[gr.Blocks], None]], Callable[[gr.Blocks], None]]:
    """Register the function that builds a task's tab (inside `build_demo`'s gr.Tab)."""
    def register(build: Callable[[gr.Blocks], None]) -> Callable[[gr.Blocks], None]:
        TABS[task] = (title, build)
        return build

    return register


def examples(task: str) -> list[str]:
    return sorted(str(path) for path in (EXAMPLES_DIR / task).iterdir() if path.suffix in (".png", ".jpg"))


# ---------------------------------------------------------------------------------------------------------------------
# Classify
# ---------------------------------------------------------------------------------------------------------------------


@files_out
def run_classify(path: str | None) -> tuple[Image.Image, dict[str, float]]:
    """Upload → (the input the model saw: a photo letterboxed for the photo model, or the 28×28 Fashion-MNIST-like
    picture shown at 8× with square pixels; the class probabilities)."""
    photo = open_upload(path)
    try:
        prediction = classify.predict(load_served("classify"), photo)
    except ValueError as error:  # NoItemError: nothing stands out from the background
        raise said(error) from error
    shown = prediction.model_input
    if prediction.model == "fashion-mnist":
        shown = shown.resize((8 * classify.SIZE, 8 * classify.SIZE), Image.Resampling.NEAREST)
    return shown, prediction.probabilities


@tab("classify", "Classify")
def classify_tab(demo: gr.Blocks) -> None:
    gr.Markdown(
        "Sort a picture of a clothing item into the ten Fashion-MNIST classes. A photo (a shirt on the bed, shoes "
        "on the floor) goes to a photo model fine-tuned on ordinary people's photos of T-shirts, trousers, "
        "dresses, shirts, coats and shoes; a Fashion-MNIST-like picture (gray, the item on black) goes to the "
        "28×28 CNN. Beside the classes, what the model saw. Either model answers one of the ten classes for "
        "anything: the photo model learned those six kinds only, so a hoodie or a long-sleeved top comes out as a "
        "coat or a T-shirt, shorts, skirts, hats, bags or a screenshot as whatever they look most like, often with "
        "high confidence. For shoes it always says Sneaker, whatever the shoe: its photos only said \"shoes\"."
    )
    with gr.Row():
        with gr.Column():
            upload = image_upload(label="Clothing picture", height=320, elem_id="classify-upload")
            button = gr.Button("Classify", variant="primary")
        with gr.Column():
            model_input = gr.Image(format="png", label="What the model saw", height=240, interactive=False)
            label = gr.Label(num_top_classes=5, label="Top 5 classes")
    serving = gr.Markdown()
    button.click(run_classify, inputs=upload, outputs=[model_input, label], api_name="classify")
    gr.Examples(examples=examples("classify"), inputs=upload, outputs=[model_input, label], fn=run_classify,
                cache_examples=True, cache_mode="lazy", label="Fashion-MNIST test images (one per class)",
                elem_id="classify-examples")
    gr.Examples(examples=sorted(str(path) for path in (EXAMPLES_DIR / "classify" / "photos").glob("*.jpg")),
                inputs=upload, outputs=[model_input, label], fn=run_classify, cache_examples=True, cache_mode="lazy",
                label="Photos of clothes (CC0, the clothing dataset of alexeygrigorev/clothing-dataset)",
                elem_id="classify-photo-examples")
    photos_serving = gr.Markdown()
    model_report(demo, "classify", serving, title="Model report: Fashion-MNIST CNN")
    model_report(demo, "classify", photos_serving, "photos", "Model report: photos of clothes", "Photos")


# ---------------------------------------------------------------------------------------------------------------------
# Cards
# ---------------------------------------------------------------------------------------------------------------------

def card_sizes() -> list[str]:
    """The sizes the default Cards model serves ("80×64", "160×128", ...), for the Size radio: read from its folder's
    JSON (the UNet's sample size, and which upscale-x<factor>/ nets it has), so building the page imports no diffusers.
    Another model typed in the Model box may draw other sizes: Generate names them."""
    try:
        folder = Path(hub.resolve("cards").path)
        sample_size = hub.read_json(folder / "unet", "config.json")["sample_size"]
    except (OSError, KeyError, ValueError):  # a missing or broken model: Generate says why
        return ["80×64"]
    height, width = sample_size if isinstance(sample_size, list) else (sample_size, sample_size)
    factors = [1] + [factor for factor in CASCADE_FACTORS
                     if (folder / UPSCALER_FOLDER.format(factor=factor) / "config.json").is_file()]
    return [f"{height * factor}×{width * factor}" for factor in factors]


def card_size(name: str) -> tuple[int, int]:
    try:
        return cards.diffusion.parse_size(name or "")
    except ValueError as error:
        raise said(error) from error


@files_out
def run_cards(category: str, seed: float, n: float, num_inference_steps: float, scheduler: str, guidance_scale: float,
              source: str, size: str = "", progress=gr.Progress()) -> tuple[list[Image.Image], str]:
    """The Cards endpoint: n cards of `category` from `seed` (card i from seed + i), `size` "height×width" ("" = the
    model's own); the knobs as in cards.predict."""
    served = load_served("cards", source or "")
    if served.model.categories is None and category != cards.ANY:
        gr.Info(f"{served.weights.name} has no categories; sampling it unconditionally.")
        category = cards.ANY
    progress(0, desc="sampling")
    try:
        images = cards.predict(served, category, seed=whole(seed, "Seed"), n=int(n), num_inference_steps=int(num_inference_steps),
                               scheduler=scheduler, guidance_scale=float(guidance_scale),
                               progress=lambda done, total: progress((done, total), desc="denoising", unit="steps"),
                               size=card_size(size) if size else None)
    except ValueError as error:
        raise said(error) from error
    return images, serving_line(served)


FIRST_CARDS = ("FULL_CARD", 0, 4, 20, "DPM-Solver++", cards.GUIDANCE, "")  # the first example: the gallery on arrival


@functools.lru_cache(maxsize=1)
def _first_cards() -> tuple[Image.Image, ...]:
    category, seed, n, steps, scheduler, guidance, _ = FIRST_CARDS
    served = load_served("cards")
    sizes = served.model.sizes
    return tuple(cards.predict(served, category, seed=seed, n=n, num_inference_steps=steps,
                               scheduler=scheduler, guidance_scale=guidance,
                               size=sizes[min(1, len(sizes) - 1)]))  # the Size radio's default


@files_out
def arrival_cards() -> list[Image.Image]:
    """The first example's cards, for the gallery when the page opens: sampled once per server (a few seconds, on
    the first page load) and kept, so a visitor sees cards, not an empty box. Nothing when the model cannot load
    (Generate says why)."""
    try:
        return list(_first_cards())
    except Exception as error:  # the tab's own error path tells the user; the page must still open
        logger.warning("no cards on arrival: %s", error)
        return []


def steps_slider(sampler: str, source: str, steps: float | None = None):
    """The Steps slider for `sampler` on the model in `source`: `steps` (None = the sampler's default), never past the
    model's noise levels, which also become the slider's maximum. An unloadable model leaves the range alone: Generate
    says why it cannot be loaded.

    With `steps` given (the Model box was left or submitted) the value is only touched when it is past the new
    maximum: clicking a sampler leaves the box too, and that event, carrying the old sampler's steps, may finish after
    the sampler's own and would otherwise put its steps back."""
    value = cards.DEFAULT_STEPS[sampler] if steps is None else int(steps)
    try:
        levels = cards.diffusion.noise_levels(load_served("cards", source or "").model)
    except gr.Error:
        return gr.update(value=value) if steps is None else gr.update()
    if steps is not None and value <= levels:
        return gr.update(maximum=levels)
    return gr.update(value=min(value, levels), maximum=levels)


@files_out
def run_stain(path: str | None, region: str, category: str, seed: float, source: str, size: str = ""):
    """"Stain this card": inpaint a stain of `category` in a preset region of an uploaded card, the result (and its
    mask) of `size` ("" = the model's own)."""
    served = load_served("cards", source or "")
    card = open_upload(path)
    if region not in cards.STAIN_REGIONS:
        raise gr.Error(f"Pick a region: {', '.join(cards.STAIN_REGIONS)}.")
    left, top, right, bottom = cards.STAIN_REGIONS[region]
    height, width = served.model.size
    mask = Image.new("L", (width, height), 0)
    mask.paste(255, (round(left * width), round(top * height), round(right * width), round(bottom * height)))
    try:
        stained, known_mask = cards.stain(served, card, mask, category, seed=whole(seed, "Seed"),
                                          size=card_size(size) if size else None)
    except ValueError as error:
        raise said(error) from error
    before = cards.diffusion.upright(card, (stained.height, stained.width))
    return (before, stained), known_mask


@tab("cards", "Cards")
def cards_tab(demo: gr.Blocks) -> None:
    gr.Markdown(
        "Generate synthetic backs of vintage trading cards with gum stains, by category: training data for stain "
        "detectors without scanning thousands of cards. Card *i* comes from seed + *i*, so a seed always gives the "
        "same cards. DPM-Solver++ at 20 steps is the fast default; DDPM at 1000 steps is the original sampler."
    )
    with gr.Row():
        with gr.Column(scale=1):
            category = gr.Dropdown([*cards.CATEGORIES, cards.ANY], value="FULL_CARD", label="Stain category")
            with gr.Row():
                seed = gr.Slider(0, 999_999, value=0, step=1, label="Seed", scale=4)
                dice = gr.Button("Random", scale=1, min_width=80)  # text: an emoji needs a font Debian lacks
            n = gr.Slider(1, cards.MAX_CARDS, value=4, step=1, label="Number of cards")
            sizes = card_sizes()
            size = gr.Radio(sizes, value=sizes[min(1, len(sizes) - 1)], label="Size (height×width, pixels)",
                            info="the model draws the smallest; larger sizes are the same cards through a "
                                 "super-resolution cascade trained on rendered cards")
            steps = gr.Slider(1, 1000, value=20, step=1, label="Steps")
            sampler = gr.Radio(list(cards.SCHEDULERS), value="DPM-Solver++", label="Scheduler")
            guidance = gr.Slider(1, cards.MAX_GUIDANCE, value=cards.GUIDANCE, step=0.5, label="Guidance scale",
                                 info="how strongly the category shows (classifier-free guidance); 1 = none, twice as fast")
            source = gr.Textbox(label="Model (blank = default)", placeholder="a DDPMPipeline folder or Hub id, e.g. "
                                "megamp15/FULL_GUM_STAIN_CARDS")
            button = gr.Button("Generate", variant="primary")
        with gr.Column(scale=2):
            gallery = gr.Gallery(label="Cards", columns=4, height=560, format="png", elem_id="cards-gallery",
                                 object_fit="scale-down", buttons=["download", "download_all", "fullscreen"])
            # scale-down: a card is never enlarged past its pixels (a small card stays small, not a blurry thumbnail)
            serving = gr.Markdown()
    dice.click(lambda: random.randrange(1_000_000), outputs=seed, api_visibility="private")
    demo.load(arrival_cards, outputs=gallery, api_visibility="private")
    sampler.change(steps_slider, inputs=[sampler, source], outputs=steps, api_visibility="private")
    gr.on([source.submit, source.blur], steps_slider, inputs=[sampler, source, steps], outputs=steps,
          api_visibility="private")
    button.click(run_cards, inputs=[category, seed, n, steps, sampler, guidance, source, size],
                 outputs=[gallery, serving], api_name="cards", **SLOW)
    shown = size.value
    gr.Examples([[*FIRST_CARDS, shown], ["WHITE_MARKS", 7, 4, 20, "DPM-Solver++", cards.GUIDANCE, "", shown],
                 ["SMALL", 42, 4, 20, "DPM-Solver++", cards.GUIDANCE, "", shown],
                 ["LIGHT", 3, 4, 20, "DPM-Solver++", cards.GUIDANCE, "", shown]],
                inputs=[category, seed, n, steps, sampler, guidance, source, size], outputs=[gallery, serving],
                fn=run_cards, cache_examples=True, cache_mode="lazy", elem_id="cards-examples")
    with gr.Accordion("Stain this card", open=False):
        gr.Markdown("Upload a clean card back, pick where and what: the model paints a stain there and leaves the rest "
                    "of the card as it was (RePaint-style inpainting), so the stain's mask is known.")
        with gr.Row():
            with gr.Column():
                card = image_upload(label="Clean card back", height=300, elem_id="stain-upload")
                region = gr.Dropdown(list(cards.STAIN_REGIONS), value="centre", label="Region")
                stain_category = gr.Dropdown(list(cards.CATEGORIES[:-1]), value="SMALL", label="Stain")
                stain_button = gr.Button("Stain it")
            slider = gr.ImageSlider(format="png", label="Before / after", type="pil")
            known_mask = gr.Image(format="png", label="Stain region mask", type="pil", interactive=False)
        stain_button.click(run_stain, inputs=[card, region, stain_category, seed, source, size],
                           outputs=[slider, known_mask], api_name="stain", **SLOW)
    model_report(demo, "cards", serving)


# ---------------------------------------------------------------------------------------------------------------------
# Colorize
# ---------------------------------------------------------------------------------------------------------------------


COLORIZE_MODELS = [("Photos (general)", "photos"), ("Faces (the original experiment)", "faces")]  # label, value


@files_out
def run_colorize(path: str | None, saturation: float, model: str = colorize.DEFAULT_MODEL):
    """Upload → (grayscale ↔ colorized slider, the original when it had color, a line with the MAE)."""
    photo = open_upload(path)
    if model not in colorize.MODELS:
        raise gr.Error(f"Choose the model: {' or '.join(colorize.MODELS)} (got {str(model)[:40]!r}).")
    served = load_served("colorize", "", model)
    try:
        result = colorize.predict(served, photo, saturation=float(saturation))
    except ValueError as error:
        raise said(error) from error
    if result.was_color:
        scores = served.metrics
        if scores.get("scenes_mae") is not None and model == "photos":
            known = (f"the model scores {scores['scenes_mae']:.4f} on {scores.get('scenes_photos', 0)} scenes it was "
                     "never trained on")
        else:
            known = f"the model scores {scores.get('test_mae', float('nan')):.4f} on faces it never saw"
        note = f"Your photo had color: mean a\\*b\\* error **{result.mae:.4f}** against it (normalised; {known})."
        original = gr.update(value=photo, visible=True)
    else:
        note, original = "Your photo was grayscale: nothing to compare against.", gr.update(value=None, visible=False)
    return (result.gray, result.image), original, note


def colorize_example(path: str, model: str, saturation: float):
    """`run_colorize` with the examples' columns in the form's order (photo, model, saturation)."""
    return run_colorize(path, saturation, model)


@tab("colorize", "Colorize")
def colorize_tab(demo: gr.Blocks) -> None:
    gr.Markdown(
        "Color a black-and-white photo. The model predicts the a\\*b\\* color channels (CIELAB) from lightness "
        "alone, at 128×128; the color is then laid under your photo's own full-resolution lightness, so no detail "
        "is lost. **Photos** learned from about 2,600 varied photos (animals, objects, scenes, people, faces) and colors "
        "what it recognises, cautiously: where it is unsure it stays near gray. **Faces** is the original "
        "experiment, trained on 480 photos of 32 faces only: faces come out plausibly, anything else in skin tones. "
        "Each model's report gives its scores."
    )
    with gr.Row():
        with gr.Column():
            upload = image_upload(label="Photo (color or grayscale)", height=320, elem_id="colorize-upload")
            model = gr.Radio(COLORIZE_MODELS, value=colorize.DEFAULT_MODEL, label="Model")
            saturation = gr.Slider(0, 2, value=1, step=0.05, label="Saturation",
                                   info="scales the predicted color: 0 = gray, 1 = as predicted")
            button = gr.Button("Colorize", variant="primary")
        with gr.Column():
            slider = gr.ImageSlider(format="png", label="Grayscale ↔ colorized", type="pil", height=320)
            note = gr.Markdown()
            original = gr.Image(format="png", label="Your original", type="pil", interactive=False, visible=False,
                                height=200)
    serving, faces_serving = gr.Markdown(), gr.Markdown()
    button.click(run_colorize, inputs=[upload, saturation, model], outputs=[slider, original, note],
                 api_name="colorize")
    face = str(EXAMPLES_DIR / "colorize" / "astronaut-face.jpg")  # also through the faces model, for comparison
    gr.Examples(examples=[[path, colorize.DEFAULT_MODEL, 1.0] for path in examples("colorize")] + [[face, "faces", 1.0]],
                inputs=[upload, model, saturation], outputs=[slider, original, note], fn=colorize_example,
                cache_examples=False, run_on_click=True,  # run, not cached: Gradio 6.31 cannot cache the original's
                # gr.update (the Image it rebuilds lacks `info`; gradio-app/gradio#12564), and a colorization is 0.1 s
                label="Public-domain photos (scikit-image): a face, scenes, a grayscale original, and the face again "
                      "through the Faces model",
                elem_id="colorize-examples")
    model_report(demo, "colorize", serving, title="Model report: Photos (general)", name="Photos")  # the default
    model_report(demo, "colorize", faces_serving, "faces", "Model report: Faces (the original experiment)", "Faces")


# ---------------------------------------------------------------------------------------------------------------------
# Upscale
# ---------------------------------------------------------------------------------------------------------------------


@files_out
def run_upscale(path: str | None, factor: str):
    """Upload → (bicubic ↔ model at the same size, the full-resolution PNG to download, a line saying what was done)."""
    if path is None:
        raise gr.Error("Upload an image first.")
    served = load_served("upscale")
    try:
        result = upscale.predict(served, path, passes=2 if factor.startswith("×4") else 1)
    except ValueError as error:  # a bad upload, or a result over the size limit: said before any work
        raise said(error) from error
    download = download_file(result.image, f"upscaled-x{result.factor}.png")
    line = f"×{result.factor}: {result.image.width}×{result.image.height} pixels." + (
        f" {result.note}" if result.note else "")
    shown = (result.bicubic, result.image)
    if result.image.width * result.image.height > SLIDER_PIXELS:  # a browser need not hold two 100 MP images
        shown = tuple(preview(image) for image in shown)
        line += f" The slider shows them at {shown[0].width}×{shown[0].height}; the download is full size."
    return shown, download, line


SLIDER_PIXELS = 4_000_000  # larger results are shown downscaled in the slider (the download keeps every pixel)


def preview(image: Image.Image) -> Image.Image:
    """`image` shrunk (Lanczos) to at most SLIDER_PIXELS, its aspect kept."""
    scale = (SLIDER_PIXELS / (image.width * image.height)) ** 0.5
    return image.resize((max(1, int(image.width * scale)), max(1, int(image.height * scale))), Image.Resampling.LANCZOS)


@tab("upscale", "Upscale")
def upscale_tab(demo: gr.Blocks) -> None:
    gr.Markdown(
        "Enlarge a photo ×2 (or ×4, as two ×2 passes) with a small super-resolution network trained on the classic "
        "291 images; slide between bicubic resizing and the network at the same size, and download the full-"
        "resolution PNG. Any size works: the network runs in tiles; transparency is kept."
    )
    with gr.Row():
        with gr.Column():
            upload = image_upload(label="Photo", height=320, elem_id="upscale-upload")
            factor = gr.Radio(["×2", "×4 (two ×2 passes)"], value="×2", label="Enlarge")
            button = gr.Button("Upscale", variant="primary")
        with gr.Column():
            slider = gr.ImageSlider(format="png", label="Bicubic ↔ network", type="pil", height=320,
                                    elem_id="upscale-slider")
            download = gr.File(label="Full-resolution PNG")
            note = gr.Markdown()
    gr.Examples(examples=[[path, "×2"] for path in examples("upscale")], inputs=[upload, factor],
                label="Public-domain photos (scikit-image), halved: pick one, then Upscale", elem_id="upscale-examples")
    serving = gr.Markdown()
    button.click(run_upscale, inputs=[upload, factor], outputs=[slider, download, note], api_name="upscale", **SLOW)
    model_report(demo, "upscale", serving)


# ---------------------------------------------------------------------------------------------------------------------
# Restore
# ---------------------------------------------------------------------------------------------------------------------

DAMAGE_FOR_ME, ALREADY_DAMAGED = "Damage it for me", "It is already damaged"
DAMAGE_LABELS = {"fade": "fading / yellowing", "blur": "blur", "blotches": "stains", "holes": "holes",
                 "scratches": "scratches", "lines": "lines / folds", "salt_pepper": "dust (salt and pepper)",
                 "gaussian_noise": "grain (noise)", "jpeg": "JPEG artefacts"}
# The tab offers the kinds the served net was trained on (the default recipe's), not every kind damage.py can make.
DAMAGE_LABELS = {kind: label for kind, label in DAMAGE_LABELS.items() if kind in damages.DEFAULT_RECIPE}


def damage_recipe(kinds: list[str], strength: float) -> dict[str, float]:
    """The default recipe's chosen kinds, each strength scaled by `strength` (1 = the recipe as trained), at most 1."""
    chosen = {kind for kind, label in DAMAGE_LABELS.items() if label in kinds}
    return {kind: min(1.0, value * float(strength)) for kind, value in damages.DEFAULT_RECIPE.items() if kind in chosen}


@files_out
def run_restore(path: str | None, mode: str, kinds: list[str], strength: float, seed: float):
    """Upload → (damaged ↔ restored slider, the original when this tab damaged it, a line with the scores and the
    cluster the photo was restored as)."""
    served = load_served("restore")
    original = None
    try:
        if mode == DAMAGE_FOR_ME:
            original = open_upload(path)
            recipe = damage_recipe(kinds, strength)
            if not recipe:
                raise gr.Error(f"Pick at least one kind of damage, or choose \"{ALREADY_DAMAGED}\".")
            damaged = restore.damaged_copy(original, whole(seed, "Seed"), recipe)
            result = restore.predict(served, damaged)
        else:
            damaged = open_upload(path)
            result = restore.predict(served, path)  # from the file: a transparent upload keeps its alpha
    except ValueError as error:  # a bad upload: said, nothing else done
        raise said(error) from error
    clusterer = served.facts.get("clusterer")
    same = [path for path, found in example_clusters(served).items() if found == result.photo_class]
    if clusterer is not None and clusterer.k == 1:
        same = []  # every example is in the one cluster: showing them says nothing
        line = ("This model's clusterer found no groups among its training photos (k = 1), so every photo is "
                "restored as the same class.")
    elif clusterer is not None:
        photos = served.metrics.get("photos_per_cluster") or clusterer.report.sizes
        line = (f"Restored as cluster **{result.photo_class}** of {clusterer.k}: {photos[result.photo_class]} of the "
                f"{sum(photos)} training photos (BSDS photos, which may not be shown here)"
                + (", and the example photos shown below." if same else "; none of the examples is in it."))
    else:
        line = "This model has no clusterer: every photo is restored as class 0."
    if original is not None:
        line = scores_line(result.image.convert("RGB"), damaged, original) + " " + line
    if result.note:
        line += " " + result.note
    shown = gr.update(value=original, visible=original is not None)
    gallery = gr.update(value=same if clusterer is not None else [], visible=clusterer is not None and bool(same),
                        label=f"Example photos in cluster {result.photo_class}")
    return (damaged, result.image), shown, line, gallery


_EXAMPLE_CLUSTERS: dict[str, dict[str, int]] = {}


def example_clusters(served) -> dict[str, int]:
    """The tab's public-domain example photos → their cluster under `served` (each damaged by the default recipe with
    seed 0, as the clusterer's training views were); {} without a clusterer. Computed once per weights folder."""
    if served.facts.get("clusterer") is None:
        return {}
    key = str(served.folder)
    if key not in _EXAMPLE_CLUSTERS:
        _EXAMPLE_CLUSTERS[key] = {path: restore.cluster_of(served, restore.damaged_copy(load_rgb(path), 0))
                                  for path in examples("restore")}
    return _EXAMPLE_CLUSTERS[key]


def scores_line(restored: Image.Image, damaged: Image.Image, original: Image.Image) -> str:
    """PSNR / SSIM (and LPIPS when its weights are here) of the damaged and the restored photo against the original."""
    from tasks.perceptual import LPIPSUnavailable

    try:
        before, after = (restore.image_scores(image, original, lpips=True) for image in (damaged, restored))
        lpips = f", LPIPS {before['lpips']:.3f} → **{after['lpips']:.3f}**"
    except (LPIPSUnavailable, ValueError) as error:  # no weights here, or a photo too small for AlexNet
        before, after = (restore.image_scores(image, original, lpips=False) for image in (damaged, restored))
        lpips = (" (LPIPS unavailable on this server)" if isinstance(error, LPIPSUnavailable)
                 else f" ({str(error).rstrip('.')})")
    ssim = (f", SSIM {before['ssim']:.3f} → **{after['ssim']:.3f}**" if after["ssim"] == after["ssim"]
            else " (SSIM needs at least 7×7 pixels)")
    return f"Against your original: PSNR {before['psnr']:.2f} → **{after['psnr']:.2f} dB**{ssim}{lpips}."


@tab("restore", "Restore")
def restore_tab(demo: gr.Blocks) -> None:
    gr.Markdown(
        "Repair an old or damaged photo: fading, scratches, stains, holes, grain, blur and JPEG blocks. Upload "
        "a damaged photo, or a clean one and have it damaged here (then the scores say how close the repair came "
        "to your original). A U-Net does the repair, conditioned on the cluster of photos yours resembles. It "
        "learned on one mix of damage, always with fading: on a photo that is not faded it shifts the colours, so a "
        "clean or lightly damaged photo can come out worse than it went in."
    )
    with gr.Row():
        with gr.Column():
            upload = image_upload(label="Photo", height=320, elem_id="restore-upload")
            mode = gr.Radio([DAMAGE_FOR_ME, ALREADY_DAMAGED], value=DAMAGE_FOR_ME, label="Your photo")
            with gr.Group():
                kinds = gr.CheckboxGroup(list(DAMAGE_LABELS.values()), value=list(DAMAGE_LABELS.values()),
                                         label="Damage to add")
                strength = gr.Slider(0, 2, value=1, step=0.1, label="Strength",
                                     info=f"1 = the recipe the model was trained on ({damages.DEFAULT_RECIPE_NAME})")
                seed = gr.Number(value=0, step=1, label="Seed", minimum=0)  # 2.5 is refused (`whole`), not rounded
            button = gr.Button("Restore", variant="primary")
        with gr.Column():
            slider = gr.ImageSlider(format="png", label="Damaged ↔ restored", type="pil", height=320,
                                    elem_id="restore-slider")
            note = gr.Markdown()
            original = gr.Image(format="png", label="Your original", type="pil", interactive=False, visible=False,
                                height=200)
            same_cluster = gr.Gallery(label="Example photos in the same cluster", visible=False, height=140, format="png",
                                      columns=4, allow_preview=False)
    gr.Examples(examples=[[path, DAMAGE_FOR_ME] for path in examples("restore")], inputs=[upload, mode],
                label="Public-domain photos (scikit-image): pick one, then Restore", elem_id="restore-examples")
    serving = gr.Markdown()
    button.click(run_restore, inputs=[upload, mode, kinds, strength, seed],
                 outputs=[slider, original, note, same_cluster], api_name="restore", **SLOW)
    model_report(demo, "restore", serving)


# ---------------------------------------------------------------------------------------------------------------------
# Mask
# ---------------------------------------------------------------------------------------------------------------------


@files_out
def run_mask(path: str | None, threshold: float, background: str):
    """Upload → (the mask, the RGBA cut-out, before ↔ after on a background color). Also the /mask API endpoint."""
    photo = open_upload(path)
    try:
        result = mask.predict(load_served("mask"), photo, threshold=float(threshold))
    except ValueError as error:
        raise said(error) from error
    try:
        backdrop = Image.new("RGB", photo.size, background or "white")
    except ValueError as error:
        raise gr.Error(f"Background color {background!r} is not a color.") from error
    backdrop.paste(photo, mask=result.mask)
    return result.mask, result.cutout, (photo, backdrop)


@tab("mask", "Mask")
def mask_tab(demo: gr.Blocks) -> None:
    gr.Markdown(
        "Cut the car out of a studio photo. The U-Net looks at a 240×160 copy; its answer is scaled back to your "
        "photo's full size, so the mask and the transparent cut-out are as large as the photo. Download either, or "
        "slide between the original and the car on a new background. There is no car among the examples: the "
        "Carvana photos it learned from may not be given away, and no freely licensed studio photo of a car was at "
        "hand. Bring your own: the whole car on a plain studio floor and wall works best."
    )
    with gr.Row():
        with gr.Column():
            upload = image_upload(label="Studio photo of a car", height=300, elem_id="mask-upload")
            threshold = gr.Slider(0.05, 0.95, value=0.5, step=0.05, label="Threshold",
                                  info="how sure the model must be that a pixel is car; it is sure of most pixels either way, so this moves only the edge (press Cut out again)")
            background = gr.ColorPicker(value="#ffffff", label="New background")
            button = gr.Button("Cut out", variant="primary")
        with gr.Column():
            slider = gr.ImageSlider(format="png", label="Original ↔ on the new background", type="pil", height=300)
            with gr.Row():
                mask_image = gr.Image(format="png", label="Mask (PNG)", type="pil", interactive=False, elem_id="mask-output")
                cutout = gr.Image(format="png", label="Cut-out (transparent PNG)", type="pil", image_mode="RGBA",
                                  interactive=False)
    serving = gr.Markdown()
    button.click(run_mask, inputs=[upload, threshold, background], outputs=[mask_image, cutout, slider], api_name="mask")
    # Carvana's photos are Kaggle competition data and may not be shipped: the one example shows what happens
    # without a car (the model, which knows only studio cars, still marks most of the photo); bring your own
    gr.Examples(examples=[[str(EXAMPLES_DIR / "colorize" / "coffee.jpg"), 0.5, "#ffffff"]],
                inputs=[upload, threshold, background], outputs=[mask_image, cutout, slider], fn=run_mask,
                cache_examples=True, cache_mode="lazy", label="No car in this one: the model still marks most of it",
                elem_id="mask-examples")
    model_report(demo, "mask", serving)


# ---------------------------------------------------------------------------------------------------------------------


def build_demo() -> gr.Blocks:
    """One gr.Tab per registered task, in the registry's order.

    Raises:
        KeyError: a registered task has no tab (see `tab`).
    """
    missing = [task for task in TASKS if task not in TABS]
    if missing:
        raise KeyError(f"Registered tasks without a tab in app.py: {', '.join(missing)}.")
    with gr.Blocks(title="Darkroom", delete_cache=DELETE_CACHE) as demo:
        gr.Markdown("# Darkroom\nSmall vision models, trained by this project and served on CPU.")
        with gr.Tabs():
            for task in TASKS:
                title, build = TABS[task]
                with gr.Tab(title, id=task):
                    build(demo)
    return demo


demo = build_demo()

def check_models() -> dict[str, str]:
    """Load every tab's default model once (so later visitors do not wait); task → the sentence, for each tab that
    cannot serve (each also logged as an error). The other tabs serve either way. `python app.py` runs it in a
    thread beside the server's start."""
    failed = {}
    for task in TABS:
        try:
            load_served(task)
        except gr.Error as error:
            failed[task] = error.message
    return failed


def serve(**launch: Any) -> Any:
    """Queue and launch `demo` as the Space runs it (`QUEUE`, `MAX_FILE_SIZE`); `launch` adds Blocks.launch's own
    arguments (the tests' port, prevent_thread_lock)."""
    return demo.queue(**QUEUE).launch(max_file_size=MAX_FILE_SIZE, **launch)


if __name__ == "__main__":
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    # every tab's model loaded (and a broken one logged) beside the server's start, not before it: the page is up at
    # once, and a request that comes first waits for its own model only (load_served loads one at a time)
    limit_malloc_arenas()  # before the threads that allocate start
    threading.Thread(target=check_models, name="check-models", daemon=True).start()
    threading.Thread(target=keep_trimming, name="trim-memory", daemon=True).start()
    serve()
