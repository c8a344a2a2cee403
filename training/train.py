"""Train one Darkroom task; its `Config` dataclass fields are the flags, one to one.

    accelerate launch training/train.py classify --num_epochs 20 --output_dir outputs/classify
    python training/train.py classify --max_train_steps 50 --resume_from_checkpoint latest
    python training/train.py classify --help              # every field, its default and its comment

The output folder has the shape of assets/models/<task>/ (config.json, model.safetensors, README.md model card,
metrics.json, training curves). With --push_to_hub --hub_model_id user/name it is uploaded when training ends; a
failed upload is reported and leaves the folder as it is.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import logging
import os
import sys
import typing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from tasks import TASKS, task_module  # noqa: E402  (the registry: the one list of tasks)

logger = logging.getLogger("darkroom.train")


def field_comments(config_class: type) -> dict[str, str]:
    """The trailing `# comment` of each dataclass field, read from the class sources (base classes first)."""
    comments: dict[str, str] = {}
    for cls in reversed(config_class.__mro__[:-1]):
        try:
            lines = inspect.getsource(cls).splitlines()
        except (OSError, TypeError):
            continue
        for line in lines:
            name, sep, rest = line.strip().partition(":")
            if sep and name.isidentifier() and "#" in rest:
                comments[name] = rest.split("#", 1)[1].strip()
    return comments


def build_parser(task: str, config_class: type) -> argparse.ArgumentParser:
    """One `--field` flag per Config field, typed from the annotation, defaulting to the field's default."""
    parser = argparse.ArgumentParser(prog=f"train.py {task}", description=f"Train the {task} task.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    hints = typing.get_type_hints(config_class)
    comments = field_comments(config_class)
    for field in dataclasses.fields(config_class):
        kind, help_text = hints[field.name], comments.get(field.name, " ")
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        if kind is bool:
            parser.add_argument(f"--{field.name}", action=argparse.BooleanOptionalAction, default=default, help=help_text)
        elif typing.get_origin(kind) in (list, tuple):
            (item,) = set(typing.get_args(kind)) - {Ellipsis}
            parser.add_argument(f"--{field.name}", type=item, nargs="+", default=default, help=help_text)
        else:
            parser.add_argument(f"--{field.name}", type=kind, default=default, help=help_text)
    return parser


def parse_config(argv: list[str]) -> tuple[str, typing.Any, typing.Any]:
    """argv → (task name, task module, Config instance)."""
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in TASKS:
        names = ", ".join(TASKS)
        raise SystemExit(f"usage: train.py TASK [--field value ...]\n  TASK is one of: {names}\n"
                         f"  train.py TASK --help lists the task's fields." + (f"\nunknown task {argv[0]!r}" if argv and
                                                                                 argv[0] not in ("-h", "--help") else ""))
    task = argv[0]
    module = task_module(task)
    args = build_parser(task, module.Config).parse_args(argv[1:])
    return task, module, module.Config(**vars(args))


def main(argv: list[str] | None = None) -> int:
    from accelerate import Accelerator

    from tasks import hub, training

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    task, module, cfg = parse_config(sys.argv[1:] if argv is None else argv)
    if cfg.push_to_hub and not cfg.hub_model_id:
        raise SystemExit("--push_to_hub needs --hub_model_id user/name.")
    if cfg.mixed_precision != "no" and not _has_gpu():
        logger.warning("No GPU: --mixed_precision %s is ignored; training in fp32.", cfg.mixed_precision)
        cfg.mixed_precision = "no"
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision, cpu=training.cpu_processes())  # no GPU: gloo
    check_processes(accelerator)  # between the processes, however they were launched
    module.train(cfg, accelerator)
    if accelerator.is_main_process:
        logger.info("Wrote %s", Path(cfg.output_dir).resolve())
    if cfg.push_to_hub and accelerator.is_main_process:
        try:
            url = hub.push(cfg.output_dir, cfg.hub_model_id, commit_message=f"Train {task}", private=cfg.hub_private)
        except (OSError, ValueError) as error:  # network, auth, bad id: keep the local output and say so
            logger.error("Push to %s failed (%s). The trained model is intact in %s; push it later with "
                         "`python -m tasks.hub push %s %s`.", cfg.hub_model_id, error, cfg.output_dir,
                         cfg.output_dir, cfg.hub_model_id)
            return 1
        logger.info("Pushed to %s", url)
    return 0


def check_processes(accelerator, environ=os.environ) -> None:
    """Make sure the processes launched are the processes training together.

    `accelerate launch --cpu --num_processes N` starts one process (accelerate's multi-CPU launch needs MPI,
    `--mpirun_hostfile`): warn, with the command that starts N. N processes that did not form one group would each
    train alone and write the same folder: refuse.

    Raises:
        SystemExit: the launcher started WORLD_SIZE processes but this one trains alone.
    """
    launched = int(environ.get("WORLD_SIZE", "1"))
    if launched != accelerator.num_processes:
        raise SystemExit(f"{launched} processes were launched (WORLD_SIZE), but Accelerate formed a group of "
                         f"{accelerator.num_processes}: each would train alone and write the same output folder.")
    if launched == 1 and environ.get("ACCELERATE_USE_CPU", "").lower() == "true" and "MASTER_PORT" in environ:
        logger.warning("`accelerate launch --cpu --num_processes N` started one process: accelerate launches several "
                       "CPU processes only through MPI (--mpirun_hostfile). On one machine, start N with "
                       "`accelerate launch --multi_gpu --num_processes N training/train.py ...` or `torchrun "
                       "--nproc_per_node N training/train.py ...`: without a GPU they train over gloo.")


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    sys.exit(main())
