"""Plumbing every task's training loop shares: common config fields, the loop's state and batches (seeded order,
each process's share, gradient accumulation, clipping), checkpoints, curves and the model card.

The loop itself lives in each task (one readable `train()` per task); this module holds only what is the same for
all of them:

    run = Run(cfg, accelerator, model, optimizer, scheduler, loop_shape(cfg, accelerator))  # fresh, or resumed
    state, losses = run.state, []
    model, optimizer = accelerator.prepare(model, optimizer)
    while state.epoch < cfg.num_epochs and state.global_step < total_steps:
        for batch in epoch_batches(len(train_x), cfg, state, accelerator, cfg.seed):
            if state.global_step >= total_steps:
                break
            with accumulating(accelerator, model, batch):
                loss = loss_of(train_x[batch.indices])
                backward_step(accelerator, model, loss, batch, optimizer, scheduler, cfg)
            record_batch(state, progress, batch, losses, loss.item(), scheduler.get_last_lr()[0])
            if batch.sync and state.global_step % cfg.checkpointing_steps == 0:
                run.save()                             # only between optimizer steps: nothing half-accumulated
        else:
            sync_buffers(accelerator, model)       # with several processes: all validate the same weights
            run.end_epoch(value=score, val_loss=..., improved=state.is_better(score), model=...)
    model = run.finish(model)                      # the best epoch's weights; every process trained the same

Checkpoints never use pickle for weights: the model is safetensors, the optimizer/scheduler/RNG state is a plain
tensor dict read back with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import ModelCard, ModelCardData
from safetensors.torch import load_file, save_file

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"


@dataclass
class TrainingArgs:
    """Fields every task's Config has, spelled the same everywhere (they become `--snake_case` flags)."""

    output_dir: str = "outputs/model"  # the trained folder, in the assets/models/<task> shape
    seed: int = 0  # seeds the split, the model init, shuffling and augmentation
    num_epochs: int = 10  # hard cap on passes over the training set
    train_batch_size: int = 128  # samples per batch (split between processes); a step = gradient_accumulation_steps of them
    learning_rate: float = 1e-3  # peak learning rate after warmup
    lr_warmup_steps: int = 100  # linear warmup to the peak lr (at most a tenth of the run)
    gradient_accumulation_steps: int = 1  # batches whose gradients are averaged (by samples) into one optimizer step
    max_grad_norm: float = 1.0  # clip the gradients' global norm to this before each optimizer step; 0 = no clipping
    mixed_precision: str = "no"  # "no", "fp16" or "bf16": autocast on GPU; CPU runs stay fp32
    max_train_steps: int = 0  # stop after this many optimizer steps; 0 = no limit (smoke runs, quick tries)
    checkpointing_steps: int = 500  # save a resumable checkpoint every N optimizer steps
    checkpoints_total_limit: int = 2  # keep only the newest N checkpoints
    resume_from_checkpoint: str = ""  # a checkpoint folder, or "latest" for the newest in output_dir/checkpoints
    push_to_hub: bool = False  # upload output_dir to the Hub when training ends
    hub_model_id: str = ""  # the Hub repo to push to, e.g. "user/darkroom-classify"
    hub_private: bool = False  # create the Hub repo as private


# ---------------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------------


def split_groups(names: list[str], seed: int, val_fraction: float, test_fraction: float) -> dict[str, list[str]]:
    """Seeded split of group names (people, cars) into train/val/test, so that near-duplicate photos of one group
    never sit in two splits; each part is non-empty when there are 3+ groups."""
    order = [names[i] for i in torch.randperm(len(names), generator=torch.Generator().manual_seed(seed)).tolist()]
    n_test = max(1, round(test_fraction * len(names))) if len(names) >= 3 else 0
    n_val = max(1, round(val_fraction * len(names))) if len(names) >= 3 else 0
    return {"train": sorted(order[n_test + n_val:]), "val": sorted(order[n_test:n_test + n_val]),
            "test": sorted(order[:n_test])}


# ---------------------------------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------------------------------


def empty_history() -> dict[str, list]:
    return {"step": [], "loss": [], "lr": [], "val_step": [], "val_loss": []}


@dataclass
class LoopState:
    """Where a training loop is, saved in every checkpoint (trainer_state.json) so a resumed run goes on exactly.

    Attributes:
        global_step: optimizer steps taken.
        epoch: full epochs done.
        step_in_epoch: batches of the current epoch already consumed (with gradient accumulation, several per step).
        best_metric: the best value so far of the metric that selects the kept weights (None before the first epoch).
        best_epoch: the epoch that reached it (-1: none yet).
        bad_epochs: epochs in a row without a better best_metric (early stopping).
        stopped_early: the loop ended on patience.
        history: per step "step", "loss", "lr"; per epoch "val_step", "val_loss", and any task curves.
        resumed: one entry per resume (the checkpoint's name, and what the task chose to note).
        extra: task facts that must match on resume (e.g. cards' prediction_type).
        seconds: wall-clock seconds of training so far, summed over resumes (kept by the loops that report it).
    """

    global_step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0
    best_metric: float | None = None
    best_epoch: int = -1
    bad_epochs: int = 0
    stopped_early: bool = False
    history: dict[str, list] = field(default_factory=empty_history)
    resumed: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def is_better(self, value: float, maximize: bool = False) -> bool:
        """Whether `value` beats best_metric (any value does before the first)."""
        if self.best_metric is None:
            return True
        return value > self.best_metric if maximize else value < self.best_metric

    @classmethod
    def from_json(cls, saved: dict[str, Any]) -> LoopState:
        """A state read back from trainer_state.json (also those written before this class, with a "best_val_<x>")."""
        names = {item.name for item in fields(cls)}
        state = cls(**{key: value for key, value in saved.items() if key in names})
        older = {key: value for key, value in saved.items() if key not in names}  # written as top-level keys
        best = [value for key, value in older.items() if key.startswith("best_val_")]
        if state.best_metric is None and best and state.best_epoch >= 0:
            state.best_metric = best[0]
        state.extra = {**{key: value for key, value in older.items() if not key.startswith("best_val_")}, **state.extra}
        return state


def loop_shape(cfg: TrainingArgs, accelerator: Any) -> dict[str, Any]:
    """What a resumed run must share with the run it resumes for its batches to be the same ones (the batch index
    and the augmentation seeds count in these units): for LoopState.extra, checked by `load_checkpoint`."""
    return {"train_batch_size": cfg.train_batch_size, "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
            "num_processes": accelerator.num_processes}


def cpu_processes(environ: dict[str, str] = os.environ) -> bool:
    """Whether this is one of several launched processes (WORLD_SIZE > 1) on a machine without CUDA: Accelerate must
    then be asked for the CPU, or each process trains alone (it looks for GPUs to group; gloo groups CPUs). A single
    process is left to Accelerate's own choice (the CPU, or Apple's MPS)."""
    return int(environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()


def make_accelerator(cfg: TrainingArgs, accelerator: Any = None) -> Any:
    """The run's Accelerator: `accelerator` when given, else a new one at cfg.mixed_precision. Gradient accumulation
    is the loop's own (`epoch_batches`), so the Accelerator's stays 1 (it would divide the loss a second time).

    Raises:
        ValueError: `accelerator` was built with gradient accumulation of its own, or cfg asks for less than 1 step.
    """
    from accelerate import Accelerator

    if cfg.gradient_accumulation_steps < 1:
        raise ValueError(f"gradient_accumulation_steps must be at least 1; got {cfg.gradient_accumulation_steps}.")
    accelerator = accelerator or Accelerator(mixed_precision=cfg.mixed_precision, cpu=cpu_processes())
    if accelerator.gradient_accumulation_steps != 1:
        raise ValueError("Set gradient accumulation with the Config's --gradient_accumulation_steps, not on the "
                         "Accelerator: the loop accumulates itself, so that a resumed run accumulates alike.")
    return accelerator


@dataclass(frozen=True)
class Batch:
    """One batch of an epoch, as `epoch_batches` hands it out.

    Attributes:
        indices: this process's share of the batch's item indices (int64, into the training tensors).
        sync: the last batch of its optimizer step: step, clip and zero after its backward (and EMA, and count).
        loss_scale: the batch's share of its optimizer step's samples, so that the step's gradient is that of all
            its samples as one batch (a mean loss per batch assumed; 1 without accumulation).
        draw: a seed for this batch's random augmentation, the same however the run was interrupted.
    """

    indices: torch.Tensor
    sync: bool
    loss_scale: float
    draw: int


def steps_per_epoch(n_items: int, cfg: TrainingArgs, repeats: int = 1) -> int:
    """Optimizer steps in one epoch of n_items × repeats items (the last step may accumulate fewer batches)."""
    batches = -(-n_items * repeats // cfg.train_batch_size)
    return -(-batches // cfg.gradient_accumulation_steps)


def epoch_batches(n_items: int, cfg: TrainingArgs, state: LoopState, accelerator: Any, seed: int,
                  repeats: int = 1) -> Iterator[Batch]:
    """The current epoch's remaining batches: a seeded order (seed × 1000 + epoch) over `repeats` passes of n_items
    items, cut into batches of cfg.train_batch_size, from batch state.step_in_epoch on (a resumed run sees exactly
    the batches an unbroken one would), each process taking every num_processes-th item of each batch
    (`process_share`).

    Consecutive batches form one optimizer step per cfg.gradient_accumulation_steps (the epoch's last step may take
    fewer); each batch's `draw` is seed × 1,000,003 + its place in the run, so augmentation is the same after a
    resume (without accumulation, the global step). The batches are made one at a time and read state.global_step
    as the loop's `record_batch` advances it.
    """
    order = torch.randperm(n_items * repeats, generator=torch.Generator().manual_seed(seed * 1000 + state.epoch))
    batches = (order % n_items).split(cfg.train_batch_size)
    accumulation = cfg.gradient_accumulation_steps
    for index in range(state.step_in_epoch, len(batches)):
        first = index - index % accumulation  # the first batch of this optimizer step
        step = batches[first:first + accumulation]  # the epoch's last step may have fewer, and a smaller last batch
        place = state.global_step * accumulation + index - first  # = global_step without accumulation
        yield Batch(indices=process_share(batches[index], accelerator.process_index, accelerator.num_processes),
                    sync=index - first == len(step) - 1, loss_scale=len(batches[index]) / sum(map(len, step)),
                    draw=seed * 1_000_003 + place)


def process_share(indices: torch.Tensor, process_index: int, num_processes: int) -> torch.Tensor:
    """One process's share of a batch's item indices: every num_processes-th item from its index on. A batch of
    fewer items than processes is repeated first (as accelerate's `even_batches` does), so that no process gets an
    empty batch: every process must take part in each step's gradient all-reduce."""
    if len(indices) < num_processes:
        indices = indices.repeat(-(-num_processes // len(indices)))[:num_processes]
    return indices[process_index::num_processes]


@contextmanager
def accumulating(accelerator: Any, model: torch.nn.Module, batch: Batch) -> Iterator[None]:
    """The forward and backward of one batch: under autocast, and without the cross-process gradient all-reduce
    unless the batch ends its optimizer step (DDP's no_sync must hold the forward too)."""
    with (contextlib.nullcontext() if batch.sync else accelerator.no_sync(model)), accelerator.autocast():
        yield


def backward_step(accelerator: Any, model: torch.nn.Module, loss: torch.Tensor, batch: Batch, optimizer: Any,
                  scheduler: Any, cfg: TrainingArgs) -> bool:
    """Backward of `loss` scaled for accumulation; on the step's last batch, clip to cfg.max_grad_norm (when > 0),
    step the optimizer and the lr schedule, and zero the gradients. Returns batch.sync: whether a step was taken."""
    accelerator.backward(loss * batch.loss_scale)
    if batch.sync:
        if cfg.max_grad_norm > 0:
            accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    return batch.sync


# ---------------------------------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------------------------------


def save_checkpoint(
    output_dir: str | os.PathLike,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: LoopState,
    total_limit: int,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write `output_dir/checkpoints/checkpoint-<step>/` atomically and prune the oldest beyond `total_limit`.

    Args:
        model: the unwrapped model (its state dict goes to model.safetensors).
        optimizer, scheduler: their state dicts go to training_state.pt together with the torch RNG state.
        state: the loop's state (trainer_state.json).
        extra: other objects with state_dict()/load_state_dict() to keep (e.g. EMA weights), by name.

    Returns:
        The checkpoint folder.
    """
    root = Path(output_dir) / CHECKPOINTS
    folder = root / f"checkpoint-{step}"
    partial = root / f".checkpoint-{step}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    save_weights(model, partial / "model.safetensors")
    torch.save(
        {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
         "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],  # dropout on a GPU
         "extra": {name: value.state_dict() for name, value in (extra or {}).items()}},
        partial / "training_state.pt",
    )
    (partial / "trainer_state.json").write_text(json.dumps(asdict(state)))
    old = root / f".checkpoint-{step}.old"  # the epoch's end saves the step its last batch saved: set that one aside
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    partial.rename(folder)  # a crash mid-write leaves only a .partial (or .old) folder, never a half checkpoint
    shutil.rmtree(old, ignore_errors=True)
    for old in sorted(root.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[:-max(total_limit, 1)]:
        shutil.rmtree(old)
    return folder


def end_epoch(state: LoopState, *, value: float, val_loss: float, improved: bool, model: torch.nn.Module,
              best_path: Path, patience: int = 0, save: bool = True) -> None:
    """A full epoch's validation: record `val_loss` in the history; when `improved`, keep `model`'s weights at
    `best_path` as the epoch's best_metric `value` (written only where `save`: the main process), else count a bad
    epoch (and stop early after `patience` of them, when patience > 0); then move the loop to the next epoch."""
    state.history["val_step"].append(state.global_step)
    state.history["val_loss"].append(val_loss)
    if improved:
        state.best_metric, state.best_epoch, state.bad_epochs = value, state.epoch, 0
        if save:
            save_weights(model, best_path)
    else:
        state.bad_epochs += 1
    state.stopped_early = patience > 0 and state.bad_epochs >= patience
    state.epoch += 1
    state.step_in_epoch = 0


def sync_buffers(accelerator: Any, model: torch.nn.Module) -> None:
    """Give every process the main process's buffers (BatchNorm running statistics): DDP broadcasts them at the start
    of each forward, so after an epoch's last forward each process holds the statistics of its own share of the last
    batch, and validation (which picks the kept epoch and stops early) would differ between processes. A no-op in a
    single process."""
    if accelerator.num_processes == 1:
        return
    import torch.distributed as dist

    for buffer in accelerator.unwrap_model(model).buffers():
        dist.broadcast(buffer.data, src=0)


def check_replicas(accelerator: Any, model: torch.nn.Module) -> None:
    """Check that every process holds the same weights and buffers, bit for bit (a SHA-256 of the state dict,
    gathered), so the model the main process writes is the one every process trained. A no-op in a single process.

    Raises:
        RuntimeError: the processes' weights differ (naming the processes that differ from the main one).
    """
    if accelerator.num_processes == 1:
        return
    import hashlib

    digest = hashlib.sha256()
    for name, value in sorted(accelerator.unwrap_model(model).state_dict().items()):
        digest.update(name.encode())
        digest.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    mine = torch.tensor([int.from_bytes(digest.digest()[:7], "big")], device=accelerator.device)
    codes = accelerator.gather(mine).tolist()
    differ = [index for index, code in enumerate(codes) if code != codes[0]]
    if differ:
        raise RuntimeError(f"After training, the weights of process(es) {differ} differ from the main process's: "
                           f"the {len(codes)} replicas diverged, so the saved model is not the one they all trained.")
    logger.info("Weights identical on all %d processes.", len(codes))


def best_model(model: torch.nn.Module, best_path: Path) -> torch.nn.Module:
    """`model` on the CPU in eval mode, with the best weights `end_epoch` kept (its last weights if none were)."""
    model = model.cpu().eval()
    if best_path.is_file():
        model.load_state_dict(load_file(best_path), strict=True)
    return model


@contextmanager
def evaluating(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """`model` in eval mode inside the block, and back in the mode it came in afterwards (scoring mid-training)."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def save_weights(model: torch.nn.Module, path: str | os.PathLike) -> None:
    """A model's state dict as one safetensors file (e.g. the best weights so far, beside the checkpoints), written
    beside it first and then moved over it (os.replace): a crash mid-write leaves the previous file whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, partial)
    os.replace(partial, path)


def save_atomically(save: Callable[[Path], Any], folder: str | os.PathLike) -> None:
    """Run `save(staging)` (e.g. a model's save_pretrained) into a fresh folder beside `folder`, then move each file
    it wrote into `folder` with os.replace, atomic per file: a crash or a failed save leaves every file of `folder`
    either the old one or the new one, whole, never half written; the staging folder is removed either way."""
    import tempfile

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.saving-", dir=folder.parent))
    try:
        save(staging)
        for path in sorted(staging.rglob("*")):
            if path.is_file():
                target = folder / path.relative_to(staging)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def find_checkpoint(output_dir: str | os.PathLike, spec: str) -> Path | None:
    """The checkpoint `spec` names: a folder, or "latest" (None when output_dir has no checkpoint yet)."""
    if not spec:
        return None
    if spec != "latest":
        folder = Path(spec)
        if not (folder / "trainer_state.json").is_file():
            raise FileNotFoundError(f"{folder} is not a checkpoint folder (no trainer_state.json in it).")
        return folder
    found = sorted((Path(output_dir) / CHECKPOINTS).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    return found[-1] if found else None


def load_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                    expect: dict[str, Any], extra: dict[str, Any] | None = None) -> LoopState:
    """Restore model, optimizer, scheduler, RNG and the `extra` objects from `folder`; returns the loop state.

    Args:
        expect: LoopState.extra entries the checkpoint must have been written with (`loop_shape`, and the task's
            own, e.g. cards' prediction_type); an entry the checkpoint lacks (written before it was recorded) passes.

    Raises:
        ValueError: the checkpoint was written with other values of `expect`'s entries (checked before anything is
            restored), naming each.
    """
    state = LoopState.from_json(json.loads((folder / "trainer_state.json").read_text()))
    differ = {key: (state.extra[key], value) for key, value in expect.items()
              if key in state.extra and state.extra[key] != value}
    if differ:
        raise ValueError(f"{folder} was written by a run with " + ", ".join(
            f"{key} = {saved!r}" for key, (saved, _) in differ.items()) + "; resume with the same (got " + ", ".join(
            f"{key} = {given!r}" for key, (_, given) in differ.items()) + "), or start afresh.")
    model.load_state_dict(load_file(folder / "model.safetensors"), strict=True)
    training_state = torch.load(folder / "training_state.pt", map_location="cpu", weights_only=True)
    optimizer.load_state_dict(training_state["optimizer"])
    scheduler.load_state_dict(training_state["scheduler"])
    torch.set_rng_state(training_state["torch_rng"])
    if training_state.get("cuda_rng") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(training_state["cuda_rng"])
    for name, value in (extra or {}).items():
        value.load_state_dict(training_state["extra"][name])
    state.extra.update(expect)  # recorded from now on, also when the checkpoint predates an entry
    return state


class Run:
    """A training run's start and its checkpoints: fresh, or resumed from `cfg.resume_from_checkpoint` ("latest" or a
    folder), with the wall-clock training time summed over resumes (LoopState.seconds).

        run = Run(cfg, accelerator, model, optimizer, scheduler, shape)   # before accelerator.prepare
        state = run.state
        ...  run.save()  ...  run.end_epoch(value=..., ...)  ...  model = run.finish(model)   # the best weights

    Args:
        model, optimizer, scheduler: restored in place on a resume; `save` writes them (accelerate's prepared
            wrappers share their state). shape: LoopState.extra entries a resume must match (`load_checkpoint`).
        note: more to record in state.resumed on a resume (e.g. {"patience": 5}).
        extra: other objects with state_dict() / load_state_dict() kept in each checkpoint (e.g. EMA weights).

    Raises:
        FileNotFoundError / ValueError: `find_checkpoint`'s and `load_checkpoint`'s.
    """

    def __init__(self, cfg: TrainingArgs, accelerator: Any, model: torch.nn.Module,
                 optimizer: torch.optim.Optimizer, scheduler: Any, shape: dict[str, Any],
                 note: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> None:
        self.output_dir, self.total_limit, self.accelerator = Path(cfg.output_dir), cfg.checkpoints_total_limit, accelerator
        self.model, self.optimizer, self.scheduler, self.extra = model, optimizer, scheduler, extra
        self.best_path = self.output_dir / CHECKPOINTS / "best.safetensors"
        checkpoint = find_checkpoint(self.output_dir, cfg.resume_from_checkpoint)
        if checkpoint is None:
            self.state = LoopState(extra=dict(shape))
            self.best_path.unlink(missing_ok=True)  # a fresh run never inherits an older run's best weights
        else:
            self.state = load_checkpoint(checkpoint, model, optimizer, scheduler, shape, extra)
            self.state.resumed.append({"from": checkpoint.name, **(note or {})})
            logger.info("Resumed from %s at step %d (epoch %d).", checkpoint, self.state.global_step, self.state.epoch)
        self._started, self._before = time.perf_counter(), self.state.seconds

    def elapsed(self) -> float:
        """Seconds of training so far, this process's and those of the runs it resumed."""
        return self._before + time.perf_counter() - self._started

    def save(self) -> None:
        """A checkpoint of the current step (main process only), with the training time so far."""
        self.state.seconds = self.elapsed()
        if self.accelerator.is_main_process:
            save_checkpoint(self.output_dir, self.state.global_step, self.model, self.optimizer, self.scheduler,
                            self.state, self.total_limit, self.extra)

    def end_epoch(self, *, value: float, val_loss: float, improved: bool, model: torch.nn.Module,
                  patience: int = 0) -> None:
        """`end_epoch` for this run: the best weights kept at best_path, written by the main process. With several
        processes, the main process's validation decides for all (a score one ulp apart elsewhere, from a GPU's
        non-deterministic kernels, must not let one process stop early while the others train on)."""
        if self.accelerator.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            value, val_loss, improved = broadcast_object_list([value, val_loss, improved], from_process=0)
        end_epoch(self.state, value=value, val_loss=val_loss, improved=improved, model=model, best_path=self.best_path,
                  patience=patience, save=self.accelerator.is_main_process)

    def finish(self, model: torch.nn.Module) -> torch.nn.Module:
        """The loop's end: record the training time (the last `save` may be some batches before), check that every
        process trained the same weights (`check_replicas`), and return `best_model` (read once the main process has
        written it)."""
        self.state.seconds = self.elapsed()
        sync_buffers(self.accelerator, model)
        check_replicas(self.accelerator, model)
        self.accelerator.wait_for_everyone()
        return best_model(self.accelerator.unwrap_model(model), self.best_path)


def record_batch(state: LoopState, progress: Any, batch: Batch, losses: list[float], loss: float, lr: float) -> None:
    """Count one batch; on the last of its optimizer step, the step too: the counters, the mean loss of the step's
    batches (kept in `losses` meanwhile) and the lr in the history, and the progress bar."""
    state.step_in_epoch += 1
    losses.append(loss)
    if not batch.sync:
        return
    state.global_step += 1
    mean = sum(losses) / len(losses)
    losses.clear()
    for key, value in (("step", state.global_step), ("loss", mean), ("lr", lr)):
        state.history[key].append(value)
    progress.update(1)
    progress.set_postfix(loss=f"{mean:.4f}", lr=f"{lr:.2e}", epoch=state.epoch)


def lr_schedule(optimizer: torch.optim.Optimizer, cfg: TrainingArgs, epoch_steps: int,
                decay: str = "cosine") -> tuple[torch.optim.lr_scheduler.LambdaLR, int]:
    """The run's length in optimizer steps and its learning-rate schedule.

    Length: num_epochs × epoch_steps (optimizer steps: `steps_per_epoch`), capped by max_train_steps when set.
    Schedule: linear warmup over cfg.lr_warmup_steps (at most a tenth of the run), then cosine decay to zero at the
    last step ("cosine", the diffusers default shape) or the peak lr held ("constant").

    Returns:
        (scheduler, total steps).
    """
    if decay not in ("cosine", "constant"):
        raise ValueError(f"decay must be 'cosine' or 'constant'; got {decay!r}.")
    total_steps = cfg.num_epochs * epoch_steps
    if cfg.max_train_steps:
        total_steps = min(total_steps, cfg.max_train_steps)
    warmup = max(1, min(cfg.lr_warmup_steps, total_steps // 10 + 1))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if decay == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor), total_steps


# ---------------------------------------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------------------------------------


def plot_training_curves(history: dict[str, list], path: str | os.PathLike, title: str,
                         val_label: str = "validation loss (per epoch)") -> None:
    """Loss per step (raw and smoothed), validation loss per epoch, and lr per step, as one PNG.

    Args:
        history: {"step": [...], "loss": [...], "lr": [...], "val_step": [...], "val_loss": [...]}.
        val_label: the legend of the per-epoch curve (say so when that split was trained on).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (ax_loss, ax_lr) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [2, 1]})
    steps, losses = np.asarray(history["step"]), np.asarray(history["loss"])
    ax_loss.plot(steps, losses, color="0.75", linewidth=0.6, label="train loss (per step)")
    if len(losses) >= 20:
        window = max(5, len(losses) // 50)
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax_loss.plot(steps[window - 1:], smooth, color="C0", label=f"train loss ({window}-step mean)")
    ax_loss.set(xlabel="optimizer step", ylabel="loss", title=title, yscale="log")
    handles = list(ax_loss.get_lines())
    if history.get("val_loss"):
        # a validation score that can be 0 or less (e.g. -PSNR) gets an axis of its own: a log axis would hide it
        ax_val = ax_loss if min(history["val_loss"]) > 0 else ax_loss.twinx()
        handles += ax_val.plot(history["val_step"], history["val_loss"], "o-", color="C3", label=val_label)
        if ax_val is not ax_loss:
            ax_val.set_ylabel(val_label, color="C3")
    ax_loss.legend(handles=handles, fontsize=8)
    ax_lr.plot(steps, history["lr"], color="C2")
    ax_lr.set(xlabel="optimizer step", ylabel="learning rate", title="schedule")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_model_card(folder: str | os.PathLike, *, title: str, body: str, metadata: dict[str, Any]) -> None:
    """Write folder/README.md: Hub metadata (license, tags, datasets, metrics) as YAML front matter, then `body`."""
    card = ModelCard(f"---\n{ModelCardData(**metadata).to_yaml()}\n---\n\n# {title}\n\n{body.strip()}\n")
    card.save(Path(folder) / "README.md")


MODEL_CARD_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")  # ![caption](file.png)
MENTIONED_IMAGE = re.compile(r"`([\w./-]+\.png)`")  # `file.png` named in the text


def read_model_card(folder: str | os.PathLike) -> tuple[str, list[tuple[str, str]]]:
    """A model folder's report: its model card (README.md, written at training time) without the Hub metadata, and
    the card's figures that are in the folder, for a page that cannot show relative image links.

    Returns:
        (the card's markdown with its image links taken out, [(figure path, caption), ...] in the card's order: each
        `![caption](file.png)` and each `file.png` the text names); ("", []) when the folder has no README.md.
    """
    path = Path(folder) / "README.md"
    if not path.is_file():
        return "", []
    text = ModelCard.load(path).text
    figures: dict[Path, str] = {}
    for caption, name in MODEL_CARD_IMAGE.findall(text):
        figures.setdefault(Path(folder) / name, caption or name)
    for name in MENTIONED_IMAGE.findall(text):
        figures.setdefault(Path(folder) / name, name)
    text = MODEL_CARD_IMAGE.sub("", text).strip()
    return text, [(str(file), caption) for file, caption in figures.items() if file.is_file()]


def require_sweep(folder: str) -> None:
    """Fail before training, not after it, when `--sweep_results` names a folder without a finished sweep."""
    if folder and not (Path(folder) / "sweep.md").is_file():
        raise FileNotFoundError(f"{folder}/sweep.md is missing: run training/sweep.py into {folder} first.")


def copy_sweep(folder: str, output_dir: str | os.PathLike) -> str:
    """Copy a training/sweep.py result (sweep.md, sweep.png) into an output folder; returns the table ("" if no folder)."""
    if not folder:
        return ""
    require_sweep(folder)
    for name in ("sweep.md", "sweep.png"):
        shutil.copyfile(Path(folder) / name, Path(output_dir) / name)
    return (Path(folder) / "sweep.md").read_text()


def count_parameters(model: Any) -> int:
    """Parameters of a model: an nn.Module, or anything with a `parameters()` of tensors (cards' CardModel)."""
    return sum(parameter.numel() for parameter in model.parameters())


def figure(value: float | None, spec: str = ".4f") -> str:
    """A number for a model card, or "not measured" for None (e.g. a best validation score when no epoch finished)."""
    return "not measured" if value is None else format(value, spec)


def config_table(cfg: Any) -> str:
    """A markdown table of a Config dataclass, for model cards."""
    rows = "\n".join(f"| `{key}` | `{value}` |" for key, value in asdict(cfg).items() if key not in {"hub_private"})
    return "| field | value |\n|---|---|\n" + rows
