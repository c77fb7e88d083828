"""Benchmark: a party on a slow mobile link, in one run: publishers in simulcast layers (as the
room page sends), publishers with one layer (a browser without simulcast, and the page before
it), and one layer with the downlink budgets switched off (forwarding as it first was).

Three real aiortc peers in one room of the forwarding engine: two publishers sending moving
320x240 video and voice (encoders in a browser's range: VP8 down to 30 kbit/s, Opus at
32 kbit/s; in simulcast a 160x120 layer at 60 kbit/s and the 320x240 one at 400 kbit/s), and a
party whose downlink is shaped in its own client to LINK kbit/s (a queue drained at that rate,
drop-tail past 250 ms, as a real bottleneck; its receiver repairs loss as a browser does). Each
trial lets the room settle, then measures: what the server offered the link, the share of each
publisher's audio frames and the video frames per second that reached the party (the worse
publisher), the width it received, and what the other publisher (a good link) received of the
first. A last trial measures a whole minute with simulcast (the server's first try at a larger
layer comes 2 minutes after the last loss: a try that fails costs a few seconds of loss).

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

from signaling.media import bandwidth  # noqa: E402
from signaling.room.rooms import Rooms  # noqa: E402
from tests.signaling.media_client import MediaClient, browser_like_encoders  # noqa: E402

SETTLE_S, MEASURE_S, LONG_S = 6, 8, 60
_LIMITED = bandwidth.Downlink.limited
_ADMIT = bandwidth.Downlink.admit_retransmission


def budgets(on: bool) -> None:
    """Switch the downlink budgets off by making every link unlimited, or back on."""
    if on:
        bandwidth.Downlink.limited = _LIMITED  # type: ignore[method-assign]
        bandwidth.Downlink.admit_retransmission = _ADMIT  # type: ignore[method-assign]
    else:
        bandwidth.Downlink.limited = property(lambda self: False)  # type: ignore[method-assign, assignment]
        bandwidth.Downlink.admit_retransmission = lambda self, size: True  # type: ignore[method-assign]


async def trial(link_bps: int, simulcast: bool, measure_s: float) -> dict[str, float]:
    clients: dict[str, MediaClient] = {}
    answers: dict[str, asyncio.Queue[str]] = {f"p{i}": asyncio.Queue() for i in range(3)}

    async def emit(peer_id: str, message: dict[str, Any]) -> None:
        if peer_id in clients:
            clients[peer_id].on_message(message)
        if message["type"] == "answer":
            await answers[peer_id].put(message["sdp"])

    engine = Rooms(emit)
    try:
        for index in range(3):
            peer_id = f"p{index}"
            clients[peer_id] = MediaClient(index, moving=index < 2, simulcast=simulcast and index < 2)
            await engine.join("room", peer_id, {"name": peer_id, "role": "expert", "kind": "expert"})
            await engine.handle(peer_id, {"type": "offer", "sdp": await clients[peer_id].offer()})
            await clients[peer_id].accept(await asyncio.wait_for(answers[peer_id].get(), 10))
        weak, good = clients["p2"], clients["p1"]
        weak.impair_downlink(link_bps)
        await asyncio.sleep(SETTLE_S)
        offered = weak.downlink_offered
        before = {p: (weak.received_from(p).audio_frames, weak.received_from(p).video_frames) for p in ("p0", "p1")}
        good_before = good.received_from("p0").video_frames
        await asyncio.sleep(measure_s)
        audio = [(weak.received_from(p).audio_frames - before[p][0]) / (measure_s * 50) for p in ("p0", "p1")]
        fps = [(weak.received_from(p).video_frames - before[p][1]) / measure_s for p in ("p0", "p1")]
        return {
            "offered_kbps": (weak.downlink_offered - offered) * 8 / measure_s / 1000,
            "audio": min(audio), "fps": min(fps),
            "width": min(weak.received_from(p).last_width for p in ("p0", "p1")),
            "good_fps": (good.received_from("p0").video_frames - good_before) / measure_s,
            "good_width": good.received_from("p0").last_width,
        }
    finally:
        for client in clients.values():
            await client.close()
        await engine.close()


HEADER = ("  run                   trial  offered kbit/s  audio arrived  video fps  width  "
          "| good link: fps  width")


def row(label: str, trial_label: str, r: dict[str, float]) -> str:
    return (f"  {label:<20}  {trial_label:>6}  {r['offered_kbps']:10.0f}      {r['audio']:8.1%}     {r['fps']:6.1f}"
            f"    {r['width']:4.0f}   |     {r['good_fps']:6.1f}   {r['good_width']:4.0f}")


async def run(trials: int, link_bps: int) -> None:
    browser_like_encoders()
    print(f"A party on a {link_bps // 1000} kbit/s downlink, two publishers; {trials} trials each; "
          f"measured over {MEASURE_S} s after {SETTLE_S} s (audio and fps: the worse publisher)")
    print(HEADER)
    for label, simulcast, on in (("simulcast", True, True), ("one layer", False, True),
                                 ("one layer, no budget", False, False)):
        budgets(on)
        rows = [await trial(link_bps, simulcast, MEASURE_S) for _ in range(trials)]
        for n, r in enumerate(rows, 1):
            print(row(label, str(n), r))
        print(row(label, "median", {key: statistics.median(r[key] for r in rows) for key in rows[0]}))
    budgets(True)
    print(f"  then one trial of {LONG_S} s with simulcast:")
    print(row("simulcast, 60 s", "1", await trial(link_bps, True, LONG_S)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--link-kbps", type=int, default=300)
    args = parser.parse_args()
    asyncio.run(run(args.trials, args.link_kbps * 1000))


if __name__ == "__main__":
    main()
