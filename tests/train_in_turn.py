"""Run training/train.py's `main` once per command line, in turn, in this one process (or in each process of an
`accelerate launch`): the tests' tiny runs of all six tasks pay for importing torch and diffusers once.

    python tests/train_in_turn.py RUNS.json     # RUNS.json: [["classify", "--output_dir", "...", ...], ...]

Each process writes its output to RUNS.process<RANK>.log (under `accelerate launch`, one log per process, so that
what each process did can be told apart). Before each run it prints "=== run N: TASK" (the tests split the log
there) and after it "=== run N exited RC"; a run that raises is printed with its traceback and the next one goes on
(in a single process; among several, the first failure ends them all). Exits 1 if any run failed.
"""

import json
import os
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "training"))

import train  # noqa: E402


def main(path: str) -> int:
    log = open(Path(path).with_suffix(f".process{os.environ.get('RANK', '0')}.log"), "w")
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
        os.dup2(log.fileno(), stream.fileno())
    failed = 0
    for index, argv in enumerate(json.loads(Path(path).read_text())):
        print(f"=== run {index}: {argv[0]}", flush=True)
        try:
            code = train.main(argv)
        except BaseException:  # SystemExit too: a refused run is a failed run, and the next one goes on
            traceback.print_exc()
            code = 1
        sys.stderr.flush()
        print(f"=== run {index} exited {code}", flush=True)
        failed += code != 0
        if failed and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            return 1  # the other processes may wait in this run's collectives: end, and the launcher ends them
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
