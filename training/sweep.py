"""Hyper-parameter sweep for any Darkroom task: a grid or a random search over Config fields, one machine.

    python training/sweep.py colorize --grid width=4,8,16,32,64,128,256 --metric test_mae \
        --output_dir outputs/sweep-colorize -- --num_epochs 10
    python training/sweep.py mask --random 8 --grid learning_rate=0.003,0.01,0.02 train_batch_size=8,16,32 \
        --metric test_dice --maximize --output_dir outputs/sweep-mask

Each trial is a full `train()` into OUTPUT_DIR/trial-<k>/ (its usual output folder); flags after `--` are fixed
Config fields for every trial. A trial whose folder already has metrics.json is not run again, so an interrupted
sweep continues where it stopped. The results go to OUTPUT_DIR/sweep.json (every trial, with its values and metrics),
sweep.md (a table, best first) and sweep.png (the metric, parameters and latency against the first grid field).

`--shard K/N` runs only trials K, K+N, K+2N, ... and writes no table, so N processes can share one machine (a GPU
that one small model leaves idle); the same command without `--shard` then finds every trial done and writes the table.

Colorize's `--refit` is refused, fixed or in the grid: it trains on the validation people that the ranking reads.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import logging
import random
import sys
import typing
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from tasks import TASKS, task_module  # noqa: E402  (the registry: the one list of tasks)
from training.train import build_parser  # noqa: E402

logger = logging.getLogger("darkroom.sweep")
REPORTED = ("parameters", "latency_ms_1024x768", "latency_ms")  # shown beside the metric when a trial reports them


def parse_grid(specs: list[str], config_class: type) -> dict[str, list[Any]]:
    """["width=4,8", "skip=true,false"] → {"width": [4, 8], "skip": [True, False]}, typed by the Config fields."""
    hints = typing.get_type_hints(config_class)
    names = {field.name for field in dataclasses.fields(config_class)}
    grid = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        if not sep or name not in names:
            raise SystemExit(f"--grid takes FIELD=v1,v2,...; {spec!r} names no {config_class.__module__}.Config field.")
        kind = hints[name]
        convert = (lambda text: text.lower() in ("1", "true", "yes")) if kind is bool else kind
        grid[name] = [convert(value) for value in values.split(",")]
    return grid


def parse_shard(spec: str) -> tuple[int, int]:
    """"K/N" → (K, N); "" → (0, 1), every trial."""
    if not spec:
        return 0, 1
    shard, sep, shards = spec.partition("/")
    if not (sep and shard.isdigit() and shards.isdigit() and 0 <= int(shard) < int(shards)):
        raise SystemExit(f"--shard takes K/N with 0 <= K < N, e.g. 0/2; got {spec!r}.")
    return int(shard), int(shards)


def trials(grid: dict[str, list[Any]], random_count: int, seed: int) -> list[dict[str, Any]]:
    """Every combination of the grid, or `random_count` of them drawn without replacement (seeded)."""
    combos = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    if random_count and random_count < len(combos):
        combos = random.Random(seed).sample(combos, random_count)
    return combos


def run(argv: list[str]) -> dict:
    from accelerate import Accelerator

    parser = argparse.ArgumentParser(prog="sweep.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=list(TASKS))
    parser.add_argument("--grid", nargs="+", required=True, metavar="FIELD=v1,v2", help="values to try per field")
    parser.add_argument("--random", type=int, default=0, help="try this many random combinations (0 = all)")
    parser.add_argument("--metric", required=True, help="the metrics.json key to rank by, e.g. test_mae")
    parser.add_argument("--maximize", action="store_true", help="higher is better (default: lower)")
    parser.add_argument("--also", nargs="+", default=[], metavar="KEY",
                        help="more metrics.json keys to tabulate and plot, e.g. test_mae (not used for ranking)")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--seed", type=int, default=0, help="for --random")
    parser.add_argument("--shard", default="", metavar="K/N",
                        help="run only trials K, K+N, ... (0 <= K < N) and write no table; run again without it")
    fixed_argv = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    module = task_module(args.task)
    fixed = vars(build_parser(args.task, module.Config).parse_args(fixed_argv))
    grid = parse_grid(args.grid, module.Config)
    if fixed.get("refit") or any(grid.get("refit", [])):  # colorize's refit trains on the people a sweep selects on
        raise SystemExit("A sweep ranks its trials on the validation split and --refit trains on it, so the ranking "
                         "would be in-sample: sweep without --refit, then refit the chosen recipe with "
                         "training/train.py.")
    shard, shards = parse_shard(args.shard)
    root = Path(args.output_dir)
    root.mkdir(parents=True, exist_ok=True)

    results = []
    for index, values in enumerate(trials(grid, args.random, args.seed)):
        if index % shards != shard:
            continue
        folder = root / f"trial-{index}"
        metrics_file = folder / "metrics.json"
        if not metrics_file.is_file():  # resumable: finished trials are kept
            logger.info("trial %d: %s", index, values)
            cfg = module.Config(**{**fixed, **values, "output_dir": str(folder), "push_to_hub": False,
                                   "resume_from_checkpoint": "latest" if (folder / "checkpoints").is_dir() else ""})
            module.train(cfg, Accelerator(mixed_precision=cfg.mixed_precision))
        if args.shard:
            continue
        metrics = json.loads(metrics_file.read_text())
        if args.metric not in metrics:
            raise SystemExit(f"{metrics_file} has no {args.metric!r}; it has {', '.join(sorted(metrics))}.")
        shown = (*args.also, *REPORTED)
        results.append({"trial": index, "values": values, args.metric: metrics[args.metric],
                        **{key: metrics[key] for key in shown if key in metrics}})
    if args.shard:
        logger.info("shard %s done; run the same command without --shard for the table.", args.shard)
        return {}
    results.sort(key=lambda row: rank(row[args.metric], args.maximize))
    summary = {"task": args.task, "metric": args.metric, "maximize": args.maximize, "also": args.also,
               "fixed": fixed_argv, "best": results[0], "trials": results}
    (root / "sweep.json").write_text(json.dumps(summary, indent=2) + "\n")
    (root / "sweep.md").write_text(table(summary, argv))
    plot(summary, list(grid)[0], root / "sweep.png")
    logger.info("best: trial %d %s with %s = %.5g", results[0]["trial"], results[0]["values"], args.metric,
                results[0][args.metric])
    return summary


def rank(value: float | None, maximize: bool) -> tuple[bool, float]:
    """The sort key of a trial's metric, best first; a trial that never measured it (None: no epoch finished) last."""
    return value is None, 0.0 if value is None else -value if maximize else value


def cell(value: float | None, spec: str = ".5g") -> str:
    return "—" if value is None else format(value, spec)


def table(summary: dict, argv: list[str]) -> str:
    fields = list(summary["trials"][0]["values"])
    extra = [key for key in (*summary["also"], *REPORTED) if key in summary["trials"][0]]
    lines = [f"`python training/sweep.py {' '.join(argv)}`", "",
             "| " + " | ".join([*fields, summary["metric"], *extra]) + " |", "|---" * (len(fields) + 1 + len(extra)) + "|"]
    for row in summary["trials"]:
        cells = [str(row["values"][name]) for name in fields] + [cell(row[summary["metric"]])]
        cells += [cell(row[key], ",.0f" if key == "parameters" else ".5g") for key in extra]
        lines.append("| " + " | ".join(cells) + " |")
    best = summary["best"]
    lines += ["", f"Best ({'highest' if summary['maximize'] else 'lowest'} {summary['metric']}): "
              + ", ".join(f"{key} = {value}" for key, value in best["values"].items()) + "."]
    return "\n".join(lines) + "\n"


def plot(summary: dict, field: str, path: Path) -> None:
    """The metric (and parameters, latency when reported) against `field`, log-scaled when it spans 10× or more."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(summary["trials"], key=lambda row: row["values"][field])
    others = lambda row: ", ".join(f"{k}={v}" for k, v in row["values"].items() if k != field)  # noqa: E731
    lines = {label: [row for row in rows if others(row) == label] for label in dict.fromkeys(map(others, rows))}
    xs = [row["values"][field] for row in rows]
    panels = [summary["metric"], *[key for key in (*summary["also"], *REPORTED) if key in rows[0]]]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2), squeeze=False)
    for axis, key in zip(axes[0], panels):
        for label, members in lines.items():  # one line per combination of the other fields
            axis.plot([row["values"][field] for row in members], [row[key] for row in members], "o-", label=label or None)
        numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 for x in xs)
        if numeric and max(xs) / min(xs) >= 10:
            axis.set_xscale("log", base=2)
        axis.set(xlabel=field, ylabel=key, title=f"{key} vs {field}")
        axis.grid(alpha=0.3)
        if len(lines) > 1:
            axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    run(sys.argv[1:] if argv is None else argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
