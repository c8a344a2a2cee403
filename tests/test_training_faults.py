"""Every task's training as the command line runs it, in real subprocesses on tiny configs: a run SIGKILLed mid-epoch
and resumed with `--resume_from_checkpoint latest` ends with the weights of an unbroken run, and a run under
`accelerate launch --multi_gpu --num_processes 2` on the CPU (gloo) trains the same weights on both processes and
writes one folder."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tasks import upscale
from tasks.cards import diffusion
from tests.conftest import ROOT, free_port
from tests.test_colorize import people  # noqa: F401  (fixtures: the tiny data sets those tests train on)
from tests.test_colorize import tiny_config as colorize_config
from tests.test_mask import carvana  # noqa: F401
from tests.test_mask import tiny_config as mask_config
from tests.test_restore import photos  # noqa: F401
from tests.test_restore import tiny_config as restore_config
from tests.test_train import tiny_config as classify_config


def configs(task: str, data: dict[str, Path], out: Path):
    """The task's tiny Config writing to `out`: 2+ epochs of 6+ steps (so that a kill lands mid-epoch), each batch
    of 2+ items (each of 2 processes gets a share), a checkpoint every step."""
    if task == "classify":  # 36 training images / 4 = 9 steps an epoch
        return classify_config(data["fashion"], out, train_batch_size=4, num_epochs=2)
    if task == "mask":  # 3 training cars × 2 views = 6 photos / 2 = 3 steps an epoch
        return mask_config(out.parent, data["carvana"], output_dir=str(out), train_batch_size=2, num_epochs=3)
    if task == "colorize":  # 3 training people × 3 photos × 2 repeats = 18 / 3 = 6 steps an epoch
        return colorize_config(out.parent, data["people"], output_dir=str(out), train_batch_size=3, repeats=2,
                               num_epochs=2)
    if task == "upscale":  # 12 photos × 1 patch / 2 = 6 steps an epoch
        return upscale.Config(data=str(data["photos"] / "train"), val_data=str(data["photos"] / "val"),
                              output_dir=str(out), arch="fast", patch_size=16, patches_per_image=1, train_batch_size=2,
                              num_epochs=2, lr_warmup_steps=1, width=8, blocks=1, checkpointing_steps=1)
    if task == "restore":  # 12 photos / 2 = 6 steps an epoch; clustered after epoch 0
        return restore_config(out.parent, data["photos"], output_dir=str(out), train_batch_size=2, num_epochs=2,
                              checkpointing_steps=1)
    if task == "cards":  # 8 rendered cards / 2 = 4 steps an epoch
        return diffusion.Config(data=str(data["cards"]), output_dir=str(out), height=16, width=16,
                                block_out_channels=(8, 16), norm_num_groups=4, train_batch_size=2, num_epochs=2,
                                lr_warmup_steps=1, save_images_epochs=10, checkpointing_steps=1, num_train_timesteps=50)
    raise ValueError(task)


TASKS = ["classify", "mask", "colorize", "upscale", "restore", "cards"]
STEPS_PER_EPOCH = {"classify": 9, "mask": 3, "colorize": 6, "upscale": 6, "restore": 6, "cards": 4}  # as above


@pytest.fixture(scope="module")
def data(request, tiny_fashion, tmp_path_factory):
    from tasks.cards.render import render_dataset

    cards = tmp_path_factory.mktemp("cards")
    render_dataset(2, cards, size=(16, 16), categories=("FULL_CARD", "SMALL", "CLEAN", "LIGHT"))
    return {"fashion": tiny_fashion, "carvana": request.getfixturevalue("carvana"),
            "people": request.getfixturevalue("people"), "photos": request.getfixturevalue("photos"), "cards": cards}


def flags(cfg) -> list[str]:
    """A Config as training/train.py's flags: each field that is not the default."""
    argv = []
    for field in dataclasses.fields(cfg):
        value, default = getattr(cfg, field.name), field.default
        if default is dataclasses.MISSING:
            default = field.default_factory()
        if value == default:
            continue
        if isinstance(value, bool):
            argv.append(f"--{field.name}" if value else f"--no-{field.name}")
        elif isinstance(value, (list, tuple)):
            argv += [f"--{field.name}", *map(str, value)]
        else:
            argv += [f"--{field.name}", str(value)]
    return argv


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def launch(argvs: list[list[str]], log: Path, processes: int = 1) -> subprocess.Popen:
    """training/train.py (one command line, its output into `log`) or tests/train_in_turn.py (several in turn, each
    process's output into log.process<RANK>.log), as its own process group (a kill takes every process of an
    accelerate launch)."""
    if len(argvs) == 1:
        script = [str(ROOT / "training" / "train.py"), *argvs[0]]
    else:
        runs = log.with_suffix(".json")
        runs.write_text(json.dumps(argvs))
        script = [str(ROOT / "tests" / "train_in_turn.py"), str(runs)]
    if processes > 1:  # without a GPU, the processes join over gloo (`--cpu` would start one: see train.py)
        command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
                   str(processes), "--num_machines", "1", "--main_process_port", str(free_port()), *script]
    else:
        command = [sys.executable, *script]
    return subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def finished(process: subprocess.Popen, log: Path, processes: int = 1, timeout: float = 400,
             tasks: list[str] = TASKS) -> list[dict[str, str]]:
    """Wait for a launch of tests/train_in_turn.py; per process, each run's part of its log, by task (failing on a
    failed run)."""
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail(f"no end within {timeout} s:\n" + "\n".join(
            path.read_text()[-3000:] for path in sorted(log.parent.glob(f"{log.stem}*.log"))))
    texts = [log.with_suffix(f".process{rank}.log").read_text() for rank in range(processes)]
    assert process.returncode == 0, log.read_text()[-2000:] + "\n".join(text[-3000:] for text in texts)
    logs = []
    for text in texts:
        pieces = re.split(r"^=== run \d+: (\w+)$", text, flags=re.MULTILINE)  # [before, task, its log, task, ...]
        logs.append(dict(zip(pieces[1::2], pieces[2::2])))
        assert list(logs[-1]) == tasks, text[-4000:]
    return logs


def weights(folder: Path) -> dict[str, torch.Tensor]:
    """Every safetensors file of a model folder (not its checkpoints), by file and tensor name."""
    found = {}
    for path in sorted(folder.rglob("*.safetensors")):
        if "checkpoints" not in path.relative_to(folder).parts:
            found.update({f"{path.relative_to(folder)}:{k}": v for k, v in load_file(path).items()})
    return found


@pytest.fixture(scope="module")
def killed(data, tmp_path_factory):
    """Each task: an unbroken run, and a run SIGKILLed (its whole process group) as soon as its first checkpoint is
    written (every task has 3+ steps an epoch: the kill lands mid-epoch, with two steps to spare), then resumed with
    --resume_from_checkpoint latest. The unbroken runs go in turn in one process, beside the runs to kill (one core
    each)."""
    root = tmp_path_factory.mktemp("killed")
    straight = {task: configs(task, data, root / task / "straight") for task in TASKS}
    broken = {task: configs(task, data, root / task / "broken") for task in TASKS}
    unbroken = launch([[task, *flags(cfg)] for task, cfg in straight.items()], root / "straight.log")
    kills = {}
    for task, cfg in broken.items():
        process = launch([[task, *flags(cfg)]], root / f"{task}-broken.log")
        checkpoints = Path(cfg.output_dir) / "checkpoints"
        deadline = time.monotonic() + 120
        while not (checkpoints / "checkpoint-1").is_dir() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        written = sorted(checkpoints.glob("checkpoint-*"), key=lambda path: int(path.name.split("-")[1]))
        assert written, (root / f"{task}-broken.log").read_text()[-3000:]  # no checkpoint within the deadline
        # a kill during a save leaves a .checkpoint-N.partial (or .old) folder beside them, never a half checkpoint
        assert all(path.name.startswith(("checkpoint-", ".checkpoint-")) for path in checkpoints.iterdir()
                   if path.is_dir())
        kills[task] = (process.returncode, written[-1], json.loads((written[-1] / "trainer_state.json").read_text()))
    [straight_log] = finished(unbroken, root / "straight.log")
    halves = [TASKS[0::2], TASKS[1::2]]  # resumed in two processes side by side
    resumed = [launch([[task, *flags(broken[task]), "--resume_from_checkpoint", "latest"] for task in half],
                      root / f"resumed-{index}.log") for index, half in enumerate(halves)]
    resumed_log = {}
    for index, (process, half) in enumerate(zip(resumed, halves)):
        resumed_log.update(finished(process, root / f"resumed-{index}.log", tasks=half)[0])
    return {"straight": straight, "broken": broken, "kills": kills, "straight_log": straight_log,
            "resumed_log": resumed_log}


@pytest.fixture(scope="module")
def two_processes(data, tmp_path_factory):
    """Each task trained under `accelerate launch --multi_gpu --num_processes 2` on the CPU (gloo)."""
    root = tmp_path_factory.mktemp("ddp")
    cfgs = {task: configs(task, data, root / task / "out") for task in TASKS}
    process = launch([[task, *flags(cfg)] for task, cfg in cfgs.items()], root / "ddp.log", processes=2)
    return cfgs, finished(process, root / "ddp.log", processes=2)


@pytest.mark.parametrize("task", TASKS)
def test_a_run_killed_mid_epoch_resumes_to_the_weights_of_an_unbroken_run(task, killed):
    code, latest, state = killed["kills"][task]
    assert code == -signal.SIGKILL, "the run ended before it was killed"
    assert state["step_in_epoch"] > 0  # killed mid-epoch, and the checkpoint says so
    broken = Path(killed["broken"][task].output_dir)
    assert f"Resumed from {latest}" in killed["resumed_log"][task]
    resumed_from = json.loads((broken / "metrics.json").read_text())["resumed"]
    assert [entry["from"] for entry in resumed_from] == [latest.name]
    if task in ("classify", "cards"):  # the model cards that list their resumes
        assert f"Resumed from `{latest.name}`" in (broken / "README.md").read_text()
    expected, resumed = weights(Path(killed["straight"][task].output_dir)), weights(broken)
    assert expected and resumed.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(resumed[key], value, rtol=0, atol=0, msg=key)


@pytest.mark.parametrize("task", TASKS)
def test_two_processes_train_one_model_with_the_same_weights_on_both(task, two_processes):
    cfgs, logs = two_processes
    cfg, (main_log, other_log) = cfgs[task], (log[task] for log in logs)
    assert "Weights identical on all 2 processes." in main_log and "Weights identical" in other_log
    folder = Path(cfg.output_dir)
    assert weights(folder) and (folder / "README.md").is_file() and (folder / "training_curves.png").is_file()
    # each process took its share of every batch: as many optimizer steps as one process alone would take
    assert json.loads((folder / "metrics.json").read_text())["steps"] == STEPS_PER_EPOCH[task] * cfg.num_epochs
    assert main_log.count(f"Wrote {folder.resolve()}") == 1 and "Wrote" not in other_log  # by the main process only
