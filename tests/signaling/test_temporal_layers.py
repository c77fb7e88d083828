"""A weak link's video thinned by temporal layer: real VP8 with two temporal layers through one
subscriber's sender whose budget is short, decoded on the other side. A frame of the top layer
left out costs that frame only; the frames that go all decode to the publisher's pictures."""
from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable

import av
import pytest
from aiortc.codecs.vpx import VpxPayloadDescriptor

from signaling.media.bandwidth import AUDIO_BPS, HEADROOM, MIN_VIDEO_BPS, Downlink
from signaling.media.forwarding import Subscription, parse_rtp, vp8_descriptor
from tests.signaling.media_client import layered_vp8
from tests.signaling.test_bandwidth import Clock

FPS = 15
LAYER_BPS = 100_000  # (this picture takes ~76 kbit/s of it)


@pytest.fixture(scope="module")
def frames() -> list[list[bytes]]:
    return layered_vp8(320, 240, FPS, LAYER_BPS, 6 * FPS)


def pictures(frames: list[bytes]) -> list[str]:
    """Each decoded picture's digest, decoding the frames (whole VP8 frames) in order."""
    decoder = av.CodecContext.create("libvpx", "r")
    return [hashlib.md5(bytes(picture.planes[0])).hexdigest() for frame in frames
            for picture in decoder.decode(av.Packet(frame))]


def depacketize(packets: list[bytes]) -> dict[int, bytes]:
    """The VP8 frames in RTP packets, by timestamp."""
    frames: dict[int, bytes] = {}
    for packet in packets:
        header = parse_rtp(packet)
        assert header is not None
        frames[header[3]] = frames.get(header[3], b"") + VpxPayloadDescriptor.parse(packet[header[5]:header[6]])[1]
    return frames


def forward(frames: list[list[bytes]], link: Downlink, clock: Clock, fps: int = FPS,
            before: Callable[[int], object] = lambda n: None) -> tuple[Subscription, list[bytes]]:
    """Offer the frames at `fps` through a subscriber on `link` (calling `before` with each
    frame's index first); what it was sent."""
    sent: list[bytes] = []
    subscription = Subscription("video", 0xABCD, 96, lambda header, payload: sent.append(header + payload) or True,
                                downlink=link)
    subscription.source = 1
    seq = 1000
    for n, payloads in enumerate(frames):
        clock.now += 1 / fps
        before(n)
        for index, payload in enumerate(payloads):
            vp8 = vp8_descriptor(payload)
            subscription.forward(payload, int(index == len(payloads) - 1), seq, 6000 * n, vp8.keyframe == 1, vp8)
            seq += 1
    return subscription, sent


def weak_link() -> tuple[Downlink, Clock]:
    """A lossy link with four voices and one video, whose share (MIN_VIDEO_BPS) is short of the
    layer's ~76 kbit/s."""
    clock = Clock()
    link = Downlink(clock)
    link.streams(video=1, audio=4)
    link.feedback(int((4 * AUDIO_BPS + MIN_VIDEO_BPS) / HEADROOM))
    link.loss(40)
    return link, clock


def test_the_encoder_s_top_layer_can_be_left_out(frames) -> None:
    # (Else the test below would prove nothing.) Layer 1 is every other frame, marked sync.
    tids = [(vp8_descriptor(payloads[0]).tid, vp8_descriptor(payloads[0]).sync) for payloads in frames]
    assert tids == [(n % 2, n % 2) for n in range(len(frames))]
    whole = [b"".join(VpxPayloadDescriptor.parse(p)[1] for p in payloads) for payloads in frames]
    assert pictures(whole[::2]) == pictures(whole)[::2]


def test_a_short_budget_leaves_out_frames_of_the_top_layer_and_waits_for_no_keyframe(frames) -> None:
    link, clock = weak_link()
    subscription, sent = forward(frames, link, clock)
    assert subscription.thinned > 0 and subscription.dropped == 0  # no base-layer frame refused
    got = depacketize(sent)
    # Every frame sent decodes to the publisher's picture: none refers to a frame left out.
    whole = {6000 * n: b"".join(VpxPayloadDescriptor.parse(p)[1] for p in payloads)
             for n, payloads in enumerate(frames)}
    expected = dict(zip(whole, pictures(list(whole.values()))))
    assert pictures(list(got.values())) == [expected[ts] for ts in got]
    assert set(got) >= set(list(whole)[::2])  # every base-layer frame, and some of the others
    assert len(got) == len(frames) - subscription.thinned
    # The subscriber sees no gap: sequence numbers and picture ids run on.
    seqs = [parse_rtp(p)[2] for p in sent]  # type: ignore[index]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:]))
    ids = [vp8_descriptor(p[parse_rtp(p)[5]:]).picture_id for p in sent if p[parse_rtp(p)[5]] & 0x10]  # type: ignore[index]
    assert all((b - a) & 0x7FFF == 1 for a, b in zip(ids, ids[1:])), ids


def test_a_refused_frame_of_a_middle_layer_is_left_out_and_waits_for_no_keyframe() -> None:
    # Three layers (0-2-1-2, as Chromium's L1T3): the budget, deep in debt (a keyframe's repair
    # took it), refuses a frame of layer 1. Only the layer-2 frame after it refers to it: both are
    # left out, and the next base-layer frame goes on, with no keyframe to wait for.
    frames = layered_vp8(320, 240, FPS, LAYER_BPS, 2 * FPS, layers=3)
    link, clock = weak_link()
    middle = 4 * 4 + 2  # a layer-1 frame, well after the first keyframe's debt is paid
    assert vp8_descriptor(frames[middle][0]).tid == 1

    def before(n: int) -> None:
        while n == middle and link.start_frame():  # (just deep enough in debt that no frame may start)
            link.spend(100)

    subscription, sent = forward(frames, link, clock, before=before)
    got = depacketize(sent)
    assert 6000 * middle not in got and 6000 * (middle + 1) not in got
    assert subscription.dropped == 0 and 6000 * (middle + 2) in got
    assert longest_gap(sent) == 3
    whole = {6000 * n: b"".join(VpxPayloadDescriptor.parse(p)[1] for p in payloads) for n, payloads in enumerate(frames)}
    expected = dict(zip(whole, pictures(list(whole.values()))))
    assert pictures(list(got.values())) == [expected[ts] for ts in got]


def test_frames_left_out_while_their_layer_is_off_count_toward_fewer_videos() -> None:
    # Two cameras in three layers on a link whose budget carries their base and middle layers but
    # not the top ones: after a refused frame of layer 2 its layer is off until the next sync
    # frame, and those left out meanwhile (never offered to the budget) thin each video to about
    # 10 fps all the same. Fewer videos then, at full rate (on a Chromium party's 200 kbit/s link
    # both stayed at 6-8 fps while only the refusals counted).
    frames = layered_vp8(320, 240, FPS, LAYER_BPS, 6 * FPS, layers=3)
    link, clock = weak_link()
    link.streams(video=2, audio=2)
    link.feedback(int((2 * AUDIO_BPS + 98_000) / HEADROOM))
    subscriptions = [Subscription("video", 0xAB00 + k, 96, lambda header, payload: True, downlink=link) for k in range(2)]
    for subscription in subscriptions:
        subscription.source = 1
    for n, payloads in enumerate(frames):
        clock.now += 1 / FPS
        for subscription in subscriptions:
            for index, payload in enumerate(payloads):
                vp8 = vp8_descriptor(payload)
                subscription.forward(payload, int(index == len(payloads) - 1), 1000 + n * 10 + index, 6000 * n,
                                     vp8.keyframe == 1, vp8)
        if n % FPS == FPS - 1:  # (a clean receiver report each second)
            link.loss(0)
            link.tick()
    assert sum(subscription.thinned for subscription in subscriptions) > 2 * len(frames) / 4
    assert link.video_limit == 1


def test_without_temporal_layers_the_same_budget_freezes_the_video(frames) -> None:
    # The same frames with their TID cleared: a refused frame waits for the next keyframe.
    flat = [[_without_tid(payload) for payload in payloads] for payloads in frames]
    link, clock = weak_link()
    subscription, sent = forward(flat, link, clock)
    assert subscription.dropped > 0 and subscription.thinned == 0
    assert longest_gap(sent) > FPS / 2  # frames: more than half a second without a picture
    layered, clock = weak_link()
    assert longest_gap(forward(frames, layered, clock)[1]) == 2


def longest_gap(sent: list[bytes]) -> int:
    """The most frames from one frame the subscriber got to the next."""
    got = sorted(timestamp // 6000 for timestamp in depacketize(sent))
    return max(b - a for a, b in zip(got, got[1:]))


def _without_tid(payload: bytes) -> bytes:
    descriptor, rest = VpxPayloadDescriptor.parse(payload)
    descriptor.tid = None
    return bytes(descriptor) + rest


def test_a_keyframe_is_never_left_out_whatever_its_descriptor_says(frames) -> None:
    # An encoder that keeps its temporal pattern through a requested keyframe may mark it layer 1.
    keyframe = 2 * FPS  # (one every 30 frames), while the budget is in debt and layer 1 is thinned
    marked = [list(payloads) for payloads in frames]
    marked[keyframe] = [_with_tid(payload, 1) for payload in frames[keyframe]]
    assert vp8_descriptor(marked[keyframe][0]).keyframe == 1 and vp8_descriptor(marked[keyframe][0]).tid == 1
    link, clock = weak_link()
    subscription, sent = forward(marked, link, clock, fps=2 * FPS)  # (twice as fast: deeper in debt)
    assert subscription.thinned > 0 and 6000 * keyframe in depacketize(sent)


def _with_tid(payload: bytes, tid: int) -> bytes:
    descriptor, rest = VpxPayloadDescriptor.parse(payload)
    descriptor.tid = (tid, tid)
    return bytes(descriptor) + rest


def test_a_probe_s_padding_goes_between_frames_and_every_frame_still_decodes(frames) -> None:
    from signaling.media.transport_cc import DelayEstimator

    clock = Clock()
    link = Downlink(clock)
    link.delay = DelayEstimator(clock=clock)
    sent: list[bytes] = []
    subscription = Subscription("video", 0xABCD, 96, lambda header, payload: sent.append(header + payload) or True,
                                downlink=link, transport_cc_id=3)
    subscription.source = 1
    assert not subscription.pad(2_000)  # nothing sent yet
    seq, probes = 1000, []
    for n, payloads in enumerate(frames[:2 * FPS]):
        for index, payload in enumerate(payloads):
            vp8 = vp8_descriptor(payload)
            subscription.forward(payload, int(index == len(payloads) - 1), seq, 6000 * n, vp8.keyframe == 1, vp8)
            seq += 1
            if len(payloads) > 1 and index == 0:
                assert not subscription.pad(2_000)  # in the middle of a frame: never
        if n % 7 == 3:
            probes.append(subscription.pad(2_000))
    padding = [p for p in sent if p[0] & 0x20]
    assert all(probes) and len(padding) == 7 * len(probes)  # 2,000 bytes: seven packets of 290 on the wire
    # One sequence of numbers, as the browser's jitter buffer needs: no gap, nothing twice.
    numbers = [struct.unpack_from("!H", p, 2)[0] for p in sent]
    assert numbers == [(numbers[0] + k) & 0xFFFF for k in range(len(sent))]
    # Each probe packet has its own transport sequence number, following the media's.
    transport = [struct.unpack_from("!H", p, 17)[0] for p in sent]  # (after the header and its extension's first byte)
    assert transport == [(transport[0] + k) & 0xFFFF for k in range(len(sent))]
    # The frames decode to the publisher's pictures.
    media = [p for p in sent if not p[0] & 0x20]
    decoded = depacketize(media)
    assert pictures([decoded[t] for t in sorted(decoded)]) == pictures([b"".join(
        VpxPayloadDescriptor.parse(p)[1] for p in payloads) for payloads in frames[:2 * FPS]])
    # A probe just before a switch of layer: the new layer's picture ids go on from the last
    # frame's, not from the padding.
    last_picture = vp8_descriptor(media[-1][12 + 8:]).picture_id
    assert subscription.pad(2_000)
    subscription.switch(2)
    keyframe = frames[2 * FPS]
    subscription.forward(keyframe[0], 0, 5000, 900_000, True, vp8_descriptor(keyframe[0]))
    assert vp8_descriptor(sent[-1][12 + 8:]).picture_id == last_picture + 1
