"""A real browser (Debian's Chromium driven by Playwright) uploads a picture in the Classify tab and reads the answer."""

import pytest
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
