"""What the browser tests and benchmarks share: Debian's Chromium, its flags (fake camera and
microphone), and a script that keeps every RTCPeerConnection a page makes, to read its statistics."""
from __future__ import annotations

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
