"""The aiortc internals that signaling/media/_aiortc_hooks.py relies on are still where it expects them."""
from __future__ import annotations

import asyncio
import inspect
import time
from importlib.metadata import version

import aioice.ice
import aiortc
from aioice import Connection
from aiortc import RTCDtlsTransport, RTCPeerConnection, RTCRtpReceiver, RTCRtpSender

from signaling.media import _aiortc_hooks as hooks


def test_pinned_versions() -> None:
    """The hooks reach into aiortc, aioice and pylibsrtp: each is pinned to the version they were
    written for, here and in pyproject.toml."""
    from pathlib import Path

    pins = {"aiortc": "1.16.0", "aioice": "0.13.0", "pylibsrtp": "1.0.0"}
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    for package, pinned in pins.items():
        assert version(package) == pinned, f"the hooks were written for {package} {pinned}: re-check them"
        assert f'"{package}=={pinned}"' in pyproject, f"pin {package}=={pinned} in pyproject.toml"


async def test_every_private_name_the_hooks_use_from_pylibsrtp_and_aioice_exists() -> None:
    import pylibsrtp
    from pylibsrtp import _binding

    for function in ("srtp_protect", "srtp_protect_rtcp", "srtp_unprotect", "srtp_unprotect_rtcp"):
        assert callable(getattr(_binding.lib, function)), function
    policy = pylibsrtp.Policy(key=bytes(30), ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
                              srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80)
    session = pylibsrtp.Session(policy)
    assert isinstance(session._cdata, _binding.ffi.CData) and len(session._buffer) == 1500
    assert session._srtp[0] is not None
    connection = Connection(ice_controlling=True)
    assert connection._nominated == {} and connection._protocols == []
    assert isinstance(aioice.ice.StunProtocol(connection), aioice.ice.StunProtocol)


def test_transport_internals() -> None:
    recv_next = inspect.getsource(RTCDtlsTransport._recv_next)
    assert "self._handle_rtp_data(data, arrival_time_ms=arrival_time_ms)" in recv_next
    # receive_rtp_directly decrypts with the transport's inbound session, as _recv_next does.
    assert "_rx_srtp.unprotect(data)" in recv_next and "_rx_srtp.unprotect_rtcp(data)" in recv_next
    assert "self._tx_srtp = " in inspect.getsource(RTCDtlsTransport._setup_srtp)
    assert "def _register_rtp_receiver" in inspect.getsource(RTCDtlsTransport)
    assert "self._nominated" in inspect.getsource(Connection.sendto)
    # receive_rtp_directly: aioice hands every datagram to data_received, which only queues it.
    assert "self._queue.put_nowait((data, component))" in inspect.getsource(Connection.data_received)
    assert "data_received(data, self.local_candidate.component)" in inspect.getsource(aioice.ice.StunProtocol.datagram_received)
    assert "active_pair.protocol.send_data(data, active_pair.remote_addr)" in inspect.getsource(Connection.sendto)
    # ... and before that, StunProtocol.datagram_received tries to parse it as STUN.
    assert "stun.parse_message(data)" in inspect.getsource(aioice.ice.StunProtocol.datagram_received)
    assert "self._protocols: list[StunProtocol] = []" in inspect.getsource(Connection.__init__)


def test_receiver_and_sender_internals() -> None:
    assert "decoder_worker" in inspect.getsource(RTCRtpReceiver.receive)
    assert "_register_rtp_receiver(self, parameters)" in inspect.getsource(RTCRtpReceiver.receive)
    connect = inspect.getsource(RTCPeerConnection._RTCPeerConnection__connect)
    assert "await transceiver.receiver.receive(" in connect
    # no_sender_reports: send() starts _run_rtcp as a task, stop() waits for its two events.
    assert "asyncio.ensure_future(self._run_rtcp())" in inspect.getsource(RTCRtpSender.send)
    stop = inspect.getsource(RTCRtpSender.stop)
    assert "self.__rtcp_started.wait()" in stop and "self.__rtcp_exited.wait()" in stop
    run_rtp = inspect.getsource(RTCRtpSender._run_rtp)
    assert "await self._next_encoded_frame(codec)" in run_rtp
    # set_codec_parameters: the answer is written from the transceiver's negotiated codecs.
    assert "codecs=transceiver._codecs" in inspect.getsource(aiortc.rtcpeerconnection.create_media_description_for_transceiver)
    # add_header_extension: ... and its header extensions.
    assert "headerExtensions=transceiver._headerExtensions" in inspect.getsource(
        aiortc.rtcpeerconnection.create_media_description_for_transceiver)
    # add_rtcp_feedback: the negotiated codecs are deep copies, their rtcp-fb written as lines.
    common = inspect.getsource(aiortc.rtcpeerconnection.find_common_codecs)
    assert "codec = copy.deepcopy(codec)" in common and "codec.rtcpFeedback = list(" in common
    assert "for feedback in codec.rtcpFeedback:" in inspect.getsource(aiortc.sdp.MediaDescription.__str__)


async def test_private_attributes_exist_on_instances() -> None:
    pc = RTCPeerConnection()
    transceiver = pc.addTransceiver("video")
    sender, receiver = transceiver.sender, transceiver.receiver
    for name in ("__rtcp_started", "__rtcp_exited", "__encoder"):
        assert hasattr(sender, f"_RTCRtpSender{name}"), name
    for name in ("__rtcp_ssrc", "__decoder_thread"):
        assert hasattr(receiver, f"_RTCRtpReceiver{name}"), name
    assert isinstance(sender._ssrc, int)
    assert hasattr(receiver.transport, "_tx_srtp") and hasattr(receiver.transport, "_rx_srtp")
    assert hasattr(receiver.transport.transport, "_connection")
    assert hasattr(transceiver, "_codecs")
    assert hooks.sender_ssrc(transceiver) == sender._ssrc and hooks.negotiated_codecs(transceiver) == []
    await pc.close()


async def test_packet_sender_drops_until_the_keys_and_pair_exist_then_sends_what_arrives_whole() -> None:
    from signaling.media import _aiortc_hooks as hooks

    sender_pc, receiver_pc = RTCPeerConnection(), RTCPeerConnection()
    sender_pc.addTransceiver("audio", direction="sendonly")
    transport = sender_pc.getTransceivers()[0].sender.transport
    send = hooks.packet_sender(transport)
    header = bytes([0x80, 111, 0, 1]) + (960).to_bytes(4, "big") + (1234).to_bytes(4, "big")
    assert send(header, b"before the keys") is False  # no SRTP session, no pair: dropped, no error

    await sender_pc.setLocalDescription(await sender_pc.createOffer())
    await receiver_pc.setRemoteDescription(sender_pc.localDescription)
    await receiver_pc.setLocalDescription(await receiver_pc.createAnswer())
    await sender_pc.setRemoteDescription(receiver_pc.localDescription)
    arrived: list[tuple[bytes, int, int]] = []  # (packet, arrival, when it was read) in microseconds
    connected = asyncio.Event()
    receiver_pc.on("connectionstatechange", lambda: receiver_pc.connectionState == "connected" and connected.set())
    await asyncio.wait_for(connected.wait(), 10)
    receiver_transport = receiver_pc.getTransceivers()[0].receiver.transport
    hooks.receive_rtp_directly(receiver_transport, lambda packet, at: arrived.append(
        (bytes(packet), at, time.monotonic_ns() // 1000)), lambda data: None)
    await asyncio.sleep(0.1)  # (the kernel turns its receive stamps on a moment after it is asked)
    for _ in range(50):  # (the sender's keys come with its side of the DTLS handshake)
        sent = time.monotonic_ns() // 1000
        if send(header, b"after"):
            break
        await asyncio.sleep(0.1)
    time.sleep(0.2)  # the loop is busy: the datagram waits in the kernel
    for _ in range(50):
        if arrived:
            break
        await asyncio.sleep(0.02)
    assert [packet for packet, _, _ in arrived] == [header + b"after"]
    # Its arrival is the kernel's (when it came), not when the busy loop read it.
    _, at, read = arrived[0]
    assert read - at >= 150_000 and at - sent < 50_000, (sent, at, read)
    send.close()
    await sender_pc.close()
    await receiver_pc.close()
