"""`python -m tasks.restore bundle SOURCE DESTINATION [--half]`: copy a trained folder's served files (no
checkpoints) to where the app serves them, e.g. the BASELINE reference at float16 into assets/models/restore/baseline."""

import argparse

from tasks.restore.task import bundle


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tasks.restore", description=__doc__)
    parser.add_argument("command", choices=["bundle"])
    parser.add_argument("source")
    parser.add_argument("destination")
    parser.add_argument("--half", action="store_true", help="store the weights as float16")
    args = parser.parse_args(argv)
    try:
        print(bundle(args.source, args.destination, half=args.half))
    except FileNotFoundError as error:
        parser.error(str(error))


if __name__ == "__main__":
    main()
