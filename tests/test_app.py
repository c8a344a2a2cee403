"""The app over real HTTP through gradio_client: right answers, clear errors, and a server that keeps serving."""

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
