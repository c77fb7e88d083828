"""Every place where Tiaojie reaches into aiortc internals (pinned: aiortc==1.16.0).

The forwarding engine needs encoded RTP, not decoded frames, and aiortc has no public API for
that. These hooks are per instance (never class-wide), so the same process can still run
ordinary aiortc peers, such as the tests' clients:

- `receive_without_decoding`: RTCRtpReceiver.receive() starts a decoder thread and an RTCP task;
  the replacement only registers the receiver with its DTLS transport, so that the router knows
  its SSRCs and payload types, and starts nothing.
- `intercept_rtp`: RTCDtlsTransport._handle_rtp_data(data, arrival_time_ms) gets each decrypted
  SRTP packet as bytes; the replacement hands the bytes to the engine, which parses only the
  12-byte header (aiortc would build an RtpPacket and reassemble frames in its jitter buffer).
- `receive_rtp_directly`: aioice's Connection.data_received(data, component) queues every
  datagram for RTCDtlsTransport's receive task (a queue, a task wake-up and pylibsrtp's
  allocating unprotect per packet), which routes RTCP to the receivers and senders that
  announced the SSRCs in it; the replacement decrypts an SRTP or SRTCP packet at once with the
  transport's inbound session (through its own buffers, as `packet_sender` does) and hands it to
  the engine, which reads the feedback for the streams it forwards itself (aiortc would ask its
  absent encoder for a keyframe on a PLI, and answer NACKs from an empty history); DTLS, and
  anything before the keys exist, go on to aiortc as usual. Before that, aioice's
  StunProtocol.datagram_received (Connection._protocols) parses every datagram as STUN and
  passes on those that raise; an RTP or RTCP datagram now skips the attempt.
- `idle_track`: an RTCRtpSender pulls frames from its track in _run_rtp; a track whose recv()
  never returns parks that task (with no track, aiortc polls every 20 ms).
- `packet_sender`: protect with the transport's outbound SRTP session and write the datagram to
  the nominated ICE pair's UDP socket synchronously: RTCDtlsTransport._send_rtp would go through
  three awaits per packet. It calls libsrtp through pylibsrtp's own buffers (Session._srtp,
  _cdata, _buffer), skipping the per-call allocation of Session.protect, and writes to a copy of
  the pair's socket descriptor (asyncio's and uvloop's datagram transports alike) directly: when
  the kernel buffer is full the packet is dropped, instead of queued without bound in the transport.
- `set_codec_parameters`: RTCRtpTransceiver._codecs holds the codecs negotiated by
  setRemoteDescription (copies), and createAnswer writes their parameters as fmtp lines.
- `add_header_extension`: RTCRtpTransceiver._headerExtensions holds the header extensions that
  setRemoteDescription kept (aiortc knows only mid, audio level and abs-send-time), and
  createAnswer writes them as extmap lines; simulcast needs the rid extension answered too, and
  a publisher's send-side estimate the transport-cc one.
- `add_rtcp_feedback`: the codecs in RTCRtpTransceiver._codecs (deep copies) keep only the
  rtcp-fb types aiortc knows (nack, nack pli, goog-remb); a browser estimates its uplink from
  transport-cc feedback only where the answer has `a=rtcp-fb:<pt> transport-cc`.
- `no_sender_reports`: RTCRtpSender._run_rtcp sends an RTCP sender report and SDES for every
  sender each second, from private counters, idle slots included (sixteen loops per peer); the
  engine sends one compound per peer with the reports of the slots that sent something, and the
  replacement only sets the two events that RTCRtpSender.stop() waits for.

tests/signaling/test_aiortc_hooks.py checks that each of these internals still exists, so an
aiortc upgrade that moves one fails loudly.
"""
from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aioice.ice
from aiortc import RTCDtlsTransport, RTCRtpReceiver, RTCRtpSender
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcrtpparameters import (
    RTCRtcpFeedback,
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpReceiveParameters,
)
from aiortc.rtcrtptransceiver import RTCRtpTransceiver
from pylibsrtp._binding import ffi as srtp_ffi
from pylibsrtp._binding import lib as srtp_lib

from signaling.media import lateness

RtpHandler = Callable[[bytes, int], Awaitable[None]]
_protect, _protect_rtcp = srtp_lib.srtp_protect, srtp_lib.srtp_protect_rtcp
_unprotect, _unprotect_rtcp = srtp_lib.srtp_unprotect, srtp_lib.srtp_unprotect_rtcp
_UNSET = object()  # (a PacketSender's session and pair before the first, and its pair after close())


def receive_without_decoding(
    receiver: RTCRtpReceiver, on_ssrcs: Callable[[list[int]], None] | None = None,
) -> None:
    """Make receiver.receive() register with the transport and start no decoder; on_ssrcs
    learns the SSRCs that the remote description announced for this receiver."""

    async def receive(parameters: RTCRtpReceiveParameters) -> None:
        receiver.transport._register_rtp_receiver(receiver, parameters)
        if on_ssrcs is not None:
            on_ssrcs([encoding.ssrc for encoding in parameters.encodings if encoding.ssrc])

    receiver.receive = receive  # type: ignore[method-assign]


def intercept_rtp(transport: RTCDtlsTransport, handler: RtpHandler) -> None:
    """Send every decrypted inbound RTP packet (bytes) on this transport to handler."""
    transport._handle_rtp_data = handler  # type: ignore[method-assign, assignment]


class _IdleTrack(MediaStreamTrack):
    """A track that never yields a frame: its sender's RTP task waits instead of polling."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._never: asyncio.Future[Any] = asyncio.get_event_loop().create_future()

    async def recv(self) -> Any:
        return await self._never


def idle_track(kind: str) -> MediaStreamTrack:
    """A placeholder track for a sender whose packets the engine writes itself."""
    return _IdleTrack(kind)


class PacketSender:
    """Protects and sends one RTP or RTCP packet now, given whole or as header and payload (which
    then need not be joined first); False when it could not be (no keys or path yet, too large).
    close() at the end."""

    __slots__ = ("_transport", "_ice", "_pair", "_sock", "_addr", "_session", "_srtp", "_cdata", "_view", "_length")

    def __init__(self, transport: RTCDtlsTransport) -> None:
        self._transport = transport
        self._ice = transport.transport._connection
        self._pair: Any = _UNSET
        self._sock: socket.socket | None = None
        self._addr: Any = None
        self._session: Any = _UNSET
        self._length = srtp_ffi.new("int *")

    def __call__(self, packet: bytes, payload: bytes = b"") -> bool:
        session = self._transport._tx_srtp
        if session is not self._session or self._ice._nominated.get(1) is not self._pair:
            if not self._follow(session):
                return False
        start = len(packet)
        size = start + len(payload)
        if size > 1400:
            return False
        view, length = self._view, self._length
        view[0:start] = packet
        view[start:size] = payload
        length[0] = size
        if 192 <= packet[1] <= 208:  # an RTCP packet type, as aiortc.rtp.is_rtcp tests
            status = _protect_rtcp(self._srtp, self._cdata, length)
        else:
            status = _protect(self._srtp, self._cdata, length)
        if status:
            return False
        try:
            self._sock.sendto(view[:length[0]], self._addr)  # type: ignore[union-attr]
        except OSError:
            # The kernel refused it (its send buffer full, a local firewall's drop): lost as if on
            # the way, never queued. It was numbered and kept, so the receiver asks for it again
            # (NACK) rather than its video waiting for a keyframe.
            pass
        return True

    def _follow(self, session: Any) -> bool:
        """Protect with the transport's current SRTP session, and send from the socket of the
        newly nominated pair (a copy of its descriptor, which works under asyncio and uvloop
        alike); False while there is no session or pair."""
        pair = self._ice._nominated.get(1)
        if session is None or pair is None:
            return False
        if session is not self._session:
            self._session, self._srtp, self._cdata = session, session._srtp[0], session._cdata
            self._view = memoryview(session._buffer)
        if pair is not self._pair:
            udp = pair.protocol.transport
            if udp is None:
                return False
            self.close()
            self._pair, self._addr = pair, pair.remote_addr
            self._sock = socket.socket(fileno=os.dup(udp.get_extra_info("socket").fileno()))
        return True

    def close(self) -> None:
        """Let go of the socket (the peer has closed)."""
        if self._sock is not None:
            self._sock.close()
            self._sock, self._pair = None, _UNSET


def packet_sender(transport: RTCDtlsTransport) -> PacketSender:
    """A function that protects and sends one RTP or RTCP packet (or its header and payload) now;
    False if dropped."""
    return PacketSender(transport)


def receive_rtp_directly(transport: RTCDtlsTransport, on_rtp: Callable[[bytes, int], None],
                         on_rtcp: Callable[[bytes], None]) -> list[int]:
    """Decrypt each inbound SRTP and SRTCP datagram of this transport as it arrives and give the
    RTP packet to on_rtp with the time it reached the kernel (monotonic microseconds, however
    late the loop reads it), the RTCP compound to on_rtcp; DTLS and STUN go on to aiortc. Call it
    once the candidates are gathered (after setLocalDescription): a media datagram then skips
    aioice's STUN parsing too. The sockets' descriptors (each with a large receive buffer)."""
    connection = transport.transport._connection
    original = connection.data_received
    length = srtp_ffi.new("int *")

    def data_received(data: bytes, component: int, arrived_us: int | None = None) -> None:
        session = transport._rx_srtp
        size = len(data)
        if session is None or size < 12 or size > 1500 or not 127 < data[0] < 192:
            original(data, component)
            return
        length[0] = size
        buffer = session._buffer
        buffer[0:size] = data
        if 192 <= data[1] <= 208:  # an RTCP packet type, as aiortc.rtp.is_rtcp tests
            if _unprotect_rtcp(session._srtp[0], session._cdata, length) == 0:
                on_rtcp(buffer[0:length[0]])
        elif _unprotect(session._srtp[0], session._cdata, length) == 0:
            on_rtp(buffer[0:length[0]], time.monotonic_ns() // 1000 if arrived_us is None else arrived_us)
        # else: not authentic (or replayed): dropped, as aiortc drops it

    connection.data_received = data_received  # type: ignore[method-assign]
    return [_skip_stun_parsing(protocol, data_received) for protocol in connection._protocols
            if type(protocol) is aioice.ice.StunProtocol and protocol.transport is not None]


def _skip_stun_parsing(protocol: aioice.ice.StunProtocol, data_received: Callable[[bytes, int, int], None]) -> int:
    """StunProtocol.datagram_received tries to parse every datagram as STUN and hands on those
    that raise; an RTP or RTCP datagram (first byte 128-191, RFC 7983) goes on at once, with the
    kernel's time of its arrival. The socket's descriptor."""
    original = protocol.datagram_received
    component = protocol.local_candidate.component
    fd = protocol.transport.get_extra_info("socket").fileno()
    lateness.receive_buffer(fd)
    lateness.arrival_us(fd)  # (turns the kernel's stamps on for this socket)

    def datagram_received(data: bytes, addr: tuple[Any, ...]) -> None:
        if data and 127 < data[0] < 192:
            data_received(data, component, lateness.arrival_us(fd))
        else:
            original(data, addr)

    protocol.datagram_received = datagram_received  # type: ignore[method-assign, assignment]
    return int(fd)


def no_sender_reports(sender: RTCRtpSender) -> None:
    """Start no RTCP sender-report loop for this sender (the engine sends its reports)."""

    async def run_rtcp() -> None:
        sender._RTCRtpSender__rtcp_started.set()  # type: ignore[attr-defined]
        try:
            await asyncio.Event().wait()
        finally:
            sender._RTCRtpSender__rtcp_exited.set()  # type: ignore[attr-defined]

    sender._run_rtcp = run_rtcp  # type: ignore[method-assign]


def negotiated_codecs(transceiver: RTCRtpTransceiver) -> list[RTCRtpCodecParameters]:
    """The codecs setRemoteDescription negotiated for a transceiver, preferred first."""
    return list(transceiver._codecs)


def sender_ssrc(transceiver: RTCRtpTransceiver) -> int:
    """The SSRC the transceiver's sender sends with."""
    return int(transceiver.sender._ssrc)


def set_codec_parameters(transceiver: RTCRtpTransceiver, mime_type: str, parameters: dict[str, int]) -> None:
    """Add fmtp parameters to a codec negotiated by setRemoteDescription (the answer copies them)."""
    for codec in transceiver._codecs:
        if codec.mimeType.lower() == mime_type.lower():
            codec.parameters.update(parameters)


def add_header_extension(transceiver: RTCRtpTransceiver, uri: str, extension_id: int) -> None:
    """Answer an RTP header extension that aiortc does not know (it then writes its extmap line)."""
    if all(extension.uri != uri for extension in transceiver._headerExtensions):
        transceiver._headerExtensions.append(RTCRtpHeaderExtensionParameters(id=extension_id, uri=uri))


def add_rtcp_feedback(transceiver: RTCRtpTransceiver, feedback_type: str) -> None:
    """Answer an RTCP feedback type that aiortc does not know for each negotiated codec but RTX
    (createAnswer writes the codecs' rtcp-fb lines)."""
    for codec in transceiver._codecs:
        if not codec.mimeType.lower().endswith("/rtx") and all(f.type != feedback_type for f in codec.rtcpFeedback):
            codec.rtcpFeedback.append(RTCRtcpFeedback(type=feedback_type))


def rtcp_ssrc(receiver: RTCRtpReceiver) -> int | None:
    """The SSRC a receiver uses as the sender of its RTCP feedback."""
    ssrc: int | None = receiver._RTCRtpReceiver__rtcp_ssrc  # type: ignore[attr-defined]
    return ssrc
