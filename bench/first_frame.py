"""Benchmark: from opening an invite link to the first remote video frame on the page, for an
expert (admitted as soon as they join), split into phases.

The server as shipped (`tiaojie serve`, its media workers one per core) on this machine with a
booked session whose room is open; the host's
Chromium page is in the room, sending its camera. Each run opens the expert's link in a fresh
browser context (as a person opening it anew; the seat of the run before is resumed, as after
a reload), presses 进入调解室 as soon as the page has loaded (from a script: Playwright's
click adds about 200 ms of its own), and reads the page's own clock
(performance.now(), from the navigation's start) at each step:

- page: the join page loaded (DOMContentLoaded);
- devices: camera and microphone open (getUserMedia resolved), after the press;
- signaling: the WebSocket's `joined`, then the server's `answer`;
- ICE/DTLS: the peer connection `connected`;
- first frame: the first frame of a remote video presented (requestVideoFrameCallback).

It prints the median and the 90th percentile of each phase and of the whole, over --runs runs
(after one warm-up run that is not counted), quiet and then with `stress-ng --cpu N` beside the
server (`--cpu-load`, default 2; a fresh server for each), side by side.

    .venv/bin/python bench/first_frame.py [--runs 10] [--cpu-load 2]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playwright.async_api import async_playwright  # noqa: E402

from bench.shipped import book_session, cpu_hog, node  # noqa: E402
from bench.weak_link_browser import free_port, link_of  # noqa: E402
from tests.needs import CHROMIUM  # noqa: E402
from tests.web.browser import FLAGS, until  # noqa: E402

# Marks on the page's clock (ms since the navigation started), in window.marks.
MARKS = """(() => {
  const marks = window.marks = {};
  const mark = (name) => { if (!(name in marks)) marks[name] = performance.now(); };
  document.addEventListener("DOMContentLoaded", () => mark("page"));
  document.addEventListener("click", (event) => { if (event.target.id === "enter") mark("press"); }, true);
  const getUserMedia = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = async (...args) => { const s = await getUserMedia(...args); mark("devices"); return s; };
  const OriginalSocket = window.WebSocket;
  window.WebSocket = function (...args) {
    const socket = new OriginalSocket(...args);
    mark("socket");
    socket.addEventListener("open", () => mark("open"));
    socket.addEventListener("message", (event) => { try { mark(JSON.parse(event.data).type); } catch (e) {} });
    const send = socket.send.bind(socket);
    socket.send = (data) => { try { mark(`sent ${JSON.parse(data).type}`); } catch (e) {} send(data); };
    return socket;
  };
  window.WebSocket.prototype = OriginalSocket.prototype;
  Object.assign(window.WebSocket, OriginalSocket);
  const OriginalPc = window.RTCPeerConnection;
  window.RTCPeerConnection = function (...args) {
    const pc = new OriginalPc(...args);
    mark("peer");
    pc.addEventListener("connectionstatechange", () => { if (pc.connectionState === "connected") mark("connected"); });
    return pc;
  };
  window.RTCPeerConnection.prototype = OriginalPc.prototype;
  Object.assign(window.RTCPeerConnection, OriginalPc);
  const watch = () => {
    for (const video of document.querySelectorAll("#grid .tile[data-slot] video")) {
      if (video.dataset.watched) continue;
      video.dataset.watched = "1";
      video.requestVideoFrameCallback(() => mark("frame"));
    }
  };
  document.addEventListener("DOMContentLoaded", () => {
    new MutationObserver(watch).observe(document.getElementById("grid"), { childList: true, subtree: true });
  });
})();"""

PHASES = [  # (name, from mark, to mark)
    ("page load", None, "page"),
    ("navigation to the press (pressed once loaded)", None, "press"),
    ("press to devices open", "press", "devices"),
    ("  press to joined", "press", "joined"),
    ("  joined to offer sent (the page's offer)", "joined", "sent offer"),
    ("  offer sent to answer (server)", "sent offer", "answer"),
    ("signaling (press to answer)", "press", "answer"),
    ("ICE/DTLS (answer to connected)", "answer", "connected"),
    ("first keyframe (connected to frame)", "connected", "frame"),
    ("whole: link to first frame", None, "frame"),
]


async def one_run(browser: Any, url: str) -> dict[str, float]:
    context = await browser.new_context(viewport={"width": 1440, "height": 900}, device_scale_factor=2, locale="zh-CN")
    await context.add_init_script(MARKS)
    page = await context.new_page()
    try:
        await page.goto(url, wait_until="domcontentloaded")
        await page.evaluate("document.getElementById('enter').click()")  # at once, as no person could
        try:  # (the marks are the page's own clock: how often this asks does not change them)
            await until(page, "window.marks && 'frame' in window.marks", 30)
        except AssertionError:
            raise SystemExit(f"no remote frame in 30 s: {await page.evaluate('window.marks')}") from None
        return dict(await page.evaluate("window.marks"))
    finally:
        await context.close()


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


async def run(runs: int, cpu_load: int) -> list[dict[str, float]]:
    """Each run's marks, on a fresh server (stress-ng --cpu cpu_load beside it when > 0)."""
    with tempfile.TemporaryDirectory() as folder, cpu_hog(cpu_load):
        port = free_port()
        with node(Path(folder), port, base_url=f"http://127.0.0.1:{port}") as (url, _):
            session = book_session(url, "王律师", ["张建军"])
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
                host = await browser.new_page(viewport={"width": 1440, "height": 900}, locale="zh-CN")
                await host.goto(link_of(session, "host", str(port), "127.0.0.1"))
                await host.click("#enter")
                await host.wait_for_selector("#end", state="visible", timeout=30000)
                expert = link_of(session, "expert", str(port), "127.0.0.1")
                results = []
                for n in range(runs + 1):
                    marks = await one_run(browser, expert)
                    if n:  # the first run warms up the browser and the server
                        results.append(marks)
                    await asyncio.sleep(1)
                await browser.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--cpu-load", type=int, default=2,
                        help="stress-ng --cpu workers beside the server in the second series (0: quiet alone)")
    args = parser.parse_args()
    series = {"quiet": asyncio.run(run(args.runs, 0))}
    if args.cpu_load:
        series[f"--cpu {args.cpu_load}"] = asyncio.run(run(args.runs, args.cpu_load))
    print(f"Invite link to first remote frame, an admitted expert on loopback (Chromium, HiDPI page), "
          f"tiaojie serve with its media workers, {args.runs} runs each")
    print(f"  {'phase (ms)':<48}" + "".join(f" {name + ' median':>16} {'p90':>6}" for name in series))
    for name, start, end in PHASES:
        row = ""
        for results in series.values():
            values = [m[end] - (m[start] if start else 0.0) for m in results]
            row += f" {statistics.median(values):16.0f} {p90(values):6.0f}"
        print(f"  {name:<48}{row}")


if __name__ == "__main__":
    main()
