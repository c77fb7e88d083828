"""Benchmark: a party's Chromium behind a real, kernel-shaped slow link, in one run with the
publishers' Chromium sending simulcast (as the room page does) and sending one layer.

A full server (uvicorn, media workers) on this machine; the host and an expert in Chromium on
the machine's own network; the party in a Chromium that runs in a network namespace joined by a
veth pair, whose host side has a tbf qdisc: the party's downlink is LINK kbit/s with a 250 ms
queue, as a rural 4G cell would give it. Each run joins the three pages to the room, lets it
settle, then reads WebRTC statistics from the pages over the measurement: per remote video the
frames decoded per second, its width and the time frozen; per remote audio the share of samples
concealed (lost or late); and what the host receives (a good link; its window is wide). On a
2-core machine the three Chromium encoders adapt to the CPU (Chrome lowers resolution and
frame rate under load), so the layers arrive at 320x240 and about 15 fps here.

Needs root for the namespace and the qdisc (ip, tc with tbf); it says so and stops otherwise.

    .venv/bin/python bench/weak_link_browser.py [--link-kbps 300] [--seconds 20]
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from playwright.async_api import Browser, Page, async_playwright  # noqa: E402

from tests.needs import CHROMIUM  # noqa: E402
from tests.web.browser import FLAGS, KEEP_PEER_CONNECTIONS  # noqa: E402
from tests.web.netns import Namespace, sh  # noqa: E402

NS, HOST_IF, NS_IF = "tj-weak", "tj-host", "tj-weak0"
HOST_IP, NS_IP = "10.77.0.1", "10.77.0.2"
PASSWORD = "bench-password-1"
SETTLE_S = 10

# A publisher as a browser without simulcast would be: the page's large layer only.
ONE_LAYER = """(() => {
  const add = RTCPeerConnection.prototype.addTransceiver;
  RTCPeerConnection.prototype.addTransceiver = function (track, init) {
    if (init && init.sendEncodings && init.sendEncodings.length > 1) {
      const { rid, ...largest } = init.sendEncodings[init.sendEncodings.length - 1];
      init = { ...init, sendEncodings: [largest] };
    }
    return add.call(this, track, init);
  };
})();"""

INBOUND = """async () => {
  const pc = window.peerConnections[window.peerConnections.length - 1];
  const out = [];
  if (!pc) return out;
  for (const r of (await pc.getStats()).values()) {
    if (r.type !== "inbound-rtp" || !r.bytesReceived) continue;
    out.push({ id: r.id, kind: r.kind, frames: r.framesDecoded || 0, width: r.frameWidth || 0,
               frozen: r.totalFreezesDuration || 0, concealed: r.concealedSamples || 0,
               samples: r.totalSamplesReceived || 0, bytes: r.bytesReceived });
  }
  return out;
}"""


PARTY = Namespace(NS, HOST_IF, NS_IF, HOST_IP, NS_IP)


def shape(link_kbps: int) -> None:
    """The namespace, its veth pair, and the party's downlink limited by tbf."""
    PARTY.create()
    sh("tc", "qdisc", "add", "dev", HOST_IF, "root", "tbf", "rate", f"{link_kbps}kbit", "burst", "6kb", "latency", "250ms")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


async def start_server(data_dir: Path) -> tuple[uvicorn.Server, asyncio.Task[None], str, dict[str, Any]]:
    """A server on every interface, with a booked session whose room is open."""
    from accounts.service import create_staff
    from foundation.config import Settings
    from foundation.database import upgrade_database
    from server.app import create_app

    port = free_port()
    settings = Settings(data_dir=data_dir, secret_key="bench-secret", base_url=f"http://{HOST_IP}:{port}")
    upgrade_database(settings.database_url)
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="0.0.0.0", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    async with app.state.db_sessions() as db, db.begin():
        await create_staff(db, "bench", PASSWORD)
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base) as staff:
        token = (await staff.get("/api/auth/csrf")).json()["csrf_token"]
        login = await staff.post("/api/auth/login", json={"username": "bench", "password": PASSWORD},
                                 headers={"X-CSRF-Token": token})
        staff.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        expert = (await staff.post("/api/experts", json={"name": "王律师", "role": "lawyer", "email": "w@e.cn"})).json()
        dispute = (await staff.post("/api/disputes", json={
            "title": "宠物狗纠纷", "dispute_type": "animals",
            "parties": [{"name": "张建军", "side": "applicant"}, {"name": "李秀兰", "side": "respondent"}]})).json()
        start = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5)
        session = (await staff.post("/api/sessions", json={
            "dispute_id": dispute["id"], "start": start.isoformat(), "end": (start + dt.timedelta(hours=1)).isoformat(),
            "experts": [{"expert_id": expert["id"]}], "override_availability": True})).json()
    return server, task, str(port), session


def link_of(session: dict[str, Any], kind: str, port: str, host: str) -> str:
    url = [p for p in session["participants"] if p["kind"] == kind][0]["join_url"]
    return f"http://{host}:{port}/join/{url.rsplit('/', 1)[1]}"


async def open_page(browser: Browser, url: str, scripts: list[str], width: int = 1280) -> Page:
    context = await browser.new_context(viewport={"width": width, "height": 900}, locale="zh-CN")
    for script in scripts:
        await context.add_init_script(script)
    page = await context.new_page()
    await page.goto(url)
    await page.wait_for_function("document.querySelector('#preview').videoWidth > 0", timeout=30000)
    await page.click("#enter")
    return page


def summary(before: list[dict[str, Any]], after: list[dict[str, Any]], seconds: float) -> dict[str, float]:
    earlier = {r["id"]: r for r in before}
    videos, audios = [], []
    for r in after:
        b = earlier.get(r["id"], {"frames": 0, "frozen": 0, "concealed": 0, "samples": 0, "bytes": 0})
        if r["kind"] == "video":
            videos.append(((r["frames"] - b["frames"]) / seconds, r["width"], r["frozen"] - b["frozen"]))
        elif r["samples"] > b["samples"]:
            audios.append((r["concealed"] - b["concealed"]) / (r["samples"] - b["samples"]))
    return {
        "fps": min((v[0] for v in videos), default=0.0), "width": min((v[1] for v in videos), default=0),
        "frozen_s": max((v[2] for v in videos), default=0.0), "concealed": max(audios, default=1.0),
        "videos": len(videos), "each": [(round(v[0], 1), v[1]) for v in videos],
    }


async def one_run(playwright: Any, wrapper: str, session: dict[str, Any], port: str, seconds: float,
                  simulcast: bool) -> tuple[dict[str, float], dict[str, float], int]:
    normal = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
    # The party reaches the server at HOST_IP, not localhost: let the page use the camera there.
    weak_browser = await playwright.chromium.launch(
        executable_path=wrapper, args=FLAGS + [f"--unsafely-treat-insecure-origin-as-secure=http://{HOST_IP}:{port}"])
    try:
        publish = [KEEP_PEER_CONNECTIONS] + ([] if simulcast else [ONE_LAYER])
        host = await open_page(normal, link_of(session, "host", port, "127.0.0.1"), publish, width=1920)  # large tiles
        await open_page(normal, link_of(session, "expert", port, "127.0.0.1"), publish)
        party = await open_page(weak_browser, link_of(session, "party", port, HOST_IP), [KEEP_PEER_CONNECTIONS])
        admit = host.locator("#people button[aria-label='准入: 张建军']")
        for _ in range(40):  # in a second run the seat comes back admitted (joined again within 30 s)
            if await admit.count():
                await admit.click()
                break
            if await party.locator("#grid video").count() > 1:
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(SETTLE_S)
        weak_before, good_before = await party.evaluate(INBOUND), await host.evaluate(INBOUND)
        await asyncio.sleep(seconds)
        weak = summary(weak_before, await party.evaluate(INBOUND), seconds)
        good = summary(good_before, await host.evaluate(INBOUND), seconds)
        held = await party.locator("#grid .tile.held").count()  # videos the server holds back from the party
        for page in (party, host):
            await page.context.close()
        return weak, good, held
    finally:
        await normal.close()
        await weak_browser.close()


async def run(link_kbps: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as folder:
        wrapper = PARTY.chromium(Path(folder))
        shape(link_kbps)
        server, task, port, session = await start_server(Path(folder))
        try:
            print(f"The party's Chromium on a {link_kbps} kbit/s link (tbf, 250 ms queue); host and expert in "
                  f"Chromium publishing; {SETTLE_S} s to settle, then {seconds:.0f} s measured")
            print("  publishers   party: video fps (worse)  width  frozen s  audio concealed (worse)  "
                  "| host (good link): fps  width  each video")
            async with async_playwright() as playwright:
                for simulcast in (True, False):
                    weak, good, weak_held = await one_run(playwright, str(wrapper), session, port, seconds, simulcast)
                    print(f"  {'simulcast' if simulcast else 'one layer':<11}  {weak['fps']:10.1f} ({weak['videos']:.0f} videos)"
                          f"   {weak['width']:5.0f}   {weak['frozen_s']:6.1f}        {weak['concealed']:7.1%}"
                          f"              |          {good['fps']:5.1f}  {good['width']:5.0f}  {good['each']}"
                          f"; party's each video {weak['each']}, tiles held back: {weak_held}", flush=True)
        finally:
            server.should_exit = True
            await task
            PARTY.remove()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--link-kbps", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    if os.geteuid() != 0 or not shutil.which("tc") or not shutil.which("ip"):
        sys.exit("this benchmark needs root, ip and tc (a network namespace and a tbf qdisc)")
    asyncio.run(run(args.link_kbps, args.seconds))


if __name__ == "__main__":
    main()
