"""Transport-wide congestion control feedback for what a publisher sends (the receiver's side of
draft-holmer-rmcat-transport-wide-cc-extensions-01, as libwebrtc's RemoteEstimatorProxy does it).

A browser that negotiated the transport-cc header extension numbers every packet it sends on the
connection (audio, camera layers, screen) and estimates its own uplink from what the receiver
says of each: arrived or not, and when. Its delay-based estimate sees a queue building up in
its uplink before packets are dropped, so a party whose 4G uplink falls to 300 kbit/s stops its
large camera layer within seconds instead of losing a third of its packets for twenty. The
server records each packet's arrival and sends the feedback every FEEDBACK_INTERVAL_S.
"""
from __future__ import annotations

import struct

TRANSPORT_CC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
FEEDBACK_INTERVAL_S = 0.1  # libwebrtc's default (it ranges 50-250 ms by bitrate)
RTCP_RTPFB, FMT_TRANSPORT_CC = 205, 15
DELTA_US = 250  # receive deltas count quarter milliseconds
REFERENCE_US = 64_000  # the reference time counts 64 ms
MAX_STATUSES = 8191  # packets in one feedback (a longer gap starts after it)
NOT_RECEIVED, SMALL_DELTA, LARGE_DELTA = 0, 1, 2


class ArrivalLog:
    """The transport-wide sequence numbers that arrived since the last feedback, and when."""

    def __init__(self) -> None:
        self._arrivals: dict[int, int] = {}  # unwrapped sequence number -> arrival, microseconds
        self._last = -1  # the last unwrapped sequence number seen
        self._next = -1  # the first not yet reported (-1: nothing reported yet)
        self._count = 0  # feedback packets sent, modulo 256

    def arrived(self, seq: int, arrival_us: int) -> None:
        """A packet with this 16-bit transport-wide sequence number arrived (monotonic time)."""
        if self._last < 0:
            unwrapped = seq
        else:
            unwrapped = self._last + ((seq - self._last + 0x8000) & 0xFFFF) - 0x8000
            if unwrapped < 0:
                return
        self._last = max(self._last, unwrapped)
        if unwrapped >= self._next:
            self._arrivals.setdefault(unwrapped, arrival_us)  # (a duplicate keeps its first arrival)

    def feedback(self, sender_ssrc: int, media_ssrc: int) -> bytes | None:
        """The RTCP transport feedback packet for what arrived since the last one (None if nothing)."""
        if not self._arrivals:
            return None
        first = min(self._arrivals)
        base = first if self._next < 0 or first - self._next > MAX_STATUSES else self._next
        last = min(max(self._arrivals), base + MAX_STATUSES - 1)
        reference = self._arrivals[first] // REFERENCE_US
        at = reference * REFERENCE_US
        symbols: list[int] = []
        deltas = bytearray()
        for seq in range(base, last + 1):
            arrival = self._arrivals.get(seq)
            if arrival is None:
                symbols.append(NOT_RECEIVED)
                continue
            delta = round((arrival - at) / DELTA_US)
            if 0 <= delta <= 0xFF:
                symbols.append(SMALL_DELTA)
                deltas.append(delta)
            elif -0x8000 <= delta <= 0x7FFF:
                symbols.append(LARGE_DELTA)
                deltas += struct.pack("!h", delta)
            else:  # more than 8 s after the one before: the next feedback starts here
                last = seq - 1
                break
            at += delta * DELTA_US  # (the sum of the rounded deltas, so that rounding does not drift)
        while symbols[-1] == NOT_RECEIVED:  # (after a delta too large to write: reported next time)
            symbols.pop()
        last = base + len(symbols) - 1
        for seq in [s for s in self._arrivals if s <= last]:
            del self._arrivals[seq]
        self._next = last + 1
        body = struct.pack("!IIHHI", sender_ssrc, media_ssrc, base & 0xFFFF, len(symbols),
                           (reference & 0xFFFFFF) << 8 | self._count) + chunks(symbols) + deltas
        self._count = (self._count + 1) & 0xFF
        padding = -len(body) % 4
        if padding:  # as libwebrtc pads: zeros, the last byte the count, the P bit set
            body += bytes(padding - 1) + bytes([padding])
        return struct.pack("!BBH", 0x80 | (0x20 if padding else 0) | FMT_TRANSPORT_CC, RTCP_RTPFB, len(body) // 4) + body


def chunks(symbols: list[int]) -> bytes:
    """Packet status chunks: runs of one symbol as run-length chunks, the rest as status vectors
    (fourteen one-bit symbols where none is a large delta, else seven two-bit ones)."""
    out = bytearray()
    i, count = 0, len(symbols)
    while i < count:
        symbol = symbols[i]
        run = 1
        while i + run < count and symbols[i + run] == symbol and run < MAX_STATUSES:
            run += 1
        one_bit = LARGE_DELTA not in symbols[i:i + 14]
        if run >= (14 if one_bit else 7) or i + run == count:
            out += struct.pack("!H", symbol << 13 | run)
            i += run
        elif one_bit:
            bits = symbols[i:i + 14] + [0] * (14 - len(symbols[i:i + 14]))
            out += struct.pack("!H", 0x8000 | sum(b << (13 - n) for n, b in enumerate(bits)))
            i += 14
        else:
            pairs = symbols[i:i + 7] + [0] * (7 - len(symbols[i:i + 7]))
            out += struct.pack("!H", 0xC000 | sum(s << (12 - 2 * n) for n, s in enumerate(pairs)))
            i += 7
    return bytes(out)
