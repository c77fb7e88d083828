"""Recording: only after every party consents, a persistent indicator, a playable file."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import av
import pytest

from signaling.errors import SignalingError
from tests.signaling.test_forwarding import Harness, wait_until


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(recordings_dir=tmp_path / "recordings")
    yield h
    await h.close()


async def test_recording_waits_for_every_party_and_produces_playable_files(harness: Harness, tmp_path: Path) -> None:
    await harness.add(0, kind="host")
    await harness.add(1, kind="party")
    await harness.add(2, kind="party")
    for p in ("p1", "p2"):
        await harness.moderate("p0", "admit", peer_id=p)
    await harness.moderate("p0", "recording_start")
    for p in ("p1", "p2"):
        assert any(m["type"] == "consent_request" for m in harness.seen[p])
    await harness.engine.handle("p1", {"type": "consent", "agree": True})
    await asyncio.sleep(0.5)
    assert not harness.engine.rooms["room-1"].recording  # one party has not answered
    assert not (tmp_path / "recordings").exists() or not list((tmp_path / "recordings").iterdir())
    await harness.engine.handle("p2", {"type": "consent", "agree": True})
    assert harness.engine.rooms["room-1"].recording
    for p in ("p0", "p1", "p2"):
        assert {"type": "recording", "active": True} in harness.seen[p]
    participants = [m for m in harness.seen["p1"] if m["type"] == "participants"]
    assert participants[-1]["recording"] is True  # the persistent indicator
    # Record until every file has begun and two seconds' frames of p0 have gone through the
    # server (as many as reached p1), however long a busy machine takes for that.
    shown = harness.clients["p1"].received_from("p0").video_frames
    recordings = tmp_path / "recordings"
    await wait_until(lambda: recordings.exists() and len([f for f in recordings.iterdir() if f.stat().st_size > 0]) == 3
                     and harness.clients["p1"].received_from("p0").video_frames >= shown + 60, 120)
    # Everyone hears that recording stopped before the files are closed and recorded (slow
    # here: each record takes 1 s), not after (the indicator stayed on meanwhile).
    harness.record_delay_s = 1.0
    stopping = asyncio.create_task(harness.moderate("p0", "recording_stop"))
    await wait_until(lambda: {"type": "recording", "active": False} in harness.seen["p1"], 10)
    assert not stopping.done()
    await stopping
    harness.record_delay_s = 0.0
    files = [e for e in harness.records if e["kind"] == "recording"]
    assert len(files) == 3 and all(e["bytes"] > 0 for e in files)
    consents = [e for e in harness.records if e["kind"] == "consent"]
    assert [(c["peer_id"], c["agree"]) for c in consents] == [("p1", True), ("p2", True)] and all(c["at"] for c in consents)
    container = av.open(files[0]["file"])
    video = sum(1 for _ in container.decode(video=0))
    container = av.open(files[0]["file"])
    audio = sum(1 for _ in container.decode(audio=0))
    assert video >= 30 and audio >= 50, (video, audio)
    # Decoding stopped with the recording: no taps remain.
    for peer in harness.engine.router.peers.values():
        assert peer.video.taps == [] and peer.audio.taps == []


async def test_one_refusal_means_no_recording(harness: Harness) -> None:
    await harness.add(0, kind="host")
    await harness.add(1, kind="party")
    await harness.moderate("p0", "admit", peer_id="p1")
    await harness.moderate("p0", "recording_start")
    await harness.engine.handle("p1", {"type": "consent", "agree": False})
    assert not harness.engine.rooms["room-1"].recording
    assert {"type": "recording", "active": False, "declined_by": "客户1"} in harness.seen["p0"]
    with pytest.raises(SignalingError):
        await harness.engine.handle("p1", {"type": "consent", "agree": True})  # nobody is asking now
    assert all(peer.video.taps == [] for peer in harness.engine.router.peers.values())
    await wait_until(lambda: True)


async def test_parties_consenting_at_the_same_moment(harness: Harness) -> None:
    harness.record_delay_s = 0.05  # like a database write
    await harness.add(0, kind="host")
    await harness.add(1, kind="party")
    await harness.add(2, kind="party")
    for p in ("p1", "p2"):
        await harness.moderate("p0", "admit", peer_id=p)
    await harness.moderate("p0", "recording_start")
    await asyncio.gather(*(harness.engine.handle(p, {"type": "consent", "agree": True}) for p in ("p1", "p2")))
    assert harness.engine.rooms["room-1"].recording
    assert [e["kind"] for e in harness.records].count("recording_started") == 1
    await harness.moderate("p0", "recording_stop")
