"""Benchmark: a media worker killed mid-call, until every page shows the room again; quiet and loaded.

    .venv/bin/python bench/worker_failover.py [--kills 3] [--cpu-load 2]

`tiaojie serve` as shipped (its media workers, one per core) and three Chromium pages in one
room: host and expert on HiDPI desktop pages, the party on a 390x844 phone page at device pixel
ratio 3. Then --kills times: kill -9 of the worker that carries the room (the one whose CPU
grows), and the seconds until every page shows two remote videos that move and plays two voices
on a new peer connection, nobody clicking (tests/web/browser.py `shows_the_room`). Once quiet,
once with `stress-ng --cpu N` beside the server (a fresh server and browsers each), side by side.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playwright.async_api import async_playwright  # noqa: E402

from bench.cluster import cpu_seconds  # noqa: E402
from bench.shipped import book_session, cpu_hog, node  # noqa: E402
from bench.weak_link_browser import free_port, link_of  # noqa: E402
from tests.needs import CHROMIUM  # noqa: E402
from tests.web.browser import DESKTOP_PAGE, FLAGS, PHONE_PAGE, enter_room, shows_the_room  # noqa: E402


def busiest_worker(server_pid: int) -> int:
    """The media worker whose CPU grows most over a second: the one carrying the room."""
    children = [int(p) for p in Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split()]
    before = {pid: cpu_seconds(pid) for pid in children}
    time.sleep(1)
    return max(children, key=lambda pid: cpu_seconds(pid) - before[pid])


async def run(kills: int, cpu_load: int) -> list[float]:
    took = []
    with tempfile.TemporaryDirectory() as folder, cpu_hog(cpu_load):
        port = free_port()
        with node(Path(folder), port, base_url=f"http://127.0.0.1:{port}") as (url, server):
            session = book_session(url, "王律师", ["张建军"])
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
                pages = [await enter_room(browser, link_of(session, kind, str(port), "127.0.0.1"), device)
                         for kind, device in (("host", DESKTOP_PAGE), ("expert", DESKTOP_PAGE), ("party", PHONE_PAGE))]
                await pages[0].click("#people button[aria-label='准入: 张建军']", timeout=30000)
                connections = [await shows_the_room(page, videos=2, voices=2, timeout_s=60) for page in pages]
                pid = server.pid
                for _ in range(kills):
                    os.kill(await asyncio.to_thread(busiest_worker, pid), signal.SIGKILL)
                    killed = time.monotonic()
                    connections = [await shows_the_room(page, videos=2, voices=2, after=connection, timeout_s=60)
                                   for page, connection in zip(pages, connections)]
                    took.append(time.monotonic() - killed)
                    print(f"  {'quiet' if not cpu_load else f'--cpu {cpu_load}'}: every page shows the room again "
                          f"{took[-1]:.1f} s after the kill", flush=True)
                    await asyncio.sleep(5)
                await browser.close()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--cpu-load", type=int, default=2, help="stress-ng --cpu workers in the second run (0: quiet alone)")
    args = parser.parse_args()
    series = {"quiet": asyncio.run(run(args.kills, 0))}
    if args.cpu_load:
        series[f"stress-ng --cpu {args.cpu_load}"] = asyncio.run(run(args.kills, args.cpu_load))
    print("media worker killed: seconds until all three pages show the room again (median, max)")
    for name, took in series.items():
        print(f"  {name:<20} {statistics.median(took):5.1f} {max(took):5.1f}   ({', '.join(f'{t:.1f}' for t in took)})")
    if len(series) == 2:
        quiet, loaded = series.values()
        print(f"  loaded / quiet: median x{statistics.median(loaded) / statistics.median(quiet):.2f}")


if __name__ == "__main__":
    main()
