"""tasks.hub: argument > environment > bundled, and an unreachable Hub id falls back offline with one log line."""

import logging

import pytest

from tasks import classify, hub


def test_bundled_is_the_default(monkeypatch):
    monkeypatch.delenv("DARKROOM_CLASSIFY_MODEL", raising=False)
    weights = hub.resolve("classify")
    assert weights.origin == "bundled"
    assert (weights.path / "config.json").is_file() and (weights.path / "model.safetensors").is_file()


def test_unreachable_repo_falls_back_to_bundled_with_one_warning(monkeypatch, caplog):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DARKROOM_CLASSIFY_MODEL", "darkroom-tests/no-such-model")
    with caplog.at_level(logging.WARNING, logger="tasks.hub"):
        weights = hub.resolve("classify")
    assert weights.origin == "bundled"
    warnings = [record.getMessage() for record in caplog.records if record.name == "tasks.hub"]
    assert len(warnings) == 1 and "darkroom-tests/no-such-model" in warnings[0] and "bundled" in warnings[0]


def test_load_serves_bundled_when_the_hub_is_unreachable(monkeypatch):
    monkeypatch.setenv("DARKROOM_CLASSIFY_MODEL", "darkroom-tests/no-such-model")
    served = classify.load()
    assert served.weights.origin == "bundled" and served.folder == hub.MODELS_DIR / "classify"


def test_an_explicit_source_that_cannot_be_had_is_raised_with_the_name_and_the_reason_is_logged(caplog):
    with caplog.at_level(logging.INFO, logger="tasks.hub"), pytest.raises(FileNotFoundError) as raised:
        hub.resolve("classify", "darkroom-tests/no-such-model")
    assert str(raised.value) == hub.cannot_load("darkroom-tests/no-such-model")
    assert "the Hub is switched off here" in str(raised.value)  # HF_HUB_OFFLINE=1 in the tests
    assert any("darkroom-tests/no-such-model" in record.getMessage() and "LocalEntryNotFoundError" in record.getMessage()
               for record in caplog.records)


def test_argument_beats_environment_and_local_folders_work(monkeypatch, tmp_path):
    monkeypatch.setenv("DARKROOM_CLASSIFY_MODEL", str(tmp_path / "from-env"))
    (tmp_path / "from-env").mkdir()
    (tmp_path / "from-arg").mkdir()
    assert hub.resolve("classify").path == (tmp_path / "from-env").resolve()
    assert hub.resolve("classify").origin == "environment"
    chosen = hub.resolve("classify", tmp_path / "from-arg")
    assert chosen.path == (tmp_path / "from-arg").resolve() and chosen.origin == "argument"
    monkeypatch.chdir(tmp_path)
    typed = hub.resolve("classify", "from-arg/../from-arg")
    assert typed.path == (tmp_path / "from-arg").resolve() and typed.name == "from-arg/../from-arg"  # as typed


def test_unknown_task_without_bundle_says_how_to_train():
    with pytest.raises(FileNotFoundError, match="training/train.py"):
        hub.bundled("no-such-task")


def test_failed_push_leaves_the_folder_intact(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(OSError):  # offline (HF_HUB_OFFLINE=1) and no token: either refuses
        hub.push(tmp_path, "darkroom-tests/never-created")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_the_push_command_says_what_failed_and_never_shows_the_token(tmp_path, monkeypatch, capsys):
    token = "hf_" + "DarkroomFakeToken0123456789abcdefXYZ"
    monkeypatch.setenv("HF_TOKEN", token)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(SystemExit) as exited:
        hub.main(["push", str(tmp_path), "darkroom-tests/never-created"])
    message = str(exited.value)
    assert "failed" in message and "The folder is unchanged" in message and token not in message
    captured = capsys.readouterr()
    assert token not in captured.out + captured.err and (tmp_path / "config.json").read_text() == "{}"


@pytest.mark.parametrize("task", ["classify", "cards", "colorize", "mask"])
def test_every_task_loads_an_explicit_source_exactly_or_raises(task, tmp_path, monkeypatch):
    # `python -m bench mask --weights outputs/msak` benchmarked the bundled weights and recorded them in its JSON
    import importlib

    module = importlib.import_module(f"tasks.{task}")
    monkeypatch.delenv(hub.env_var(task), raising=False)
    typo = str(tmp_path / "outputs" / "msak")
    with pytest.raises(FileNotFoundError) as raised:
        module.load(typo)
    assert str(raised.value) == hub.cannot_load(typo)


def test_bench_with_a_mistyped_weights_folder_says_so_and_benchmarks_nothing(tmp_path, capsys):
    from bench.__main__ import main

    with pytest.raises(SystemExit) as exited:
        main(["mask", "--weights", str(tmp_path / "outputs" / "msak"), "--json", str(tmp_path / "mask.json")])
    assert exited.value.code == 2
    assert f"Could not load {str(tmp_path / 'outputs' / 'msak')!r}" in capsys.readouterr().err
    assert not (tmp_path / "mask.json").exists()
