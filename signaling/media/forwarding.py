"""RTP-level forwarding: one published stream fanned out to subscribers' senders.

Nothing here decodes or encodes media. A packet arrives decrypted (once); for each subscriber
its header is rewritten (SSRC, payload type, sequence number, timestamp; video also gets the
abs-send-time extension, so that the subscriber can estimate its bandwidth and say so in REMB)
and it is encrypted for that subscriber and sent. Each subscriber keeps a short history to
answer NACKs. A new subscriber gets no video until a keyframe starts, and asks the publisher for
one (PLI), repeating until the publisher's SSRC is known and a keyframe arrives.

Everything sent to a subscriber passes its downlink budget (`signaling/media/bandwidth.py`): video
over the budget is dropped until the next keyframe, and that subscriber waits a while before it
asks for one, so a weak link cannot make the publisher send keyframes for everyone (VP8 in
temporal layers, as browsers send simulcast, first loses frames of its top layer, one by one); NACKs are
answered only from what the budget spares. A subscriber on audio only gets no video at all.
If a subscriber's UDP transport backs up, its packets are dropped the same way, so a slow
subscriber never grows memory or delays the others.
"""
from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from signaling.media.bandwidth import Downlink
from signaling.media.simulcast import Layer
from signaling.media.transport_cc import PACKET_OVERHEAD

PLI_MIN_INTERVAL_S = 0.3
# One subscriber's own keyframe requests (PLI/FIR) reach the publisher at most this often, so a
# weak link that keeps losing frames cannot make the publisher send keyframes for everyone.
SUBSCRIBER_PLI_MIN_INTERVAL_S = 1.0
KEYFRAME_RETRY_S = 0.5
# A subscriber whose own budget dropped video asks for a keyframe only after this long.
BUDGET_KEYFRAME_BACKOFF_S = 2.0
HISTORY_SIZE = 512  # packets kept per subscriber for retransmission (about 5 s of video)
NACK_RETRY_S = 0.1  # a packet still missing this long after the first NACK is asked for once more
NACK_MAX_GAP = 64  # a larger jump in sequence numbers is a restart, not loss
NACK_FORGET_S = 1.0  # a packet missing longer than this is given up (the keyframe logic takes over)
RESEND_AFTER_S = 0.3  # a packet sent again is not sent again sooner than this (it may be on its way)
RESEND_MAX_AGE = 96  # packets: an older one is too late to be shown (and would look like a restart)
_HEADER = struct.Struct("!BBHII")
_HEADER_WITH_SEND_TIME = struct.Struct("!BBHIIII")  # ... and one word of one-byte extensions (abs-send-time, or transport-cc)
_HEADER_WITH_TWO = struct.Struct("!BBHIIIII")  # ... or two: abs-send-time and transport-cc
_ONE_BYTE_EXTENSIONS = 0xBEDE0001  # the RFC 8285 profile, one 32-bit word of extensions
_TWO_WORDS_OF_EXTENSIONS = 0xBEDE0002
_ABS_SEND_TIME_UNITS = 1 << 18  # 6.18 fixed-point seconds
_SEQ_TS_SSRC = struct.Struct("!HII")
_STEADY, _AFTER_GAP, _NEW_SOURCE = 0, 1, 2  # Subscription._rebase
ALL_LAYERS = 3  # the highest VP8 temporal layer (TID has two bits): a cap that leaves none out
_PADDING_BIT = 0x20  # in an RTP header's first byte: the payload is padding (ours: a probe's)
PADDING_SIZE = 224  # a probe packet's padding (at most 255): its last byte says how long it is
_PADDING = bytes(PADDING_SIZE - 1) + bytes([PADDING_SIZE])
class Vp8Descriptor(NamedTuple):
    """What the forwarding needs from a VP8 payload descriptor (RFC 7741); all 0 when absent."""

    length: int  # of the descriptor, in bytes: the VP8 payload header follows
    keyframe: int  # 1 when this packet starts a keyframe
    picture_id: int
    pid_at: int  # where the picture id is
    pid_size: int  # its size in bytes: 0 (none), 1 (7 bits) or 2 (15 bits)
    tl0_at: int  # where TL0PICIDX is (0: none)
    tid: int  # the temporal layer (0 without one)
    sync: int  # Y: the frame refers to base-layer frames only


_NO_DESCRIPTOR = Vp8Descriptor(0, 0, 0, 0, 0, 0, 0, 0)


def abs_send_time() -> int:
    """Now, as the abs-send-time header extension has it (6.18 fixed-point seconds, 24 bits)."""
    return int(time.time() * _ABS_SEND_TIME_UNITS) & 0xFFFFFF


def parse_rtp(data: bytes) -> tuple[int, int, int, int, int, int, int] | None:
    """(payload type, marker, sequence, timestamp, ssrc, payload start, payload end) or None."""
    if len(data) < 12 or data[0] >> 6 != 2:
        return None
    first = data[0]
    seq, timestamp, ssrc = _SEQ_TS_SSRC.unpack_from(data, 2)
    start = 12 + 4 * (first & 0x0F)
    if first & 0x10:
        if len(data) < start + 4:
            return None
        start += 4 + 4 * int.from_bytes(data[start + 2:start + 4], "big")
    end = len(data)
    if first & 0x20:
        end -= data[-1]
    if start > end:
        return None
    return data[1] & 0x7F, data[1] >> 7, seq, timestamp, ssrc, start, end


def header_extension(data: bytes, extension_id: int) -> bytes | None:
    """The value of a one-byte RTP header extension (RFC 8285), if the packet has it."""
    if not data[0] & 0x10:
        return None
    start = 12 + 4 * (data[0] & 0x0F)
    if data[start:start + 2] != b"\xbe\xde":
        return None
    end = start + 4 + 4 * int.from_bytes(data[start + 2:start + 4], "big")
    i = start + 4
    while i < end:
        byte = data[i]
        if byte == 0:
            i += 1
            continue
        ext_id, length = byte >> 4, (byte & 0x0F) + 1
        if ext_id == extension_id:
            return data[i + 1:i + 1 + length]
        i += 1 + length
    return None


def audio_level(data: bytes, extension_id: int) -> int | None:
    """The RFC 6464 audio level (0 loud .. 127 silent) from its header extension, if any."""
    value = header_extension(data, extension_id)
    return value[0] & 0x7F if value else None


def vp8_descriptor(payload: bytes | memoryview) -> Vp8Descriptor:
    """The payload's VP8 descriptor (see Vp8Descriptor); a too-short payload's is all zeros."""
    size = len(payload)
    if size < 2:
        return _NO_DESCRIPTOR
    first = payload[0]
    i = 1
    picture_id = pid_at = pid_size = tl0_at = tid = sync = 0
    if first & 0x80:  # X: extension byte follows
        ext = payload[1]
        i = 2
        if ext & 0x80 and size > 2:  # I: picture id, 1 or 2 bytes
            pid_at = 2
            if payload[2] & 0x80:
                pid_size = 2
                picture_id = ((payload[2] & 0x7F) << 8) | payload[3] if size > 3 else 0
            else:
                pid_size = 1
                picture_id = payload[2]
            i += pid_size
        if ext & 0x40:  # L: TL0PICIDX
            tl0_at = i
            i += 1
        if ext & 0x30:  # T or K: TID, Y and KEYIDX
            if ext & 0x20 and size > i:
                tid, sync = payload[i] >> 6, payload[i] >> 5 & 1
            i += 1
    keyframe = first & 0x10 and not first & 0x0F and size > i and not payload[i] & 0x01  # S, partition 0, P=0
    return Vp8Descriptor(i, 1 if keyframe else 0, picture_id, pid_at, pid_size, tl0_at, tid, sync)


def vp8_keyframe_size(payload: bytes | memoryview, descriptor_length: int) -> tuple[int, int]:
    """Width and height from the frame header that starts a VP8 keyframe ((0, 0) if absent)."""
    header = payload[descriptor_length:descriptor_length + 10]
    if len(header) < 10 or header[3:6] != b"\x9d\x01\x2a":
        return 0, 0
    return (header[6] | header[7] << 8) & 0x3FFF, (header[8] | header[9] << 8) & 0x3FFF


class Subscription:
    """One subscriber's sender of one stream: header rewriting, history, keyframe gating."""

    def __init__(
        self, kind: str, ssrc: int, payload_type: int, send: Callable[[bytes, bytes], bool], *,
        downlink: Downlink | None = None, abs_send_time_id: int | None = None, transport_cc_id: int | None = None,
    ) -> None:
        self.kind = kind
        self.ssrc = ssrc
        self.payload_type = payload_type
        self._send = send
        self._video = kind == "video"
        self._clock_rate = 90_000 if self._video else 48_000
        self.downlink = downlink or Downlink()
        self._abs_send_time_id = abs_send_time_id if self._video else None
        # Transport-wide sequence numbers (and the subscriber's feedback on them) where its
        # browser negotiated them: its link's delay-based estimate (Downlink.delay).
        self._transport_cc_id = transport_cc_id if self.downlink.delay is not None else None
        self.paused = False  # the subscriber is on audio only: no video, no keyframe requests
        # Simulcast: the publisher's layer (SSRC) being forwarded, the one chosen for this
        # subscriber (None: the largest), and how large the subscriber shows the video (pixels;
        # None: not told).
        self.source: int | None = None
        self.target: int | None = None
        self.tile_pixels: int | None = None
        self._ask_after = 0.0
        self._frame_ts: int | None = None  # the video frame being sent (its RTP timestamp)
        # VP8 temporal layers: the highest seen in this source, the highest forwarded now (frames
        # of the top layer are left out while the budget is in debt, and their layer comes back
        # at its next sync frame), and the frame being left out.
        self._top_tid = 0
        self._temporal_cap = ALL_LAYERS
        self._skipped_ts: int | None = None
        self._last_pli = -SUBSCRIBER_PLI_MIN_INTERVAL_S
        self.waiting_keyframe = kind == "video"
        # What the numbering of the next packet sent continues from: a new source (timestamps
        # and picture ids too), or packets left out (sequence numbers only).
        self._rebase = _NEW_SOURCE
        self._seq_offset = 0
        self._ts_offset = 0
        self._last_seq = int.from_bytes(time.time_ns().to_bytes(8, "big")[-2:], "big")
        # VP8 picture ids and TL0PICIDX continue across a change of source, like the numbering.
        self._pid_offset = 0
        self._tl0_offset = 0
        # The packets last sent (header and payload), by sequence number modulo HISTORY_SIZE, and
        # the bytes sent up to and including each (what a receiver report's range carried). Lists
        # side by side rather than one of tuples: a tuple per packet is work for the garbage collector.
        self._headers: list[bytes | None] = [None] * HISTORY_SIZE
        self._payloads: list[bytes] = [b""] * HISTORY_SIZE
        self._sent_upto = [0] * HISTORY_SIZE
        self._sent_bytes = 0
        # (wall-clock time, RTP timestamp) of a packet sent lately: the sender report's clock.
        self._clock: tuple[float, int] | None = None
        self._reported: tuple[int, int] | None = None  # (highest sequence, lost) of the last report
        self._resent: dict[int, float] = {}  # sequence number -> when it was last sent again
        self.retransmitted = 0
        self.packets = 0
        self.octets = 0
        self.dropped = 0
        self.thinned = 0  # frames of the top temporal layer left out
        self.switches = 0

    def restart(self) -> None:
        """A new source: continue numbering after the last packet, wait for a keyframe."""
        self.source = None
        self._rebase = _NEW_SOURCE
        self._top_tid = 0
        self._skipped_ts = None
        self.waiting_keyframe = self.kind == "video"

    def left_out(self) -> None:
        """A packet of the source was not forwarded (padding): the numbering goes on without it."""
        self._rebase = max(self._rebase, _AFTER_GAP)

    def switch(self, ssrc: int) -> None:
        """Forward another layer (at its keyframe) with the numbering continued."""
        if self.source is not None:
            self.switches += 1
        self.restart()
        self.source = ssrc

    def forward(self, payload: bytes, marker: int, seq: int, timestamp: int, keyframe: bool,
                vp8: Vp8Descriptor | None = None, sent_at: int | None = None) -> bool:
        """Send one packet; False when this subscriber needs a keyframe (ask the publisher now).
        vp8 is the packet's vp8_descriptor, for video; sent_at its abs-send-time (default: now)."""
        if self.paused:
            return True
        if self._video and timestamp != self._frame_ts:  # a new frame: may it start?
            if timestamp == self._skipped_ts:
                return True
            tid = sync = pid_size = 0
            if vp8 is not None and not self.waiting_keyframe and not keyframe:  # (a keyframe is never left out)
                tid, sync, pid_size = vp8.tid, vp8.sync, vp8.pid_size
            if tid and self._layer_off(tid, sync):
                self._skip(timestamp, pid_size)
                self.downlink.left_out()
                return True
            # A frame of the top temporal layer (half the frames, or more) is left out at once
            # when the budget is in debt: it costs the subscriber that frame, where a frame of
            # the base layer left out costs a keyframe's wait. A frame of a middle layer that the
            # budget refuses is left out the same way (only frames of its layer and above refer
            # to it, until their next sync frame): refused as a base-layer frame, it froze the
            # video two seconds, waiting for a keyframe, on a downlink that had just fallen.
            droppable = tid > 0 and tid == self._top_tid
            if (keyframe or not self.waiting_keyframe) and not self.downlink.start_frame(droppable=droppable):
                if tid:
                    self._temporal_cap = tid - 1
                    self._skip(timestamp, pid_size)
                    return True
                self.dropped += 1
                self._drop_until_keyframe(BUDGET_KEYFRAME_BACKOFF_S)
                return True  # it asks later: a weak link must not bring keyframes on everyone
            self._frame_ts = timestamp
            self._temporal_cap = ALL_LAYERS if keyframe else max(self._temporal_cap, tid)
        if self.waiting_keyframe:
            if not keyframe:
                return time.monotonic() < self._ask_after
            self.waiting_keyframe = False
        if self._rebase:
            self._continue_numbering(payload, seq, timestamp, vp8)
        if (self._pid_offset or self._tl0_offset) and vp8 is not None and vp8.pid_size:
            payload = self._renumber(payload, vp8)
        out_seq = (seq + self._seq_offset) & 0xFFFF
        out_ts = (timestamp + self._ts_offset) & 0xFFFFFFFF
        header = self._header(0x80, (marker << 7) | self.payload_type, out_seq, out_ts, len(payload), sent_at)
        size = len(header) + len(payload)
        self.downlink.sent(size, self._video)
        self._sent_bytes += size
        slot = out_seq % HISTORY_SIZE
        self._headers[slot] = header
        self._payloads[slot] = payload  # (shared with the other subscribers)
        self._sent_upto[slot] = self._sent_bytes
        if not self._send(header, payload):
            self.dropped += 1
            if self._video:
                self._drop_until_keyframe(0.0)
                return False
            return True
        if (out_seq - self._last_seq) & 0xFFFF < 0x8000:  # a late (repaired) packet does not rewind
            self._last_seq = out_seq
        self.packets += 1
        self.octets += len(payload)
        if self.packets & 15 == 1:
            self._clock = (time.time(), out_ts)
        return True

    def _header(self, first: int, second: int, seq: int, timestamp: int, payload_size: int, sent_at: int | None) -> bytes:
        """A packet's RTP header, with abs-send-time (`sent_at`, default now) and a transport
        sequence number where the subscriber negotiated them; `first` is its first byte without
        the extension bit."""
        if self._abs_send_time_id is not None:
            send_time = (self._abs_send_time_id << 28) | (2 << 24) | (abs_send_time() if sent_at is None else sent_at)
            if self._transport_cc_id is not None:
                return _HEADER_WITH_TWO.pack(first | 0x10, second, seq, timestamp, self.ssrc, _TWO_WORDS_OF_EXTENSIONS,
                                             send_time, self._transport_word(_HEADER_WITH_TWO.size + payload_size))
            return _HEADER_WITH_SEND_TIME.pack(first | 0x10, second, seq, timestamp, self.ssrc, _ONE_BYTE_EXTENSIONS, send_time)
        if self._transport_cc_id is not None:
            return _HEADER_WITH_SEND_TIME.pack(first | 0x10, second, seq, timestamp, self.ssrc, _ONE_BYTE_EXTENSIONS,
                                               self._transport_word(_HEADER_WITH_SEND_TIME.size + payload_size))
        return _HEADER.pack(first, second, seq, timestamp, self.ssrc)

    def pad(self, octets: int) -> bool:
        """Probe the link: padding-only packets of about `octets` bytes in all (on the wire),
        between two frames (the receiver takes them as filling its sequence numbers), each with
        a transport sequence number; False where this stream cannot carry them now (no
        transport-cc, nothing sent yet, or in the middle of a frame)."""
        if not self._video or self._transport_cc_id is None or self.paused or self.waiting_keyframe or self._rebase \
                or not self.packets:
            return False
        last = self._headers[self._last_seq % HISTORY_SIZE]
        if last is None or not last[1] & 0x80 and not last[0] & _PADDING_BIT:  # (a frame's last packet has the marker)
            return False
        timestamp = int.from_bytes(last[4:8], "big")
        for _ in range(-(-octets // (PADDING_SIZE + _HEADER_WITH_TWO.size + PACKET_OVERHEAD))):
            self._seq_offset += 1  # the source's packets come after these
            self._last_seq = seq = (self._last_seq + 1) & 0xFFFF
            header = self._header(0x80 | _PADDING_BIT, self.payload_type, seq, timestamp, PADDING_SIZE, None)
            self._sent_bytes += len(header) + PADDING_SIZE
            slot = seq % HISTORY_SIZE
            self._headers[slot], self._payloads[slot], self._sent_upto[slot] = header, _PADDING, self._sent_bytes
            self._send(header, _PADDING)
        return True

    def _layer_off(self, tid: int, sync: int) -> bool:
        """Whether a frame of temporal layer tid (> 0) is left out because its layer is off: a
        frame of it was left out, and this one may refer to that one (a sync frame refers to
        base-layer frames only, and brings its layer back)."""
        self._top_tid = max(self._top_tid, tid)
        return tid > self._temporal_cap + sync

    def _skip(self, timestamp: int, pid_size: int) -> None:
        """Leave out this frame (of a temporal layer); numbering and picture ids (if it has one)
        go on as if it never was."""
        self.thinned += 1
        self._skipped_ts = timestamp
        self._rebase = max(self._rebase, _AFTER_GAP)
        if pid_size:
            self._pid_offset -= 1

    def _continue_numbering(self, payload: bytes, seq: int, timestamp: int, vp8: Vp8Descriptor | None) -> None:
        """Offsets that make this packet follow on from the last one sent (the newest in the
        history): its sequence number after packets left out (no gap the subscriber would NACK
        in vain); for a new source, its timestamp and VP8 picture id and TL0PICIDX too."""
        self._seq_offset = (self._last_seq + 1 - seq) & 0xFFFF
        if self._rebase == _NEW_SOURCE and self.packets:
            slot = self._last_seq % HISTORY_SIZE
            for _ in range(HISTORY_SIZE):  # back over a probe's padding (`pad`) to the last media packet
                header = self._headers[slot]
                if header is None or not header[0] & _PADDING_BIT:
                    break
                slot = (slot - 1) % HISTORY_SIZE
            last = self._payloads[slot]
            assert header is not None  # (packets were sent)
            step = 3000 if self._video else 960  # one frame at 90 kHz / 20 ms at 48 kHz
            self._ts_offset = (int.from_bytes(header[4:8], "big") + step - timestamp) & 0xFFFFFFFF
            if vp8 is not None:
                previous = vp8_descriptor(last)
                self._pid_offset = previous.picture_id + 1 - vp8.picture_id
                self._tl0_offset = (last[previous.tl0_at] + 1 - payload[vp8.tl0_at]) if vp8.tl0_at and previous.tl0_at else 0
        self._rebase = _STEADY

    def _renumber(self, payload: bytes, vp8: Vp8Descriptor) -> bytes:
        """The payload with its picture id (and TL0PICIDX) shifted by this subscriber's offsets."""
        _, _, picture_id, pid_at, pid_size, tl0_at, _, _ = vp8
        out = bytearray(payload)
        if pid_size == 2:
            picture_id = (picture_id + self._pid_offset) & 0x7FFF
            out[pid_at] = 0x80 | picture_id >> 8
            out[pid_at + 1] = picture_id & 0xFF
        else:
            out[pid_at] = (picture_id + self._pid_offset) & 0x7F
        if tl0_at:
            out[tl0_at] = (payload[tl0_at] + self._tl0_offset) & 0xFF
        return bytes(out)

    def may_ask_keyframe(self) -> bool:
        """Whether this subscriber's PLI/FIR may go on to the publisher now (rate-limited)."""
        now = time.monotonic()
        if self.paused or now - self._last_pli < SUBSCRIBER_PLI_MIN_INTERVAL_S:
            return False
        self._last_pli = now
        return True

    def _drop_until_keyframe(self, backoff_s: float) -> None:
        self.waiting_keyframe = True
        self._frame_ts = None
        self._rebase = max(self._rebase, _AFTER_GAP)
        self._ask_after = time.monotonic() + backoff_s

    def pause(self, paused: bool) -> None:
        """Audio only (no video at all) or back to video, from the next keyframe."""
        self.paused = paused
        if not paused:
            self.waiting_keyframe = True
            self._rebase = max(self._rebase, _AFTER_GAP)
            self._ask_after = 0.0

    def delivered(self, highest: int, lost: int) -> int | None:
        """The bytes that reached the subscriber since its previous receiver report, from this
        one's extended highest sequence number and cumulative packets lost (those lost are
        taken as the range's average size); None when it cannot be told (the first report, or a
        range the history no longer holds)."""
        highest &= 0xFFFF
        previous, self._reported = self._reported, (highest, lost)
        if previous is None:
            return None
        expected = (highest - previous[0]) & 0xFFFF
        if expected == 0:
            return 0
        if expected >= HISTORY_SIZE or not self._sent(previous[0]) or not self._sent(highest):
            return None
        sent = self._sent_upto[highest % HISTORY_SIZE] - self._sent_upto[previous[0] % HISTORY_SIZE]
        received = max(0, expected - max(0, lost - previous[1]))
        return sent * received // expected

    def _sent(self, seq: int) -> bool:
        """Whether the history still has the packet sent with this sequence number."""
        header = self._headers[seq % HISTORY_SIZE]
        return header is not None and int.from_bytes(header[2:4], "big") == seq

    def sender_report(self, now: float) -> tuple[float, int, int, int] | None:
        """What an RTCP sender report says now: (wall-clock time, the RTP timestamp of that
        instant, packets and payload octets sent), or None before the first packet."""
        if self._clock is None:
            return None
        at, timestamp = self._clock
        return now, (timestamp + int((now - at) * self._clock_rate)) & 0xFFFFFFFF, self.packets, self.octets

    def retransmit(self, seq: int) -> bool:
        """Send a packet again from the history (answering a NACK), if the budget spares it."""
        if not self._sent(seq) or (self._last_seq - seq) & 0xFFFF > RESEND_MAX_AGE:
            return False
        now = time.monotonic()
        if now - self._resent.get(seq, -RESEND_AFTER_S) < RESEND_AFTER_S:
            return False  # a browser NACKs again each round trip; the last copy may still be on its way
        slot = seq % HISTORY_SIZE
        header, payload = self._headers[slot], self._payloads[slot]
        assert header is not None  # (_sent checked it)
        if not self.downlink.admit_retransmission(len(header) + len(payload), self._video):
            return False
        if len(self._resent) >= HISTORY_SIZE:
            self._resent = {n: at for n, at in self._resent.items() if now - at < RESEND_AFTER_S}
        self._resent[seq] = now
        self.retransmitted += 1
        if self._transport_cc_id is not None:  # (each packet sent has a transport sequence number of its own)
            header = header[:-4] + self._transport_word(len(header) + len(payload)).to_bytes(4, "big")
        return self._send(header, payload)

    def _transport_word(self, size: int) -> int:
        """The transport-cc extension (its one-byte header, the number, a byte of padding) for a
        packet of this size sent now."""
        assert self._transport_cc_id is not None and self.downlink.delay is not None
        return (self._transport_cc_id << 28) | (1 << 24) | (self.downlink.delay.log.next(size) << 8)


class PublishedStream:
    """A stream a participant sends (its layers, for simulcast video), its subscribers and its
    keyframe requests."""

    def __init__(
        self, kind: str, request_keyframe: Callable[[int], None],
        request_retransmission: Callable[[int, list[int]], None] | None = None,
    ) -> None:
        self.kind = kind
        self.layers: dict[int, Layer] = {}
        self.top: Layer | None = None  # the largest active layer: who chose nothing gets it
        self.subscriptions: list[Subscription] = []
        # The layers some subscriber gets or waits for (None: to be worked out again): the packets
        # of any other layer go nowhere, without a look at each subscriber.
        self._needed: set[int] | None = None
        self._request_keyframe = request_keyframe
        # Uplink loss is repaired here, once, by NACKing the publisher: its retransmission then
        # reaches every subscriber like any packet (instead of each of them NACKing the loss).
        self._request_retransmission = request_retransmission
        self.nacks_sent = 0
        self.recovered = 0
        self.packets = 0
        # Muted by the host: nothing is forwarded until the participant unmutes.
        self.held = False
        # Recording taps (signaling/media/recording.py), fed from the top layer; empty unless the room records.
        self.taps: list[Any] = []
        # Audio: the RFC 6464 header extension id, and the loudest level (0 loud .. 127 silent)
        # since the room last looked, for the active speaker.
        self.level_extension: int | None = None
        self.loudest = 127

    @property
    def ssrc(self) -> int | None:
        """The SSRC of the top layer (None before the first packet)."""
        return self.top.ssrc if self.top is not None else None

    def active_layers(self) -> list[Layer]:
        """The layers that are arriving now."""
        return [layer for layer in self.layers.values() if layer.active()]

    def rank_layers(self) -> None:
        """Forget layers that stopped long ago and find the top one (after a change, and every
        second)."""
        for ssrc, layer in list(self.layers.items()):
            if not layer.active() and len(self.layers) > 1 and layer is not self.top:
                del self.layers[ssrc]
        active = self.active_layers()
        if active:
            self.top = max(active, key=lambda layer: (layer.pixels, layer.heard_at if not layer.pixels else 0))
        self._needed = None

    def choose(self, subscription: Subscription, ssrc: int | None) -> None:
        """Give a subscriber another layer (None: the top), from that layer's next keyframe."""
        if subscription.target != ssrc:
            subscription.target = ssrc
            self._needed = None

    def _find_needed(self) -> set[int]:
        wanted = [self.desired(s) for s in self.subscriptions] + [s.source for s in self.subscriptions]
        self._needed = {ssrc for ssrc in wanted if ssrc is not None}
        return self._needed

    def desired(self, subscription: Subscription) -> int | None:
        """The layer this subscriber should get: its choice while that layer arrives, else the top."""
        target = self.layers.get(subscription.target) if subscription.target is not None else None
        if target is None or not target.active():
            target = self.top
        return target.ssrc if target is not None else None

    def subscribe(self, subscription: Subscription) -> None:
        """Add a subscriber; video waits for (and asks for) a keyframe."""
        subscription.restart()
        subscription.target = None
        self.subscriptions.append(subscription)
        self._needed = None
        if self.kind == "video":
            self.want_keyframe()

    def unsubscribe(self, subscription: Subscription) -> None:
        """Stop sending to a subscriber."""
        if subscription in self.subscriptions:
            self.subscriptions.remove(subscription)
            self._needed = None

    def _track_loss(self, layer: Layer, seq: int) -> None:
        if layer.highest is None:
            layer.highest = seq
            return
        ahead = (seq - layer.highest) & 0xFFFF
        if 0 < ahead < 0x8000:  # newer
            if 1 < ahead <= NACK_MAX_GAP:
                now = time.monotonic()
                lost = [(layer.highest + n) & 0xFFFF for n in range(1, ahead)]
                for missing in lost:
                    layer.missing[missing] = now
                self._nack(layer.ssrc, lost)
                asyncio.get_running_loop().call_later(NACK_RETRY_S, self._nack_again, layer)
            layer.highest = seq
        elif layer.missing.pop(seq, None) is not None:  # older: a repair arrived
            self.recovered += 1

    def _nack(self, ssrc: int, seqs: list[int]) -> None:
        assert self._request_retransmission is not None
        self.nacks_sent += 1
        self._request_retransmission(ssrc, seqs)

    def _nack_again(self, layer: Layer) -> None:
        now = time.monotonic()
        layer.missing = {seq: at for seq, at in layer.missing.items() if now - at < NACK_FORGET_S}
        again = [seq for seq, at in layer.missing.items() if now - at >= NACK_RETRY_S]
        if again and self.layers.get(layer.ssrc) is layer:
            self._nack(layer.ssrc, again[:NACK_MAX_GAP])

    def want_keyframe(self, ssrc: int | None = None) -> None:
        """Ask the publisher for a keyframe of one layer (default: the top; rate-limited); before
        the first packet, the starving subscribers ask again on the first packets."""
        layer = self.layers.get(ssrc) if ssrc is not None else self.top
        now = time.monotonic()
        if layer is not None and now - layer.last_pli >= PLI_MIN_INTERVAL_S:
            layer.last_pli = now
            self._request_keyframe(layer.ssrc)

    def on_packet(self, data: bytes, marker: int, seq: int, timestamp: int, ssrc: int, start: int, end: int,
                  rid: str | None = None) -> None:
        """Fan one inbound packet out to the subscribers that get its layer."""
        layer = self.layers.get(ssrc)
        padding = start == end  # a browser probing its uplink (transport-cc): nothing to forward
        if layer is None:
            if padding:
                return
            layer = self.layers[ssrc] = Layer(ssrc, rid)
            layer.clock_rate = 90_000 if self.kind == "video" else 48_000
            self.rank_layers()
        layer.arrived(len(data), seq, timestamp, padding)
        self.packets += 1
        if self._request_retransmission is not None:
            self._track_loss(layer, seq)
        if padding:
            for subscription in self.subscriptions:
                if subscription.source == ssrc:
                    subscription.left_out()
            return
        if self.held:
            return
        if self.level_extension is not None:
            level = audio_level(data, self.level_extension)
            if level is not None and level < self.loudest:
                self.loudest = level
        payload = data[start:end]
        vp8 = None
        keyframe = False
        if self.kind == "video":
            vp8 = vp8_descriptor(payload)
            keyframe = vp8.keyframe == 1
            if keyframe:
                size = vp8_keyframe_size(payload, vp8.length)
                if size != (layer.width, layer.height) and size[0]:
                    layer.width, layer.height = size
                    self.rank_layers()
        starved = False
        sent_at = abs_send_time() if vp8 is not None else None  # one clock reading for the fan-out
        needed = self._needed if self._needed is not None else self._find_needed()
        for subscription in self.subscriptions if ssrc in needed else ():
            if subscription.source != ssrc:  # another layer is forwarded to it, or none yet
                if ssrc != self.desired(subscription):
                    continue
                if self.kind == "video" and not keyframe:
                    starved = starved or not subscription.paused
                    continue
                subscription.switch(ssrc)
                self._needed = None
            if not subscription.forward(payload, marker, seq, timestamp, keyframe, vp8, sent_at):
                starved = True
        if starved and time.monotonic() - layer.last_pli >= KEYFRAME_RETRY_S:
            self.want_keyframe(ssrc)
        if layer is self.top:
            for tap in self.taps:
                tap.on_packet(payload, marker, seq, timestamp, keyframe)
