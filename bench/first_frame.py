"""Benchmark: from opening an invite link to the first remote video frame on the page, for an
expert (admitted as soon as they join), split into phases.

A full server (uvicorn) on this machine with a booked session whose room is open; the host's
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
(after one warm-up run that is not counted).

    .venv/bin/python bench/first_frame.py [--runs 10]
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

from playwright.async_api import TimeoutError as PlaywrightTimeout  # noqa: E402
from playwright.async_api import async_playwright  # noqa: E402
from weak_link_browser import link_of, start_server  # noqa: E402

from tests.needs import CHROMIUM  # noqa: E402
from tests.web.browser import FLAGS  # noqa: E402

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
        try:
            await page.wait_for_function("window.marks && 'frame' in window.marks", timeout=30000)
        except PlaywrightTimeout:
            raise SystemExit(f"no remote frame in 30 s: {await page.evaluate('window.marks')}") from None
        return dict(await page.evaluate("window.marks"))
    finally:
        await context.close()


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


async def run(runs: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        server, task, port, session = await start_server(Path(folder))
        try:
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
                host = await browser.new_page(viewport={"width": 1440, "height": 900}, locale="zh-CN")
                await host.goto(link_of(session, "host", port, "127.0.0.1"))
                await host.click("#enter")
                await host.wait_for_selector("#end", state="visible")
                expert = link_of(session, "expert", port, "127.0.0.1")
                results = []
                for n in range(runs + 1):
                    marks = await one_run(browser, expert)
                    if n:  # the first run warms up the browser and the server
                        results.append(marks)
                    await asyncio.sleep(1)
                await browser.close()
        finally:
            server.should_exit = True
            await task
    print(f"Invite link to first remote frame, an admitted expert on loopback (Chromium, HiDPI page), {runs} runs")
    print(f"  {'phase':<48} {'median ms':>9} {'p90 ms':>8}")
    for name, start, end in PHASES:
        values = [m[end] - (m[start] if start else 0.0) for m in results]
        print(f"  {name:<48} {statistics.median(values):9.0f} {p90(values):8.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    asyncio.run(run(parser.parse_args().runs))


if __name__ == "__main__":
    main()
