"""A real WebRTC client for the tests: aiortc, sending a solid colour and a tone, and
checking what it receives in each slot (decoded on the client side, as a browser would)."""
from __future__ import annotations

import array
import asyncio
import fractions
import math
import os
from collections.abc import Callable
from typing import Any

import aiortc.codecs.opus
import aiortc.codecs.vpx
import av
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.mediastreams import AUDIO_PTIME, MediaStreamError, MediaStreamTrack, VideoStreamTrack
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtcrtptransceiver import RTCRtpTransceiver
from aiortc.rtp import RTCP_PSFB_PLI, HeaderExtensionsMap, RtcpPacket, RtcpPsfbPacket, RtpPacket

from signaling.media import _aiortc_hooks as hooks
from signaling.media.peers import RID_URI, SLOTS

# Y, U, V of the colours the clients send.
COLOURS = [(81, 90, 240), (145, 54, 34), (41, 240, 110), (210, 16, 146), (170, 166, 16)]
TONES = [440 + 220 * n for n in range(16)]  # a voice each, told apart by pitch


def browser_like_encoders(patch: Callable[[Any, str, Any], None] = setattr) -> None:
    """Encoders in a browser's range (pass pytest's monkeypatch.setattr to undo it after a test):
    VP8 steered down to 30 kbit/s (aiortc stops at 250), Opus voice at 32 kbit/s (aiortc: 96)."""
    patch(aiortc.codecs.vpx, "MIN_BITRATE", 30_000)
    original = aiortc.codecs.opus.OpusEncoder.__init__

    def voice(self: Any) -> None:
        original(self)
        self.codec.bit_rate = 32_000

    patch(aiortc.codecs.opus.OpusEncoder, "__init__", voice)


class ColourTrack(VideoStreamTrack):
    """Solid-colour 320x240 video."""

    def __init__(self, yuv: tuple[int, int, int]) -> None:
        super().__init__()
        self.yuv = yuv

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame(width=320, height=240, format="yuv420p")
        for plane, value in zip(frame.planes, self.yuv):
            plane.update(bytes([value]) * plane.buffer_size)
        frame.pts, frame.time_base = pts, time_base
        return frame


class MovingTrack(VideoStreamTrack):
    """320x240 video that changes every frame as a camera's does (a moving bar over a
    gradient, and a patch of noise for texture): the encoder spends the bitrate it is given,
    where a solid colour would cost next to nothing."""

    def __init__(self) -> None:
        super().__init__()
        self._n = 0
        self._gradient = bytes((x + y) % 256 for y in range(240) for x in range(320))
        self._noise = [os.urandom(48 * 48) for _ in range(16)]

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        self._n += 1
        luma = bytearray(self._gradient)
        left = (self._n * 4) % 280
        for y in range(60, 180):
            luma[y * 320 + left:y * 320 + left + 40] = b"\xf0" * 40
        patch = self._noise[self._n % len(self._noise)]
        for y in range(48):
            luma[(96 + y) * 320 + 136:(96 + y) * 320 + 184] = patch[y * 48:(y + 1) * 48]
        frame = av.VideoFrame(width=320, height=240, format="yuv420p")
        frame.planes[0].update(bytes(luma))
        frame.planes[1].update(bytes([128]) * frame.planes[1].buffer_size)
        frame.planes[2].update(bytes([128]) * frame.planes[2].buffer_size)
        frame.pts, frame.time_base = pts, time_base
        return frame


MAX_BEHIND_S = 0.06  # a tone that falls further behind (the test process was busy) skips ahead


class ToneTrack(MediaStreamTrack):
    """A sine tone, 48 kHz mono, 20 ms frames, in real time."""

    kind = "audio"

    def __init__(self, frequency: float, volume: float = 1.0) -> None:
        super().__init__()
        self.frequency = frequency
        self.volume = volume
        self._samples = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        samples = int(AUDIO_PTIME * 48000)
        if self._start is None:
            self._start = loop.time()
        else:
            self._samples += samples
            wait = self._start + self._samples / 48000 - loop.time()
            if wait < -MAX_BEHIND_S:
                # As a microphone that was not read in time: the samples it missed are gone, not
                # sent late in a burst (a burst of voice overflows a weak link's queue).
                self._start -= wait
            elif wait > 0:
                await asyncio.sleep(wait)
        data = array.array("h", (
            int(12000 * self.volume * math.sin(2 * math.pi * self.frequency * (self._samples + n) / 48000)) for n in range(samples)
        ))
        frame = av.AudioFrame(format="s16", layout="mono", samples=samples)
        frame.planes[0].update(data.tobytes())
        frame.sample_rate = 48000
        frame.pts = self._samples
        frame.time_base = fractions.Fraction(1, 48000)
        return frame


def simulcast_offer(sdp: str, rids: list[str], extension_id: int) -> str:
    """An aiortc offer with the camera's m-line (the second) sending simulcast layers, as a
    browser's offer says it: the rid extension, a=rid lines and a=simulcast."""
    sections = sdp.split("\r\nm=")
    lines = [f"a=extmap:{extension_id} {RID_URI}"] + [f"a=rid:{rid} send" for rid in rids]
    sections[2] = sections[2] + "\r\n" + "\r\n".join(lines + [f"a=simulcast:send {';'.join(rids)}"])
    return "\r\nm=".join(sections)


def layered_vp8(width: int, height: int, fps: int, bitrate: int, count: int, layers: int = 2) -> list[list[bytes]]:
    """`count` frames of a moving gradient in VP8 in temporal layers, as RTP payloads per frame (a
    keyframe every 2 s). A browser's simulcast layer has temporal layers too (Chromium reports
    L1T3); these are libvpx's presets, error resilient as WebRTC asks, each frame referring to one
    other. Two layers: every other frame is of layer 1 and refers to the last base-layer frame
    only, so the descriptor marks it a sync frame (Y). Three (0-2-1-2): the frame after a
    base-layer one is of layer 2 and the next of layer 1, both referring to it (sync frames), and
    the fourth of layer 2, referring to the layer-1 frame. Each payload's descriptor carries the
    picture id, TL0PICIDX, TID and Y, as Chromium writes them."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.time_base = fractions.Fraction(1, fps)
    codec.bit_rate = bitrate
    codec.gop_size = 2 * fps
    kbps = bitrate // 1000
    pattern, syncs, preset = (
        ([0, 1], [0, 1], f"ts_number_layers=2:ts_target_bitrate={kbps * 6 // 10},{kbps}:ts_rate_decimator=2,1"
                         ":ts_periodicity=2:ts_layer_id=0,1:ts_layering_mode=2") if layers == 2 else
        ([0, 2, 1, 2], [0, 1, 1, 0], f"ts_number_layers=3:ts_target_bitrate={kbps * 4 // 10},{kbps * 6 // 10},{kbps}"
                                     ":ts_rate_decimator=4,2,1:ts_periodicity=4:ts_layer_id=0,2,1,2:ts_layering_mode=3"))
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0", "error-resilient": "1",
                     "ts-parameters": preset}
    frames: list[list[bytes]] = []
    tl0 = 0
    for i in range(count):
        frame = av.VideoFrame(width=width, height=height, format="yuv420p")
        for plane, value in zip(frame.planes, ((i * 7) % 256, 128, (i * 3) % 256)):
            plane.update(bytes((value + x) % 256 for x in range(plane.line_size)) * plane.height)
        frame.pts = i
        for packet in codec.encode(frame):
            tid, sync = pattern[i % len(pattern)], syncs[i % len(pattern)]
            tl0 = (tl0 + (tid == 0)) & 0xFF
            payloads = Vp8Encoder._packetize(bytes(packet), i & 0x7FFF)
            frames.append([bytes(aiortc.codecs.vpx.VpxPayloadDescriptor(
                partition_start=int(n == 0), partition_id=0, picture_id=i & 0x7FFF, tl0picidx=tl0, tid=(tid, sync)))
                + aiortc.codecs.vpx.VpxPayloadDescriptor.parse(payload)[1] for n, payload in enumerate(payloads)])
    return frames


class SimulcastCamera:
    """A camera published in two simulcast layers as the room page asks a browser to: 'l' at
    half size and 'h' at full size, two VP8 encoders over the same frames, each layer with its
    own SSRC and numbering and the rid in a header extension, answering PLIs per layer. aiortc
    cannot send simulcast, so the packets are written to the client's transport directly."""

    RID_ID = 10
    LAYERS = (("l", 2, 60_000), ("h", 1, 400_000))  # rid, scale down by, bitrate

    def __init__(self, track: VideoStreamTrack) -> None:
        self.track = track
        self.layers = []
        for rid, scale, bitrate in self.LAYERS:
            encoder = Vp8Encoder()
            encoder._Vp8Encoder__target_bitrate = bitrate  # type: ignore[attr-defined]  # below aiortc's floor
            ssrc = int.from_bytes(os.urandom(4), "big")
            self.layers.append({"rid": rid, "scale": scale, "encoder": encoder, "ssrc": ssrc,
                                "seq": int.from_bytes(os.urandom(2), "big"), "keyframe": True, "frames": 0})
        self._extensions = HeaderExtensionsMap()
        self._extensions.configure(RTCRtpParameters(
            headerExtensions=[RTCRtpHeaderExtensionParameters(id=self.RID_ID, uri=RID_URI)]))

    def offer(self, sdp: str) -> str:
        """The offer with the camera's m-line (the second) sending the layers."""
        return simulcast_offer(sdp, [layer["rid"] for layer in self.layers], self.RID_ID)

    async def run(self, transceiver: RTCRtpTransceiver) -> None:
        transport = transceiver.sender.transport
        send = hooks.packet_sender(transport)
        payload_type = transceiver._codecs[0].payloadType
        handle_rtcp = transport._handle_rtcp_data

        async def on_rtcp(data: bytes) -> None:  # a PLI for a layer: its next frame is a keyframe
            for packet in RtcpPacket.parse(data):
                if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_PLI:
                    for layer in self.layers:
                        if layer["ssrc"] == packet.media_ssrc:
                            layer["keyframe"] = True
            await handle_rtcp(data)

        transport._handle_rtcp_data = on_rtcp
        while True:
            frame = await self.track.recv()
            for layer in self.layers:
                scaled = frame if layer["scale"] == 1 else frame.reformat(
                    width=frame.width // layer["scale"], height=frame.height // layer["scale"])
                payloads, timestamp = layer["encoder"].encode(scaled, layer["keyframe"])
                layer["keyframe"] = False
                layer["frames"] += 1
                for n, payload in enumerate(payloads):
                    packet = RtpPacket(payload_type=payload_type, marker=int(n == len(payloads) - 1),
                                       sequence_number=layer["seq"], timestamp=timestamp, ssrc=layer["ssrc"],
                                       payload=payload)
                    packet.extensions.rtp_stream_id = layer["rid"]
                    layer["seq"] = (layer["seq"] + 1) & 0xFFFF
                    send(packet.serialize(self._extensions))


class Received:
    """What arrived in one slot."""

    def __init__(self) -> None:
        self.video_frames = 0
        self.audio_frames = 0
        self.last_yuv: tuple[int, int, int] | None = None
        self.last_width = 0
        self.tone: float | None = None
        self.first_video_at: float | None = None


class MediaClient:
    """One participant's browser, played by aiortc."""

    def __init__(self, index: int, volume: float = 1.0, *, moving: bool = False, simulcast: bool = False,
                 camera: bool = True) -> None:
        self.index = index
        self.downlink_dropped = 0
        self.downlink_offered = 0  # bytes that reached the shaped link
        self.uplink_dropped = 0
        # Like a browser that accepts the server's BUNDLE group: every m-line on one transport.
        self.pc = RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.colour = COLOURS[index % len(COLOURS)]
        self.tone = TONES[index]
        self.slots = [Received() for _ in range(SLOTS)]
        self.slot_owner: list[str | None] = [None] * SLOTS
        self._tasks: list[asyncio.Task[None]] = []
        self.video_track: VideoStreamTrack = MovingTrack() if moving else ColourTrack(self.colour)
        self.audio_track = ToneTrack(self.tone, volume)
        self.simulcast = SimulcastCamera(self.video_track) if simulcast else None
        self.pc.addTransceiver(self.audio_track, direction="sendonly")
        self.pc.addTransceiver(hooks.idle_track("video") if simulcast or not camera else self.video_track,
                               direction="sendonly")
        self.screen = self.pc.addTransceiver("video", direction="sendonly")  # shares nothing until asked
        for _ in range(SLOTS):
            self.pc.addTransceiver("audio", direction="recvonly")
            self.pc.addTransceiver("video", direction="recvonly")
        for transceiver in self.pc.getTransceivers():
            wanted = "video/VP8" if transceiver.kind == "video" else "audio/opus"
            transceiver.setCodecPreferences(
                [c for c in RTCRtpSender.getCapabilities(transceiver.kind).codecs if c.mimeType == wanted]
            )

    async def offer(self) -> str:
        """The offer (candidates included)."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        sdp: str = self.pc.localDescription.sdp
        return self.simulcast.offer(sdp) if self.simulcast is not None else sdp

    async def accept(self, answer_sdp: str) -> None:
        """Apply the answer and start consuming every slot."""
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))
        if self.simulcast is not None:
            self._tasks.append(asyncio.create_task(self.simulcast.run(self.pc.getTransceivers()[1])))
        transceivers = self.pc.getTransceivers()[3:]
        for n, transceiver in enumerate(transceivers):
            slot = self.slots[n // 2]
            self._tasks.append(asyncio.create_task(self._consume(transceiver.receiver.track, slot)))
            if transceiver.kind == "video":
                self._tasks.append(asyncio.create_task(_repair_like_a_browser(transceiver.receiver)))

    def on_message(self, message: dict[str, Any]) -> None:
        """Track the server's slot assignments."""
        if message.get("type") == "slots":
            self.slot_owner = list(message["slots"])

    def share_screen(self, yuv: tuple[int, int, int]) -> None:
        """Start sending a 'screen' of another colour on the share m-line."""
        self.screen.sender.replaceTrack(ColourTrack(yuv))

    def impair_downlink(self, rate_bps: int, max_queue_s: float = 0.25) -> None:
        """Shape what this client receives like a slow mobile link: a queue drained at rate_bps
        (so delay grows when the server sends too much, as a real bottleneck's does), and
        drop-tail once a packet would wait longer than max_queue_s. STUN is not shaped."""
        connection = self.pc.getTransceivers()[0].receiver.transport.transport._connection
        deliver = connection.data_received
        loop = asyncio.get_running_loop()
        free_at = 0.0

        def shaped(data: bytes, component: int) -> None:
            nonlocal free_at
            self.downlink_offered += len(data)
            now = loop.time()
            start = max(now, free_at)
            if start - now > max_queue_s:
                self.downlink_dropped += 1
                return
            free_at = start + len(data) * 8 / rate_bps
            loop.call_at(free_at, deliver, data, component)

        connection.data_received = shaped

    def impair_uplink(self, every: int) -> None:
        """Lose every `every`-th RTP packet this client sends (SRTCP, DTLS and STUN go through):
        a lossy uplink, as from a phone at the edge of a cell."""
        ice = self.pc.getTransceivers()[0].sender.transport.transport
        send = ice._send
        count = 0

        async def lossy(data: bytes) -> None:
            nonlocal count
            is_rtp = len(data) > 1 and 128 <= data[0] < 192 and not 192 <= data[1] <= 223
            if is_rtp:
                count += 1
                if count % every == 0:
                    self.uplink_dropped += 1
                    return
            await send(data)

        ice._send = lossy

    def received_from(self, peer_id: str) -> Received:
        """What arrived from one participant (by their current slot; nothing while in none)."""
        if peer_id not in self.slot_owner:
            return Received()
        return self.slots[self.slot_owner.index(peer_id)]

    async def voice_packets(self, peer_id: str) -> tuple[int, int]:
        """(received, lost) so far of the voice in peer_id's slot, by its RTP sequence numbers:
        what a browser has to conceal. (Not aiortc's decoded frames: its jitter buffer throws
        away up to four good frames behind each lost packet, where a browser conceals the one.)"""
        receiver = self.pc.getTransceivers()[3 + 2 * self.slot_owner.index(peer_id)].receiver
        stats = [s for s in (await receiver.getStats()).values() if s.type == "inbound-rtp"]
        return (stats[0].packetsReceived, stats[0].packetsLost) if stats else (0, 0)

    async def _consume(self, track: MediaStreamTrack, slot: Received) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                frame = await track.recv()
                if isinstance(frame, av.VideoFrame):
                    slot.video_frames += 1
                    if slot.first_video_at is None:
                        slot.first_video_at = loop.time()
                    slot.last_width = frame.width
                    slot.last_yuv = tuple(_middle(plane) for plane in frame.planes[:3])  # type: ignore[assignment]
                else:
                    slot.audio_frames += 1
                    slot.tone = _frequency(frame)
        except (MediaStreamError, asyncio.CancelledError):
            pass

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.pc.close()


REPAIR_EVERY_S = 0.1  # a browser NACKs a missing packet again about every round trip ...
GIVE_UP_S = 1.0  # ... and asks for a keyframe instead once a frame has waited this long


async def _repair_like_a_browser(receiver: Any) -> None:
    """What a browser's receiver does after loss and aiortc's does not: NACK what is still
    missing again and again (aiortc NACKs only when a new gap appears, so a lost retransmission
    is never asked for again), and give up on a frame that waited GIVE_UP_S: drop what waits
    and ask for a keyframe (aiortc's jitter buffer would wait for 512 more packets, 17 s of a
    small layer), decoding nothing until it comes and asking again while it does not (aiortc
    would decode the next frames on pictures they do not refer to: after a switch of simulcast
    layer, on the other layer's, at its size)."""
    nacks = receiver._RTCRtpReceiver__nack_generator
    jitter = receiver._RTCRtpReceiver__jitter_buffer
    active = receiver._RTCRtpReceiver__active_ssrc
    loop = asyncio.get_running_loop()
    stuck_at, since = None, loop.time()
    awaiting_keyframe, asked_at = False, since
    add = jitter.add

    def add_after_keyframe(packet: Any) -> tuple[bool, Any]:
        nonlocal awaiting_keyframe
        pli, frame = add(packet)
        if frame is not None and awaiting_keyframe:
            if frame.data[:1] and not frame.data[0] & 1:  # the VP8 frame tag's P bit: 0 on a keyframe
                awaiting_keyframe = False
            else:
                frame = None
        return pli, frame

    jitter.add = add_after_keyframe
    try:
        while True:
            await asyncio.sleep(REPAIR_EVERY_S)
            if not active or nacks is None or jitter._origin is None:
                continue
            ssrc = max(active, key=active.get)
            if nacks.missing:
                await receiver._send_rtcp_nack(ssrc, sorted(nacks.missing))
            if jitter._origin != stuck_at or (nacks.max_seq - jitter._origin) & 0xFFFF < 2:
                stuck_at, since = jitter._origin, loop.time()
            elif loop.time() - since >= GIVE_UP_S:
                # Whatever came after the hole cannot be decoded without it: start again at a keyframe.
                jitter.remove(min(jitter.capacity, (nacks.max_seq + 1 - jitter._origin) & 0xFFFF))
                nacks.missing.clear()
                awaiting_keyframe = True
                await receiver._send_rtcp_pli(ssrc)
                stuck_at, since = jitter._origin, loop.time()
                asked_at = since
            if awaiting_keyframe and loop.time() - asked_at >= GIVE_UP_S:
                await receiver._send_rtcp_pli(ssrc)
                asked_at = loop.time()
    except asyncio.CancelledError:
        pass


def _middle(plane: Any) -> int:
    data = bytes(plane)
    return data[plane.line_size * (plane.height // 2) + plane.width // 2]


def _frequency(frame: av.AudioFrame) -> float:
    samples = array.array("h", bytes(frame.planes[0]))
    channels = len(frame.layout.channels)
    mono = samples[::channels][: frame.samples]
    crossings = sum(1 for a, b in zip(mono, mono[1:]) if (a < 0) != (b < 0))
    return crossings / 2 / (frame.samples / frame.sample_rate)
