"""A party on a slow mobile link (300 kbit/s down, shaped in the test client: a queue drained at
that rate, as a real bottleneck's) in a room with two publishers, all real aiortc peers: the
party's REMB reaches the server (the forwarded video carries abs-send-time for it), the server
steers both publishers' encoders down by REMB, answers NACKs only within the budget (without
one, the lossy link's NACKs made the server offer it tens of Mbit/s), and the party's audio
stays whole."""
from __future__ import annotations

import asyncio

import aiortc.codecs.opus
import aiortc.codecs.vpx
import pytest

from tests.signaling.media_client import MediaClient
from tests.signaling.test_forwarding import Harness, wait_until

LINK_BPS = 300_000


@pytest.fixture
def browser_like_encoders(monkeypatch: pytest.MonkeyPatch) -> None:
    """Encoders in the range of a browser's: VP8 down to 30 kbit/s (aiortc stops at 250), Opus
    voice at 32 kbit/s (aiortc sends 96). Only the test clients encode; the server never does."""
    monkeypatch.setattr(aiortc.codecs.vpx, "MIN_BITRATE", 30_000)
    original = aiortc.codecs.opus.OpusEncoder.__init__

    def voice(self: aiortc.codecs.opus.OpusEncoder) -> None:
        original(self)
        self.codec.bit_rate = 32_000

    monkeypatch.setattr(aiortc.codecs.opus.OpusEncoder, "__init__", voice)


def _encoder_target(client: MediaClient) -> int:
    encoder = client.pc.getTransceivers()[1].sender._RTCRtpSender__encoder  # type: ignore[attr-defined]
    return int(encoder.target_bitrate)


async def test_weak_link_is_fed_within_its_estimate(browser_like_encoders: None) -> None:
    harness = Harness()
    try:
        publishers = []
        for index in (0, 1):
            client = MediaClient(index, moving=True)
            harness.clients[f"p{index}"] = client
            await harness.engine.join("room-1", f"p{index}", {"name": f"专家{index}", "role": "expert", "kind": "expert"})
            await harness.connect(f"p{index}", client)
            publishers.append(client)
        weak = MediaClient(2)
        harness.clients["p2"] = weak
        await harness.engine.join("room-1", "p2", {"name": "当事人", "role": "expert", "kind": "expert"})
        await harness.connect("p2", weak)
        weak.impair_downlink(LINK_BPS)
        await wait_until(lambda: all(p in weak.slot_owner for p in ("p0", "p1")), 10)
        downlink = harness.engine.peers["p2"].downlink
        await wait_until(lambda: downlink.estimate_bps is not None, 10)

        await asyncio.sleep(3)
        offered_before = weak.downlink_offered
        audio_before = {p: weak.received_from(p).audio_frames for p in ("p0", "p1")}
        video_before = {p: weak.received_from(p).video_frames for p in ("p0", "p1")}
        await asyncio.sleep(8)
        offered_bps = (weak.downlink_offered - offered_before) * 8 / 8
        audio = {p: (weak.received_from(p).audio_frames - audio_before[p]) / (8 * 50) for p in ("p0", "p1")}
        fps = {p: (weak.received_from(p).video_frames - video_before[p]) / 8 for p in ("p0", "p1")}
        targets = [_encoder_target(p) for p in publishers]
        print(f"weak link: estimate {downlink.estimate_bps} bit/s, offered {offered_bps:.0f} bit/s, "
              f"publishers steered to {targets}, audio {audio}, video fps {fps} (not yet a target here: see issue 12), "
              f"NACK answers dropped {downlink.dropped_retransmissions}")
        assert downlink.estimate_bps < 2 * LINK_BPS
        assert all(target <= 200_000 for target in targets), targets  # steered down from aiortc's 500k
        assert offered_bps <= 1.5 * LINK_BPS, offered_bps  # what the server sends stays near the link
        assert all(share >= 0.95 for share in audio.values()), audio
    finally:
        await harness.close()
