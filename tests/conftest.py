"""Shared fixtures. The environment is set before anything imports gradio or huggingface_hub: no test touches the
network, and nothing needs ../shared."""

from __future__ import annotations

import atexit
import gzip
import os
import shutil
import socket
import struct
import sys
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
for _name in [name for name in os.environ if name.startswith("DARKROOM_")]:  # every tab serves its bundled weights
    os.environ.pop(_name)
if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs two workers, each with its own app server: keep their
    _scratch = tempfile.mkdtemp(prefix=f"darkroom-{os.environ['PYTEST_XDIST_WORKER']}-")  # uploads, results and cached
    os.environ["GRADIO_TEMP_DIR"] = os.path.join(_scratch, "gradio")  # examples apart (the examples cache is under
    os.environ["GRADIO_EXAMPLES_CACHE"] = os.path.join(_scratch, "examples")  # the working directory otherwise)
    atexit.register(shutil.rmtree, _scratch, ignore_errors=True)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as a gzip IDX file (magic 0x0000 0x08 rank, big-endian dims, data)."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as file:
        file.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="session")
def tiny_fashion(tmp_path_factory) -> Path:
    """A Fashion-MNIST-shaped IDX folder: 48 train and 20 test images, every class present, class-dependent bars."""
    folder = tmp_path_factory.mktemp("tiny-fashion")
    rng = np.random.default_rng(0)
    for split, n in (("train", 48), ("t10k", 20)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 40, size=(n, 28, 28))
        for image, label in zip(images, labels):
            image[4 + 2 * label: 8 + 2 * label, 4:24] = 230  # a bright bar whose height says the class
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", labels)
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def app_url():
    """The real app, launched once on a free port for the API and browser tests."""
    import app

    port = free_port()
    app.serve(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)  # the Space's queue
    yield f"http://127.0.0.1:{port}/"
    app.demo.close()


# The longest files first (seconds on 2 cores, `pytest --durations`): `make test` hands whole files to its two
# workers in collection order, so a long file collected last would run alone at the end.
LONGEST_FIRST = ("test_training_faults.py", "test_bad_input.py", "test_memory.py", "test_app.py", "test_browser.py",
                 "test_cards_diffusion.py", "test_colorize.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order within a file, and of the other files, is kept
