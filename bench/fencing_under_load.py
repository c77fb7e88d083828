"""Benchmark: does a healthy node fence itself when the machine is busy? Quiet and loaded, one run.

    .venv/bin/python bench/fencing_under_load.py [--seconds 60] [--quiet-seconds S] [--cpu-load 4] [--browsers]

Three `tiaojie serve` nodes as shipped (each with its media workers, default 10 s dead time) on
a PostgreSQL server the script starts, and a room of three (host, party, expert: aiortc clients
that send and receive real frames) on one of them. For --quiet-seconds (default: --seconds) quiet, then --seconds with
`stress-ng --cpu N` beside them, it prints per phase: the fence events of every node (its
/metrics), the longest a node's heartbeat row went unwritten (the `nodes` table polled every
0.2 s), and how many times the room's people were told to rejoin. Then, still loaded, kill -9
of the room's node: the seconds until all three see each other again on another node (the
quiet figure from the same run beside it).

With --browsers, a second room of three real Chromium pages (host and expert on HiDPI desktop
pages, the party on a 390x844 phone page, all opened through node a) is in the cluster for the
whole phase, and its node is killed first: the seconds until every page decodes video again on a
new peer connection, nobody clicking anything.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cluster import enter_room, test_nodes  # noqa: E402
from bench.shipped import cpu_hog  # noqa: E402
from tests.postgres import plain_url, postgres_server  # noqa: E402
from tests.server.test_metrics import samples, value  # noqa: E402
from tests.web.browser import DESKTOP_PAGE, FLAGS, PHONE_PAGE, receiving  # noqa: E402
from tests.web.browser import enter_room as open_page  # noqa: E402


def fences(cluster: Any) -> dict[str, float]:
    found = {}
    for node in cluster.nodes:
        with contextlib.suppress(httpx.HTTPError, StopIteration, KeyError):
            found[node.name] = value(samples(httpx.get(f"{node.url}/metrics", timeout=5).text), "tiaojie_fence_events_total")
    return found


async def watch(cluster: Any, seconds: float, room: list[Any]) -> dict[str, Any]:
    """For `seconds`: the longest heartbeat gap of each node, and the rejoins the room was told."""
    before = fences(cluster)
    rejoins_before = sum(sum(1 for e in c.errors if e.get("code") == "rejoin") for c in room)
    gaps: dict[str, float] = {}
    url = plain_url(cluster.database_url)
    ends = time.monotonic() + seconds
    with psycopg.connect(url, autocommit=True) as db:
        while time.monotonic() < ends:
            for name, age in db.execute("SELECT id, extract(epoch FROM now() AT TIME ZONE 'UTC' - heartbeat_at) FROM nodes"):
                gaps[name] = max(gaps.get(name, 0.0), float(age))
            await asyncio.sleep(0.2)
    after = fences(cluster)
    return {"fences": {n: after.get(n, 0) - before.get(n, 0) for n in after},
            "gaps": gaps, "rejoins": sum(sum(1 for e in c.errors if e.get("code") == "rejoin") for c in room) - rejoins_before}


async def kill_and_back(cluster: Any, session: dict[str, Any], room: list[Any]) -> tuple[float, list[Any]]:
    from tests.cluster.test_rooms_across_nodes import room_node

    node = cluster.node(room_node(cluster, session["id"]))
    started = time.monotonic()
    node.kill()
    for client in room:
        await client.close()
    room = await enter_room([n.url for n in cluster.nodes if n is not node], session, ["host", "party", "expert"])
    took = time.monotonic() - started
    node.stop()
    return took, room


async def browser_room(browser: Any, cluster: Any, session: dict[str, Any]) -> list[Any]:
    """Host, expert (desktops) and party (phone) pages through node a; the host admits the party;
    every page decodes video."""
    from tests.conftest import token_of

    a = cluster.node("a").url
    pages = [await open_page(browser, f"{a}/join/{token_of(session, kind)}", device)
             for kind, device in (("host", DESKTOP_PAGE), ("expert", DESKTOP_PAGE), ("party", PHONE_PAGE))]
    await pages[0].click("#people button[aria-label='准入: 张建军']", timeout=60000)
    for page in pages:
        await receiving(page, timeout_s=60)
    return pages


async def kill_browsers_and_back(cluster: Any, session: dict[str, Any], pages: list[Any]) -> float:
    from tests.cluster.test_rooms_across_nodes import room_node

    before = [await receiving(page) for page in pages]
    node = cluster.node(room_node(cluster, session["id"]))
    started = time.monotonic()
    node.kill()
    for page, (connections, *_) in zip(pages, before):
        await receiving(page, after=connections, timeout_s=60)
    took = time.monotonic() - started
    node.stop()
    return took


async def phase(server_url: str, seconds: float, load: int, browser: Any) -> dict[str, Any]:
    from tests.cluster.conftest import staff_client
    from tests.cluster.test_rooms_across_nodes import book

    with tempfile.TemporaryDirectory() as folder, test_nodes(server_url, Path(folder)) as cluster:
        for name in ("a", "b", "c"):
            cluster.start(name, media_workers=2)
        staff = staff_client(cluster.node("a"))
        session = book(staff, "宠物狗纠纷")
        room = await enter_room([cluster.node("a").url], session, ["host", "party", "expert"])
        pages: list[Any] = []
        with cpu_hog(load):
            if browser:
                watched = book(staff, "邻里噪音纠纷")
                pages = await browser_room(browser, cluster, watched)
            result = await watch(cluster, seconds, room)
            if browser:
                result["browsers_s"] = await kill_browsers_and_back(cluster, watched, pages)
            else:
                result["failover_s"], room = await kill_and_back(cluster, session, room)
        for page in pages:
            await page.context.close()
        for client in room:
            await client.close()
        return result


def line(name: str, result: dict[str, Any]) -> str:
    fenced = sum(result["fences"].values())
    gap = max(result["gaps"].values()) if result["gaps"] else float("nan")
    return (f"{name:<22} fence events {fenced:.0f} {dict(sorted(result['fences'].items()))}, longest heartbeat gap "
            f"{gap:.1f} s, rejoins told {result['rejoins']}, kill -9 of the room's node: "
            + (f"video on all three Chromium pages again in {result['browsers_s']:.1f} s" if "browsers_s" in result
               else f"media for all again in {result['failover_s']:.1f} s"))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--quiet-seconds", type=float, help="the quiet phase's length (default: --seconds)")
    parser.add_argument("--cpu-load", type=int, default=4, help="stress-ng --cpu workers in the loaded phase")
    parser.add_argument("--browsers", action="store_true", help="the failover of three Chromium pages, not aiortc clients")
    args = parser.parse_args()
    async with contextlib.AsyncExitStack() as stack:
        browser = None
        if args.browsers:
            from playwright.async_api import async_playwright

            from tests.needs import CHROMIUM

            playwright = await stack.enter_async_context(async_playwright())
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        with postgres_server() as server_url:
            quiet = await phase(server_url, args.quiet_seconds or args.seconds, 0, browser)
            print(line("quiet", quiet), flush=True)
            loaded = await phase(server_url, args.seconds, args.cpu_load, browser)
            print(line(f"stress-ng --cpu {args.cpu_load}", loaded), flush=True)
    failover = "browsers_s" if args.browsers else "failover_s"
    print(f"loaded / quiet: longest heartbeat gap x{max(loaded['gaps'].values()) / max(quiet['gaps'].values()):.2f}, "
          f"failover x{loaded[failover] / quiet[failover]:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
