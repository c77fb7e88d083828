"""Simulcast without a network: which layer a subscriber gets, and what it receives across a
switch (a keyframe starts it; sequence numbers, timestamps, VP8 picture ids and TL0PICIDX
continue as if from one stream)."""
from __future__ import annotations

import struct

import pytest

from signaling.media.forwarding import PublishedStream, Subscription, parse_rtp, vp8_descriptor
from signaling.media.simulcast import Choice, choose_layer

SMALL, LARGE = 0x1111, 0x2222
SIZES = {SMALL: (320, 240), LARGE: (640, 480)}


def vp8_packet(ssrc: int, seq: int, timestamp: int, picture_id: int, tl0: int, *, keyframe: bool) -> bytes:
    """One single-packet VP8 frame: descriptor with a 15-bit picture id and TL0PICIDX, then a
    keyframe header (with the layer's size) or an interframe's first bytes."""
    descriptor = bytes([0x90, 0xC0, 0x80 | picture_id >> 8, picture_id & 0xFF, tl0])
    if keyframe:
        width, height = SIZES[ssrc]
        frame = b"\x10\x02\x00\x9d\x01\x2a" + struct.pack("<HH", width, height) + b"\x00" * 20
    else:
        frame = b"\x11\x02\x00" + b"\x00" * 30
    return struct.pack("!BBHII", 0x80, 0x80 | 96, seq, timestamp, ssrc) + descriptor + frame


class Publisher:
    """A simulcast publisher's two layers, each with its own numbering, sending frame by frame."""

    def __init__(self, stream: PublishedStream) -> None:
        self.stream = stream
        self.state = {SMALL: [1000, 50_000, 7000, 10], LARGE: [40_000, 900_000, 123, 200]}

    def frame(self, ssrc: int, *, keyframe: bool = False) -> None:
        seq, timestamp, picture_id, tl0 = self.state[ssrc]
        data = vp8_packet(ssrc, seq, timestamp, picture_id, tl0, keyframe=keyframe)
        header = parse_rtp(data)
        assert header is not None
        self.stream.on_packet(data, *header[1:], rid="l" if ssrc == SMALL else "h")
        self.state[ssrc] = [(seq + 1) & 0xFFFF, timestamp + 3000, (picture_id + 1) & 0x7FFF, (tl0 + 1) & 0xFF]

    def both(self, *, keyframe: bool = False) -> None:
        self.frame(SMALL, keyframe=keyframe)
        self.frame(LARGE, keyframe=keyframe)


@pytest.fixture
def room() -> tuple[Publisher, Subscription, list[bytes], list[int]]:
    keyframes_asked: list[int] = []
    stream = PublishedStream("video", keyframes_asked.append)
    sent: list[bytes] = []
    subscription = Subscription("video", 0xABCD, 100, lambda header, payload: sent.append(header + payload) or True)
    stream.subscribe(subscription)
    publisher = Publisher(stream)
    publisher.both(keyframe=True)
    return publisher, subscription, sent, keyframes_asked


def received(packet: bytes) -> tuple[int, int, int, int, int]:
    """(sequence, timestamp, picture id, TL0PICIDX, width) of a packet the subscriber got."""
    header = parse_rtp(packet)
    assert header is not None
    payload = packet[header[5]:header[6]]
    descriptor = vp8_descriptor(payload)
    length, keyframe, picture_id, tl0_at = descriptor.length, descriptor.keyframe, descriptor.picture_id, descriptor.tl0_at
    width = int.from_bytes(payload[length + 6:length + 8], "little") if keyframe else 0
    return header[2], header[3], picture_id, payload[tl0_at], width


def test_the_largest_layer_goes_to_a_subscriber_that_chose_nothing(room) -> None:
    publisher, subscription, sent, _ = room
    publisher.both()
    assert subscription.source == LARGE
    # The first layer to arrive goes at once; the larger one takes over at its keyframe.
    assert [received(p)[4] for p in sent] == [320, 640, 0]
    assert publisher.stream.top is not None and (publisher.stream.top.width, publisher.stream.top.height) == (640, 480)


def test_a_switch_waits_for_a_keyframe_and_numbering_continues(room) -> None:
    publisher, subscription, sent, asked = room
    publisher.both()
    publisher.stream.choose(subscription, SMALL)
    publisher.both()  # no keyframe on the small layer yet: the large one still goes
    assert subscription.source == LARGE and len(sent) == 4
    assert SMALL in asked  # the publisher was asked for a keyframe of the layer wanted
    publisher.frame(SMALL, keyframe=True)
    publisher.frame(LARGE)  # after the switch the large layer is not forwarded any more
    publisher.frame(SMALL)
    assert subscription.source == SMALL and subscription.switches == 2  # small, large, small
    got = [received(p) for p in sent]
    assert [g[4] for g in got] == [320, 640, 0, 0, 320, 0]
    for before, after in zip(got, got[1:]):
        assert after[0] == (before[0] + 1) & 0xFFFF  # sequence: no gap, no jump
        assert after[1] == before[1] + 3000  # timestamp: one frame later
        assert after[2] == (before[2] + 1) & 0x7FFF  # picture id continues
        assert after[3] == (before[3] + 1) & 0xFF  # TL0PICIDX continues


def test_back_up_to_the_large_layer_continues_too(room) -> None:
    publisher, subscription, sent, _ = room
    publisher.stream.choose(subscription, SMALL)
    publisher.frame(SMALL, keyframe=True)
    publisher.stream.choose(subscription, LARGE)
    publisher.frame(LARGE, keyframe=True)
    publisher.frame(LARGE)
    got = [received(p) for p in sent]
    assert [g[4] for g in got] == [320, 640, 320, 640, 0]
    assert [g[2] for g in got] == [(got[0][2] + n) & 0x7FFF for n in range(5)]


def test_a_layer_that_stops_is_not_waited_for(room, monkeypatch) -> None:
    publisher, subscription, sent, _ = room
    clock = [1000.0]
    for layer in publisher.stream.layers.values():
        monkeypatch.setattr(layer, "_clock", lambda: clock[0])
        layer.heard_at = clock[0]
    clock[0] += 2  # the large layer stops (a browser drops its top layer when its uplink is short)
    publisher.stream.layers[SMALL].heard_at = clock[0]
    publisher.stream.rank_layers()
    publisher.frame(SMALL, keyframe=True)
    assert subscription.source == SMALL and received(sent[-1])[4] == 320


def _layers() -> list[Choice]:
    return [Choice(LARGE, 640 * 480, 550_000), Choice(SMALL, 320 * 240, 90_000)]


def test_choose_the_largest_layer_the_share_carries() -> None:
    assert choose_layer(_layers(), None, None, None) == LARGE  # not limited
    assert choose_layer(_layers(), 700_000, None, SMALL) == LARGE  # 550k * 1.25 fits 700k
    assert choose_layer(_layers(), 600_000, None, SMALL) == SMALL  # too close to move up ...
    assert choose_layer(_layers(), 600_000, None, LARGE) == LARGE  # ... but enough to stay
    assert choose_layer(_layers(), 120_000, None, LARGE) == SMALL
    assert choose_layer(_layers(), 20_000, None, LARGE) == SMALL  # nothing fits: the smallest
    assert choose_layer([], None, None, None) is None


def test_a_small_tile_gets_the_small_layer() -> None:
    assert choose_layer(_layers(), None, 240 * 180, None) == SMALL
    assert choose_layer(_layers(), None, 320 * 240, None) == SMALL
    assert choose_layer(_layers(), None, 480 * 360, None) == LARGE


def padding(ssrc: int, seq: int, timestamp: int) -> bytes:
    """A padding-only packet, as a browser sends to probe its uplink (transport-cc): no payload."""
    return struct.pack("!BBHII", 0xA0, 96, seq, timestamp, ssrc) + b"\x00" * 223 + bytes([224])


def test_a_layer_that_sends_only_padding_has_stopped_and_the_numbering_skips_the_padding(room, monkeypatch) -> None:
    publisher, subscription, sent, _ = room
    publisher.both()
    clock = [1000.0]
    for layer in publisher.stream.layers.values():
        monkeypatch.setattr(layer, "_clock", lambda: clock[0])
        layer.heard_at = clock[0]
    # The large layer's packets between two frames are padding: not forwarded, and the
    # subscriber's numbering has no gap it would NACK in vain.
    seq, timestamp = publisher.state[LARGE][:2]
    for n in range(3):
        data = padding(LARGE, seq + n, timestamp - 3000)
        publisher.stream.on_packet(data, *parse_rtp(data)[1:])  # type: ignore[index]
    publisher.state[LARGE][0] = seq + 3
    publisher.frame(LARGE)
    got = [received(p) for p in sent]
    assert got[-1][0] == (got[-2][0] + 1) & 0xFFFF and len(sent) == 4
    assert publisher.stream.layers[LARGE].report()[1] == 0  # the padding counts as arrived: no loss reported
    # Then the large layer sends nothing but padding (its browser stopped it and probes): it has
    # stopped, and the subscriber gets the small layer from its next keyframe.
    for _ in range(20):
        clock[0] += 0.1
        seq = publisher.state[LARGE][0]
        data = padding(LARGE, seq, timestamp)
        publisher.stream.on_packet(data, *parse_rtp(data)[1:])  # type: ignore[index]
        publisher.state[LARGE][0] = seq + 1
        publisher.frame(SMALL)
        publisher.stream.layers[SMALL].heard_at = clock[0]
    publisher.stream.rank_layers()
    assert publisher.stream.top is publisher.stream.layers[SMALL]
    publisher.frame(SMALL, keyframe=True)
    assert subscription.source == SMALL and received(sent[-1])[4] == 320
