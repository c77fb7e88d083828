"""Media capacity: 5-person rooms on one server core, the forwarding engine against stock aiortc.

    .venv/bin/python bench/media_capacity.py [--window 8] [--max-rooms 16] [--loss 0.01] [--profile]

A server process runs either Tiaojie's forwarding engine (signaling/room/rooms.py) or a "stock"
aiortc SFU (MediaRelay: every received track decoded, and encoded again in every subscriber's
sender). The server is pinned to core 0; the rooms' clients (one process per room of 5) to core
1, and their CPU is printed, so the load generator is off the server's core and it shows when it
is the limit. Clients publish pre-encoded VP8 and Opus and count received frames from the
decrypted RTP headers (no decoding), and they send the feedback a browser sends: a receiver
report for every stream each second, a NACK for every gap at once (each client loses LOSS of
what it receives, as a real network does), and a PLI every 10 s. With simulcast (as the room
page publishes) each camera sends 640x480 at 30 fps, ~0.85 Mbit/s, and 320x240 at 15 fps, 50 kbit/s.

Printed per level: delivered video streams (publisher to subscriber, times the share of frames
that arrived), the server's CPU (share of its core) and CPU per delivered stream-second, the
streams per core observed (delivered streams / core share used), frame loss, latency (p50, p99,
publisher send to subscriber receive on one clock), the server's loop lag. First stock and the
engine on the same room of 5 with one layer each (stock cannot take simulcast); then the engine
with simulcast at 1, 2, 4 ... rooms until loss passes 1% or the clients' core is saturated (95%:
their packets go out late, and the figure would be the load generator's); then that level again
with one subscriber per room held to 300 kbit/s (a policer counting whole IP packets, 250 ms of
burst): how many of the four cameras it gets at 10 fps or more, its best camera's frame rate,
and the share of each voice's packets that reached it.
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import multiprocessing
import os
import pstats
import re
import struct
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from signaling.media.forwarding import header_extension  # noqa: E402
from signaling.media.transport_cc import FEEDBACK_INTERVAL_S, TRANSPORT_CC_URI, ArrivalLog  # noqa: E402

ROOM_SIZE = 5
FPS = 30
SMALL_FPS = 15
SERVER_CORE, CLIENT_CORE = 0, 1
CLIENTS_SATURATED = 0.95  # a level whose clients' core is this busy measures the load generator
RID_ID = 10
TRANSPORT_CC_ID = 5
WEAK_BPS = 300_000
UDP_IP_HEADERS = 28  # what the weak link counts of each datagram besides itself
WEAK_SETTLE_S = 30  # the weak link moves to small layers, then finds how many videos it carries
_HEADER = struct.Struct("!BBHII")


def _pin(core: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > core:
        os.sched_setaffinity(0, {core})


# ---------------------------------------------------------------- media to publish

def encode_media(seconds: int = 4) -> dict[str, list[Any]]:
    """VP8 frames as RTP payloads (a keyframe every 2 s), as the room page asks a browser for
    them: 640x480 at 30 fps ("h") and 320x240 at 15 fps and 50 kbit/s ("l", web/static/room.js),
    each in two temporal layers as a browser's simulcast has them (tests/signaling/media_client.py);
    and 20 ms Opus packets at a browser's voice bitrate, 32 kbit/s ("opus")."""
    import av

    from signaling.media.bandwidth import SMALL_LAYER_BPS
    from tests.signaling.media_client import layered_vp8

    media: dict[str, list[Any]] = {
        "h": layered_vp8(640, 480, FPS, 1_000_000, seconds * FPS),
        "l": layered_vp8(320, 240, SMALL_FPS, SMALL_LAYER_BPS, seconds * SMALL_FPS),
    }
    opus = av.CodecContext.create("libopus", "w")
    opus.sample_rate, opus.layout, opus.format, opus.bit_rate = 48000, "stereo", "s16", 32000
    opus.options = {"vbr": "constrained"}  # (unconstrained, this noise-like input takes 52 kbit/s)
    packets: list[bytes] = []
    for i in range(50):
        audio = av.AudioFrame(format="s16", layout="stereo", samples=960)
        audio.planes[0].update(bytes((i + x) % 256 for x in range(3840)))
        audio.sample_rate, audio.pts = 48000, i * 960
        packets += [bytes(p) for p in opus.encode(audio)]
    media["opus"] = packets
    return media


# ---------------------------------------------------------------- stock baseline

class StockEngine:
    """The stock aiortc way: decode every received track, encode for every subscriber."""

    def __init__(self, emit: Any) -> None:
        from aiortc.contrib.media import MediaRelay

        self._emit = emit
        self.relay = MediaRelay()
        self.peers: dict[str, dict[str, Any]] = {}
        self.rooms: dict[str, list[str]] = {}

    async def join(self, room: str, peer_id: str, info: dict[str, Any]) -> None:
        self.peers[peer_id] = {"room": room}
        self.rooms.setdefault(room, []).append(peer_id)
        await self._emit(peer_id, {"type": "joined", "peer_id": peer_id})

    async def handle(self, peer_id: str, message: dict[str, Any]) -> None:
        from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription

        from signaling.media.peers import SLOTS

        pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        await pc.setRemoteDescription(RTCSessionDescription(sdp=message["sdp"], type="offer"))
        transceivers = pc.getTransceivers()
        for t in transceivers:
            wanted = "video/VP8" if t.kind == "video" else "audio/opus"
            t.setCodecPreferences([c for c in RTCRtpSender.getCapabilities(t.kind).codecs if c.mimeType == wanted])
        for t in transceivers[3:]:
            t.direction = "sendonly"
        await pc.setLocalDescription(await pc.createAnswer())
        peer = self.peers[peer_id]
        peer.update(pc=pc, tracks=(transceivers[0].receiver.track, transceivers[1].receiver.track), slots=transceivers[3:], used=0, shows=[])
        await self._emit(peer_id, {"type": "answer", "sdp": pc.localDescription.sdp})
        for other_id in self.rooms[peer["room"]]:
            other = self.peers[other_id]
            if other_id == peer_id or "pc" not in other:
                continue
            for sub, pub, sub_id, pub_id in ((peer, other, peer_id, other_id), (other, peer, other_id, peer_id)):
                n = sub["used"]
                sub["used"] += 1
                sub["slots"][2 * n].sender.replaceTrack(self.relay.subscribe(pub["tracks"][0]))
                sub["slots"][2 * n + 1].sender.replaceTrack(self.relay.subscribe(pub["tracks"][1]))
                sub["shows"].append(pub_id)
                await self._emit(sub_id, {"type": "slots", "slots": sub["shows"] + [None] * (SLOTS - len(sub["shows"]))})

    async def leave(self, peer_id: str) -> None:
        peer = self.peers.pop(peer_id, None)
        if peer and "pc" in peer:
            await peer["pc"].close()
        for members in self.rooms.values():
            if peer_id in members:
                members.remove(peer_id)


# ---------------------------------------------------------------- server process

def server_main(mode: str, port_queue: Any, profile: bool) -> None:
    import logging

    _pin(SERVER_CORE)
    logging.basicConfig(level=logging.WARNING)
    if os.environ.get("BENCH_DEBUG"):
        logging.getLogger("signaling.media.peers").setLevel(logging.INFO)
        logging.getLogger("signaling.media.bandwidth").setLevel(logging.DEBUG)
    from foundation import aio

    aio.run(_serve(mode, port_queue, profile))  # the loop the server and its media workers run on


async def _serve(mode: str, port_queue: Any, profile: bool) -> None:
    from signaling.room.rooms import Rooms

    writers: dict[str, asyncio.StreamWriter] = {}

    async def emit(peer_id: str, message: dict[str, Any]) -> None:
        writer = writers.get(peer_id)
        if writer is not None and not writer.is_closing():
            writer.write((json.dumps({"peer": peer_id, "message": message}) + "\n").encode())

    engine: Any = Rooms(emit) if mode == "forward" else StockEngine(emit)
    lags: list[float] = []
    profiler = cProfile.Profile() if profile else None

    async def watch_lag() -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(0.01)
            lags.append(max(0.0, loop.time() - started - 0.01))

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        mine: list[str] = []
        try:
            await _requests(reader, writer, mine)
        except ConnectionError:  # (reset, or a broken pipe)
            pass  # the room's process ended
        for peer_id in mine:
            writers.pop(peer_id, None)
            await engine.leave(peer_id)

    async def _requests(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, mine: list[str]) -> None:
        async for line in reader:
            request = json.loads(line)
            op = request["op"]
            if op == "join":
                writers[request["peer"]] = writer
                mine.append(request["peer"])
                # Experts join straight into the room (parties would wait in the lobby).
                await engine.join(request["room"], request["peer"], {"name": request["peer"], "role": "lawyer", "kind": "expert"})
            elif op == "msg":
                await engine.handle(request["peer"], request["message"])
            elif op == "measure":
                if request.get("start"):
                    lags.clear()
                    if profiler:
                        profiler.enable()
                elif profiler:
                    profiler.disable()
                backlog = _udp_backlog(engine) if mode == "forward" else 0
                writer.write((json.dumps({"cpu": time.process_time(), "lag": sorted(lags), "backlog": backlog}) + "\n").encode())
            elif op == "profile" and profiler:
                out = io.StringIO()
                pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(30)
                writer.write((json.dumps({"profile": out.getvalue()}) + "\n").encode())

    asyncio.create_task(watch_lag())
    server = await asyncio.start_server(on_client, "127.0.0.1", 0, limit=2**22)
    port_queue.put(server.sockets[0].getsockname()[1])
    await server.serve_forever()


def _udp_backlog(engine: Any) -> int:
    total = 0
    for peer in engine.router.peers.values():
        pair = peer.pc.getTransceivers()[0].receiver.transport.transport._connection._nominated.get(1)
        if pair is not None and pair.protocol.transport is not None:
            total += pair.protocol.transport.get_write_buffer_size()
    return total


# ---------------------------------------------------------------- client process (one room)

def intercept_datagrams(transport: Any, handler: Callable[[bytes], bool]) -> None:
    """Offer each datagram of this transport's ICE connection to handler first; what it returns
    True for is consumed, anything else continues to aiortc as usual. (aioice's
    Connection.data_received queues every datagram for RTCDtlsTransport's receive loop: the load
    generator counts SRTP packets from their clear-text RTP header right there, without
    decrypting or waking a task. The server does not use this; the benchmark only.)"""
    connection = transport.transport._connection
    original = connection.data_received

    def data_received(data: bytes, component: int) -> None:
        if not handler(data):
            original(data, component)

    connection.data_received = data_received

class Received:
    """What a client knows of one stream it receives, for its receiver reports and NACKs."""

    __slots__ = ("base", "highest", "cycles", "count", "prior")

    def __init__(self, seq: int) -> None:
        self.base = self.highest = seq
        self.cycles = 0
        self.count = 0
        self.prior = (0, 0)  # (expected, received) at the last report


class BenchClient:
    """A cheap participant: sends pre-encoded RTP, counts what it receives, and sends the
    feedback a browser sends (receiver reports, NACKs, now and then a PLI)."""

    def __init__(self, name: str, media: dict[str, list[Any]], *, simulcast: bool, loss: float,
                 weak: bool = False, transport_cc: bool = True) -> None:
        from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCRtpSender

        from signaling.media import _aiortc_hooks as hooks
        from signaling.media.peers import SLOTS

        self.name = name
        self.media = media
        self.simulcast = simulcast
        self.loss = loss
        # Transport-wide congestion control as a browser does it: numbers on what it sends (the
        # server answers with feedback), feedback on what it receives every 100 ms (the server's
        # delay-based estimate of its downlink reads it).
        self.transport_cc = transport_cc
        self.transport_seq = 0
        self.arrivals = ArrivalLog()
        self.weak = weak
        self._tokens = WEAK_BPS / 8 * 0.25
        self._tokens_at = time.monotonic()
        self.pc = RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE, iceServers=[]))
        self.pc.addTransceiver(hooks.idle_track("audio"), direction="sendonly")
        self.pc.addTransceiver(hooks.idle_track("video"), direction="sendonly")
        self.pc.addTransceiver(hooks.idle_track("video"), direction="sendonly")  # screen share, unused
        for _ in range(SLOTS):
            self.pc.addTransceiver("audio", direction="recvonly")
            self.pc.addTransceiver("video", direction="recvonly")
        for t in self.pc.getTransceivers():
            wanted = "video/VP8" if t.kind == "video" else "audio/opus"
            t.setCodecPreferences([c for c in RTCRtpSender.getCapabilities(t.kind).codecs if c.mimeType == wanted])
            hooks.receive_without_decoding(t.receiver)
        self.sent_at: dict[int, float] = {}  # video RTP timestamp -> send time
        self.frames_sent = 0
        self.audio_sent = 0
        self.slot_of_ssrc: dict[int, tuple[int, str]] = {}  # a slot's SSRC -> (slot, kind)
        self.slot_owner: list[str | None] = [None] * SLOTS
        self.last_ts: dict[int, int] = {}
        self.streams: dict[int, Received] = {}
        self.frames_received: dict[str, int] = {}
        self.audio_received: dict[str, int] = {}
        self.latencies: list[float] = []
        self.video_bytes: dict[str, int] = {}
        self.peers: dict[str, BenchClient] = {}
        self.measuring = False
        self.random = __import__("random").Random(name)

    def reset(self) -> None:
        """Count afresh (a new measuring window)."""
        self.frames_sent = self.audio_sent = 0
        self.frames_received, self.audio_received, self.video_bytes, self.latencies = {}, {}, {}, []

    async def offer(self) -> str:
        from tests.signaling.media_client import simulcast_offer

        await self.pc.setLocalDescription(await self.pc.createOffer())
        sdp: str = self.pc.localDescription.sdp
        if self.transport_cc:
            sdp = re.sub(r"(a=mid:\S+\r\n)", rf"\1a=extmap:{TRANSPORT_CC_ID} {TRANSPORT_CC_URI}\r\n", sdp)
        return simulcast_offer(sdp, ["l", "h"], RID_ID) if self.simulcast else sdp

    async def accept(self, sdp: str) -> None:
        from aiortc import RTCSessionDescription

        from signaling.media import _aiortc_hooks as hooks

        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        sections = sdp.split("\nm=")[1:]
        for index, section in enumerate(sections[3:]):
            match = re.search(r"a=ssrc:(\d+)", section)
            if match:
                self.slot_of_ssrc[int(match.group(1))] = (index // 2, "video" if index % 2 else "audio")
        transceivers = self.pc.getTransceivers()
        transport = transceivers[0].sender.transport
        intercept_datagrams(transport, self.on_datagram)
        self.send = hooks.packet_sender(transport)
        self.rtcp_ssrc = transceivers[3].sender._ssrc
        self.audio = (transceivers[0].sender._ssrc, transceivers[0]._codecs[0].payloadType)
        self.video = (transceivers[1].sender._ssrc, transceivers[1]._codecs[0].payloadType)

    def on_datagram(self, data: bytes) -> bool:
        """An SRTP packet, from its clear-text header: lost as the network would, else counted,
        and its gaps NACKed; DTLS and RTCP go on to aiortc."""
        if len(data) < 12 or not 128 <= data[0] <= 191 or 192 <= data[1] <= 208:
            return False
        if self.weak:  # a policer: what the link cannot carry is lost
            now = time.monotonic()
            self._tokens = min(WEAK_BPS / 8 * 0.25, self._tokens + (now - self._tokens_at) * WEAK_BPS / 8)
            self._tokens_at = now
            size = len(data) + UDP_IP_HEADERS  # (a link counts the whole IP packet)
            if self._tokens < size:
                return True
            self._tokens -= size
        if self.loss and self.random.random() < self.loss:
            return True
        seq, timestamp, ssrc = struct.unpack_from("!HII", data, 2)
        if self.transport_cc:
            number = header_extension(data, TRANSPORT_CC_ID)
            if number is not None:
                self.arrivals.arrived(int.from_bytes(number, "big"), time.monotonic_ns() // 1000)
        where = self.slot_of_ssrc.get(ssrc)
        if where is None:
            return True
        self._track(ssrc, seq)
        slot, kind = where
        owner = self.slot_owner[slot]
        if kind == "audio":
            if owner is not None and self.measuring:
                self.audio_received[owner] = self.audio_received.get(owner, 0) + 1
            return True
        if owner is not None and self.measuring:
            self.video_bytes[owner] = self.video_bytes.get(owner, 0) + len(data)
        last = self.last_ts.get(ssrc)
        if last is not None and not 0 < (timestamp - last) & 0xFFFFFFFF < 0x80000000:
            return True  # the same frame, or a repair of an older one
        self.last_ts[ssrc] = timestamp
        if owner is None or not self.measuring:
            return True
        # Counted by arrival while measuring, not by matching the publisher's timestamps: after a
        # change of layer the server continues the numbering, so the timestamps no longer match.
        self.frames_received[owner] = self.frames_received.get(owner, 0) + 1
        sent = self.peers[owner].sent_at.get(timestamp)
        if sent is not None:
            self.latencies.append(time.monotonic() - sent)
        return True

    def _track(self, ssrc: int, seq: int) -> None:
        from aiortc.rtp import RTCP_RTPFB_NACK, RtcpRtpfbPacket

        stream = self.streams.get(ssrc)
        if stream is None:
            self.streams[ssrc] = Received(seq)
            return
        stream.count += 1
        ahead = (seq - stream.highest) & 0xFFFF
        if 0 < ahead < 0x8000:
            if seq < stream.highest:
                stream.cycles += 0x10000
            if 1 < ahead <= 64:  # a gap: ask for it at once, as a browser does
                lost = [(stream.highest + n) & 0xFFFF for n in range(1, ahead)]
                wrap = next((n for n in range(1, len(lost)) if lost[n] < lost[n - 1]), len(lost))
                for part in (lost[:wrap], lost[wrap:]):  # one NACK per run that does not wrap around
                    if part:
                        self.send(bytes(RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=self.rtcp_ssrc, media_ssrc=ssrc, lost=part)))
            stream.highest = seq

    async def feedback(self) -> None:
        """Each second, a receiver report for every stream received; every 10 s, a PLI."""
        from aiortc.rtp import RTCP_PSFB_PLI, RtcpPsfbPacket, RtcpReceiverInfo, RtcpRrPacket

        ticks = 0
        while True:
            await asyncio.sleep(1)
            ticks += 1
            reports = []
            for ssrc, stream in self.streams.items():
                highest = stream.cycles + stream.highest
                expected = highest - stream.base
                interval = expected - stream.prior[0]
                lost = interval - (stream.count - stream.prior[1])
                stream.prior = (expected, stream.count)
                fraction = min(255, (lost << 8) // interval) if interval > 0 and lost > 0 else 0
                reports.append(RtcpReceiverInfo(ssrc=ssrc, fraction_lost=fraction, packets_lost=max(0, expected - stream.count),
                                                highest_sequence=highest, jitter=0, lsr=0, dlsr=0))
            for n in range(0, len(reports), 31):
                self.send(bytes(RtcpRrPacket(ssrc=self.rtcp_ssrc, reports=reports[n:n + 31])))
            videos = [ssrc for ssrc, (_, kind) in self.slot_of_ssrc.items() if kind == "video" and ssrc in self.streams]
            if ticks % 10 == 0 and videos:
                self.send(bytes(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=self.rtcp_ssrc, media_ssrc=videos[ticks // 10 % len(videos)])))

    def _extensions(self, rid: str | None) -> bytes:
        """The one-byte header extensions of a packet sent now: its layer's rid, its transport
        sequence number."""
        elements = bytes([RID_ID << 4]) + rid.encode() if rid else b""
        if self.transport_cc:
            elements += bytes([TRANSPORT_CC_ID << 4 | 1]) + self.transport_seq.to_bytes(2, "big")
            self.transport_seq = (self.transport_seq + 1) & 0xFFFF
        if not elements:
            return b""
        elements += bytes(-len(elements) % 4)
        return b"\xbe\xde" + (len(elements) // 4).to_bytes(2, "big") + elements

    async def transport_feedback(self) -> None:
        """Every 100 ms, what arrived of what the server sent, and when."""
        while self.transport_cc:
            await asyncio.sleep(FEEDBACK_INTERVAL_S)
            packet = self.arrivals.feedback(self.rtcp_ssrc, 0)
            if packet is not None:
                self.send(packet)

    async def publish(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        layers = [("h", self.video[0]), ("l", (self.video[0] + 1) & 0xFFFFFFFF)] if self.simulcast else [("h", self.video[0])]
        seqs = {rid: 0 for rid, _ in layers}
        video_ts = audio_ts = seq_a = 0
        tick = 0
        while True:
            # 30 fps video; audio at 50 packets per second, interleaved on the same clock
            due = start + tick / 150
            await asyncio.sleep(max(0.0, due - loop.time()))
            if tick % 5 == 0:
                video_ts = (video_ts + 3000) & 0xFFFFFFFF
                self.sent_at[video_ts] = time.monotonic()
                if self.measuring:
                    self.frames_sent += 1
                for rid, ssrc in layers:
                    if rid == "l" and tick % 10:
                        continue  # the small layer at half the frame rate
                    payloads = self.media[rid][(tick // (5 if rid == "h" else 10)) % len(self.media[rid])]
                    for n, payload in enumerate(payloads):
                        marker = 0x80 if n == len(payloads) - 1 else 0
                        extension = self._extensions(rid if self.simulcast else None)
                        header = _HEADER.pack(0x90 if extension else 0x80, marker | self.video[1], seqs[rid], video_ts, ssrc)
                        self.send(header + extension + payload)
                        seqs[rid] = (seqs[rid] + 1) & 0xFFFF
                if len(self.sent_at) > 300:
                    self.sent_at.pop(next(iter(self.sent_at)))
            if tick % 3 == 0:
                audio_ts = (audio_ts + 960) & 0xFFFFFFFF
                if self.measuring:
                    self.audio_sent += 1
                packet = self.media["opus"][(tick // 3) % len(self.media["opus"])]
                extension = self._extensions(None)
                self.send(_HEADER.pack(0x90 if extension else 0x80, self.audio[1], seq_a, audio_ts, self.audio[0]) + extension + packet)
                seq_a = (seq_a + 1) & 0xFFFF
            tick += 1


def room_main(port: int, room: str, size: int, media: dict[str, list[Any]], options: dict[str, Any],
              control: Any, results: Any) -> None:
    _pin(CLIENT_CORE)
    asyncio.run(_room(port, room, size, media, options, control, results))


async def _room(port: int, room: str, size: int, media: dict[str, list[Any]], options: dict[str, Any],
                control: Any, results: Any) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**22)
    clients = {f"{room}-{i}": BenchClient(f"{room}-{i}", media, simulcast=options["simulcast"], loss=options["loss"],
                                          weak=options["weak"] and i == size - 1, transport_cc=options["transport_cc"])
               for i in range(size)}
    for client in clients.values():
        client.peers = clients
    answers: dict[str, asyncio.Future[str]] = {name: asyncio.get_running_loop().create_future() for name in clients}

    async def read() -> None:
        async for line in reader:
            envelope = json.loads(line)
            message, client = envelope["message"], clients[envelope["peer"]]
            if message["type"] == "answer":
                answers[envelope["peer"]].set_result(message["sdp"])
            elif message["type"] == "slots":
                client.slot_owner = message["slots"]

    reading = asyncio.create_task(read())
    for name, client in clients.items():
        writer.write((json.dumps({"op": "join", "room": room, "peer": name}) + "\n").encode())
        writer.write((json.dumps({"op": "msg", "peer": name, "message": {"type": "offer", "sdp": await client.offer()}}) + "\n").encode())
        await client.accept(await asyncio.wait_for(answers[name], 30))
    await run_room(clients, room, control, results)
    reading.cancel()
    writer.close()


async def run_room(clients: dict[str, BenchClient], room: str, control: Any, results: Any) -> None:
    """Publish and give feedback; measure between each of the driver's "start" and "stop" and
    report the room's figures for it; close the peers at "exit"."""
    tasks = [asyncio.create_task(c.publish()) for c in clients.values()]
    tasks += [asyncio.create_task(c.feedback()) for c in clients.values()]
    tasks += [asyncio.create_task(c.transport_feedback()) for c in clients.values()]
    loop = asyncio.get_running_loop()
    results.put(("ready", room))
    while await loop.run_in_executor(None, control.get) == "start":
        for client in clients.values():
            client.reset()
        cpu = time.process_time()
        for client in clients.values():
            client.measuring = True
        await loop.run_in_executor(None, control.get)  # "stop"
        for client in clients.values():
            client.measuring = False
        results.put(("result", room, *_figures(clients), time.process_time() - cpu, _weak_figures(clients), _seen(clients)))
    for task in tasks:
        task.cancel()
    for client in clients.values():
        await client.pc.close()


def _figures(clients: dict[str, BenchClient]) -> tuple[int, int, list[float]]:
    """Video frames the healthy subscribers should have had, those they had, and their latencies."""
    healthy = [c for c in clients.values() if not c.weak]
    expected = sum(c.frames_sent * (len(healthy) - (0 if c.weak else 1)) for c in clients.values())
    received = sum(sum(c.frames_received.values()) for c in healthy)
    return expected, received, [x for c in healthy for x in c.latencies]


def _weak_figures(clients: dict[str, BenchClient]) -> tuple[list[float], float] | None:
    """For a weak subscriber, the share of each camera's frames that reached it, best first (on a
    link too weak for every video it gets some of them), and of the audio, the least heard voice's."""
    weak = [c for c in clients.values() if c.weak]
    if not weak:
        return None
    others = [c for c in clients.values() if not c.weak]
    return (sorted((weak[0].frames_received.get(c.name, 0) / max(1, c.frames_sent) for c in others), reverse=True),
            min(weak[0].audio_received.get(c.name, 0) / max(1, c.audio_sent) for c in others))


def _seen(clients: dict[str, BenchClient]) -> dict[tuple[str, str], tuple[int, int, float]]:
    """What each subscriber got of each publisher: (video frames, video bytes, share of the voice)."""
    return {(sub.name, pub.name): (sub.frames_received.get(pub.name, 0), sub.video_bytes.get(pub.name, 0),
                                   sub.audio_received.get(pub.name, 0) / max(1, pub.audio_sent))
            for sub in clients.values() for pub in clients.values() if sub is not pub}


# ---------------------------------------------------------------- driver

class Server:
    def __init__(self, mode: str, profile: bool) -> None:
        ctx = multiprocessing.get_context("spawn")
        port_queue = ctx.Queue()
        self.process = ctx.Process(target=server_main, args=(mode, port_queue, profile), daemon=True)
        self.process.start()
        self.port = port_queue.get(timeout=60)

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port, limit=2**22)

    async def request(self, **body: Any) -> dict[str, Any]:
        self.writer.write((json.dumps(body) + "\n").encode())
        return json.loads(await self.reader.readline())

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(10)


class RoomProcesses:
    """One process per room (`target(*args, control, results)`, running `run_room`), measured in
    windows: `async with RoomProcesses(...) as rooms: outcomes = await rooms.window(8)`."""

    def __init__(self, target: Any, args: list[tuple[Any, ...]]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._results = ctx.Queue()
        self._controls = [ctx.Queue() for _ in args]
        self._processes = [ctx.Process(target=target, args=(*a, self._controls[n], self._results), daemon=True)
                           for n, a in enumerate(args)]

    async def __aenter__(self) -> RoomProcesses:
        for p in self._processes:
            p.start()
        for _ in self._processes:  # all ready
            await asyncio.get_running_loop().run_in_executor(None, self._results.get, True, 120)
        return self

    async def window(self, seconds: float, at_end: Callable[[], Awaitable[Any]] | None = None) -> tuple[Any, list[Any]]:
        """Measure for this long; `at_end()`'s answer (read as the window closes) and each room's outcome."""
        for c in self._controls:
            c.put("start")
        await asyncio.sleep(seconds)
        for c in self._controls:
            c.put("stop")
        end = await at_end() if at_end is not None else None
        loop = asyncio.get_running_loop()
        return end, [await loop.run_in_executor(None, self._results.get, True, 60) for _ in self._processes]

    async def __aexit__(self, *exc: object) -> None:
        for c in self._controls:
            c.put("exit")
        for p in self._processes:
            p.join(30)


async def measure_rooms(target: Any, args: list[tuple[Any, ...]], window_s: float,
                        read_server: Callable[[bool], Awaitable[Any]], settle_s: float = 4) -> tuple[Any, Any, list[Any]]:
    """One window of rooms (RoomProcesses) once they are settled, between two readings of the
    server (`read_server(starting)`); the readings and the rooms' outcomes."""
    async with RoomProcesses(target, args) as rooms:
        await asyncio.sleep(settle_s)  # keyframes reach everyone, a weak link's videos are found, queues settle
        before = await read_server(True)
        after, outcomes = await rooms.window(window_s, lambda: read_server(False))
    return before, after, outcomes


async def run_level(server: Server, rooms: int, window_s: float, media: Any, *, simulcast: bool, loss: float,
                    weak: bool = False, size: int = ROOM_SIZE, transport_cc: bool = True) -> dict[str, Any]:
    options = {"simulcast": simulcast, "loss": loss, "weak": weak, "transport_cc": transport_cc}

    async def read_server(starting: bool) -> dict[str, Any]:
        return await server.request(op="measure", **({"start": True} if starting else {}))

    before, after, outcomes = await measure_rooms(
        room_main, [(server.port, f"r{n}", size, media, options) for n in range(rooms)], window_s, read_server,
        settle_s=WEAK_SETTLE_S if weak else 4)
    expected = sum(o[2] for o in outcomes)
    received = sum(o[3] for o in outcomes)
    latencies = sorted(x for o in outcomes for x in o[4])
    healthy = size - 1 if weak else size
    streams = rooms * (healthy * (healthy - 1) + (size - 1 if weak else 0))
    lost = 1 - received / expected if expected else 1.0
    delivered = rooms * healthy * (healthy - 1) * (1 - lost)
    cpu = after["cpu"] - before["cpu"]
    lags = after["lag"]
    weak_figures = [o[6] for o in outcomes if o[6] is not None]
    return {
        "rooms": rooms, "size": size, "streams": streams, "delivered": delivered, "cpu_s": cpu,
        "cpu_ms_per_stream_s": 1000 * cpu / (delivered * window_s) if delivered else float("inf"),
        "core_share": cpu / window_s,
        "per_core": delivered / (cpu / window_s) if cpu else 0.0,
        "clients_core_share": sum(o[5] for o in outcomes) / window_s,
        "loss": lost,
        "p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else float("nan"),
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else float("nan"),
        "lag_p99_ms": 1000 * lags[int(len(lags) * 0.99)] if lags else 0.0,
        # Over the rooms: the fewest cameras the weak link got at 10 fps or more, the lowest frame
        # rate of its best camera, and the least of a voice's packets that reached it.
        "weak_videos": min(sum(f * FPS >= 10 for f in fs) for fs, _ in weak_figures) if weak_figures else None,
        "weak_fps": min(fs[0] for fs, _ in weak_figures) * FPS if weak_figures else None,
        "weak_audio": min(a for _, a in weak_figures) if weak_figures else None,
    }


def show(name: str, r: dict[str, Any]) -> None:
    weak = (f"; weak subscriber: {r['weak_videos']} of {r['size'] - 1} cameras at >= 10 fps (the best {r['weak_fps']:4.1f} fps), "
            f"{100 * r['weak_audio']:5.1f}% of each voice" if r["weak_fps"] is not None else "")
    print(f"{name:17} {r['rooms']:>2} x {r['size']}: {r['delivered']:6.1f} of {r['streams']:>3} video streams delivered, "
          f"server {100 * r['core_share']:5.1f}% of its core = {r['cpu_ms_per_stream_s']:6.2f} ms per delivered stream-s "
          f"({r['per_core']:5.0f} streams/core), loss {100 * r['loss']:5.2f}%, latency p50 {r['p50_ms']:5.1f} p99 {r['p99_ms']:6.1f} ms, "
          f"loop lag p99 {r['lag_p99_ms']:5.1f} ms; clients {100 * r['clients_core_share']:3.0f}% of core {CLIENT_CORE}{weak}",
          flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=8.0)
    parser.add_argument("--max-rooms", type=int, default=16)
    parser.add_argument("--loss", type=float, default=0.01, help="share of received packets each client loses")
    parser.add_argument("--profile", action="store_true", help="print where the forwarding server spends its time")
    parser.add_argument("--rooms", type=int, help="run the forwarding engine at this one level only, without stock")
    args = parser.parse_args()
    media = encode_media()
    rate = {rid: sum(len(b) for f in media[rid] for b in f) * 8 / (len(media[rid]) / fps) / 1e6
            for rid, fps in (("h", FPS), ("l", SMALL_FPS))}
    print(f"media: VP8 640x480 {rate['h']:.2f} Mbit/s at {FPS} fps and 320x240 {rate['l']:.2f} Mbit/s at {SMALL_FPS} fps, "
          f"Opus {sum(len(p) for p in media['opus']) * 8 / (len(media['opus']) / 50) / 1000:.0f} kbit/s; "
          f"clients lose {100 * args.loss:.1f}% and send RR, NACK, PLI; {os.cpu_count()} cores, server on core {SERVER_CORE}",
          flush=True)
    options = {"simulcast": False, "loss": args.loss}

    baseline = same = None
    if args.rooms is None:
        stock = Server("stock", False)
        await stock.connect()
        baseline = await run_level(stock, 1, args.window, media, **options)
        show("stock, one layer", baseline)
        stock.stop()
    forward = Server("forward", args.profile)
    await forward.connect()
    if args.rooms is None:
        same = await run_level(forward, 1, args.window, media, **options)
        show("engine, one layer", same)
    rooms, best, last = args.rooms or 1, None, None
    while rooms <= (args.rooms or args.max_rooms):
        result = last = await run_level(forward, rooms, args.window, media, simulcast=True, loss=args.loss)
        show("engine, simulcast", result)
        if result["loss"] > 0.01 or result["clients_core_share"] >= CLIENTS_SATURATED:
            break
        best = result
        rooms *= 2
    if best is not None:
        show("  + weak link", await run_level(forward, best["rooms"], args.window, media, simulcast=True,
                                              loss=args.loss, weak=True))
    if last is not None:
        # The last level again with clients that negotiate no transport-cc (as before it was
        # built): what numbering every packet and reading and sending the feedback cost.
        without = await run_level(forward, last["rooms"], args.window, media, simulcast=True, loss=args.loss,
                                  transport_cc=False)
        show("  no transport-cc", without)
        print(f"with transport-cc: x{last['cpu_ms_per_stream_s'] / without['cpu_ms_per_stream_s']:.2f} server CPU per "
              f"delivered stream at {last['rooms']} rooms ({last['per_core']:.0f} against {without['per_core']:.0f} "
              f"streams per core; loss {100 * last['loss']:.2f}% against {100 * without['loss']:.2f}%)")
    if args.profile:
        print((await forward.request(op="profile"))["profile"])
    forward.stop()
    if baseline is not None and same is not None:
        print(f"same room of 5, one layer: the engine uses {baseline['cpu_ms_per_stream_s'] / same['cpu_ms_per_stream_s']:.1f}x "
              f"less server CPU per delivered stream than stock aiortc "
              f"(stock delivered {baseline['delivered']:.1f} of {baseline['streams']} streams)")
    if best is not None:
        print(f"largest level under 1% loss, clients' core unsaturated: {best['rooms']} rooms of {ROOM_SIZE}, "
              f"{best['delivered']:.0f} streams delivered on {100 * best['core_share']:.0f}% of a core: {best['per_core']:.0f} streams per core observed")


if __name__ == "__main__":
    asyncio.run(main())
