"""Darkroom's models: one module per task, each exposing Config, train, load, predict and evaluate.

`TASKS` is the one list of tasks: training/train.py, training/sweep.py, the bench's task choices and the app's tabs
all read it, and tests/test_contract.py checks every entry against the contract (see ../shared/DESIGN.md). A task
module is imported on first use, so listing the tasks (a `--help`) costs nothing.
"""

from __future__ import annotations

import importlib
from types import ModuleType

TASKS: dict[str, str] = {  # task name -> its module, in the app's tab order
    "cards": "tasks.cards",
    "classify": "tasks.classify",
    "upscale": "tasks.upscale",
    "restore": "tasks.restore",
    "mask": "tasks.mask",
    "colorize": "tasks.colorize",
}


def task_module(name: str) -> ModuleType:
    """The module of a registered task.

    Raises:
        KeyError: `name` is not registered (the message lists the tasks that are).
    """
    if name not in TASKS:
        raise KeyError(f"Unknown task {name!r}; the tasks are {', '.join(TASKS)}.")
    return importlib.import_module(TASKS[name])
