"""Darkroom: small vision models behind one Gradio app (a Hugging Face Space).

Thin by design: each tab wires inputs to a task's `predict` and shows the serving weights and their report. Models are
loaded on first use, once, from $DARKROOM_<TASK>_MODEL (a Hub id or folder) or the copies bundled in assets/models/.

    python app.py          # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT override)
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import gradio as gr
from PIL import Image

from tasks import classify
from tasks.hub import ASSETS_DIR
from tasks.images import load_rgb

logger = logging.getLogger("darkroom.app")

EXAMPLES_DIR = ASSETS_DIR / "examples"


def image_upload(**kwargs) -> gr.Image:
    """A gr.Image whose uploads reach tasks.images as the raw file, so every bad upload gets the same clear message.

    gr.Image alone opens the file with PIL before our code runs, and a non-image fails there with PIL's words.
    Gradio's own checks on the uploaded path happen before `preprocess`, so replacing it skips none of them. (A
    subclass would do the same, but Gradio writes a .pyi stub beside any module that defines a component.)
    """
    upload = gr.Image(type="filepath", sources=["upload", "clipboard"], **kwargs)

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


def examples(task: str) -> list[str]:
    return sorted(str(path) for path in (EXAMPLES_DIR / task).glob("*.png"))


# ---------------------------------------------------------------------------------------------------------------------
# Classify
# ---------------------------------------------------------------------------------------------------------------------


@functools.cache
def classify_model() -> classify.ClothingCNN:
    return classify.load()


def run_classify(path: str | None) -> tuple[Image.Image, dict[str, float]]:
    """Upload → (the 28×28 input the model saw, shown at 8× with square pixels; the class probabilities)."""
    prediction = classify.predict(classify_model(), open_upload(path))
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

    def picture(name: str) -> str | None:
        return str(folder / name) if (folder / name).is_file() else None

    return (serving_line(weights), table, picture("confusion_matrix.png"), picture("examples.png"),
            picture("filters.png"), picture("training_curves.png"))


def classify_tab(demo: gr.Blocks) -> None:
    gr.Markdown(
        "Sort a picture of a clothing item into the ten Fashion-MNIST classes. Any photo works: it is turned "
        "into the 28×28 light-on-black picture the model was trained on (shown on the right), so you can see what "
        "the model saw. Product shots on a plain background work best."
    )
    with gr.Row():
        with gr.Column():
            upload = image_upload(label="Clothing picture", height=320)
            button = gr.Button("Classify", variant="primary")
        with gr.Column():
            model_input = gr.Image(label="What the model saw (28×28)", height=240, interactive=False)
            label = gr.Label(num_top_classes=5, label="Top 5 classes")
    serving = gr.Markdown()
    button.click(run_classify, inputs=upload, outputs=[model_input, label], api_name="classify")
    gr.Examples(examples=examples("classify"), inputs=upload, outputs=[model_input, label], fn=run_classify,
                cache_examples=True, cache_mode="lazy", label="Fashion-MNIST test images (one per class)")
    with gr.Accordion("Model report", open=False):
        report = gr.Markdown()
        with gr.Row():
            confusion = gr.Image(label="Confusion matrix (test set)", interactive=False)
            curves = gr.Image(label="Training loss per step and validation loss", interactive=False)
        with gr.Row():
            grid = gr.Image(label="Right and wrong test examples per class", interactive=False)
            filters = gr.Image(label="First-layer filters", interactive=False)
    demo.load(classify_report, outputs=[serving, report, confusion, grid, filters, curves], api_visibility="private")


# ---------------------------------------------------------------------------------------------------------------------


def build_demo() -> gr.Blocks:
    with gr.Blocks(title="Darkroom") as demo:
        gr.Markdown("# Darkroom\nSmall vision models, trained by this project and served on CPU.")
        with gr.Tabs():
            with gr.Tab("Classify", id="classify"):
                classify_tab(demo)
    return demo


demo = build_demo()

if __name__ == "__main__":
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    demo.queue(default_concurrency_limit=2).launch()
