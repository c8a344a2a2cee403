"""training/train.py and classify.train: flags from Config, the lr schedule, a 2-step smoke run, exact resume, failed push."""

import json
import subprocess
import sys
from dataclasses import fields

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


def test_interrupted_run_resumes_to_the_same_weights(tiny_fashion, tmp_path, monkeypatch):
    # 36 training images / batch 8 = 5 steps per epoch; 2 epochs = 10 steps, validation in between
    straight = classify.train(tiny_config(tiny_fashion, tmp_path / "straight", num_epochs=2))

    class Interrupted(Exception):
        pass

    real_save = training.save_checkpoint

    def save_then_die(output_dir, step, *args, **kwargs):
        folder = real_save(output_dir, step, *args, **kwargs)
        if step == 7:
            raise Interrupted
        return folder

    monkeypatch.setattr(training, "save_checkpoint", save_then_die)
    with pytest.raises(Interrupted):
        classify.train(tiny_config(tiny_fashion, tmp_path / "resumed", num_epochs=2))
    monkeypatch.setattr(training, "save_checkpoint", real_save)
    assert training.find_checkpoint(tmp_path / "resumed", "latest").name == "checkpoint-7"
    assert not (tmp_path / "resumed" / "model.safetensors").exists()

    resumed = classify.train(tiny_config(tiny_fashion, tmp_path / "resumed", num_epochs=2,
                                         resume_from_checkpoint="latest"))
    summary = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    assert summary["steps"] == 10 and summary["epochs_trained"] == 2
    assert summary["resumed"] == [{"from": "checkpoint-7", "patience": classify.Config.patience}]
    assert "Resumed from `checkpoint-7`" in (tmp_path / "resumed" / "README.md").read_text()
    for key, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=0, atol=0, msg=key)


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
    scheduler, total_steps = training.lr_schedule(optimizer, cfg, steps_per_epoch=30, decay=decay)
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
    state = {"global_step": 7, "epoch": 0, "step_in_epoch": 3, "best_val_dice": -1.0, "best_epoch": -1,
             "history": {"val_step": [], "val_loss": []}}
    best_path = tmp_path / "best.safetensors"
    training.end_epoch(state, metric="val_dice", value=0.9, val_loss=0.1, improved=True, model=model,
                       best_path=best_path)
    best = {key: value.clone() for key, value in model.state_dict().items()}
    torch.nn.init.zeros_(model.weight)  # a worse epoch: recorded, not kept
    training.end_epoch(state, metric="val_dice", value=0.8, val_loss=0.2, improved=False, model=model,
                       best_path=best_path)
    assert state["best_val_dice"] == 0.9 and state["best_epoch"] == 0 and state["epoch"] == 2
    assert state["step_in_epoch"] == 0 and state["history"] == {"val_step": [7, 7], "val_loss": [0.1, 0.2]}
    restored = training.best_model(model, best_path)
    assert all(torch.equal(restored.state_dict()[key], best[key]) for key in best)
    assert not restored.training


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


def test_cli_run_with_failed_push_keeps_the_output(tiny_fashion, tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "training/train.py", "classify", "--data", str(tiny_fashion), "--output_dir", str(out),
         "--max_train_steps", "2", "--width", "4", "--train_batch_size", "8", "--val_fraction", "0.25",
         "--push_to_hub", "--hub_model_id", "darkroom-tests/never-created"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Push to darkroom-tests/never-created failed" in result.stderr
    assert (out / "model.safetensors").is_file() and (out / "README.md").is_file()
