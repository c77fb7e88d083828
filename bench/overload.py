"""Overload: one media worker given too little CPU, what each person then gets, and the way back.

    .venv/bin/python bench/overload.py [--rooms 3] [--window 8] [--hogs 3]

One `tiaojie serve --media-workers 1` node on the embedded SQLite database, pinned to core 0,
with --rooms rooms of 5 (a host and four experts: bench/media_capacity.py's clients, pre-encoded
simulcast VP8 at 30 fps with its small layer at 15, and Opus), booked through the API and joined
through the WebSocket with their invite tokens; the clients run on the other cores. Three phases,
each measured over --window seconds:

- quiet: the worker has core 0 to itself;
- overloaded: `stress-ng --cpu N --taskset 0` (--hogs) shares core 0 with it, so it gets a
  fraction of the CPU it needs; measured once it has shed as far as it goes (the metric
  `tiaojie_media_shed_videos` steady for 6 s);
- after: the hog stopped; measured once the worker says it keeps up again.

Printed per phase: the worker's state from /metrics (overloaded, cameras shed, its loop's worst
lag), and what the people get: each camera's frame rate and kbit/s as its subscribers receive it
(the median over them; a camera held to its small layer arrives at 15 fps), frames delivered, and
the least heard voice. And the transitions: seconds from the hog's start to the first camera
shed and to the host being told, and from its end to the worker keeping up again.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cluster import PASSWORD, book_rooms, room_tokens  # noqa: E402
from bench.media_capacity import RoomProcesses, encode_media  # noqa: E402
from bench.node_capacity import room_main  # noqa: E402
from bench.shipped import node  # noqa: E402
from tests.server.test_metrics import samples, value  # noqa: E402


def worker_state(url: str) -> dict[str, float]:
    found = samples(httpx.get(f"{url}/metrics", timeout=10).text)
    return {"overloaded": value(found, "tiaojie_media_overloaded"), "shed": value(found, "tiaojie_media_shed_videos"),
            "lag_ms": value(found, "tiaojie_media_loop_lag_ms")}


async def until_state(url: str, check: Any, timeout_s: float) -> float | None:
    """Seconds until check(the worker's state) holds; None if not within timeout_s."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if check(await asyncio.to_thread(worker_state, url)):
            return time.monotonic() - start
        await asyncio.sleep(0.5)
    return None


async def until_steady(url: str, steady_s: float, timeout_s: float) -> float | None:
    """Seconds until the cameras shed stop changing (the last change, once steady for steady_s)."""
    start = time.monotonic()
    last, changed = None, start
    while time.monotonic() - start < timeout_s:
        shed = (await asyncio.to_thread(worker_state, url))["shed"]
        if shed != last:
            last, changed = shed, time.monotonic()
        elif time.monotonic() - changed >= steady_s:
            return changed - start
        await asyncio.sleep(0.5)
    return None


def show(name: str, state: dict[str, float], outcomes: list[Any], window_s: float) -> None:
    seen: dict[tuple[str, str], tuple[int, int, float]] = {}
    for outcome in outcomes:
        seen.update(outcome[7])
    cameras: dict[str, list[tuple[float, float]]] = {}
    for (_, publisher), (frames, octets, _) in seen.items():
        cameras.setdefault(publisher, []).append((frames / window_s, octets * 8 / window_s / 1000))
    rates = sorted((statistics.median(f for f, _ in got), statistics.median(k for _, k in got)) for got in cameras.values())
    expected, received = sum(o[2] for o in outcomes), sum(o[3] for o in outcomes)
    full = sum(1 for fps, _ in rates if fps >= 24)
    print(f"{name:<11} worker: overloaded {state['overloaded']:.0f}, cameras shed {state['shed']:.0f}, loop lag "
          f"{state['lag_ms']:.0f} ms; cameras at >= 24 fps {full} of {len(rates)}, slowest "
          f"{rates[0][0]:.1f} fps {rates[0][1]:.0f} kbit/s, fastest {rates[-1][0]:.1f} fps {rates[-1][1]:.0f} kbit/s; "
          f"frames delivered {received / max(1, expected):.1%}; least heard voice {min(a for _, _, a in seen.values()):.1%}",
          flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=3)
    parser.add_argument("--window", type=float, default=8.0)
    parser.add_argument("--hogs", type=int, default=3, help="stress-ng CPU workers on the media worker's core")
    args = parser.parse_args()
    from tests.conftest import free_port

    cores = sorted(os.sched_getaffinity(0))
    server_cores, client_cores = cores[:1], cores[1:] or cores[:1]
    media = encode_media()
    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        with node(Path(folder), port, f"http://127.0.0.1:{port}", media_workers=1, cores=server_cores,
                  staff=("staff1", PASSWORD)) as (url, _):
            sessions = book_rooms(url, args.rooms)
            print(f"one media worker on core {server_cores[0]}, {args.rooms} rooms of 5 ({args.rooms * 20} video "
                  f"streams), clients on {client_cores}; stress-ng --cpu {args.hogs} --taskset {server_cores[0]} "
                  "in the overloaded phase", flush=True)
            async with RoomProcesses(room_main, [(client_cores, url, s["id"], room_tokens(s), media, 0.0)
                                                 for s in sessions]) as rooms:
                await asyncio.sleep(6)
                state, outcomes = await rooms.window(args.window, lambda: asyncio.to_thread(worker_state, url))
                show("quiet", state, outcomes, args.window)
                hog = subprocess.Popen(["stress-ng", "--cpu", str(args.hogs), "--taskset", str(server_cores[0]), "--quiet"])
                try:
                    first = await until_state(url, lambda s: s["shed"] >= 1, 60)
                    told = await until_state(url, lambda s: s["overloaded"] >= 1, 60)
                    steady = await until_steady(url, 6, 90)
                    state, outcomes = await rooms.window(args.window, lambda: asyncio.to_thread(worker_state, url))
                    show("overloaded", state, outcomes, args.window)
                finally:
                    hog.terminate()
                    hog.wait(10)
                back = await until_state(url, lambda s: s["overloaded"] == 0, 120)
                state, outcomes = await rooms.window(args.window, lambda: asyncio.to_thread(worker_state, url))
                show("after", state, outcomes, args.window)
            print(f"transitions: hog on -> first camera shed {_s(first)}, host told (overloaded) {_s(told)}, "
                  f"shedding steady after {_s(steady)} more; hog off -> keeping up again (hosts told) {_s(back)}")


def _s(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


if __name__ == "__main__":
    asyncio.run(main())
