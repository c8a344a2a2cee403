"""A real browser (Debian's Chromium driven by Playwright): Classify reads an upload's label; Cards keeps Steps in the model's range."""

import os
from pathlib import Path

import pytest
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel  # on import: a first import beside the app's fails
from playwright.sync_api import expect, sync_playwright

from tasks.hub import ASSETS_DIR

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def page(app_url):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        page = browser.new_page()
        page.goto(app_url)
        yield page
        browser.close()


def test_upload_classify_and_read_the_label(page):
    bag = next(path for path in sorted((ASSETS_DIR / "examples" / "classify").glob("*.png")) if "bag" in path.name)
    page.get_by_role("tab", name="Classify").click()
    page.locator("input[type=file]").first.set_input_files(str(bag))
    page.get_by_role("button", name="Classify", exact=True).click()
    label = page.get_by_test_id("label-output-value")
    expect(label).to_have_text("Bag", timeout=30_000)
    expect(page.get_by_text("Serving weights: assets/models/classify")).to_be_visible()


def test_steps_follow_the_sampler_and_the_typed_models_noise_levels(page, tmp_path, monkeypatch):
    monkeypatch.setenv("DARKROOM_MODEL_ROOTS", str(tmp_path))  # a typed folder must be under a model root
    unet = UNet2DModel(sample_size=16, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(8, 16),
                       norm_num_groups=4, down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"))
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=50)).save_pretrained(tmp_path)
    page.get_by_role("tab", name="Cards").click()
    steps = page.get_by_label("range slider for Steps")
    page.get_by_label("DDPM", exact=True).check()
    expect(steps).to_have_value("1000")  # the bundled model's every noise level
    model = page.get_by_label("Model (blank = default)")
    model.fill(str(tmp_path))
    model.press("Enter")
    expect(steps).to_have_value("50")  # a model trained with 50 levels cannot take 1000 steps
    expect(steps).to_have_attribute("max", "50")
    page.get_by_label("DPM-Solver++", exact=True).check()
    expect(steps).to_have_value("20")
    page.get_by_label("DDPM", exact=True).check()
    expect(steps).to_have_value("50")
    model.fill("")
    model.press("Enter")
    expect(steps).to_have_attribute("max", "1000")  # back on the bundled model


SCREENSHOTS = os.environ.get("SCREENSHOT_DIR")  # a folder to keep each tab's screenshot in (the README's: assets/screenshots)
TAB_RUNS = {  # task -> (tab title, example to upload or None, button, what the result shows)
    "cards": ("Cards", None, "Generate", lambda page: page.locator("#cards-gallery img")),
    "classify": ("Classify", ASSETS_DIR / "examples" / "classify" / "7-sneaker.png", "Classify",
                 lambda page: page.get_by_test_id("label-output-value")),
    "mask": ("Mask", ASSETS_DIR / "examples" / "colorize" / "coffee.jpg", "Cut out",
             lambda page: page.locator("#mask-output img")),
    "colorize": ("Colorize", ASSETS_DIR / "examples" / "colorize" / "chelsea.jpg", "Colorize",
                 lambda page: page.get_by_text("Your photo had color")),
    "restore": ("Restore", ASSETS_DIR / "examples" / "restore" / "coffee.png", "Restore",
                lambda page: page.locator("#restore-slider img").nth(1)),  # both sides painted
    "upscale": ("Upscale", ASSETS_DIR / "examples" / "upscale" / "chelsea.png", "Upscale",
                lambda page: page.locator("#upscale-slider img").nth(1)),  # both sides painted
}


@pytest.mark.parametrize("task", list(TAB_RUNS))
def test_each_tab_runs_and_its_model_report_shows_the_model_card_and_figures(page, task, tmp_path):
    from tasks import TASKS, training

    assert set(TAB_RUNS) == set(TASKS)  # a browser run for every registered task
    title, example, button, result = TAB_RUNS[task]
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_role("tab", name=title).click()
    if example is not None:
        page.locator(f"#{task}-upload input[type=file]").set_input_files(str(example))
    page.get_by_role("button", name=button, exact=True).click()
    expect(result(page).first).to_be_visible(timeout=60_000)
    page.wait_for_timeout(500)  # let the output images paint before the picture
    folder = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{task}.png"))
    # the report: the model card's title in the text, and its figures as images in the gallery
    report = page.locator(f"#{task}-report")
    report.get_by_text("Model report").click()
    _, figures = training.read_model_card(ASSETS_DIR / "models" / task)
    expect(report.get_by_role("heading", level=1)).to_contain_text(f"Darkroom {title}")  # the card's own title
    expect(report.locator("img")).to_have_count(len(figures), timeout=30_000)
    report.get_by_text("Model report").click()  # closed again for the next tab


def test_colorize_offers_both_models_each_with_its_report(page):
    page.get_by_role("tab", name="Colorize").click()
    page.locator("#colorize-upload input[type=file]").set_input_files(
        str(ASSETS_DIR / "examples" / "colorize" / "chelsea.jpg"))
    page.get_by_label("Faces (the original experiment)").check()
    page.get_by_role("button", name="Colorize", exact=True).click()
    expect(page.get_by_text("on faces it never saw")).to_be_visible(timeout=60_000)  # the faces model's own score
    report = page.locator("#colorize-faces-report")
    report.get_by_text("Model report").click()
    expect(report.get_by_role("heading", level=1)).to_contain_text("trained on faces")
    report.get_by_text("Model report").click()
    page.get_by_label("Photos (general)").check()  # back to the default for the tests after
    page.get_by_role("button", name="Colorize", exact=True).click()
    expect(page.get_by_text("scenes it was never trained on")).to_be_visible(timeout=60_000)


EXAMPLE_RESULTS = {  # task -> what clicking its first example shows: a cached result, or the example filled in
    "cards": lambda page: page.locator("#cards-gallery img"),
    "classify": lambda page: page.get_by_test_id("label-output-value"),
    "colorize": lambda page: page.get_by_text("Your photo had color"),
    "mask": lambda page: page.locator("#mask-output img"),
    "restore": lambda page: page.locator("#restore-upload img"),
    "upscale": lambda page: page.locator("#upscale-upload img"),
}


@pytest.mark.parametrize("task", list(EXAMPLE_RESULTS))
def test_clicking_each_tabs_first_example_shows_it_without_an_error(page, task):
    from tasks import TASKS

    assert set(EXAMPLE_RESULTS) == set(TASKS)  # every tab offers examples
    page.reload()  # a fresh session: nothing from the tests before
    page.get_by_role("tab", name=TAB_RUNS[task][0]).click()
    page.locator(f"#{task}-examples .gallery-item, #{task}-examples tbody tr").first.click()
    expect(EXAMPLE_RESULTS[task](page).first).to_be_visible(timeout=120_000)
    expect(page.get_by_test_id("toast-body")).to_have_count(0)  # no "Error" beside it


def test_the_faces_example_runs_the_faces_model(page):
    page.reload()
    page.get_by_role("tab", name="Colorize").click()
    page.locator("#colorize-examples .gallery-item, #colorize-examples tbody tr").last.click()
    expect(page.get_by_label("Faces (the original experiment)")).to_be_checked()
    expect(page.get_by_text("on faces it never saw")).to_be_visible(timeout=60_000)  # the faces model's own score
    expect(page.get_by_text("Serving the Faces model: assets/models/colorize/faces")).to_be_attached()
    page.get_by_label("Photos (general)").check()  # back to the default for the tests after


def test_a_clothing_photo_example_is_classified_by_the_photo_model(page):
    page.reload()
    page.get_by_role("tab", name="Classify").click()
    page.locator("#classify-photo-examples .gallery-item, #classify-photo-examples tbody tr").first.click()
    expect(page.get_by_test_id("label-output-value")).to_be_visible(timeout=60_000)
    expect(page.get_by_test_id("toast-body")).to_have_count(0)
    report = page.locator("#classify-photos-report")
    report.get_by_text("Model report").click()
    expect(report.get_by_role("heading", level=1)).to_contain_text("photos of clothes")
    report.get_by_text("Model report").click()


def test_the_cards_gallery_shows_cards_on_arrival_and_the_seed_button_is_text(page):
    page.reload()
    page.get_by_role("tab", name="Cards").click()
    expect(page.locator("#cards-gallery img")).to_have_count(4, timeout=60_000)  # no click: the first example's
    seed = page.get_by_label("number input for Seed")
    page.get_by_role("button", name="Random", exact=True).click()
    expect(seed).not_to_have_value("0", timeout=10_000)
