"""What the browser tests and benchmarks share: Debian's Chromium, its flags (fake camera and
microphone), and a script that keeps every RTCPeerConnection a page makes, to read its statistics."""
from __future__ import annotations

import asyncio
import time
from typing import Any

CHROMIUM = "/usr/bin/chromium"
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
