"""The task contract (../shared/DESIGN.md), checked for every task in the registry: what a new task must provide so that
training, the sweep, the bench and the app take it without being told about it."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
import torch

from tasks import TASKS, hub, task_module, training

ROOT = Path(__file__).resolve().parent.parent


def parameters(function) -> list[inspect.Parameter]:
    return list(inspect.signature(function).parameters.values())


def contract_violations(name: str, module: ModuleType) -> list[str]:
    """Every way `module` (registered as `name`) breaks the contract, as sentences; [] when it keeps it."""
    problems = []
    missing = [part for part in ("Config", "train", "load", "predict", "evaluate") if not hasattr(module, part)]
    if missing:
        return [f"{name} has no {', '.join(missing)}"]
    config = module.Config
    if not (dataclasses.is_dataclass(config) and issubclass(config, training.TrainingArgs)):
        problems.append(f"{name}.Config is not a dataclass subclassing tasks.training.TrainingArgs")
    else:
        fields = {field.name: field for field in dataclasses.fields(config)}
        if "data" not in fields:
            problems.append(f"{name}.Config has no `data` field")
        no_default = [field for field, spec in fields.items()
                      if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING]
        if no_default:
            problems.append(f"{name}.Config fields without a default (train.py takes none as required): {no_default}")
    train = parameters(module.train)
    if [p.name for p in train[:2]] != ["cfg", "accelerator"] or train[1].default is not None:
        problems.append(f"{name}.train is not train(cfg, accelerator=None)")
    load = parameters(module.load)
    if not load or load[0].name != "source" or load[0].default is not None:
        problems.append(f"{name}.load is not load(source=None)")
    if [p.name for p in parameters(module.predict)[:1]] != ["served"]:
        problems.append(f"{name}.predict does not take the served model first (predict(served, ...))")
    evaluate = parameters(module.evaluate)
    if [p.name for p in evaluate[:2]] != ["served", "data"] or evaluate[1].default is inspect.Parameter.empty:
        problems.append(f"{name}.evaluate is not evaluate(served, data=<default>, ...)")
    for function in ("train", "load"):  # both hand back the one served shape
        returns = getattr(module, function).__annotations__.get("return")
        if isinstance(returns, str):  # postponed annotations (PEP 563): evaluated in the function's own module
            returns = eval(returns, getattr(module, function).__globals__)  # noqa: S307 (our own source)
        if returns is not hub.Served and typing.get_origin(returns) is not hub.Served:
            problems.append(f"{name}.{function} is not annotated to return hub.Served")
    if not (hub.MODELS_DIR / name / "README.md").is_file():
        problems.append(f"{name} has no bundled model card at assets/models/{name}/README.md")
    return problems


@pytest.mark.parametrize("name", list(TASKS))
def test_every_registered_task_keeps_the_contract(name):
    assert contract_violations(name, task_module(name)) == []


@pytest.mark.parametrize("name", list(TASKS))
def test_load_serves_the_bundled_weights_in_the_one_served_shape(name):
    served = task_module(name).load()
    assert isinstance(served, hub.Served)
    assert served.weights.origin == "bundled" and served.folder == hub.MODELS_DIR / name
    assert served.metrics == hub.read_json(served.folder, "metrics.json") != {}
    module = served.model if isinstance(served.model, torch.nn.Module) else served.model.unet
    assert not module.training and next(module.parameters()).device.type == "cpu"


def test_a_task_that_forgets_a_piece_is_caught():
    # a module with the five names but the old shapes: a model-first predict, an evaluate without data, a load that
    # returns the bare model, and a Config that is not the shared TrainingArgs
    @dataclasses.dataclass
    class Config:
        data: str = ""

    def train(cfg: Config, accelerator=None) -> hub.Served:
        ...

    def load(source: str | None = None) -> torch.nn.Module:
        ...

    def predict(model, image):
        ...

    def evaluate(served):
        ...

    broken = SimpleNamespace(Config=Config, train=train, load=load, predict=predict, evaluate=evaluate)
    broken.__name__ = "broken"
    problems = contract_violations("paint", broken)
    for words in ("Config is not a dataclass subclassing", "predict does not take the served model first",
                  "evaluate is not evaluate(served, data", "load is not annotated to return hub.Served",
                  "no bundled model card"):
        assert any(words in problem for problem in problems), (words, problems)
    assert contract_violations("paint", SimpleNamespace(Config=Config)) == ["paint has no train, load, predict, evaluate"]


@pytest.mark.parametrize("name", list(TASKS))
def test_train_bench_and_sweep_take_every_registered_task(name):
    import bench.__main__ as bench
    import training.sweep as sweep
    import training.train as train_script

    task, module, cfg = train_script.parse_config([name, "--max_train_steps", "1"])
    assert (task, module) == (name, task_module(name)) and cfg.max_train_steps == 1
    assert bench.build_parser().parse_args([name]).task == name
    with pytest.raises(SystemExit) as raised:  # the sweep's task choices are the registry: --help lists it
        sweep.run([name, "--help"])
    assert raised.value.code == 0


def test_the_app_has_a_tab_for_every_registered_task_and_no_other(monkeypatch):
    import gradio as gr

    import app

    assert set(app.TABS) == set(TASKS)
    built = [block.id for block in app.demo.blocks.values() if isinstance(block, gr.Tab)]
    assert built == list(TASKS)  # in the registry's order
    monkeypatch.setitem(TASKS, "paint", "tasks.paint")  # registered, but nobody wrote its tab
    with pytest.raises(KeyError, match="Registered tasks without a tab in app.py: paint"):
        app.build_demo()


def test_an_unregistered_task_is_refused_everywhere():
    import bench.__main__ as bench
    import training.train as train_script

    with pytest.raises(KeyError, match="Unknown task 'paint'; the tasks are"):
        task_module("paint")
    with pytest.raises(SystemExit):
        train_script.parse_config(["paint"])
    with pytest.raises(SystemExit):
        bench.build_parser().parse_args(["paint"])


def test_no_task_module_imports_gradio():
    offenders = [str(path.relative_to(ROOT)) for path in (ROOT / "tasks").rglob("*.py")
                 if "import gradio" in path.read_text() or "from gradio" in path.read_text()]
    assert offenders == []
