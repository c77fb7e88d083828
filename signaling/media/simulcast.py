"""Simulcast layers: the encodings of one published camera, and which one a subscriber gets.

A browser publishes its camera in two encodings of the same picture (the room page asks for a
half-size layer and a full one, `sendEncodings` with rids); each arrives with its own SSRC and
the rid in a header extension. The server forwards to each subscriber the one layer that fits:
the largest its downlink's video share can carry, and no larger than the tile it shows the
video in. A publisher without simulcast (one SSRC) is a single layer, and everyone gets it.

A layer's size is read from its keyframes (the VP8 frame header carries width and height), its
bitrate is measured as it arrives, and a layer that stops (a browser drops its top layer when
its own uplink is short) is no longer chosen. No media here: plain numbers, so tests drive
`choose_layer` directly.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

IDLE_S = 1.0  # a layer silent this long has stopped
UPGRADE_MARGIN = 1.25  # a larger layer is taken only when the share exceeds its bitrate by this
RATE_WINDOW_S = 1.0  # a layer's bitrate is measured over about this long


class Layer:
    """One encoding of a published video: its SSRC, rid, size (from keyframes) and bitrate."""

    def __init__(self, ssrc: int, rid: str | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.ssrc = ssrc
        self.rid = rid
        self.width = 0
        self.height = 0
        self._clock = clock
        self.heard_at = clock()
        self.bps = 0
        self._octets = 0
        self._window_start = self.heard_at
        # Uplink loss repair (forwarding.PublishedStream), per layer: each has its own numbering.
        self.highest: int | None = None
        self.missing: dict[int, float] = {}
        self.last_pli = float("-inf")
        # Receive statistics for the receiver reports sent to the publisher (RFC 3550, A.1, A.3, A.8).
        self.clock_rate = 90_000
        self._base_seq: int | None = None
        self._max_seq = 0
        self._cycles = 0
        self._received = 0
        self._prior = (0, 0)  # (expected, received) at the last report
        self._transit: float | None = None
        self.jitter = 0.0  # in RTP timestamp units
        self.last_sr: tuple[int, float] | None = None  # (middle 32 bits of its NTP time, when it came)

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def arrived(self, size: int, seq: int, timestamp: int, padding: bool = False) -> None:
        """A packet of this layer arrived: count it for the bitrate and the receiver reports. A
        padding-only packet (a browser probing its uplink) counts for the reports only: a layer
        that sends nothing else has stopped."""
        now = self._clock()
        self._received += 1
        self._count_sequence(seq)
        if padding:
            return
        self.heard_at = now
        self._octets += size
        elapsed = now - self._window_start
        if elapsed >= RATE_WINDOW_S:
            self.bps = int(self._octets * 8 / elapsed)
            self._octets, self._window_start = 0, now
        transit = now * self.clock_rate - timestamp
        if self._transit is not None:
            delta = abs(transit - self._transit)
            if delta < self.clock_rate:  # a jump of a second or more is a new timestamp base, not jitter
                self.jitter += (delta - self.jitter) / 16
        self._transit = transit

    def _count_sequence(self, seq: int) -> None:
        if self._base_seq is None:
            self._base_seq = self._max_seq = seq
        elif 0 < (seq - self._max_seq) & 0xFFFF < 0x8000:
            if seq < self._max_seq:
                self._cycles += 0x10000
            self._max_seq = seq

    def report(self) -> tuple[int, int, int, int] | None:
        """(fraction lost since the last report, of 256; cumulative lost; extended highest
        sequence number; jitter) for a receiver report, or None before the first packet."""
        if self._base_seq is None:
            return None
        highest = self._cycles + self._max_seq
        expected = highest - self._base_seq + 1
        expected_interval = expected - self._prior[0]
        lost_interval = expected_interval - (self._received - self._prior[1])
        self._prior = (expected, self._received)
        fraction = (lost_interval << 8) // expected_interval if expected_interval > 0 and lost_interval > 0 else 0
        lost = max(-0x800000, min(0x7FFFFF, expected - self._received))
        return min(255, fraction), lost, highest & 0xFFFFFFFF, int(self.jitter)

    def active(self) -> bool:
        return self._clock() - self.heard_at < IDLE_S


@dataclass(frozen=True)
class Choice:
    """What choose_layer sees of a layer."""

    ssrc: int
    pixels: int
    bps: int


def choose_layer(layers: list[Choice], share_bps: int | None, tile_pixels: int | None, current: int | None) -> int | None:
    """The SSRC of the layer a subscriber should get, or None when there is no layer.

    The largest layer whose bitrate fits the share (None: the link is not limited), stopping at
    the first layer at least as large as the tile (None: as large as there is); when nothing fits,
    the smallest. Moving up to a larger layer than the current one needs UPGRADE_MARGIN to spare,
    so that a share near a layer's bitrate does not flip between layers (each switch costs a
    keyframe)."""
    if not layers:
        return None
    ordered = sorted(layers, key=lambda layer: (layer.pixels, layer.bps))
    current_index = next((n for n, layer in enumerate(ordered) if layer.ssrc == current), None)
    chosen = ordered[0]
    for n, layer in enumerate(ordered):
        if share_bps is not None:
            margin = UPGRADE_MARGIN if current_index is not None and n > current_index else 1.0
            if layer.bps * margin > share_bps:
                break
        chosen = layer
        if tile_pixels is not None and layer.pixels >= tile_pixels:
            break
    return chosen.ssrc
