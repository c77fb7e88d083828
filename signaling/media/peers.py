"""One participant's server-side WebRTC peer: what it publishes and the slots it receives.

Each client offers a fixed layout, so that people can come and go without renegotiation:
m-line 0 its microphone, m-line 1 its camera, m-line 2 its screen or document share (all
sendonly; the share sends only while sharing), then SLOTS pairs of (audio, video) m-lines it
receives (recvonly). Slot k shows one other participant, or someone's screen; the engine tells
the client who is in which slot. There is a slot for everyone a room of 25 can hold, so every
voice reaches everyone; video goes in at most LAST_N slots at once: the shared screen, then the
latest speakers (last-N, as Jitsi does), fewer on a link that cannot carry them. Camera and screen use the same payload type, so inbound packets
are told apart by the SSRCs the offer announced. The server answers VP8 and Opus only, so that
every forwarded packet fits every subscriber without transcoding.

The camera may come in simulcast layers (the offer's `a=rid`/`a=simulcast` on m-line 1): the
answer accepts them and the rid header extension, and each layer's packets (their own SSRCs,
which the offer does not announce) are camera packets; signaling/media/simulcast.py picks the layer
each subscriber gets.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from collections.abc import Awaitable, Callable

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceCandidate,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.rtcrtptransceiver import RTCRtpTransceiver
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    pack_remb_fci,
    unpack_remb_fci,
)
from aiortc.sdp import candidate_from_sdp

from signaling.errors import SignalingError
from signaling.media import _aiortc_hooks as hooks
from signaling.media import lateness
from signaling.media.bandwidth import DOWNGRADED_LOSS_S, LOSSY_FRACTION, Downlink, LinkQuality
from signaling.media.forwarding import PublishedStream, Subscription, header_extension, parse_rtp
from signaling.media.simulcast import Choice, choose_layer
from signaling.media.transport_cc import PROBE_TICK_S, TRANSPORT_CC_URI, ArrivalLog, DelayEstimator, read_feedback, split_feedback

logger = logging.getLogger(__name__)
SLOTS = 25  # everyone else in a room of 25, and a shared screen
LAST_N = 8  # videos sent to one participant at most: the shared screen, then the latest speakers
CODECS = {"audio": "audio/opus", "video": "video/VP8"}
OPUS_PARAMETERS = {"minptime": 10, "useinbandfec": 1, "usedtx": 1}
RID_URI = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
SCREEN = "#screen"  # a slot showing "p12#screen" shows participant p12's screen share
# On a link that carries only some of its videos, which ones follow the speaker, but at most
# this often (each change costs the new video a keyframe on that link).
FOLLOW_SPEAKER_S = 3.0


PUBLISHED = 3  # microphone, camera, screen
NTP_EPOCH_S = 2_208_988_800  # 1900 to 1970: NTP timestamps in sender reports count from 1900


def expected_layout() -> list[str]:
    """The kinds of the m-lines a client must offer, in order."""
    return ["audio", "video", "video"] + ["audio", "video"] * SLOTS


class SlotSenders:
    """The two senders (audio, video) of one receive slot, and whom they show."""

    def __init__(self, audio: Subscription, video: Subscription) -> None:
        self.audio = audio
        self.video = video
        self.participant_id: str | None = None
        self.sources: dict[str, PublishedStream] = {}


class ServerPeer:
    """The server's peer connection with one participant."""

    def __init__(
        self, peer_id: str, ice_servers: list[RTCIceServer], on_closed: Callable[[ServerPeer], Awaitable[None]],
    ) -> None:
        self.id = peer_id
        # An explicit ICE server list (empty in tests): aiortc would otherwise add a public STUN
        # server. MAX_BUNDLE: every m-line on one transport from the start, so that each sender
        # is started and registered for RTCP feedback (aiortc skips transceivers whose own
        # transport never connects).
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=ice_servers, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.audio = PublishedStream("audio", self._request_keyframe)
        self.video = PublishedStream("video", self._request_keyframe, self._request_retransmission)
        self.screen = PublishedStream("video", self._request_keyframe, self._request_retransmission)
        self.slots: list[SlotSenders] = []
        # What the client was last told each slot shows.
        self.announced_slots: list[str | None] = []
        self._streams_by_ssrc: dict[int, PublishedStream] = {}
        self._kind_by_pt: dict[int, PublishedStream] = {}
        # Each slot's stream by the SSRC this server sends it with: where feedback goes.
        self._slot_by_ssrc: dict[int, tuple[Subscription, SlotSenders]] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # show_videos() after feedback changed the limit
        self._sender: hooks.PacketSender | None = None
        self._publish: list[RTCRtpTransceiver] = []
        self._on_closed = on_closed
        self._closed = False
        # What this participant's downlink can take (from its feedback), and who to tell when
        # it gets fewer videos or more (the engine, which tells the participant). On a link
        # that carries only some, the screen share and the latest speakers come first.
        self.downlink = Downlink()
        self.on_bandwidth: Callable[[ServerPeer], Awaitable[None]] | None = None
        # Whether its transport has come up (ICE and DTLS): only then is it given what others
        # send, so that the keyframe asked for when it is linked is one it can take (a browser
        # answers one keyframe request in 300 ms), and who to tell.
        self.connected = False
        self.on_connected: Callable[[ServerPeer], Awaitable[None]] | None = None
        self.speakers: list[str] = []  # participant ids, the latest speaker first
        self.audio_only_chosen = False  # the participant asked for voices only
        # Whether to tell the participant that its own links are weak (the page offers audio only).
        self.downlink_quality = LinkQuality()
        self.capped: frozenset[str] = frozenset()  # keys whose video it gets in the smallest layer alone (overload)
        self.uplink_quality = LinkQuality()
        self._uplink_loss = 0  # the worst fraction lost (of 256) of what it sent, this second
        self._socket_inodes: list[int] = []  # its media sockets, and what the kernel dropped of theirs
        self._socket_drops = 0
        self._downgraded = False  # whether its link gets smaller layers than its tiles would show
        self._probe_turn = 0  # which of its videos carries a probe's next padding
        self._videos_at = float("-inf")  # when the videos shown last changed
        self._abs_send_time_id: int | None = None
        # Transport-wide sequence numbers of what it sends, and when each arrived (its browser's
        # send-side estimate of its uplink reads our feedback, signaling/media/transport_cc.py).
        self._transport_cc_id: int | None = None
        self.arrivals = ArrivalLog()
        self._arrivals_ssrc = 0  # the media SSRC the feedback names (the last one that arrived)
        self._rid_id: int | None = None
        self.simulcast = False  # whether its camera comes in simulcast layers
        self.pc.on("connectionstatechange", self._on_connection_state)

    @property
    def connection_state(self) -> str:
        return self.pc.connectionState

    async def answer(self, offer_sdp: str) -> str:
        """Apply the client's offer and return the server's answer."""
        if self.slots:
            raise SignalingError("renegotiation is not supported; reconnect instead", code="bad_offer")
        missing = missing_codecs(offer_sdp)
        if missing:
            raise SignalingError(
                f"the offer has no {' or '.join(sorted(missing))}: the server forwards Opus audio and VP8 video "
                "without transcoding, so every browser must send and receive them", code="unsupported_codec",
                missing=sorted(missing))
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        except (ValueError, AttributeError, IndexError, KeyError) as exc:
            raise SignalingError(f"the offer could not be parsed: {exc}", code="bad_offer") from None
        transceivers = self.pc.getTransceivers()
        if [t.kind for t in transceivers] != expected_layout():
            raise SignalingError(
                f"the offer must have {PUBLISHED + 2 * SLOTS} m-lines: audio, video and screen to "
                f"send, then {SLOTS} audio and video pairs to receive", code="bad_offer",
            )
        transport = transceivers[0].receiver.transport
        self._sender = hooks.packet_sender(transport)
        hooks.intercept_rtp(transport, self._on_early_rtp)  # what arrived before the keys did
        for transceiver in transceivers:
            _prefer(transceiver)
        self._publish = transceivers[:PUBLISHED]
        rids, rid_id = simulcast_offer(offer_sdp)
        if rids and rid_id is not None:
            hooks.add_header_extension(transceivers[1], RID_URI, rid_id)
            self._rid_id = rid_id
            self.simulcast = len(rids) > 1
        transport_cc = re.search(rf"a=extmap:(\d+) {re.escape(TRANSPORT_CC_URI)}", offer_sdp)
        if transport_cc:
            # Both ways: feedback on what it sends (its browser's estimate of its uplink), and
            # numbers on what it receives, for its feedback (this server's estimate of its downlink).
            self._transport_cc_id = int(transport_cc.group(1))
            for transceiver in transceivers:
                hooks.add_header_extension(transceiver, TRANSPORT_CC_URI, self._transport_cc_id)
                hooks.add_rtcp_feedback(transceiver, "transport-cc")
            self.downlink.delay = DelayEstimator()
        for transceiver in transceivers:
            if transceiver.kind == "audio":
                # Voices lost on the way are asked for again (NACK) and resent from the history,
                # as video is: a browser's audio buffer waits a round trip for them.
                hooks.add_rtcp_feedback(transceiver, "nack")
        for transceiver, stream in zip(self._publish, (self.audio, self.video, self.screen)):
            transceiver.direction = "recvonly"
            hooks.receive_without_decoding(transceiver.receiver, functools.partial(self._learn, stream=stream))
        senders = []
        for transceiver in transceivers[PUBLISHED:]:
            transceiver.sender.replaceTrack(hooks.idle_track(transceiver.kind))
            hooks.no_sender_reports(transceiver.sender)  # send_reports() sends them
            transceiver.direction = "sendonly"
            senders.append(transceiver)
        answer = await self.pc.createAnswer()
        await self.pc.setLocalDescription(answer)
        fds = hooks.receive_rtp_directly(transport, self._on_rtp, self._on_rtcp)  # (now that the candidates are gathered)
        self._socket_inodes = [lateness.socket_inode(fd) for fd in fds]
        level = re.search(r"a=extmap:(\d+) urn:ietf:params:rtp-hdrext:ssrc-audio-level", self.pc.localDescription.sdp)
        self.audio.level_extension = int(level.group(1)) if level else None
        send_time = re.search(r"a=extmap:(\d+) http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
                              self.pc.localDescription.sdp)
        self._abs_send_time_id = int(send_time.group(1)) if send_time else None
        # Without announced SSRCs, a payload type's first stream is the microphone or the camera.
        for transceiver, stream in zip(self._publish[:2], (self.audio, self.video)):
            for codec in hooks.negotiated_codecs(transceiver):
                if codec.payloadType is not None:
                    self._kind_by_pt[codec.payloadType] = stream
        for audio_t, video_t in zip(senders[0::2], senders[1::2]):
            slot = SlotSenders(self._subscription(audio_t), self._subscription(video_t))
            for subscription in (slot.audio, slot.video):
                self._slot_by_ssrc[subscription.ssrc] = (subscription, slot)
            self.slots.append(slot)
        sdp: str = self.pc.localDescription.sdp
        return simulcast_answer(sdp, rids) if self._rid_id is not None else sdp

    async def add_candidate(self, sdp: str, sdp_mid: str | None, sdp_mline_index: int | None) -> None:
        """Add a trickled ICE candidate from the client."""
        if not sdp:
            return
        try:
            candidate: RTCIceCandidate = candidate_from_sdp(sdp.removeprefix("candidate:"))
        except (ValueError, IndexError) as exc:
            raise SignalingError(f"bad ICE candidate: {exc}", code="bad_candidate") from None
        candidate.sdpMid = sdp_mid
        candidate.sdpMLineIndex = sdp_mline_index if sdp_mline_index is not None else 0
        await self.pc.addIceCandidate(candidate)

    def _learn(self, ssrcs: list[int], stream: PublishedStream) -> None:
        for ssrc in ssrcs:
            self._streams_by_ssrc[ssrc] = stream

    def free_slot(self) -> SlotSenders | None:
        """A receive slot that shows nobody."""
        return next((s for s in self.slots if s.participant_id is None), None)

    async def close(self) -> None:
        """Close the peer connection (idempotent)."""
        if not self._closed:
            self._closed = True
            await self.pc.close()
            if self._sender is not None:
                self._sender.close()

    def _subscription(self, transceiver: RTCRtpTransceiver) -> Subscription:
        codec = hooks.negotiated_codecs(transceiver)[0]
        assert self._sender is not None
        return Subscription(transceiver.kind, hooks.sender_ssrc(transceiver), codec.payloadType or 0, self._sender,
                            downlink=self.downlink, abs_send_time_id=self._abs_send_time_id,
                            transport_cc_id=self._transport_cc_id)

    async def count_streams(self) -> None:
        """After the slots changed: how many video streams this participant receives."""
        shown = [slot for slot in self.slots if slot.participant_id is not None]
        self.downlink.streams(video=min(LAST_N, sum(1 for slot in shown if "video" in slot.sources)),
                              audio=sum(1 for slot in shown if "audio" in slot.sources))
        await self.show_videos()  # (a slot taken by someone new may be held back, or no longer)

    async def bandwidth_tick(self) -> None:
        """Once a second: fewer videos after a sustained weak link, or more again; which of its
        camera's simulcast layers still arrive."""
        for stream in (self.video, self.screen):
            stream.rank_layers()
        if self.downlink.tick():
            await self.show_videos()
        self._probe()

    def _probe(self) -> None:
        """Probe the downlink where its estimate keeps it from larger layers or more videos:
        padding on one of its videos, paced (signaling/media/transport_cc.py, DelayEstimator)."""
        goal = self.downlink.probe_due(self._downgraded)
        if goal is None:
            return
        assert self.downlink.delay is not None
        self.downlink.delay.start_probe(goal)
        self._probe_tick()

    def _probe_tick(self) -> None:
        delay = self.downlink.delay
        if delay is None or delay.probe is None or self.pc.connectionState != "connected":
            return
        octets = delay.probe_padding()
        # On its videos in turn (each keeps its history for NACKs); one in the middle of a frame
        # takes none, and what is not sent adds to the next tick's share.
        for n in range(len(self.slots) if octets else 0):
            if self.slots[(self._probe_turn + n) % len(self.slots)].video.pad(octets):
                self._probe_turn += n + 1
                break
        if delay.probe is not None and delay.probe.end is None:  # (then its feedback decides)
            asyncio.get_running_loop().call_later(PROBE_TICK_S, self._probe_tick)

    def choose_layers(self) -> None:
        """Each slot's video from the simulcast layer that fits this downlink and the tile it is
        shown in (asking the publisher for a keyframe of it, where the switch is made)."""
        share = self.downlink.video_share_bps()
        at_smallest = True
        self._downgraded = False
        for slot in self.slots:
            stream = slot.sources.get("video")
            if stream is None:
                continue
            subscription = slot.video
            layers = stream.active_layers()
            choices = [Choice(layer.ssrc, layer.pixels, layer.bps) for layer in layers]
            if slot.participant_id in self.capped and choices:  # the process sheds it (signaling/media/overload.py)
                choices = [min(choices, key=lambda choice: (choice.pixels, choice.bps))]
            choice = choose_layer(choices, share, subscription.tile_pixels, subscription.source) if len(layers) > 1 else None
            if share is not None and choice is not None and not subscription.paused:
                self._downgraded = self._downgraded or choice != choose_layer(
                    choices, None, subscription.tile_pixels, subscription.source)
            stream.choose(subscription, choice)
            if subscription.target not in (None, subscription.source) and not subscription.paused:
                stream.want_keyframe(subscription.target)
            if len(layers) > 1 and not subscription.paused:
                at_smallest = at_smallest and subscription.source == min(layers, key=lambda layer: layer.pixels).ssrc
        self.downlink.at_smallest = at_smallest

    def show_sizes(self, pixels: list[int | None]) -> None:
        """How large the participant shows each slot's video (pixels; None: not said)."""
        for slot, size in zip(self.slots, pixels):
            slot.video.tile_pixels = size
        self.choose_layers()

    def _paused(self) -> list[str]:
        """The slots (their keys) whose video is not sent to this participant, by rank."""
        ranked = sorted((slot for slot in self.slots if "video" in slot.sources), key=self._rank)
        return [slot.participant_id for slot in ranked if slot.participant_id and slot.video.paused]

    @property
    def paused_video(self) -> list[str]:
        """The slots (their keys) whose video its link cannot carry: held back, the best ranked
        first, as many as the link's limit keeps out of the last-N."""
        videos = sum(1 for slot in self.slots if "video" in slot.sources)
        limit = self.downlink.video_limit
        held = 0 if limit is None or self.audio_only_chosen else max(0, min(videos, LAST_N) - limit)
        return self._paused()[:held]

    @property
    def not_shown(self) -> list[str]:
        """The slots (their keys) whose video is not sent because only the last-N are: voices."""
        return self._paused()[len(self.paused_video):]

    def heard(self, speaker: str) -> None:
        """Someone in the room spoke: on a link that carries only some videos, theirs first."""
        if self.speakers[:1] != [speaker]:
            if speaker in self.speakers:
                self.speakers.remove(speaker)
            self.speakers.insert(0, speaker)

    def _rank(self, slot: SlotSenders) -> tuple[int, int]:
        key = slot.participant_id or ""
        if key.endswith(SCREEN):
            return 0, 0  # a shared document is what the room is looking at
        # Then the cameras that send, the latest speaker first; a camera that sends nothing
        # (none, or not yet) last.
        sending = bool(slot.sources["video"].active_layers())
        return 1 if sending else 2, self.speakers.index(key) if key in self.speakers else len(self.speakers)

    async def show_videos(self) -> None:
        """Send video in at most LAST_N slots, as many as the downlink carries (the others stay
        audio), and tell the participant when that changes; a new speaker replaces a shown video
        only every FOLLOW_SPEAKER_S."""
        ranked = sorted((slot for slot in self.slots if "video" in slot.sources), key=self._rank)
        limit = self.downlink.video_limit
        cap = 0 if self.audio_only_chosen else LAST_N if limit is None else min(limit, LAST_N)
        wanted = {id(slot) for slot in ranked[:cap]}
        shown = {id(slot) for slot in ranked if not slot.video.paused}
        if wanted == shown:
            return
        now = time.monotonic()
        if len(wanted) == len(shown) and now - self._videos_at < FOLLOW_SPEAKER_S:
            return
        self._videos_at = now
        logger.info("peer %s downlink %s bps: video in %d of %d slots", self.id, self.downlink.estimate_bps,
                    len(wanted), len(ranked))
        for slot in ranked:
            paused = id(slot) not in wanted
            if paused != slot.video.paused:
                slot.video.pause(paused)
                source = slot.sources["video"]
                if not paused:
                    source.want_keyframe(source.desired(slot.video))
        if self.on_bandwidth is not None:
            await self.on_bandwidth(self)

    def send_remb(self, bitrate_bps: int) -> None:
        """Tell this participant's browser how much to send (REMB for its camera and screen)."""
        sender_ssrc = self._feedback_ssrc()
        ssrcs = [layer.ssrc for s in (self.video, self.screen) for layer in s.active_layers()]
        if sender_ssrc is not None and ssrcs:
            self._send(bytes(RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=sender_ssrc, media_ssrc=0,
                                            fci=pack_remb_fci(bitrate_bps, ssrcs))))

    async def _on_early_rtp(self, data: bytes, arrival_time_ms: int) -> None:
        self._on_rtp(data, time.monotonic_ns() // 1000)

    def _on_rtp(self, data: bytes, arrived_us: int) -> None:
        """An RTP packet from this participant, which reached the kernel at `arrived_us`."""
        header = parse_rtp(data)
        if header is None:
            return
        payload_type, marker, seq, timestamp, ssrc, start, end = header
        if self._transport_cc_id is not None:
            number = header_extension(data, self._transport_cc_id)
            if number is not None and len(number) == 2:
                self.arrivals.arrived(int.from_bytes(number, "big"), arrived_us)
                self._arrivals_ssrc = ssrc
        stream = self._streams_by_ssrc.get(ssrc)
        if stream is None:
            stream = self._kind_by_pt.get(payload_type)
            if stream is None:
                return
            self._streams_by_ssrc[ssrc] = stream
        rid = None
        if self._rid_id is not None and ssrc not in stream.layers:
            value = header_extension(data, self._rid_id)
            rid = value.decode("ascii", "replace") if value else None
        stream.on_packet(data, marker, seq, timestamp, ssrc, start, end, rid)

    def _feedback_ssrc(self) -> int | None:
        """The SSRC the server's RTCP to this publisher comes from (None before the offer)."""
        return hooks.rtcp_ssrc(self._publish[1].receiver) if self._publish else None

    def _on_rtcp(self, data: bytes) -> None:
        """An RTCP compound from this participant: its sender reports, as a publisher (the NTP
        time's middle 32 bits and when it came go back in the receiver reports, LSR and DLSR:
        its round trip); as a subscriber, its transport feedback, receiver reports, NACKs,
        keyframe requests and REMB for the streams the server sends it."""
        changed = False
        transport, data = split_feedback(data)
        delay = self.downlink.delay
        if delay is not None and transport:
            lowered = delay.overused_at
            for body in transport:
                changed = self.downlink.transport_feedback(read_feedback(body)) or changed
            if delay.overused_at != lowered:
                self.choose_layers()  # smaller layers now, not at the next second's round
        try:
            packets = RtcpPacket.parse(data)
        except ValueError:
            packets = []
        for packet in packets:
            if isinstance(packet, RtcpSrPacket):
                for stream in (self.audio, self.video, self.screen):
                    layer = stream.layers.get(packet.ssrc)
                    if layer is not None:
                        layer.last_sr = (packet.sender_info.ntp_timestamp >> 16 & 0xFFFFFFFF, time.monotonic())
            if isinstance(packet, RtcpRrPacket | RtcpSrPacket):
                for report in packet.reports:
                    found = self._slot_by_ssrc.get(report.ssrc)
                    if found is not None:
                        delivered = found[0].delivered(report.highest_sequence, report.packets_lost)
                        changed = self.downlink.loss(report.fraction_lost, delivered) or changed
            elif isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
                found = self._slot_by_ssrc.get(packet.media_ssrc)
                if found is not None:
                    for seq in packet.lost:
                        found[0].retransmit(seq)
            elif isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
                found = self._slot_by_ssrc.get(packet.media_ssrc)
                if found is not None:
                    subscription, slot = found
                    source = slot.sources.get(subscription.kind)
                    if source is not None and subscription.may_ask_keyframe():
                        source.want_keyframe(source.desired(subscription))
            elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
                try:
                    bitrate, _ = unpack_remb_fci(packet.fci)
                except ValueError:
                    continue
                changed = self.downlink.feedback(bitrate) or changed
        if changed:
            task = asyncio.get_running_loop().create_task(self.show_videos())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def send_transport_feedback(self) -> None:
        """Every FEEDBACK_INTERVAL_S: what arrived of what this participant sent, and when."""
        sender_ssrc = self._feedback_ssrc()
        if sender_ssrc is not None:
            packet = self.arrivals.feedback(sender_ssrc, self._arrivals_ssrc)
            if packet is not None:
                self._send(packet)

    def send_reports(self) -> None:
        """Once a second: RTCP sender reports for what this participant receives (its browser
        lines up each speaker's voice and video by them), and receiver reports for what it sends."""
        now = time.time()
        reports = []
        for subscription in (each for slot in self.slots for each in (slot.audio, slot.video)):
            figures = subscription.sender_report(now)
            if figures is not None:
                at, timestamp, packets, octets = figures
                reports.append(bytes(RtcpSrPacket(ssrc=subscription.ssrc, sender_info=RtcpSenderInfo(
                    ntp_timestamp=int((at + NTP_EPOCH_S) * (1 << 32)), rtp_timestamp=timestamp,
                    packet_count=packets & 0xFFFFFFFF, octet_count=octets & 0xFFFFFFFF))))
        if reports:
            self._send(b"".join(reports))  # one compound: 28 bytes a report, 16 at most
        self._send_receiver_reports()

    def _send_receiver_reports(self) -> None:
        """Tell the publisher what arrived of each of its streams (RTCP receiver reports: loss,
        jitter, the round trip), so its encoder adapts to its uplink."""
        sender_ssrc = self._feedback_ssrc()
        if sender_ssrc is None:
            return
        now = time.monotonic()
        reports = []
        for stream in (self.audio, self.video, self.screen):
            for layer in stream.active_layers():
                figures = layer.report()
                if figures is None:
                    continue
                fraction, lost, highest, jitter = figures
                self._uplink_loss = max(self._uplink_loss, fraction)
                lsr, dlsr = (layer.last_sr[0], int((now - layer.last_sr[1]) * 65536)) if layer.last_sr else (0, 0)
                reports.append(RtcpReceiverInfo(ssrc=layer.ssrc, fraction_lost=fraction, packets_lost=lost,
                                                highest_sequence=highest, jitter=jitter, lsr=lsr, dlsr=dlsr))
        if reports:
            self._send(bytes(RtcpRrPacket(ssrc=sender_ssrc, reports=reports[:31])))

    def judge_links(self, server_late: bool = False, drops: dict[int, int] | None = None) -> bool:
        """Once a second, after send_reports: whether this participant's own links look weak
        (its downlink gets smaller layers, fewer frames or fewer videos than it would; what it
        sends arrives with loss); True when either changed. A second in which the server itself
        was late (`server_late`), or the kernel dropped datagrams for this peer's sockets for
        want of buffer (`drops`, signaling/media/lateness.py), says nothing of its links."""
        dropped = sum((drops or {}).get(inode, 0) for inode in self._socket_inodes)
        ours, self._socket_drops = dropped > self._socket_drops, dropped
        uplink_loss, self._uplink_loss = self._uplink_loss, 0
        if server_late or ours:
            return False
        downgraded = self._downgraded and self.downlink.congested_within(DOWNGRADED_LOSS_S)  # (not a hold's tail)
        down = self.downlink_quality.second(downgraded or self.downlink.cutting)
        up = self.uplink_quality.second(uplink_loss > LOSSY_FRACTION)
        return down or up

    def _send(self, packet: bytes) -> bool:
        return self._sender is not None and self._sender(packet)

    def _request_retransmission(self, media_ssrc: int, seqs: list[int]) -> None:
        sender_ssrc = self._feedback_ssrc()
        if sender_ssrc is not None:
            self._send(bytes(RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=sender_ssrc, media_ssrc=media_ssrc, lost=seqs)))

    def _request_keyframe(self, media_ssrc: int) -> None:
        sender_ssrc = self._feedback_ssrc()
        if sender_ssrc is not None:
            self._send(bytes(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=sender_ssrc, media_ssrc=media_ssrc)))

    async def _on_connection_state(self) -> None:
        logger.info("peer %s connection %s", self.id, self.pc.connectionState)
        if self.pc.connectionState == "connected" and not self.connected:
            self.connected = True
            if self.on_connected is not None:
                await self.on_connected(self)
        if self.pc.connectionState in ("failed", "closed"):
            await self._on_closed(self)


def missing_codecs(offer_sdp: str) -> set[str]:
    """The required codecs ('audio/opus', 'video/VP8') that some active m-line of the offer lacks."""
    missing = set()
    for section in re.split(r"\r?\nm=", "\n" + offer_sdp)[1:]:
        kind, _, rest = section.partition(" ")
        if kind not in CODECS or rest.startswith("0 "):  # port 0: a rejected m-line
            continue
        name = CODECS[kind].split("/")[1]
        if not re.search(rf"^a=rtpmap:\d+ {name}/", section, re.M | re.I):
            missing.add(CODECS[kind])
    return missing


def _camera_section(sdp: str) -> tuple[int, int]:
    """Where m-line 1 (the camera) starts and ends in an SDP."""
    starts = [match.start() for match in re.finditer(r"^m=", sdp, re.M)]
    if len(starts) < 2:
        return len(sdp), len(sdp)
    return starts[1], starts[2] if len(starts) > 2 else len(sdp)


def simulcast_offer(offer_sdp: str) -> tuple[list[str], int | None]:
    """The rids the offer's camera sends (in its a=simulcast order) and its rid extension id."""
    start, end = _camera_section(offer_sdp)
    section = offer_sdp[start:end]
    simulcast = re.search(r"^a=simulcast:send (\S+)", section, re.M)
    extension = re.search(rf"^a=extmap:(\d+)(?:/\w+)? {re.escape(RID_URI)}", section, re.M)
    if simulcast is None:
        return [], None
    rids = [rid.lstrip("~") for alternatives in simulcast.group(1).split(";") for rid in alternatives.split(",")[:1]]
    rids = [rid for rid in rids if re.fullmatch(r"[A-Za-z0-9_-]{1,16}", rid)]
    return rids, int(extension.group(1)) if extension else None


def simulcast_answer(answer_sdp: str, rids: list[str]) -> str:
    """The answer with the camera's m-line receiving those simulcast layers."""
    start, end = _camera_section(answer_sdp)
    newline = "\r\n" if "\r\n" in answer_sdp else "\n"
    lines = "".join(f"a=rid:{rid} recv{newline}" for rid in rids) + f"a=simulcast:recv {';'.join(rids)}{newline}"
    return answer_sdp[:end] + lines + answer_sdp[end:]


def _prefer(transceiver: RTCRtpTransceiver) -> None:
    wanted = CODECS[transceiver.kind]
    codecs = [c for c in RTCRtpSender.getCapabilities(transceiver.kind).codecs if c.mimeType == wanted]
    transceiver.setCodecPreferences(codecs)
    if transceiver.kind == "audio":
        # Audio first on poor links: ask publishers for Opus in-band FEC (a lost packet is
        # rebuilt from the next one) and DTX (silence costs almost nothing).
        hooks.set_codec_parameters(transceiver, CODECS["audio"], OPUS_PARAMETERS)
