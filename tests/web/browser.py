"""What the browser tests and benchmarks share: Debian's Chromium, its flags (fake camera and
microphone), and a script that keeps every RTCPeerConnection a page makes, to read its statistics."""
from __future__ import annotations

import asyncio
import time
from typing import Any

FLAGS = [
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", "--no-sandbox",
    "--disable-background-networking", "--disable-component-update", "--no-first-run",
    "--disable-gpu", "--autoplay-policy=no-user-gesture-required",
]

# Every RTCPeerConnection the page makes (window.peerConnections), for reading its statistics.
KEEP_PEER_CONNECTIONS = """(() => {
  const Original = window.RTCPeerConnection;
  window.peerConnections = [];
  window.RTCPeerConnection = function (...args) {
    const pc = new Original(...args);
    window.peerConnections.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Original.prototype;
  Object.assign(window.RTCPeerConnection, Original);
})();"""


# The newest peer connection of the page: its number, state, video frames decoded and video
# packets received so far.
LATEST = """async () => {
  const pcs = window.peerConnections;
  const pc = pcs[pcs.length - 1];
  if (!pc) return [0, "", 0, 0];
  let frames = 0, packets = 0;
  for (const report of (await pc.getStats()).values()) {
    if (report.type === "inbound-rtp" && report.kind === "video") {
      frames += report.framesDecoded || 0;
      packets += report.packetsReceived || 0;
    }
  }
  return [pcs.length, pc.connectionState, frames, packets];
}"""


async def receiving(page: Any, after: int = 0, timeout_s: float = 30) -> list[Any]:
    """Wait until the page's peer connection (a newer one than number `after`) is connected and
    decodes video; its [number, state, frames, packets]."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        first = await page.evaluate(LATEST)
        await asyncio.sleep(0.5)
        second = await page.evaluate(LATEST)
        if second[0] > after and second[0] == first[0] and second[1] == "connected" and second[2] > first[2] > 0:
            return list(second)
    raise AssertionError(f"no video on a new connection: {await page.evaluate(LATEST)}; "
                         f"page: {await page.inner_text('#room')!r}")


# What the room page shows and plays, to compare twice: whether every remote <video> and every
# voice's <audio> plays a live track of the newest peer connection (none of an older one), each
# video's time and a thumbnail of its pixels, the voices' samples received and the status line.
PAGE_MEDIA = """async () => {
  const pcs = window.peerConnections;
  const pc = pcs[pcs.length - 1];
  if (!pc) return null;
  const current = new Set(pc.getReceivers().map((receiver) => receiver.track));
  const videos = [...document.querySelectorAll("#grid .tile[data-slot]:not(.voice) video")];
  const audios = [...document.querySelectorAll("#voices audio")];
  const stale = [...videos, ...audios].filter((element) => !element.srcObject
    || element.srcObject.getTracks().some((track) => !current.has(track) || track.readyState !== "live")).length;
  const canvas = document.createElement("canvas");
  canvas.width = 32;
  canvas.height = 24;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  const looks = videos.map((video) => {
    context.drawImage(video, 0, 0, 32, 24);
    return Array.from(context.getImageData(0, 0, 32, 24).data);
  });
  let samples = 0;
  for (const report of (await pc.getStats()).values()) {
    if (report.type === "inbound-rtp" && report.kind === "audio") samples += report.totalSamplesReceived || 0;
  }
  return { connections: pcs.length, state: pc.connectionState, videos: videos.length, voices: audios.length, stale,
           times: videos.map((video) => video.currentTime), looks, samples,
           status: document.querySelector("#status").textContent };
}"""


async def shows_the_room(page: Any, videos: int, voices: int, after: int = 0, timeout_s: float = 30) -> int:
    """Wait until the page, on a peer connection newer than number `after`, shows `videos` remote
    videos whose time advances and whose pixels change and plays `voices` voices whose samples
    grow, all from that connection's live tracks, with an empty status line; its number."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        first = await page.evaluate(PAGE_MEDIA)
        await asyncio.sleep(1)
        second = await page.evaluate(PAGE_MEDIA)
        last = second and {key: value for key, value in second.items() if key != "looks"}
        if not first or not second or first["connections"] != second["connections"] or second["connections"] <= after:
            continue
        moving = [b > a for a, b in zip(first["times"], second["times"])]
        changing = [sum(abs(x - y) for x, y in zip(a, b)) > 500 for a, b in zip(first["looks"], second["looks"])]
        if (second["state"] == "connected" and second["stale"] == 0 and second["videos"] == videos
                and second["voices"] == voices and all(moving) and all(changing)
                and second["samples"] > first["samples"] and not second["status"]):
            return int(second["connections"])
    raise AssertionError(f"the page does not show the room: {last}; page: {await page.inner_text('#room')!r}")


DESKTOP_PAGE = {"viewport": {"width": 1440, "height": 900}, "device_scale_factor": 2}  # staff: HiDPI
PHONE_PAGE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3, "is_mobile": True, "has_touch": True}


async def enter_room(browser: Any, url: str, device: dict[str, Any]) -> Any:
    """A new page on a device (DESKTOP_PAGE or PHONE_PAGE) that opens an invite link and presses 进入调解室;
    it keeps its peer connections (KEEP_PEER_CONNECTIONS)."""
    context = await browser.new_context(locale="zh-CN", **device)
    await context.add_init_script(KEEP_PEER_CONNECTIONS)
    page = await context.new_page()
    await page.goto(url)
    await page.click("#enter")
    return page


async def until(page: Any, expression: str, timeout_s: float = 15) -> None:
    """Wait for an expression to hold, polled with evaluate (wait_for_function's polling evaluates
    a string, which the pages' CSP refuses); a page that reloads meanwhile is asked again."""
    from playwright.async_api import Error as PlaywrightError

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if await page.evaluate(expression):
                return
        except PlaywrightError:  # the page navigated while it was asked
            pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"never true: {expression}")

