"""Benchmark: a party on a slow mobile link, with and without the downlink budgets, in one run.

Three real aiortc peers in one room of the forwarding engine: two publishers sending moving
320x240 video and voice (encoders in a browser's range: VP8 down to 30 kbit/s, Opus at
32 kbit/s), and a party whose downlink is shaped in its own client to LINK kbit/s (a queue
drained at that rate, drop-tail past 250 ms, as a real bottleneck). Each trial lets the room
settle, then measures 8 s: what the server offered the link, the party's REMB estimate, where
the publishers were steered, and the share of each publisher's audio frames and the video
frames per second that reached the party. The same trials run with the budgets switched off
(no video budget, every NACK answered), as the engine was before them.

    .venv/bin/python bench/weak_link.py [--trials 3] [--link-kbps 300]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from signaling import bandwidth  # noqa: E402
from signaling.rooms import MediaEngine  # noqa: E402
from tests.signaling.media_client import MediaClient, browser_like_encoders  # noqa: E402

SETTLE_S, MEASURE_S = 6, 8


def budgets(on: bool) -> None:
    """Switch the downlink budgets off by making every link unlimited, or back on."""
    if on:
        bandwidth.Downlink.limited = _LIMITED  # type: ignore[method-assign]
    else:
        bandwidth.Downlink.limited = property(lambda self: False)  # type: ignore[method-assign, assignment]
        bandwidth.Downlink.admit_retransmission = lambda self, size: True  # type: ignore[method-assign]


_LIMITED = bandwidth.Downlink.limited
_ADMIT = bandwidth.Downlink.admit_retransmission


async def trial(link_bps: int) -> dict[str, float]:
    clients: dict[str, MediaClient] = {}
    answers: dict[str, asyncio.Queue[str]] = {f"p{i}": asyncio.Queue() for i in range(3)}

    async def emit(peer_id: str, message: dict[str, Any]) -> None:
        if peer_id in clients:
            clients[peer_id].on_message(message)
        if message["type"] == "answer":
            await answers[peer_id].put(message["sdp"])

    engine = MediaEngine(emit)
    try:
        for index in range(3):
            peer_id = f"p{index}"
            clients[peer_id] = MediaClient(index, moving=index < 2)
            await engine.join("room", peer_id, {"name": peer_id, "role": "expert", "kind": "expert"})
            await engine.handle(peer_id, {"type": "offer", "sdp": await clients[peer_id].offer()})
            await clients[peer_id].accept(await asyncio.wait_for(answers[peer_id].get(), 10))
        weak = clients["p2"]
        weak.impair_downlink(link_bps)
        await asyncio.sleep(SETTLE_S)
        offered = weak.downlink_offered
        before = {p: (weak.received_from(p).audio_frames, weak.received_from(p).video_frames) for p in ("p0", "p1")}
        await asyncio.sleep(MEASURE_S)
        audio = [(weak.received_from(p).audio_frames - before[p][0]) / (MEASURE_S * 50) for p in ("p0", "p1")]
        fps = [(weak.received_from(p).video_frames - before[p][1]) / MEASURE_S for p in ("p0", "p1")]
        encoders = [clients[p].pc.getTransceivers()[1].sender._RTCRtpSender__encoder for p in ("p0", "p1")]
        return {
            "offered_kbps": (weak.downlink_offered - offered) * 8 / MEASURE_S / 1000,
            "estimate_kbps": (engine.peers["p2"].downlink.estimate_bps or 0) / 1000,
            "steered_kbps": statistics.mean(e.target_bitrate for e in encoders) / 1000,
            "audio": min(audio), "fps": min(fps),
        }
    finally:
        for client in clients.values():
            await client.close()
        await engine.close()


async def run(trials: int, link_bps: int) -> None:
    browser_like_encoders()
    print(f"A party on a {link_bps // 1000} kbit/s downlink, two publishers; {trials} trials each; "
          f"measured over {MEASURE_S} s after {SETTLE_S} s")
    print("  budgets  trial  offered kbit/s  REMB kbit/s  publishers kbit/s  audio arrived (worse)  video fps (worse)")
    for on in (True, False):
        budgets(on)
        rows = [await trial(link_bps) for _ in range(trials)]
        for n, row in enumerate(rows, 1):
            print(f"  {'on ' if on else 'off'}      {n}      {row['offered_kbps']:8.0f}      {row['estimate_kbps']:8.0f}"
                  f"      {row['steered_kbps']:8.0f}          {row['audio']:6.1%}               {row['fps']:5.1f}")
        print(f"  {'on ' if on else 'off'}  median  {statistics.median(r['offered_kbps'] for r in rows):8.0f}"
              f"      {statistics.median(r['estimate_kbps'] for r in rows):8.0f}"
              f"      {statistics.median(r['steered_kbps'] for r in rows):8.0f}"
              f"          {statistics.median(r['audio'] for r in rows):6.1%}               "
              f"{statistics.median(r['fps'] for r in rows):5.1f}")
    budgets(True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--link-kbps", type=int, default=300)
    args = parser.parse_args()
    asyncio.run(run(args.trials, args.link_kbps * 1000))


if __name__ == "__main__":
    main()
