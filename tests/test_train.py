"""training/train.py and classify.train: flags from Config, the lr schedule, a 2-step smoke run, exact resume, failed push."""

import dataclasses
import json
import subprocess
import sys
from dataclasses import fields
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from tasks import classify, training
from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "training"))
import train as train_script  # noqa: E402


def tiny_config(data, output_dir, **overrides) -> classify.Config:
    values = dict(data=str(data), output_dir=str(output_dir), width=4, train_batch_size=8, eval_batch_size=16,
                  val_fraction=0.25, num_epochs=1, checkpointing_steps=1, lr_warmup_steps=1)
    return classify.Config(**{**values, **overrides})


def test_flags_are_the_config_fields_one_to_one():
    parser = train_script.build_parser("classify", classify.Config)
    flags = {action.dest for action in parser._actions if action.dest != "help"}
    assert flags == {field.name for field in fields(classify.Config)}
    _, _, cfg = train_script.parse_config(["classify", "--num_epochs", "3", "--learning_rate", "0.01",
                                           "--no-augment", "--resume_from_checkpoint", "latest"])
    assert (cfg.num_epochs, cfg.learning_rate, cfg.augment, cfg.resume_from_checkpoint) == (3, 0.01, False, "latest")
    assert cfg.train_batch_size == classify.Config.train_batch_size  # untouched fields keep their defaults


def test_help_lists_fields_with_their_comments():
    result = subprocess.run([sys.executable, "training/train.py", "classify", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    text = " ".join(result.stdout.split())  # argparse wraps lines
    assert "--patience PATIENCE stop after this many epochs without a better validation loss" in text


def test_processes_that_do_not_train_together_are_refused_and_a_single_cpu_launch_is_named(caplog):
    alone = SimpleNamespace(num_processes=1)
    with pytest.raises(SystemExit, match="2 processes were launched .* a group of 1: each would train alone"):
        train_script.check_processes(alone, {"WORLD_SIZE": "2"})  # e.g. `accelerate launch --multi_gpu` gone wrong
    train_script.check_processes(SimpleNamespace(num_processes=2), {"WORLD_SIZE": "2"})
    train_script.check_processes(alone, {})  # plain python
    assert "started one process" not in caplog.text
    # what `accelerate launch --cpu --num_processes 2` hands its one process
    train_script.check_processes(alone, {"ACCELERATE_USE_CPU": "True", "MASTER_PORT": "29500"})
    assert "`accelerate launch --cpu --num_processes N` started one process" in caplog.text
    assert "accelerate launch --multi_gpu --num_processes N" in caplog.text


def test_unknown_task_is_refused():
    with pytest.raises(SystemExit, match="unknown task 'paint'"):
        train_script.parse_config(["paint"])


def test_two_step_smoke_run_writes_the_model_folder(tiny_fashion, tmp_path):
    cfg = tiny_config(tiny_fashion, tmp_path / "out", max_train_steps=2)
    model = classify.train(cfg)
    out = tmp_path / "out"
    for name in ("config.json", "model.safetensors", "README.md", "metrics.json", "training_curves.png",
                 "confusion_matrix.png", "confusion_matrix.json", "examples.png", "filters.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["steps"] == 2 and summary["test_samples"] == 20
    assert 0.0 <= summary["test_accuracy"] <= 1.0 and len(summary["per_class_accuracy"]) == 10
    card = (out / "README.md").read_text()
    assert card.startswith("---\n") and "license: mit" in card and "More Information Needed" not in card
    assert f"{summary['test_accuracy']:.2%}" in card
    confusion = json.loads((out / "confusion_matrix.json").read_text())["rows_true_columns_predicted"]
    assert sum(map(sum, confusion)) == 20
    # what train returns is what loading the folder gives: the best weights, with the folder's report
    reloaded = classify.load(str(out))
    assert model.weights.path == reloaded.weights.path == out.resolve() and model.metrics == summary
    images = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(reloaded.model(images), model.model(images), rtol=0, atol=0)


def test_checkpoints_are_pruned_and_safetensors(tiny_fashion, tmp_path):
    classify.train(tiny_config(tiny_fashion, tmp_path / "out", max_train_steps=4, checkpoints_total_limit=2))
    kept = sorted(p.name for p in (tmp_path / "out" / "checkpoints").glob("checkpoint-*"))
    assert kept == ["checkpoint-3", "checkpoint-4"]
    weights = load_file(tmp_path / "out" / "checkpoints" / "checkpoint-4" / "model.safetensors")
    assert "features.0.0.weight" in weights


@pytest.mark.parametrize("decay", ["cosine", "constant"])
def test_lr_schedule_warms_up_then_decays_or_holds(decay):
    cfg = training.TrainingArgs(num_epochs=10, max_train_steps=200, lr_warmup_steps=50, learning_rate=1.0)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=cfg.learning_rate)
    scheduler, total_steps = training.lr_schedule(optimizer, cfg, epoch_steps=30, decay=decay)
    assert total_steps == 200  # 10 × 30 capped by max_train_steps
    lrs = []
    for _ in range(total_steps):
        lrs.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    warmup = 21  # 50 requested, capped at a tenth of the run + 1
    assert lrs[0] == pytest.approx(1 / warmup) and lrs[warmup - 1] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(lrs[:warmup - 1], lrs[1:warmup]))
    if decay == "cosine":
        assert all(a >= b for a, b in zip(lrs[warmup - 1:], lrs[warmup:])) and lrs[-1] < 1e-3
    else:
        assert lrs[warmup - 1:] == [1.0] * (total_steps - warmup + 1)
    with pytest.raises(ValueError, match="decay must be"):
        training.lr_schedule(optimizer, cfg, 30, decay="linear")


def test_end_epoch_keeps_the_best_weights_and_best_model_restores_them(tmp_path):
    model = torch.nn.Linear(2, 1)
    state = training.LoopState(global_step=7, step_in_epoch=3, history={"val_step": [], "val_loss": []})
    best_path = tmp_path / "best.safetensors"
    training.end_epoch(state, value=0.9, val_loss=0.1, improved=state.is_better(0.9, maximize=True), model=model,
                       best_path=best_path, patience=2)
    best = {key: value.clone() for key, value in model.state_dict().items()}
    for epoch in (1, 2):  # worse epochs: recorded, not kept; the second one ends the run on patience
        torch.nn.init.constant_(model.weight, epoch)
        assert not state.stopped_early
        training.end_epoch(state, value=0.8, val_loss=0.2, improved=state.is_better(0.8, maximize=True), model=model,
                           best_path=best_path, patience=2)
    assert (state.best_metric, state.best_epoch, state.epoch, state.bad_epochs) == (0.9, 0, 3, 2)
    assert state.stopped_early and state.step_in_epoch == 0
    assert state.history == {"val_step": [7, 7, 7], "val_loss": [0.1, 0.2, 0.2]}
    restored = training.best_model(model, best_path)
    assert all(torch.equal(restored.state_dict()[key], best[key]) for key in best)
    assert not restored.training


def test_a_checkpoint_written_before_the_typed_state_resumes():
    older = {"global_step": 12, "epoch": 2, "step_in_epoch": 0, "best_val_dice": 0.97, "best_epoch": 1,
             "prediction_type": "epsilon", "history": {"step": [1], "loss": [0.5], "lr": [1e-3], "val_step": [],
                                                        "val_loss": []}}
    state = training.LoopState.from_json(older)
    assert (state.global_step, state.epoch, state.best_metric, state.best_epoch) == (12, 2, 0.97, 1)
    assert state.extra == {"prediction_type": "epsilon"} and state.resumed == []
    assert training.LoopState.from_json(json.loads(json.dumps(dataclasses.asdict(state)))) == state


class OneWeight(torch.nn.Module):
    """A model of one weight, whose gradient for a batch is easy to work out by hand."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))


@pytest.mark.parametrize("accumulation", [1, 3])
def test_epoch_batches_accumulate_in_order_and_resume_mid_epoch_exactly(accumulation):
    from accelerate import Accelerator

    cfg = training.TrainingArgs(train_batch_size=4, gradient_accumulation_steps=accumulation, seed=5)
    accelerator = training.make_accelerator(cfg, Accelerator())
    losses, progress = [], SimpleNamespace(update=lambda n: None, set_postfix=lambda **kw: None)

    def take(state: training.LoopState, stop: int = 99) -> list[training.Batch]:  # as a loop takes them, counting
        taken = []
        for batch in training.epoch_batches(22, cfg, state, accelerator, cfg.seed):
            if len(taken) == stop:
                break
            taken.append(batch)
            training.record_batch(state, progress, batch, losses, 1.0, 0.1)
        return taken

    whole = take(training.LoopState(epoch=1))  # 6 batches: 4 × 5 + 2
    assert [len(batch.indices) for batch in whole] == [4, 4, 4, 4, 4, 2]
    assert sorted(torch.cat([batch.indices for batch in whole]).tolist()) == list(range(22))  # each item once
    steps = [i for i, batch in enumerate(whole) if batch.sync]
    assert steps == ([0, 1, 2, 3, 4, 5] if accumulation == 1 else [2, 5])
    assert training.steps_per_epoch(22, cfg) == len(steps)
    # each batch's share of its step's samples: the last step is 4 + 4 + 2 items
    assert [batch.loss_scale for batch in whole] == ([1.0] * 6 if accumulation == 1 else [1 / 3] * 3 + [0.4, 0.4, 0.2])
    assert len({batch.draw for batch in whole}) == 6  # every batch augments differently
    # a run interrupted after its first optimizer step goes on with exactly the batches left
    state = training.LoopState(epoch=1)
    take(state, stop=steps[0] + 1)
    assert state.global_step == 1 and state.step_in_epoch == steps[0] + 1 and losses == []
    resumed = take(training.LoopState.from_json(json.loads(json.dumps(dataclasses.asdict(state)))))
    assert len(resumed) == 6 - state.step_in_epoch
    for before, after in zip(whole[state.step_in_epoch:], resumed, strict=True):
        assert torch.equal(before.indices, after.indices) and (before.sync, before.draw) == (after.sync, after.draw)


def test_each_process_takes_its_share_of_every_batch_and_never_an_empty_one():
    batch = torch.arange(5)
    shares = [training.process_share(batch, index, 2) for index in range(2)]
    assert [share.tolist() for share in shares] == [[0, 2, 4], [1, 3]]
    # a last batch smaller than the number of processes is repeated, as accelerate's even_batches does
    assert [training.process_share(torch.tensor([7]), index, 2).tolist() for index in range(2)] == [[7], [7]]
    assert [training.process_share(torch.tensor([7, 8]), index, 3).tolist() for index in range(3)] == [[7], [8], [7]]


def test_accumulated_steps_match_one_large_batch_and_clip_to_max_grad_norm():
    from accelerate import Accelerator

    data = torch.arange(10, dtype=torch.float32)
    results = {}
    for accumulation, batch_size in ((1, 10), (3, 4)):  # one batch of 10, or batches of 4, 4 and 2 accumulated
        cfg = training.TrainingArgs(train_batch_size=batch_size, gradient_accumulation_steps=accumulation,
                                    max_grad_norm=0.5, learning_rate=0.1)
        accelerator = training.make_accelerator(cfg, Accelerator())
        model = OneWeight()
        optimizer = torch.optim.SGD(model.parameters(), lr=cfg.learning_rate)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        norms = []
        real_clip = accelerator.clip_grad_norm_
        accelerator.clip_grad_norm_ = lambda parameters, max_norm: norms.append(real_clip(parameters, max_norm))
        for batch in training.epoch_batches(len(data), cfg, training.LoopState(), accelerator, 0):
            with training.accumulating(accelerator, model, batch):
                loss = ((model.weight - data[batch.indices]) ** 2).mean()
                training.backward_step(accelerator, model, loss, batch, optimizer, scheduler, cfg)
        results[accumulation] = (model.weight.item(), [float(norm) for norm in norms])
    # one step either way: the mean gradient over all 10 items (-9.0; the 2-item batch weighs 2/10, not 1/3),
    # clipped to 0.5, times lr 0.1
    assert results[1][0] == pytest.approx(results[3][0]) == pytest.approx(0.05)
    assert results[1][1] == pytest.approx([9.0]) and results[3][1] == pytest.approx([9.0])  # the norm before


def test_accumulated_training_resumes_to_the_same_weights(tiny_fashion, tmp_path, monkeypatch):
    # 36 training images / batch 8 = 5 batches an epoch; accumulating 2: steps of 2, 2 and 1 batches, 3 per epoch
    def config(name, **overrides):
        return tiny_config(tiny_fashion, tmp_path / name, **{"num_epochs": 2, "gradient_accumulation_steps": 2,
                                                             **overrides})

    straight = classify.train(config("straight"))
    assert straight.metrics["steps"] == 6

    class Interrupted(Exception):
        pass

    real_save = training.save_checkpoint

    def save_then_die(output_dir, step, *args, **kwargs):
        folder = real_save(output_dir, step, *args, **kwargs)
        if step == 4:  # mid-epoch 2, after one of its steps
            raise Interrupted
        return folder

    monkeypatch.setattr(training, "save_checkpoint", save_then_die)
    with pytest.raises(Interrupted):
        classify.train(config("resumed"))
    monkeypatch.setattr(training, "save_checkpoint", real_save)
    resumed = classify.train(config("resumed", resume_from_checkpoint="latest"))
    assert resumed.metrics["steps"] == 6
    for key, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=0, atol=0, msg=key)
    # resuming with another batch size or accumulation would take other batches: refused, before any training
    for changed in (dict(train_batch_size=4), dict(gradient_accumulation_steps=1)):
        with pytest.raises(ValueError, match="resume with the same"):
            classify.train(config("resumed", resume_from_checkpoint="latest", **changed))


def test_the_accelerator_must_leave_accumulation_to_the_loop():
    from accelerate import Accelerator

    with pytest.raises(ValueError, match="--gradient_accumulation_steps"):
        training.make_accelerator(training.TrainingArgs(), Accelerator(gradient_accumulation_steps=2))
    with pytest.raises(ValueError, match="at least 1"):
        training.make_accelerator(training.TrainingArgs(gradient_accumulation_steps=0))


@pytest.mark.parametrize("start", [True, False])
def test_evaluating_scores_in_eval_mode_and_hands_the_model_back_as_it_came(start):
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.9)).train(start)
    with training.evaluating(model) as same:
        assert same is model and not model.training and not model[1].training
        x = torch.ones(64, 2)
        torch.testing.assert_close(model(x), model(x))  # dropout off: deterministic
    assert model.training == start and model[1].training == start
    with pytest.raises(RuntimeError), training.evaluating(model):  # also when the block fails
        raise RuntimeError("scoring failed")
    assert model.training == start


def test_missing_checkpoint_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a checkpoint folder"):
        training.find_checkpoint(tmp_path, str(tmp_path / "nope"))


FAKE_TOKEN = "hf_" + "DarkroomFakeToken0123456789abcdefXYZ"


def test_cli_run_with_failed_push_keeps_the_output(tiny_fashion, tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "training/train.py", "classify", "--data", str(tiny_fashion), "--output_dir", str(out),
         "--max_train_steps", "2", "--width", "4", "--train_batch_size", "8", "--val_fraction", "0.25",
         "--push_to_hub", "--hub_model_id", "darkroom-tests/never-created"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1", "HF_TOKEN": FAKE_TOKEN},
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Push to darkroom-tests/never-created failed" in result.stderr
    assert f"python -m tasks.hub push {out} darkroom-tests/never-created" in result.stderr  # how to push later
    assert FAKE_TOKEN not in result.stdout + result.stderr  # the token is never printed or logged
    assert (out / "model.safetensors").is_file() and (out / "README.md").is_file()


def _tiny_state_objects():
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return model, optimizer, scheduler


def test_a_checkpoint_save_interrupted_before_its_rename_leaves_the_previous_one_latest_and_loadable(tmp_path,
                                                                                                    monkeypatch):
    model, optimizer, scheduler = _tiny_state_objects()
    training.save_checkpoint(tmp_path, 1, model, optimizer, scheduler, training.LoopState(global_step=1), 3)
    saved = {key: value.clone() for key, value in model.state_dict().items()}
    with torch.no_grad():
        model.weight.add_(1.0)

    def crash(self, target):
        raise KeyboardInterrupt("killed between the write and the rename")

    monkeypatch.setattr(training.Path, "rename", crash)
    with pytest.raises(KeyboardInterrupt):
        training.save_checkpoint(tmp_path, 2, model, optimizer, scheduler, training.LoopState(global_step=2), 3)
    monkeypatch.undo()
    latest = training.find_checkpoint(tmp_path, "latest")
    assert latest.name == "checkpoint-1"
    fresh, fresh_optimizer, fresh_scheduler = _tiny_state_objects()
    state = training.load_checkpoint(latest, fresh, fresh_optimizer, fresh_scheduler, {})
    assert state.global_step == 1 and all(torch.equal(fresh.state_dict()[key], saved[key]) for key in saved)


def test_a_checkpoint_saved_again_is_never_half_deleted_however_the_save_is_interrupted(tmp_path, monkeypatch):
    # the epoch's end saves the step its last batch saved: the first save of that step is replaced, not removed first
    model, optimizer, scheduler = _tiny_state_objects()
    training.save_checkpoint(tmp_path, 1, model, optimizer, scheduler, training.LoopState(global_step=1), 3)
    training.save_checkpoint(tmp_path, 2, model, optimizer, scheduler, training.LoopState(global_step=2), 3)
    real_rename, calls = training.Path.rename, []

    def second_rename_dies(self, target):  # the old checkpoint-2 set aside, then killed before the new one is in
        calls.append(target)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed between the renames")
        return real_rename(self, target)

    monkeypatch.setattr(training.Path, "rename", second_rename_dies)
    with pytest.raises(KeyboardInterrupt):
        training.save_checkpoint(tmp_path, 2, model, optimizer, scheduler, training.LoopState(global_step=2, epoch=1), 3)
    monkeypatch.undo()
    latest = training.find_checkpoint(tmp_path, "latest")  # checkpoint-1: whole; never a checkpoint-2 half gone
    fresh, fresh_optimizer, fresh_scheduler = _tiny_state_objects()
    assert training.load_checkpoint(latest, fresh, fresh_optimizer, fresh_scheduler, {}).global_step == latest_step(latest)
    # uninterrupted, the second save of a step replaces the first whole
    training.save_checkpoint(tmp_path, 2, model, optimizer, scheduler, training.LoopState(global_step=2, epoch=1), 3)
    assert training.load_checkpoint(training.find_checkpoint(tmp_path, "latest"), fresh, fresh_optimizer,
                                    fresh_scheduler, {}).epoch == 1
    assert not list((tmp_path / "checkpoints").glob(".checkpoint-2.*"))


def latest_step(folder) -> int:
    return int(folder.name.split("-")[1])


def test_several_processes_without_cuda_ask_accelerate_for_the_cpu_and_one_process_does_not():
    assert training.cpu_processes({"WORLD_SIZE": "2"}) is (not torch.cuda.is_available())
    assert training.cpu_processes({}) is False and training.cpu_processes({"WORLD_SIZE": "1"}) is False


def test_final_weights_are_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    from tasks.upscale import FastSR

    old = FastSR()
    training.save_atomically(old.save_pretrained, tmp_path / "out")
    before = (tmp_path / "out" / "model.safetensors").read_bytes()

    def half_written(folder):
        (folder / "model.safetensors").write_bytes(before[:100])
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        training.save_atomically(half_written, tmp_path / "out")
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]  # no staging folder left behind
    FastSR.from_pretrained(tmp_path / "out")  # still loads

    best = tmp_path / "best.safetensors"
    training.save_weights(old, best)
    monkeypatch.setattr(training.os, "replace", lambda *args: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        training.save_weights(torch.nn.Linear(2, 2), best)
    assert set(load_file(best)) == set(old.state_dict())  # the previous best, whole


def test_a_validation_score_below_zero_is_drawn_on_an_axis_of_its_own(tmp_path, monkeypatch):
    import matplotlib.figure

    history = {"step": [1, 2, 3], "loss": [0.3, 0.2, 0.1], "lr": [1e-3] * 3, "val_step": [3], "val_loss": [-23.4]}
    saved = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda figure, *args, **kwargs: saved.append(figure))
    training.plot_training_curves(history, tmp_path / "curves.png", "restore: L1", "validation: -PSNR")
    loss_axes = saved[0].axes[0]
    validation = [axes for axes in saved[0].axes if any(line.get_label() == "validation: -PSNR" for line in axes.lines)]
    assert validation and validation[0] is not loss_axes and validation[0].get_yscale() == "linear"
    assert "validation: -PSNR" in [text.get_text() for text in loss_axes.get_legend().get_texts()]
