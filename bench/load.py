"""`python -m bench load`: many gradio_client users on one `python app.py`, as a public Space sees them.

Three phases on one fresh server (bundled weights, loopback only):

1. classify alone: one user calling /classify back to back (its latency with nothing else running);
2. classify beside card sampling: the same user while two others ask /cards without pause; the ratio of the two
   p95s is `classify_p95_ratio` (a slow job must not starve the fast tabs);
3. the crowd: `users` users, each going round every endpoint with real photos, first for `warmup_s` as a warm-up
   (models loaded, thread pools and allocator arenas grown, every path taken at least once), then for `rounds`
   rounds of `seconds` each, the server's resident memory read after the warm-up and after each round.
   `memory_growth` is the memory after the last round over the memory after the warm-up, minus 1; with two rounds
   or more, `memory_growth_per_round` tells a leak (the same growth every round) from a warm-up that had not
   ended (growth that dies away).

Each request's latency is from submit to result; its queue wait, from submit until the job's status first reads
PROCESSING (polled every 20 ms). An error is any request that raised, with its message kept (the first of each kind).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "assets" / "examples"


def endpoint_calls(folder: Path) -> dict[str, tuple]:
    """Endpoint → its arguments (real photos from the bundled examples; the card from a Cards sample of the bench's
    own, written into `folder`)."""
    from gradio_client import handle_file
    from PIL import Image

    card = folder / "card.png"
    Image.open(EXAMPLES / "restore" / "coffee.png").convert("RGB").resize((64, 80)).save(card)
    small = folder / "small.png"
    Image.open(EXAMPLES / "upscale" / "chelsea.png").convert("RGB").resize((160, 120)).save(small)
    kinds = ["fading / yellowing", "stains", "scratches"]
    return {
        "classify": (handle_file(str(EXAMPLES / "classify" / "7-sneaker.png")),),
        "colorize": (handle_file(str(EXAMPLES / "colorize" / "chelsea.jpg")), 1.0),
        "mask": (handle_file(str(EXAMPLES / "colorize" / "coffee.jpg")), 0.5, "#ffffff"),
        "cards": ("SMALL", 3, 2, 8, "DPM-Solver++", 2.0, ""),
        "stain": (handle_file(str(card)), "centre", "SMALL", 3, ""),
        "upscale": (handle_file(str(small)), "×2"),
        "restore": (handle_file(str(small)), "Damage it for me", kinds, 1.0, 3),
    }


class Recorder:
    """Thread-safe per-endpoint latencies, queue waits and errors."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.queue: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, list[str]] = defaultdict(list)

    def call(self, client: Any, endpoint: str, args: tuple) -> None:
        from gradio_client.utils import Status

        start = time.perf_counter()
        waited = None
        try:
            job = client.submit(*args, api_name=f"/{endpoint}")
            while not job.done():
                if waited is None and job.status().code == Status.PROCESSING:
                    waited = time.perf_counter() - start
                time.sleep(0.02)
            job.result()
        except Exception as error:  # any failure a user would see: counted and kept, never raised
            with self.lock:
                self.errors[endpoint].append(f"{type(error).__name__}: {str(error).splitlines()[0][:200]}")
            return
        elapsed = time.perf_counter() - start
        with self.lock:
            self.latency[endpoint].append(elapsed)
            self.queue[endpoint].append(elapsed if waited is None else waited)

    def summary(self) -> dict[str, Any]:
        def ms(values: list[float], q: float) -> float | None:
            return round(float(np.percentile(values, q)) * 1000, 1) if values else None

        endpoints = sorted(set(self.latency) | set(self.errors))
        return {
            "requests": sum(len(self.latency[name]) + len(self.errors[name]) for name in endpoints),
            "errors": sum(len(self.errors[name]) for name in endpoints),
            "endpoints": {name: {"requests": len(self.latency[name]) + len(self.errors[name]),
                                 "errors": len(self.errors[name]), "p50_ms": ms(self.latency[name], 50),
                                 "p95_ms": ms(self.latency[name], 95), "queue_p50_ms": ms(self.queue[name], 50),
                                 "queue_p95_ms": ms(self.queue[name], 95),
                                 "first_errors": sorted(set(self.errors[name]))[:3]} for name in endpoints},
        }


def run_users(url: str, plans: list[list[str]], calls: dict[str, tuple], seconds: float) -> Recorder:
    """One thread and one gradio_client per plan, each calling its plan's endpoints in turn until `seconds` pass."""
    from gradio_client import Client

    recorder = Recorder()
    clients = [Client(url, verbose=False) for _ in plans]
    stop = time.perf_counter() + seconds

    def user(client: Any, plan: list[str]) -> None:
        turn = 0
        while time.perf_counter() < stop:
            recorder.call(client, plan[turn % len(plan)], calls[plan[turn % len(plan)]])
            turn += 1

    threads = [threading.Thread(target=user, args=pair, daemon=True) for pair in zip(clients, plans)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return recorder


def bench_load(users: int, seconds: float, timeout_s: float, warmup_s: float = 60.0, rounds: int = 2) -> dict[str, Any]:
    """The three phases on one fresh server; the JSON keys other checks read: errors, requests (of the last round),
    memory_growth, classify_p95_ratio.

    Raises:
        ValueError: rounds < 1.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be 1 or more; got {rounds}.")
    import tempfile

    from bench.__main__ import THREADS, app_server, process_memory_mb

    with tempfile.TemporaryDirectory() as folder, app_server(timeout_s) as (client, server, _):
        calls = endpoint_calls(Path(folder))
        url = client.src
        endpoints = list(calls)
        for endpoint in endpoints:  # every model loaded before anything is timed
            client.predict(*calls[endpoint], api_name=f"/{endpoint}")
        alone = run_users(url, [["classify"]], calls, min(15.0, seconds / 2)).summary()
        beside = run_users(url, [["classify"], ["cards"], ["cards"]], calls, min(20.0, seconds / 2)).summary()
        crowd = [endpoints[index % len(endpoints):] + endpoints[:index % len(endpoints)] for index in range(users)]
        warm = run_users(url, crowd, calls, warmup_s).summary()
        resident = [process_memory_mb(server.pid)["rss"]]
        measured = []
        for _ in range(rounds):
            measured.append(run_users(url, crowd, calls, seconds).summary())
            resident.append(process_memory_mb(server.pid)["rss"])
    p95_alone = alone["endpoints"]["classify"]["p95_ms"]
    p95_beside = beside["endpoints"]["classify"]["p95_ms"]
    return {
        "task": "load", "users": users, "seconds": seconds, "warmup_seconds": warmup_s, "rounds": rounds,
        "threads": THREADS, "requests": measured[-1]["requests"],
        "errors": warm["errors"] + sum(phase["errors"] for phase in measured),
        "memory_mb": {"after_warmup": round(resident[0]), "after_rounds": [round(rss) for rss in resident[1:]],
                      "after": round(resident[-1])},
        "memory_growth": round(resident[-1] / resident[0] - 1, 4),
        "memory_growth_per_round": [round(after / before - 1, 4) for before, after in zip(resident, resident[1:])],
        "classify_p95_ms": {"alone": p95_alone, "beside_cards": p95_beside},
        "classify_p95_ratio": round(p95_beside / p95_alone, 3) if p95_alone and p95_beside else None,
        "phases": {"classify_alone": alone, "classify_beside_cards": beside, "warmup": warm, "crowd": measured[-1],
                   "rounds": measured},
    }


def load_table(result: dict[str, Any]) -> str:
    """The crowd phase as a markdown table, one row per endpoint."""
    rows = [f"| {name} | {row['requests']} | {row['errors']} | {row['p50_ms']} | {row['p95_ms']} | "
            f"{row['queue_p50_ms']} | {row['queue_p95_ms']} |" for name, row in result["phases"]["crowd"]["endpoints"].items()]
    return ("| endpoint | requests | errors | p50 ms | p95 ms | queue p50 ms | queue p95 ms |\n|---|---|---|---|---|---|---|\n"
            + "\n".join(rows) + f"\n\n{result['users']} users, {result['rounds']} × {result['seconds']:g} s after a "
            f"{result['warmup_seconds']:g} s warm-up (the table: the last round): {result['requests']} requests in the "
            f"last round, {result['errors']} errors in all; memory " + " → ".join(
                f"{mb:,}" for mb in [result['memory_mb']['after_warmup'], *result['memory_mb']['after_rounds']])
            + f" MiB ({result['memory_growth']:+.1%}; per round " + ", ".join(
                f"{growth:+.1%}" for growth in result["memory_growth_per_round"])
            + f"); /classify p95 beside card sampling / alone = {result['classify_p95_ratio']}")
