"""`python -m tasks.cards render --n N --out DIR`: a labelled folder of rendered card backs with stain masks."""

from __future__ import annotations

import argparse
import logging

from tasks.cards.render import CATEGORIES, render_dataset

logger = logging.getLogger("tasks.cards")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tasks.cards")
    commands = parser.add_subparsers(dest="command", required=True)
    render = commands.add_parser("render", help="write DIR/<CATEGORY>/*.png and DIR/masks/<CATEGORY>/*.png")
    render.add_argument("--n", type=int, required=True, help="cards per category")
    render.add_argument("--out", required=True, help="output folder")
    render.add_argument("--height", type=int, default=160)
    render.add_argument("--width", type=int, default=128)
    render.add_argument("--seed", type=int, default=0, help="datasets with different seeds share no card")
    render.add_argument("--categories", nargs="+", default=list(CATEGORIES), choices=CATEGORIES)
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")
    logging.basicConfig(format="%(message)s", level=logging.INFO)
    out = render_dataset(args.n, args.out, (args.height, args.width), args.seed, tuple(args.categories))
    logger.info("Wrote %d cards per category (%s) with masks to %s", args.n, ", ".join(args.categories), out)


if __name__ == "__main__":
    main()
