"""Darkroom: small vision models behind one Gradio app (a Hugging Face Space).

Thin by design: each tab wires inputs to a task's `predict` and shows the serving weights and their report. Models are
loaded on first use, once, from $DARKROOM_<TASK>_MODEL (a Hub id or folder) or the copies bundled in assets/models/.

    python app.py          # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT override)
"""

from __future__ import annotations

import functools
import json
import logging
import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import gradio as gr
from PIL import Image

from tasks import cards, classify, colorize, mask
from tasks.hub import ASSETS_DIR
from tasks.images import load_rgb

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


def open_upload(path: str | None) -> Image.Image:
    """The one UI-edge wrapper around images.load_rgb: missing or bad uploads become a gr.Error for the person."""
    if path is None:
        raise gr.Error("Upload an image first.")
    try:
        return load_rgb(path)
    except ValueError as error:
        raise gr.Error(str(error)) from error


def serving_line(weights) -> str:
    return f"Serving weights: **{weights.name}** ({weights.origin})."


_LOADING = threading.Lock()


def model_loader(load: Callable[..., T]) -> Callable[..., T]:
    """Keep a tab's loaded models (per argument, the last four) and run loads one at a time, app-wide.

    Opening the page asks every tab for its model at once, each in its own worker thread, and diffusers is not safe to
    load beside anything else: its first imports fail in a second thread ("cannot import name"), and while it builds a
    UNet it switches torch's weight init off for the whole process. A caller that waited gets the model the first one
    loaded. A model already loaded is returned without the lock, so a slow load (a Hub download) never holds up a
    request that has its model."""
    models: dict[tuple, T] = {}

    @functools.wraps(load)
    def one_at_a_time(*args: str) -> T:
        model = models.get(args)
        if model is None:
            with _LOADING:
                model = models.get(args)
                if model is None:
                    model = models[args] = load(*args)
                    if len(models) > 4:
                        models.pop(next(iter(models)))
        return model

    return one_at_a_time


def report_file(folder: Path, name: str) -> str | None:
    """A report file of the serving weights' folder, or None when those weights did not come with it."""
    return str(folder / name) if (folder / name).is_file() else None


def examples(task: str) -> list[str]:
    return sorted(str(path) for path in (EXAMPLES_DIR / task).iterdir() if path.suffix in (".png", ".jpg"))


# ---------------------------------------------------------------------------------------------------------------------
# Classify
# ---------------------------------------------------------------------------------------------------------------------


@model_loader
def classify_model() -> classify.ClothingCNN:
    return classify.load()


def run_classify(path: str | None) -> tuple[Image.Image, dict[str, float]]:
    """Upload → (the 28×28 input the model saw, shown at 8× with square pixels; the class probabilities)."""
    photo = open_upload(path)
    try:
        prediction = classify.predict(classify_model(), photo)
    except ValueError as error:  # NoItemError: nothing stands out from the background
        raise gr.Error(str(error)) from error
    shown = prediction.model_input.resize((8 * classify.SIZE, 8 * classify.SIZE), Image.Resampling.NEAREST)
    return shown, prediction.probabilities


def classify_report() -> tuple[str, str, str | None, str | None, str | None, str | None]:
    """The serving line and the "Model report" contents, read from the serving weights' folder."""
    weights = classify_model().weights
    folder = Path(weights.path)
    summary = json.loads((folder / "metrics.json").read_text()) if (folder / "metrics.json").is_file() else {}
    if summary:
        rows = "\n".join(f"| {name} | {acc:.1%} |" for name, acc in summary["per_class_accuracy"].items())
        table = (f"**Test accuracy {summary['test_accuracy']:.2%}** on {summary['test_samples']:,} Fashion-MNIST test "
                 f"images · {summary['parameters']:,} parameters · best epoch {summary['best_epoch']} of "
                 f"{summary['epochs_trained']}\n\n| class | test accuracy |\n|---|---|\n{rows}")
    else:
        table = "These weights came without a metrics.json report."
    return (serving_line(weights), table, report_file(folder, "confusion_matrix.png"),
            report_file(folder, "examples.png"), report_file(folder, "filters.png"),
            report_file(folder, "training_curves.png"))


def classify_tab(demo: gr.Blocks) -> None:
    gr.Markdown(
        "Sort a picture of a clothing item into the ten Fashion-MNIST classes. Any photo works: it is turned "
        "into the 28×28 light-on-black picture the model was trained on (shown on the right), so you can see what "
        "the model saw. Product shots on a plain background, lighter or darker than the item, work best."
    )
    with gr.Row():
        with gr.Column():
            upload = image_upload(label="Clothing picture", height=320)
            button = gr.Button("Classify", variant="primary")
        with gr.Column():
            model_input = gr.Image(format="png", label="What the model saw (28×28)", height=240, interactive=False)
            label = gr.Label(num_top_classes=5, label="Top 5 classes")
    serving = gr.Markdown()
    button.click(run_classify, inputs=upload, outputs=[model_input, label], api_name="classify")
    gr.Examples(examples=examples("classify"), inputs=upload, outputs=[model_input, label], fn=run_classify,
                cache_examples=True, cache_mode="lazy", label="Fashion-MNIST test images (one per class)")
    with gr.Accordion("Model report", open=False):
        report = gr.Markdown()
        with gr.Row():
            confusion = gr.Image(format="png", label="Confusion matrix (test set)", interactive=False)
            curves = gr.Image(format="png", label="Training loss per step and validation loss", interactive=False)
        with gr.Row():
            grid = gr.Image(format="png", label="Right and wrong test examples per class", interactive=False)
            filters = gr.Image(format="png", label="First-layer filters", interactive=False)
    demo.load(classify_report, outputs=[serving, report, confusion, grid, filters, curves], api_visibility="private")


# ---------------------------------------------------------------------------------------------------------------------
# Cards
# ---------------------------------------------------------------------------------------------------------------------

@model_loader
def cards_model(source: str = "") -> cards.CardModel:
    """The default weights for "", else the DDPMPipeline folder or Hub repo a person typed (errors are theirs)."""
    try:
        return cards.load(source.strip() or None)
    except (FileNotFoundError, OSError, ValueError) as error:  # hub.cannot_load's sentence: no server paths
        raise gr.Error(str(error)) from error


def run_cards(category: str, seed: float, n: float, steps: float, sampler: str, guidance: float, source: str,
              progress=gr.Progress()) -> tuple[list[Image.Image], str]:
    """The Cards endpoint: n cards of `category` from `seed` (card i from seed + i)."""
    model = cards_model(source or "")
    if model.categories is None and category != cards.ANY:
        gr.Info(f"{model.weights.name} has no categories; sampling it unconditionally.")
        category = cards.ANY
    progress(0, desc="sampling")
    try:
        images = cards.predict(model, category, seed=int(seed), n=int(n), steps=int(steps), sampler=sampler,
                               guidance=float(guidance), progress=lambda done, total: progress((done, total), desc="denoising", unit="steps"))
    except ValueError as error:
        raise gr.Error(str(error)) from error
    return images, serving_line(model.weights)


def steps_slider(sampler: str, source: str, steps: float | None = None):
    """The Steps slider for `sampler` on the model in `source`: `steps` (None = the sampler's default), never past the
    model's noise levels, which also become the slider's maximum. An unloadable model leaves the range alone: Generate
    says why it cannot be loaded.

    With `steps` given (the Model box was left or submitted) the value is only touched when it is past the new
    maximum: clicking a sampler leaves the box too, and that event, carrying the old sampler's steps, may finish after
    the sampler's own and would otherwise put its steps back."""
    value = cards.DEFAULT_STEPS[sampler] if steps is None else int(steps)
    try:
        levels = cards.diffusion.noise_levels(cards_model(source or ""))
    except gr.Error:
        return gr.update(value=value) if steps is None else gr.update()
    if steps is not None and value <= levels:
        return gr.update(maximum=levels)
    return gr.update(value=min(value, levels), maximum=levels)


def run_stain(path: str | None, region: str, category: str, seed: float, source: str):
    """"Stain this card": inpaint a stain of `category` in a preset region of an uploaded card."""
    model = cards_model(source or "")
    card = open_upload(path)
    if region not in cards.STAIN_REGIONS:
        raise gr.Error(f"Pick a region: {', '.join(cards.STAIN_REGIONS)}.")
    left, top, right, bottom = cards.STAIN_REGIONS[region]
    height, width = model.size
    mask = Image.new("L", (width, height), 0)
    mask.paste(255, (round(left * width), round(top * height), round(right * width), round(bottom * height)))
    try:
        stained, known_mask = cards.stain(model, card, mask, category, seed=int(seed))
    except ValueError as error:
        raise gr.Error(str(error)) from error
    before = cards.diffusion.upright(card, (height, width))
    return (before, stained), known_mask


def cards_report() -> tuple[str, str, str | None, str | None]:
    model = cards_model("")
    folder = Path(model.weights.path)
    summary = model.metrics
    table = (f"{summary.get('parameters', 0):,}-parameter UNet at {summary.get('size')} · {summary.get('training_cards')} "
             f"training cards · {summary.get('steps')} steps" if summary else "These weights came without a report.")
    fidelity = folder / "fidelity.md"
    if fidelity.is_file():
        table += "\n\n" + fidelity.read_text()
    return serving_line(model.weights), table, report_file(folder, "samples.png"), report_file(folder, "training_curves.png")


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
                dice = gr.Button("🎲", scale=1, min_width=40)
            n = gr.Slider(1, cards.MAX_CARDS, value=4, step=1, label="Number of cards")
            steps = gr.Slider(1, 1000, value=20, step=1, label="Steps")
            sampler = gr.Radio(list(cards.SAMPLERS), value="DPM-Solver++", label="Sampler")
            guidance = gr.Slider(1, cards.MAX_GUIDANCE, value=cards.GUIDANCE, step=0.5, label="Guidance",
                                 info="how strongly the category shows (classifier-free guidance); 1 = none, twice as fast")
            source = gr.Textbox(label="Model (blank = default)", placeholder="a DDPMPipeline folder or Hub id, e.g. "
                                "megamp15/FULL_GUM_STAIN_CARDS")
            button = gr.Button("Generate", variant="primary")
        with gr.Column(scale=2):
            gallery = gr.Gallery(label="Cards", columns=4, height=420, format="png")
            serving = gr.Markdown()
    dice.click(lambda: random.randrange(1_000_000), outputs=seed, api_visibility="private")
    sampler.change(steps_slider, inputs=[sampler, source], outputs=steps, api_visibility="private")
    gr.on([source.submit, source.blur], steps_slider, inputs=[sampler, source, steps], outputs=steps,
          api_visibility="private")
    button.click(run_cards, inputs=[category, seed, n, steps, sampler, guidance, source], outputs=[gallery, serving],
                 api_name="cards")
    gr.Examples([["FULL_CARD", 0, 4, 20, "DPM-Solver++", cards.GUIDANCE, ""], ["WHITE_MARKS", 7, 4, 20, "DPM-Solver++", cards.GUIDANCE, ""],
                 ["SMALL", 42, 4, 20, "DPM-Solver++", cards.GUIDANCE, ""], ["LIGHT", 3, 4, 20, "DPM-Solver++", cards.GUIDANCE, ""]],
                inputs=[category, seed, n, steps, sampler, guidance, source], outputs=[gallery, serving], fn=run_cards,
                cache_examples=True, cache_mode="lazy")
    with gr.Accordion("Stain this card", open=False):
        gr.Markdown("Upload a clean card back, pick where and what: the model paints a stain there and leaves the rest "
                    "of the card as it was (RePaint-style inpainting), so the stain's mask is known.")
        with gr.Row():
            with gr.Column():
                card = image_upload(label="Clean card back", height=300)
                region = gr.Dropdown(list(cards.STAIN_REGIONS), value="centre", label="Region")
                stain_category = gr.Dropdown(list(cards.CATEGORIES[:-1]), value="SMALL", label="Stain")
                stain_button = gr.Button("Stain it")
            slider = gr.ImageSlider(format="png", label="Before / after", type="pil")
            known_mask = gr.Image(format="png", label="Stain region mask", type="pil", interactive=False)
        stain_button.click(run_stain, inputs=[card, region, stain_category, seed, source],
                           outputs=[slider, known_mask], api_name="stain")
    with gr.Accordion("Model report", open=False):
        report = gr.Markdown()
        with gr.Row():
            samples = gr.Image(format="png", label="Samples: one row per category", interactive=False)
            curves = gr.Image(format="png", label="Training loss and learning rate", interactive=False)
    demo.load(cards_report, outputs=[serving, report, samples, curves], api_visibility="private")


# ---------------------------------------------------------------------------------------------------------------------
# Colorize
# ---------------------------------------------------------------------------------------------------------------------


@model_loader
def colorize_model() -> colorize.Model:
    return colorize.load()


def run_colorize(path: str | None, saturation: float):
    """Upload → (grayscale ↔ colorized slider, the original when it had colour, a line with the MAE)."""
    photo = open_upload(path)
    try:
        result = colorize.predict(colorize_model(), photo, saturation=float(saturation))
    except ValueError as error:
        raise gr.Error(str(error)) from error
    if result.was_color:
        note = (f"Your photo had colour: mean a\\*b\\* error **{result.mae:.4f}** against it (normalised; the model "
                f"scores {colorize_model().metrics.get('test_mae', float('nan')):.4f} on faces it never saw).")
        original = gr.update(value=photo, visible=True)
    else:
        note, original = "Your photo was grayscale: nothing to compare against.", gr.update(value=None, visible=False)
    return (result.gray, result.image), original, note


def colorize_report() -> tuple[str, str, str | None, str | None]:
    model = colorize_model()
    weights, summary = model.weights, model.metrics
    folder = Path(weights.path)
    if not summary:
        return serving_line(weights), "These weights came without a metrics.json report.", None, None
    rows = [f"| faces of {len(summary['split']['test'])} people it never saw | {summary['test_mae']:.4f} | "
            f"{summary['test_baseline_mae']:.4f} |"]
    if summary.get("scenes_mae") is not None:
        rows.append(f"| natural scenes (BSDS test, {summary['scenes_photos']}) | {summary['scenes_mae']:.4f} | "
                    f"{summary['scenes_baseline_mae']:.4f} |")
    architecture = ("U-Net" if summary["config"]["skip"] else "encoder-decoder") + (
        " with global context" if summary["config"].get("context") else "")
    refit = (" (refit: on the training and validation people together, with the recipe chosen on the validation "
             "people first)" if summary["config"].get("refit") else "")
    members = summary.get("members") or []
    ensemble = (f"The mean of {len(members)} colorizers trained alike with different seeds "
                f"({', '.join(str(member['init_seed']) for member in members)}), each a " if members else "")
    text = (f"{ensemble}{summary['parameters'] // max(len(members), 1):,}-parameter {architecture}, width "
            f"{summary['config']['width']}, trained on faces at {summary['config']['size']}×{summary['config']['size']}"
            f"{refit}.\n\n"
            f"| test photos | MAE | baseline (training mean colour) |\n|---|---|---|\n" + "\n".join(rows))
    if summary.get("test_mae_by_person"):
        low, high = summary["test_mae_interval95"]
        text += ("\n\nEach test person: " + ", ".join(f"{name} {value:.4f}" for name, value in
                                                     summary["test_mae_by_person"].items())
                 + f" (95% interval over people: {low:.4f}–{high:.4f}). Told each photo's overall colour, which "
                 f"lightness barely tells, it would score {summary['test_cast_matched_mae']:.4f}.")
    for name, key in (("Best", "best_test_photos"), ("Worst", "worst_test_photos")):
        if summary.get(key):
            text += f"\n\n{name} test faces: " + ", ".join(f"`{item['photo']}` {item['mae']:.4f}" for item in summary[key])
    if (folder / "sweep.md").is_file():
        text += "\n\n### Width sweep\n\n" + (folder / "sweep.md").read_text()
    return serving_line(weights), text, report_file(folder, "sweep.png"), report_file(folder, "training_curves.png")


def colorize_tab(demo: gr.Blocks) -> None:
    gr.Markdown(
        "Colour a black-and-white photo. The model predicts the a\\*b\\* colour channels (CIELAB) from lightness "
        "alone, at 128×128; the colour is then laid under your photo's own full-resolution lightness, so no detail "
        "is lost. It learned from face photos: faces come out plausibly, scenes mostly in skin tones, and the "
        "report says by how much."
    )
    with gr.Row():
        with gr.Column():
            upload = image_upload(label="Photo (colour or grayscale)", height=320)
            saturation = gr.Slider(0, 2, value=1, step=0.05, label="Saturation",
                                   info="scales the predicted colour: 0 = gray, 1 = as predicted")
            button = gr.Button("Colorize", variant="primary")
        with gr.Column():
            slider = gr.ImageSlider(format="png", label="Grayscale ↔ colorized", type="pil", height=320)
            note = gr.Markdown()
            original = gr.Image(format="png", label="Your original", type="pil", interactive=False, visible=False,
                                height=200)
    serving = gr.Markdown()
    button.click(run_colorize, inputs=[upload, saturation], outputs=[slider, original, note], api_name="colorize")
    gr.Examples(examples=[[path, 1.0] for path in examples("colorize")], inputs=[upload, saturation],
                outputs=[slider, original, note], fn=run_colorize, cache_examples=True, cache_mode="lazy",
                label="Public-domain photos (scikit-image): a face, scenes, and a grayscale original")
    with gr.Accordion("Model report", open=False):
        report = gr.Markdown()
        with gr.Row():
            sweep = gr.Image(format="png", label="Width sweep: test MAE, parameters, latency", interactive=False)
            curves = gr.Image(format="png", label="Training loss and validation MAE", interactive=False)
    demo.load(colorize_report, outputs=[serving, report, sweep, curves], api_visibility="private")


# ---------------------------------------------------------------------------------------------------------------------
# Mask
# ---------------------------------------------------------------------------------------------------------------------


@model_loader
def mask_model() -> mask.CarUNet:
    return mask.load()


def run_mask(path: str | None, threshold: float, background: str):
    """Upload → (the mask, the RGBA cut-out, before ↔ after on a background colour). Also the /mask API endpoint."""
    photo = open_upload(path)
    try:
        result = mask.predict(mask_model(), photo, threshold=float(threshold))
    except ValueError as error:
        raise gr.Error(str(error)) from error
    try:
        backdrop = Image.new("RGB", photo.size, background or "white")
    except ValueError as error:
        raise gr.Error(f"Background colour {background!r} is not a colour.") from error
    backdrop.paste(photo, mask=result.mask)
    return result.mask, result.cutout, (photo, backdrop)


def mask_report() -> tuple[str, str, str | None]:
    model = mask_model()
    summary, folder = model.metrics, Path(model.weights.path)
    if not summary:
        return serving_line(model.weights), "These weights came without a metrics.json report.", None
    config = summary["config"]
    text = (f"**Dice {summary['test_dice']:.4f}** on {summary['test_photos']} photos of {len(summary['split']['test'])} "
            f"cars it never saw, at their original resolution (with clean-up: {summary['test_dice_cleaned']:.4f}). "
            f"{summary['parameters']:,}-parameter U-Net, width {config['width']}, depth {config['depth']}, input "
            f"{config['input_width']}×{config['input_height']}. Test cars: {', '.join(summary['split']['test'])}.")
    return serving_line(model.weights), text, report_file(folder, "training_curves.png")


def mask_tab(demo: gr.Blocks) -> None:
    gr.Markdown(
        "Cut the car out of a studio photo. The U-Net looks at a 240×160 copy; its answer is scaled back to your "
        "photo's full size, so the mask and the transparent cut-out are as large as the photo. Download either, or "
        "slide between the original and the car on a new background."
    )
    with gr.Row():
        with gr.Column():
            upload = image_upload(label="Studio photo of a car", height=300)
            threshold = gr.Slider(0.05, 0.95, value=0.5, step=0.05, label="Threshold",
                                  info="how sure the model must be that a pixel is car")
            background = gr.ColorPicker(value="#ffffff", label="New background")
            button = gr.Button("Cut out", variant="primary")
        with gr.Column():
            slider = gr.ImageSlider(format="png", label="Original ↔ on the new background", type="pil", height=300)
            with gr.Row():
                mask_image = gr.Image(format="png", label="Mask (PNG)", type="pil", interactive=False)
                cutout = gr.Image(format="png", label="Cut-out (transparent PNG)", type="pil", image_mode="RGBA",
                                  interactive=False)
    serving = gr.Markdown()
    button.click(run_mask, inputs=[upload, threshold, background], outputs=[mask_image, cutout, slider], api_name="mask")
    # Carvana's photos are Kaggle competition data and may not be shipped: the one example shows what happens
    # without a car (an honest, mostly empty mask); bring your own car photo
    gr.Examples(examples=[[str(EXAMPLES_DIR / "colorize" / "coffee.jpg"), 0.5, "#ffffff"]],
                inputs=[upload, threshold, background], outputs=[mask_image, cutout, slider], fn=run_mask,
                cache_examples=True, cache_mode="lazy", label="No car in this one: see what the model does")
    with gr.Accordion("Model report", open=False):
        report = gr.Markdown()
        curves = gr.Image(format="png", label="Training loss and validation (1 − Dice)", interactive=False)
    demo.load(mask_report, outputs=[serving, report, curves], api_visibility="private")


# ---------------------------------------------------------------------------------------------------------------------


def build_demo() -> gr.Blocks:
    with gr.Blocks(title="Darkroom") as demo:
        gr.Markdown("# Darkroom\nSmall vision models, trained by this project and served on CPU.")
        with gr.Tabs():
            with gr.Tab("Cards", id="cards"):
                cards_tab(demo)
            with gr.Tab("Colorize", id="colorize"):
                colorize_tab(demo)
            with gr.Tab("Mask", id="mask"):
                mask_tab(demo)
            with gr.Tab("Classify", id="classify"):
                classify_tab(demo)
    return demo


demo = build_demo()

if __name__ == "__main__":
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    demo.queue(default_concurrency_limit=2).launch()
