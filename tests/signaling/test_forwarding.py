"""The forwarding engine with real aiortc clients: what arrives is what was sent, undecoded."""
from __future__ import annotations

import asyncio
import gc
import re
import weakref
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from signaling.room.rooms import Rooms
from tests.signaling.media_client import COLOURS, TONES, MediaClient, browser_like_encoders


class Harness:
    """An engine and its clients in one event loop."""

    def __init__(self, **engine_options: Any) -> None:
        self.inbox: dict[str, asyncio.Queue[dict[str, Any]]] = defaultdict(asyncio.Queue)
        self.seen: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.records: list[dict[str, Any]] = []
        self.clients: dict[str, MediaClient] = {}
        self.record_delay_s = 0.0  # how long keeping a record of an event takes (a database write)
        self.engine = Rooms(self._emit, record=self._record, **engine_options)

    async def _record(self, room_id: str, event: dict[str, Any]) -> None:
        if self.record_delay_s:
            await asyncio.sleep(self.record_delay_s)
        self.records.append(event)

    async def _emit(self, peer_id: str, message: dict[str, Any]) -> None:
        client = self.clients.get(peer_id)
        if client is not None:
            client.on_message(message)
        self.seen[peer_id].append(message)
        await self.inbox[peer_id].put(message)

    async def next(self, peer_id: str, kind: str) -> dict[str, Any]:
        while True:
            message = await asyncio.wait_for(self.inbox[peer_id].get(), 10)
            if message["type"] == kind:
                return message

    async def add(self, index: int, room: str = "room-1", kind: str = "expert", volume: float = 1.0,
                  **client_options: Any) -> MediaClient:
        peer_id = f"p{index}"
        client = MediaClient(index, volume, **client_options)
        self.clients[peer_id] = client
        await self.engine.join(room, peer_id, {"name": f"客户{index}", "role": kind, "kind": kind})
        await self.connect(peer_id, client)
        return client

    async def connect(self, peer_id: str, client: MediaClient) -> None:
        """Offer and answer for a joined participant."""
        await self.engine.handle(peer_id, {"type": "offer", "sdp": await client.offer()})
        await client.accept((await self.next(peer_id, "answer"))["sdp"])

    async def moderate(self, host: str, action: str, **fields: Any) -> None:
        await self.engine.handle(host, {"type": "moderate", "action": action, **fields})

    async def close(self) -> None:
        for client in self.clients.values():
            await client.close()
        await self.engine.close()


async def wait_until(condition: Callable[[], bool], timeout_s: float = 15) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def close_to(a: tuple[int, ...] | None, b: tuple[int, ...], tolerance: int = 12) -> bool:
    return a is not None and all(abs(x - y) <= tolerance for x, y in zip(a, b))


async def test_three_clients_each_receive_the_other_two(harness: Harness) -> None:
    clients = [await harness.add(i) for i in range(3)]

    def everyone_sees_everyone() -> bool:
        for me, client in enumerate(clients):
            for other in range(3):
                if other == me:
                    continue
                if f"p{other}" not in client.slot_owner:
                    return False
                got = client.received_from(f"p{other}")
                if got.video_frames < 10 or got.audio_frames < 20:
                    return False
        return True

    await wait_until(everyone_sees_everyone, 20)
    for me, client in enumerate(clients):
        assert sorted(p for p in client.slot_owner if p) == sorted(f"p{o}" for o in range(3) if o != me)
        for other in range(3):
            if other == me:
                continue
            got = client.received_from(f"p{other}")
            assert close_to(got.last_yuv, COLOURS[other]), (me, other, got.last_yuv)
            assert got.tone is not None and abs(got.tone - TONES[other]) < 40, (me, other, got.tone)
        # Nobody receives their own media.
        assert f"p{me}" not in client.slot_owner


async def test_server_neither_decodes_nor_encodes(harness: Harness) -> None:
    clients = [await harness.add(i) for i in range(2)]
    await wait_until(lambda: all(c.slots[0].video_frames >= 10 for c in clients))
    for peer in harness.engine.router.peers.values():
        for transceiver in peer.pc.getTransceivers():
            assert transceiver.receiver._RTCRtpReceiver__decoder_thread is None
            assert transceiver.sender._RTCRtpSender__encoder is None
        assert peer.video.packets > 0
    assert harness.engine.stats()["forwarded_packets"] > 0


async def test_late_joiner_gets_a_keyframe_within_a_second(harness: Harness) -> None:
    first = await harness.add(0)
    await harness.add(1)
    await wait_until(lambda: first.slots[0].video_frames >= 30)  # well past the first keyframe
    loop = asyncio.get_running_loop()
    late = await harness.add(2)
    # From the moment media can flow to the late joiner (ICE and DTLS done; on a busy 2-core
    # machine that alone can take most of a second), its first decodable frames come at once:
    # the engine asks the publishers for a keyframe instead of waiting for the next one.
    await wait_until(lambda: late.pc.connectionState == "connected", 5)
    connected = loop.time()
    await wait_until(lambda: all(late.received_from(p).video_frames >= 1 for p in ("p0", "p1") if p in late.slot_owner)
                     and {"p0", "p1"} <= set(late.slot_owner), 5)
    for p in ("p0", "p1"):
        assert late.received_from(p).first_video_at - connected < 1.0


async def test_a_subscriber_gets_media_once_its_transport_is_up_with_a_keyframe_asked_for_then(
        harness: Harness) -> None:
    await harness.add(0)
    publisher = harness.engine.router.peers["p0"].video
    await wait_until(lambda: publisher.top is not None)
    client = MediaClient(1)
    harness.clients["p1"] = client
    await harness.engine.join("room-1", "p1", {"name": "客户1", "role": "expert", "kind": "expert"})
    await harness.engine.handle("p1", {"type": "offer", "sdp": await client.offer()})
    answer = (await harness.next("p1", "answer"))["sdp"]
    await asyncio.sleep(0.5)
    # Answered but not connected (ICE and DTLS to come): nothing is linked to it, and no keyframe
    # is asked for on its behalf (a browser answers one request in 300 ms: one it cannot take
    # would delay the one it can).
    server = harness.engine.router.peers["p1"]
    assert not server.connected and all(slot.participant_id is None for slot in server.slots)
    assert "slots" not in [m["type"] for m in harness.seen["p1"]]
    asked = publisher.top.last_pli
    await client.accept(answer)
    await wait_until(lambda: client.received_from("p0").video_frames >= 1, 10)
    assert server.connected and publisher.top.last_pli > asked


async def test_vanished_client_is_cleaned_up_and_others_continue(harness: Harness) -> None:
    clients = [await harness.add(i) for i in range(3)]
    await wait_until(lambda: all(c.slots[1].video_frames >= 5 for c in clients))
    gone = weakref.ref(harness.engine.router.peers["p2"])
    await clients[2].pc.close()  # no goodbye on the signaling channel
    await wait_until(lambda: "p2" not in harness.engine.router.peers, 40)
    for _ in range(20):  # aiortc's closing tasks let go of the peer within a few loop turns
        gc.collect()
        if gone() is None:
            break
        await asyncio.sleep(0.1)
    assert gone() is None, "the vanished peer is still referenced"
    assert all(p != "p2" for p in clients[0].slot_owner)
    before = clients[0].received_from("p1").video_frames
    await wait_until(lambda: clients[0].received_from("p1").video_frames > before + 10)
    for stream in (harness.engine.router.peers["p0"].video, harness.engine.router.peers["p1"].video):
        assert len(stream.subscriptions) == 1  # the vanished subscriber's senders are gone


async def test_subscriber_pli_reaches_publisher_rate_limited(harness: Harness) -> None:
    clients = [await harness.add(i) for i in range(2)]
    await wait_until(lambda: all(c.slots[0].video_frames >= 10 for c in clients))
    publisher_sender = clients[1].pc.getTransceivers()[1].sender
    requests: list[float] = []
    original = publisher_sender._send_keyframe

    def counting() -> None:
        requests.append(asyncio.get_running_loop().time())
        original()

    publisher_sender._send_keyframe = counting
    slot_receiver = clients[0].pc.getTransceivers()[3].receiver  # slot 0 video, showing p1
    server_ssrc = harness.engine.router.peers["p0"].slots[0].video.ssrc
    for _ in range(5):
        await slot_receiver._send_rtcp_pli(server_ssrc)
    await wait_until(lambda: len(requests) >= 1, 5)
    # The subscriber asks again every 0.1 s: the publisher is asked again, but never twice within
    # a second (five PLIs at once became one). The gaps are measured, not assumed: a busy machine
    # only makes them longer.
    deadline = asyncio.get_running_loop().time() + 20
    while len(requests) < 3:
        assert asyncio.get_running_loop().time() < deadline, requests
        await slot_receiver._send_rtcp_pli(server_ssrc)
        await asyncio.sleep(0.1)
    gaps = [later - earlier for earlier, later in zip(requests, requests[1:])]
    assert all(gap >= 0.9 for gap in gaps), gaps


async def test_answer_asks_for_opus_fec_and_dtx(harness: Harness) -> None:
    client = MediaClient(0)
    harness.clients["p0"] = client
    await harness.engine.join("room-1", "p0", {"name": "客户0", "role": "expert", "kind": "expert"})
    await harness.engine.handle("p0", {"type": "offer", "sdp": await client.offer()})
    answer = (await harness.next("p0", "answer"))["sdp"]
    opus = [line for line in answer.splitlines() if line.startswith("a=fmtp:") and "useinbandfec" in line]
    assert opus and all("useinbandfec=1" in line and "usedtx=1" in line for line in opus), answer
    await client.accept(answer)


async def test_a_lost_voice_packet_is_asked_for_and_resent(harness: Harness) -> None:
    # A browser NACKs audio only where the answer lists nack for Opus; its audio buffer then
    # waits a round trip for the packet instead of concealing the gap (5% loss: 5.6% concealed
    # before, 0.2% after, bench/weak_link_browser.py --only loss5).
    await harness.add(0)
    subscriber = await harness.add(1)
    await wait_until(lambda: "p0" in subscriber.slot_owner and subscriber.received_from("p0").audio_frames >= 10, 15)
    answer = subscriber.pc.remoteDescription.sdp
    for section in answer.split("m=audio")[1:]:
        opus = re.search(r"a=rtpmap:(\d+) opus/", section)
        assert opus and f"a=rtcp-fb:{opus.group(1)} nack" in section, section
    n = subscriber.slot_owner.index("p0")
    voice = harness.engine.router.peers["p1"].slots[n].audio
    receiver = subscriber.pc.getTransceivers()[3 + 2 * n].receiver
    await receiver._send_rtcp_nack(voice.ssrc, [(voice._last_seq - 2) & 0xFFFF])
    await wait_until(lambda: voice.retransmitted == 1, 5)


async def test_uplink_loss_is_repaired_at_the_server(harness: Harness) -> None:
    publisher = await harness.add(0)
    subscriber = await harness.add(1)
    await wait_until(lambda: "p0" in subscriber.slot_owner, 10)
    publisher.impair_uplink(every=10)  # 10% of the camera's and microphone's packets lost on the way
    stream = harness.engine.router.peers["p0"].video
    frames = subscriber.received_from("p0").video_frames
    # The server asks for what was lost and gets it, and the video goes on through the loss (its
    # frame rate is a benchmark's figure: bench/weak_link.py).
    await wait_until(lambda: publisher.uplink_dropped >= 30 and stream.nacks_sent > 0 and stream.recovered > 0, 30)
    await wait_until(lambda: subscriber.received_from("p0").video_frames >= frames + 60, 30)
    # The publisher is told its uplink is weak, and the others see it on its tile.
    await wait_until(lambda: {"type": "link", "downlink": "good", "uplink": "weak"} in harness.seen["p0"], 15)
    listed = [m for m in harness.seen["p1"] if m["type"] == "participants"][-1]["participants"]
    assert {p["peer_id"]: p["weak_link"] for p in listed} == {"p0": True, "p1": False}


class _RefusingSocket:
    """A socket whose kernel refuses every `every`-th datagram (EPERM, as a local firewall's
    drop; ENOBUFS or EAGAIN from a full send buffer are the same to the sender)."""

    def __init__(self, sock: Any, every: int) -> None:
        self.sock, self.every, self.sent, self.refused = sock, every, 0, 0

    def sendto(self, data: bytes, address: Any) -> int:
        self.sent += 1
        if self.sent % self.every == 0:
            self.refused += 1
            raise PermissionError(1, "Operation not permitted")
        return int(self.sock.sendto(data, address))

    def close(self) -> None:
        self.sock.close()


async def test_a_packet_the_kernel_refuses_is_lost_and_repaired_not_hidden(harness: Harness) -> None:
    # The server kept such a packet's number for the next one and waited for a keyframe: the
    # subscriber saw no gap, never asked for it again, and its video froze until the keyframe.
    await harness.add(0)
    subscriber = await harness.add(1)
    await wait_until(lambda: subscriber.received_from("p0").video_frames >= 10, 15)
    sender = harness.engine.router.peers["p1"]._sender
    refusing = sender._sock = _RefusingSocket(sender._sock, every=40)
    video = next(slot.video for slot in harness.engine.router.peers["p1"].slots if slot.video is not None)
    frames = subscriber.received_from("p0").video_frames
    # The subscriber sees the gaps and asks (NACK); the server resends. On a busy machine the
    # first NACKs may come when the resend budget is spent: waited for, not sampled once.
    await wait_until(lambda: refusing.refused >= 10 and subscriber.received_from("p0").video_frames >= frames + 60
                     and video.retransmitted > 0, 45)
    assert video.dropped == 0


async def assert_clean_voice(client: MediaClient, peer_id: str, before: tuple[int, int]) -> None:
    """peer_id's voice flows to client (at least 4 s of it since `before`, its voice_packets
    then, however long a busy machine takes), and less than 5% of it was lost on the way."""
    deadline = asyncio.get_running_loop().time() + 40
    while (await client.voice_packets(peer_id))[0] - before[0] < 200:
        assert asyncio.get_running_loop().time() < deadline, f"{peer_id}'s voice stopped"
        await asyncio.sleep(0.1)
    received, lost = await client.voice_packets(peer_id)
    received, lost = received - before[0], lost - before[1]
    assert lost < 0.05 * (received + lost), f"{lost} of {received + lost} packets of {peer_id}'s voice lost"


async def test_a_weak_subscriber_gets_the_small_layer_with_clean_audio(harness: Harness, monkeypatch) -> None:
    browser_like_encoders(monkeypatch.setattr)
    publishers = [await harness.add(i, moving=True, simulcast=True) for i in range(2)]
    weak = await harness.add(2)
    weak.impair_downlink(300_000)  # a rural 4G link: 300 kbit/s, drop-tail past 250 ms of queue
    # The server finds out what the link carries: both videos in the small layer.
    await wait_until(lambda: all(weak.received_from(p).last_width == 160 for p in ("p0", "p1")), 30)
    before = {p: weak.received_from(p).video_frames for p in ("p0", "p1")}
    voices = {p: await weak.voice_packets(p) for p in ("p0", "p1")}
    strong_before = publishers[1].received_from("p0").video_frames
    # Every voice clean and both videos going on, the strong subscriber still on the large layer
    # (the frame rates each gets are the benchmark's: bench/weak_link.py).
    for p in ("p0", "p1"):
        await assert_clean_voice(weak, p, voices[p])
    await wait_until(lambda: all(weak.received_from(p).video_frames >= before[p] + 40 for p in ("p0", "p1")), 40)
    await wait_until(lambda: publishers[1].received_from("p0").video_frames >= strong_before + 80, 40)
    assert [weak.received_from(p).last_width for p in ("p0", "p1")] == [160, 160]
    assert publishers[1].received_from("p0").last_width == 320  # the large layer
    assert weak.downlink_dropped > 0  # the link was really too small for the large layers
    # Its feedback reached the server: REMB, receiver reports (the budget holds it to what
    # they say arrived) and NACKs, answered within the budget.
    server = harness.engine.router.peers["p2"]
    assert server.downlink.remb_bps is not None and server.downlink.limited
    assert sum(slot.video.retransmitted for slot in server.slots) > 0
    # The weak subscriber is told its downlink is weak; the others see it on its tile.
    assert any(m["type"] == "link" and m["downlink"] == "weak" for m in harness.seen["p2"])
    listed = [m for m in harness.seen["p0"] if m["type"] == "participants"][-1]["participants"]
    assert {p["peer_id"]: p["weak_link"] for p in listed}["p2"] is True


async def test_a_link_too_weak_for_every_video_keeps_every_voice_and_the_speakers_video(
        harness: Harness, monkeypatch) -> None:
    # 200 kbit/s: the two voices take about 105k (Opus at 32k with its headers), and what is left
    # carries one small video (60k at 30 fps, about 75k on the wire), not two. (At 215-230k, two
    # videos squeezed to ~63k each nearly fit, and the server kept both in 1 run of 5 or 6.) (In rooms of five,
    # bench/media_capacity.py: five clients with their decoders do not fit in the test's process.)
    browser_like_encoders(monkeypatch.setattr)
    await harness.add(0, moving=True, simulcast=True)  # the speaker
    quiet = await harness.add(1, volume=0.002, moving=True, simulcast=True)
    weak = await harness.add(2, volume=0.002)
    weak.impair_downlink(200_000)
    # (The decision took 9.7-25.7 s in 13 local runs, and over 30 s and over 45 s once each in CI:
    # the link's estimate saw-tooths, 15% more each clean second until it loses again, and the
    # server holds a video back only in a stretch where the share stays low and most reports
    # are lossy or the budget refuses a fifth of the frames.)
    await wait_until(lambda: any(m["type"] == "bandwidth" and m["paused"] == ["p1"] for m in harness.seen["p2"]), 90)
    # The link settles on what it carries: the speaker's video comes through again.
    paused_at = weak.received_from("p0").video_frames
    await wait_until(lambda: weak.received_from("p0").video_frames >= paused_at + 20, 40)
    before = {p: weak.received_from(p).video_frames for p in ("p0", "p1")}
    voices = {p: await weak.voice_packets(p) for p in ("p0", "p1")}
    strong_before = quiet.received_from("p0").video_frames
    # Both voices clean and the speaker's video going on while the other is held back (the
    # speaker's frame rate is the benchmark's: bench/weak_link.py).
    for p in ("p0", "p1"):
        await assert_clean_voice(weak, p, voices[p])
    await wait_until(lambda: weak.received_from("p0").video_frames >= before["p0"] + 40, 40)
    assert weak.received_from("p1").video_frames - before["p1"] <= 2  # held back
    told = [m for m in harness.seen["p2"] if m["type"] == "bandwidth"][-1]
    assert told["paused"] == ["p1"] == harness.engine.router.peers["p2"].paused_video and not told["audio_only"]
    await wait_until(lambda: quiet.received_from("p0").video_frames >= strong_before + 80, 40)
    assert quiet.received_from("p0").last_width == 320  # the large layer


async def test_publishers_get_receiver_reports(harness: Harness) -> None:
    publisher = await harness.add(0)
    subscriber = await harness.add(1)
    await wait_until(lambda: "p0" in subscriber.slot_owner, 10)
    publisher.impair_uplink(every=10)  # the microphone's lost packets are not repaired: the report shows them

    async def remote_inbound() -> dict[str, Any]:
        stats = [s for s in (await publisher.pc.getStats()).values() if s.type == "remote-inbound-rtp"]
        return {s.kind: s for s in stats}

    stats: dict[str, Any] = {}
    for _ in range(60):
        stats = await remote_inbound()
        if stats.get("audio") is not None and stats["audio"].packetsLost >= 5 and stats["audio"].roundTripTime:
            break
        await asyncio.sleep(0.2)
    audio, video = stats.get("audio"), stats.get("video")
    assert audio is not None and video is not None, stats
    assert audio.packetsLost >= 5 and audio.fractionLost > 0, audio  # its encoder knows the uplink loses
    assert 0 < audio.roundTripTime < 0.5 and video.roundTripTime is not None  # from the LSR/DLSR of its SRs
    assert video.packetsLost <= audio.packetsLost  # the camera's were NACKed and repaired


async def test_subscribers_get_sender_reports_for_the_slots_that_send(harness: Harness) -> None:
    await harness.add(0)
    subscriber = await harness.add(1)
    await wait_until(lambda: subscriber.received_from("p0").video_frames >= 30, 15)
    stats: list[Any] = []
    for _ in range(40):  # reports come once a second
        stats = [s for s in (await subscriber.pc.getStats()).values() if s.type == "remote-outbound-rtp"]
        if {s.kind for s in stats} == {"audio", "video"}:
            break
        await asyncio.sleep(0.1)
    # One report each for the slot showing p0 (its voice and video); none for the seven empty slots.
    assert sorted(s.kind for s in stats) == ["audio", "video"], stats
    for report in stats:
        assert report.packetsSent > 0 and report.bytesSent > 0, report
        assert abs((report.remoteTimestamp - report.timestamp).total_seconds()) < 2, report
