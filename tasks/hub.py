"""Where a task's weights come from, and how a trained folder is pushed to the Hub.

`resolve(task, source)` picks, in order: the `source` argument; the environment variable `DARKROOM_<TASK>_MODEL`;
the copy bundled in `assets/models/<task>/`. Each of the first two may be a local folder or a Hub repo id
(`user/name`, optionally `user/name@revision`). An explicit `source` loads exactly that or raises; only the
environment's choice falls back to the bundled copy when it cannot be had (offline, a missing repo, a typo), with one
warning, so that a Space whose Hub repo is briefly unreachable keeps serving.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from huggingface_hub import constants, create_repo, snapshot_download, upload_folder

logger = logging.getLogger(__name__)

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
MODELS_DIR = ASSETS_DIR / "models"


@dataclass(frozen=True)
class Weights:
    """A resolved weights folder.

    Attributes:
        path: local folder holding config.json + model.safetensors (or a DDPMPipeline layout).
        origin: "argument", "environment" or "bundled": which rule chose it.
        name: what to show a person: the Hub id with its commit, or the folder as it was given (never resolved).
    """

    path: Path
    origin: str
    name: str


ModelT = TypeVar("ModelT")


class NoSuchModel(FileNotFoundError):
    """A task folder without the model asked for (a one-model folder asked for its other one): nothing is broken,
    the sentence says which models there are."""


@dataclass(frozen=True)
class Served(Generic[ModelT]):
    """A loaded model and what came with its weights: what every task's `load` and `train` return, and what its
    `predict` and `evaluate` take, so a model just trained and one loaded from the same folder behave alike.

    Attributes:
        model: the task's model, on the CPU in eval mode (an `nn.Module`; cards: a `CardModel`).
        weights: where the weights came from (the tab's "serving" line, the bench's JSON).
        metrics: the folder's metrics.json, written at training time ({} when the weights came without one).
        split: the training run's split by group (people, cars): {"train": [...], "val": [...], "test": [...]};
            {} when the task splits no groups (Fashion-MNIST has its own test set) or the folder does not say.
        facts: anything else the training run recorded about its data that serving or scoring needs (colorize: the
            training people's mean a*b*, the parts it trained on); {} when none.
    """

    model: ModelT
    weights: Weights
    metrics: dict[str, Any] = field(default_factory=dict)
    split: dict[str, list[str]] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def folder(self) -> Path:
        """The local folder the weights were read from (the report's files are in it)."""
        return self.weights.path


def read_json(folder: str | os.PathLike, name: str) -> dict[str, Any]:
    """A JSON file of a model folder, or {} when the folder has none (weights from elsewhere may lack reports)."""
    path = Path(folder) / name
    return json.loads(path.read_text()) if path.is_file() else {}


def env_var(task: str) -> str:
    """The environment variable that points a task at other weights, e.g. DARKROOM_CLASSIFY_MODEL."""
    return f"DARKROOM_{task.upper()}_MODEL"


def bundled(task: str) -> Weights:
    """The copy shipped in assets/models/<task>/."""
    path = MODELS_DIR / task
    if not path.is_dir():
        raise FileNotFoundError(f"No bundled weights for {task!r} at {path}; train them with training/train.py {task}.")
    return Weights(path=path, origin="bundled", name=str(path.relative_to(ASSETS_DIR.parent)))


def _download(source: str) -> tuple[Path, str]:
    """Fetch a Hub repo (`user/name[@revision]`) into the local cache; returns (folder, display name)."""
    repo_id, _, revision = source.partition("@")
    folder = Path(snapshot_download(repo_id=repo_id, revision=revision or None))
    return folder, f"{repo_id}@{folder.name[:7]}"


def _local_folder(source: str) -> Path | None:
    """`source` as an existing local folder (resolved), or None when it names none, including names no folder can
    have: too long, a NUL byte, an unknown ~user."""
    try:
        path = Path(source).expanduser()
        return path.resolve() if path.is_dir() else None
    except (OSError, RuntimeError, ValueError):
        return None


def resolve(task: str, source: str | os.PathLike | None = None) -> Weights:
    """Choose the weights folder for a task: `source` > $DARKROOM_<TASK>_MODEL > bundled.

    Args:
        task: task name, e.g. "classify".
        source: a local folder or a Hub repo id; None to use the environment variable or the bundled copy.

    Returns:
        The resolved Weights. When the environment names something that is neither a folder nor a fetchable repo id,
        the bundled copy (and one warning saying why).

    Raises:
        FileNotFoundError: `source` is neither a folder nor a fetchable repo id (`cannot_load`'s sentence).
    """
    origin = "argument" if source else "environment"
    source = source or os.environ.get(env_var(task)) or None
    if source is None:
        return bundled(task)
    source = str(source)
    folder = _local_folder(source)
    if folder is not None:  # named as given: the server's own paths are never shown
        return Weights(path=folder, origin=origin, name=source)
    try:
        path, name = _download(source)
    except (OSError, ValueError) as error:  # offline, missing or gated repo, malformed id: all OSError/ValueError
        reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        if origin == "argument":  # a person or a flag asked for exactly this
            logger.info("%s weights %r: not a folder, and the Hub did not provide them (%s).", task, source, reason)
            raise FileNotFoundError(cannot_load(source)) from error
        weights = bundled(task)
        logger.warning("%s weights %r unavailable (%s); serving the bundled copy at %s instead.", task, source, reason,
                       weights.name)
        return weights
    return Weights(path=path, origin=origin, name=name)


HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}(@[A-Za-z0-9_.-]{1,100})?")


def model_roots() -> list[Path]:
    """The folders a model typed into the app may come from: $DARKROOM_MODEL_ROOTS (paths joined by os.pathsep),
    else the repository's assets/models/ and outputs/."""
    typed = os.environ.get("DARKROOM_MODEL_ROOTS")
    if typed:
        return [Path(os.path.abspath(item)) for item in typed.split(os.pathsep) if item]
    return [MODELS_DIR, ASSETS_DIR.parent / "outputs"]


def check_typed_source(source: str) -> None:
    """Refuse, from the text alone and before any file is touched, a model source typed by a person that is neither a
    Hub model id (`user/name[@revision]`, no "..") nor a path under `model_roots()` (made absolute and normalised
    as text: "outputs/../../etc" is outside).

    Raises:
        ValueError: the sentence to show (the same for every refused text, naming only what was typed).
    """
    if HUB_ID.fullmatch(source) and ".." not in source:
        return
    place = Path(os.path.normpath(os.path.abspath(os.path.expanduser(source)))) if "\0" not in source else None
    if place is not None and any(place == root or root in place.parents for root in model_roots()):
        return
    raise ValueError(f"Could not load {source!r}: a model here is a Hub model id (user/name) or a folder under this "
                     "server's model folders.")


def load_failure(task: str, weights: Weights, error: BaseException) -> str:
    """The sentence for a task whose resolved weights could not be loaded: the safetensors files of the folder that do
    not open (corrupt or truncated), else the error itself; the weights' display name, never a server path."""
    from safetensors import safe_open

    broken = []
    for path in sorted(weights.path.rglob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt") as handle:
                handle.keys()
        except Exception as reason:  # safetensors raises its own SafetensorError (an Exception) for a bad header
            broken.append(f"{path.relative_to(weights.path)} ({str(reason).splitlines()[0]})")
    what = (f"{', '.join(broken)} {'is' if len(broken) == 1 else 'are'} corrupt or truncated" if broken
            else f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
    return (f"The {task} model {weights.name} could not be loaded: {what}. Replace the file (or unset "
            f"{env_var(task)} to serve the bundled copy); the other tabs are not affected.")


def cannot_load(source: str) -> str:
    """The one sentence for an explicit source that could not be loaded: the same whether a folder of that name exists
    on this machine or not, and without its resolved path, so that what a person types into a public Space's model
    box tells them nothing about the server's files (the details go to the server's log)."""
    offline = " (the Hub is switched off here: HF_HUB_OFFLINE is set)" if constants.HF_HUB_OFFLINE else ""
    return (f"Could not load {source!r}: it is neither a model folder here nor a Hub model id (user/name) that could "
            f"be downloaded{offline}.")


def push(folder: str | os.PathLike, repo_id: str, commit_message: str = "Upload from Darkroom", private: bool = False) -> str:
    """Create (if needed) the model repo `repo_id` and upload `folder` to it, model card included.

    The token comes from the environment (HF_TOKEN) or `hf auth login`, never from an argument. The local folder is
    only read, so a failed push leaves it intact.

    Returns:
        The URL of the commit.
    """
    create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    commit = upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=commit_message,
                           ignore_patterns=["checkpoints/*", "*/checkpoints/*", "rendered/*"])  # resumable state, training data
    return str(commit)


def main(argv: list[str] | None = None) -> None:
    """`python -m tasks.hub push FOLDER USER/NAME`: upload a trained folder (e.g. after a failed push)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tasks.hub")
    commands = parser.add_subparsers(dest="command", required=True)
    push_parser = commands.add_parser("push", help="upload a trained model folder to a Hub model repo")
    push_parser.add_argument("folder")
    push_parser.add_argument("repo_id")
    push_parser.add_argument("--private", action="store_true")
    args = parser.parse_args(argv)
    try:
        print(push(args.folder, args.repo_id, private=args.private))
    except (OSError, ValueError) as error:  # network, auth, a bad id: the folder is untouched
        raise SystemExit(f"Push of {args.folder} to {args.repo_id} failed ({type(error).__name__}: "
                         f"{str(error).splitlines()[0] if str(error) else ''}). The folder is unchanged; log in with "
                         "`hf auth login` or set HF_TOKEN, then run this again.") from None


if __name__ == "__main__":
    main()
