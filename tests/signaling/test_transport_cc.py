"""Transport-wide congestion control feedback (signaling/media/transport_cc.py), read back by a parser
written from the draft's packet format (draft-holmer-rmcat-transport-wide-cc-extensions-01 3.1)."""
from __future__ import annotations

import collections
import struct
from collections.abc import Callable

import pytest
from aiortc.rtp import RTCP_RTPFB_NACK, RtcpPacket, RtcpReceiverInfo, RtcpRrPacket, RtcpRtpfbPacket

from signaling.media.forwarding import PADDING_SIZE
from signaling.media.transport_cc import (
    PACKET_OVERHEAD,
    ArrivalLog,
    DelayEstimator,
    chunks,
    queue_output_bps,
    read_feedback,
    split_feedback,
)


def parse(packet: bytes) -> dict[str, object]:
    """The feedback's fields, and each reported packet's arrival time in microseconds (None: lost)."""
    first, packet_type, length = struct.unpack("!BBH", packet[:4])
    assert first >> 6 == 2 and first & 0x1F == 15 and packet_type == 205
    assert (length + 1) * 4 == len(packet)
    if first & 0x20:  # padding: the last byte says how much
        packet = packet[:len(packet) - packet[-1]]
    sender, media, base, count, word = struct.unpack("!IIHHI", packet[4:20])
    reference, fb_count = word >> 8, word & 0xFF
    symbols: list[int] = []
    at = 20
    while len(symbols) < count:
        chunk = struct.unpack("!H", packet[at:at + 2])[0]
        at += 2
        if not chunk & 0x8000:  # run length
            symbols += [chunk >> 13 & 0x3] * (chunk & 0x1FFF)
        elif not chunk & 0x4000:  # fourteen one-bit symbols
            symbols += [chunk >> (13 - n) & 1 for n in range(14)]
        else:  # seven two-bit symbols
            symbols += [chunk >> (12 - 2 * n) & 3 for n in range(7)]
    symbols = symbols[:count]
    assert 3 not in symbols
    time_us = reference * 64_000
    arrivals: dict[int, int | None] = {}
    for n, symbol in enumerate(symbols):
        seq = (base + n) & 0xFFFF
        if symbol == 0:
            arrivals[seq] = None
            continue
        if symbol == 1:
            delta = packet[at]
            at += 1
        else:
            delta = struct.unpack("!h", packet[at:at + 2])[0]
            at += 2
        time_us += delta * 250
        arrivals[seq] = time_us
    assert at == len(packet), "bytes left over after the deltas"
    return {"sender": sender, "media": media, "base": base, "fb_count": fb_count, "arrivals": arrivals}


def test_in_order_arrivals_are_reported_to_the_quarter_millisecond() -> None:
    log = ArrivalLog()
    start = 1_000_000_000
    for n in range(20):
        log.arrived(100 + n, start + n * 5_000)  # every 5 ms
    packet = log.feedback(0x1111, 0x2222)
    assert packet is not None and len(packet) % 4 == 0
    fields = parse(packet)
    assert (fields["sender"], fields["media"], fields["base"], fields["fb_count"]) == (0x1111, 0x2222, 100, 0)
    assert fields["arrivals"] == {100 + n: start + n * 5_000 for n in range(20)}
    assert log.feedback(0x1111, 0x2222) is None  # nothing new


def test_losses_reordering_and_long_gaps_then_the_next_feedback_goes_on_from_there() -> None:
    log = ArrivalLog()
    t = 5_000_000
    log.arrived(10, t)
    log.arrived(12, t + 1_000)  # 11 lost
    log.arrived(14, t + 3_000)
    log.arrived(13, t + 2_500)  # late by one: a negative delta
    log.arrived(15, t + 400_000)  # 397 ms later: a large delta
    for seq in range(16, 40):  # then a run of losses and some arrivals
        if seq % 9 == 0:
            log.arrived(seq, t + 400_000 + seq * 250)
    fields = parse(log.feedback(1, 2) or b"")
    arrivals = fields["arrivals"]
    assert isinstance(arrivals, dict)
    assert arrivals[10] == t and arrivals[11] is None and arrivals[12] == t + 1_000
    assert arrivals[13] == t + 2_500 and arrivals[14] == t + 3_000 and arrivals[15] == t + 400_000
    assert [s for s in range(16, 37) if arrivals[s] is not None] == [18, 27, 36]
    assert max(arrivals) == 36  # ends at the last that arrived
    # The next feedback starts after the last one reported: 37 and 38 lost, 39 arrived.
    log.arrived(11, t + 500_000)  # too late: already reported lost
    log.arrived(39, t + 600_000)
    fields = parse(log.feedback(1, 2) or b"")
    assert fields["base"] == 37 and fields["fb_count"] == 1
    assert fields["arrivals"] == {37: None, 38: None, 39: t + 600_000}


def test_sequence_numbers_wrap_and_duplicates_keep_their_first_arrival() -> None:
    log = ArrivalLog()
    t = 64_000 * 1000 + 250  # (a quarter millisecond past the reference time)
    for n, seq in enumerate([65533, 65534, 65535, 0, 1, 1]):
        log.arrived(seq, t + n * 1_000)
    fields = parse(log.feedback(1, 2) or b"")
    assert fields["base"] == 65533
    assert fields["arrivals"] == {65533: t, 65534: t + 1_000, 65535: t + 2_000, 0: t + 3_000, 1: t + 4_000}


def test_status_chunks_use_runs_and_vectors() -> None:
    assert chunks([1] * 20) == struct.pack("!H", 1 << 13 | 20)
    # Mixed received and lost: fourteen one-bit symbols to a chunk.
    mixed = [1, 0] * 7
    assert chunks(mixed) == struct.pack("!H", 0x8000 | 0b10101010101010)
    # A large delta among them: seven two-bit symbols.
    assert chunks([1, 2, 0, 1, 1, 2, 1]) == struct.pack("!H", 0xC000 | 0b01100001011001)


def test_a_gap_of_more_than_eight_seconds_starts_the_next_feedback() -> None:
    log = ArrivalLog()
    log.arrived(1, 1_000_000)
    log.arrived(2, 1_000_000 + 9_000_000)
    first = parse(log.feedback(1, 2) or b"")
    assert first["arrivals"] == {1: 1_000_000}
    second = parse(log.feedback(1, 2) or b"")
    assert second["arrivals"] == {2: 10_000_000}


# ---------------------------------------------------------------- the sender's side


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def run_link(estimator: DelayEstimator, clock: Clock, seconds: float, send_bps: int, capacity_bps: int | None,
             loss_every: int = 0, bucket: int = 0,
             report: Callable[[list[tuple[int, int | None]]], object] | None = None, obey: bool = True) -> list[int]:
    """Send 1,000-byte packets at send_bps (at most the estimate, as the budget does, unless not
    `obey`; both count the packets' headers, as the link does), and a probe's padding when it asks for some,
    through a link of this capacity (a queue of at most 250 ms in front of it, and a token
    bucket of `bucket` bytes, full at the start, as tbf's; None: no limit) with 20 ms of delay;
    feedback every 100 ms on what has arrived by then (to `report`, default the estimator); the
    estimate after each."""
    queue_free_at = 0.0
    tokens = float(bucket)
    pending: list[tuple[int, int | None]] = []
    estimates = []
    next_feedback = clock.now + 0.1
    count = 0
    end = clock.now + seconds
    estimator.log._clock = lambda: int(clock.now * 1_000_000)  # the log reads the same clock
    while clock.now < end:
        sizes = [1000] + [PADDING_SIZE + 28] * -(-estimator.probe_padding() // (PADDING_SIZE + 28 + PACKET_OVERHEAD))
        for size in sizes:
            seq = estimator.log.next(size)
            count += 1
            bits = (size + PACKET_OVERHEAD) * 8
            leaves, left = clock.now, tokens
            if capacity_bps is not None:  # (the bucket fills at the link's rate while the queue is empty)
                start = max(clock.now, queue_free_at)
                left = min(bucket, tokens + (start - queue_free_at) * capacity_bps / 8) - bits / 8
                leaves = start + max(0.0, -left) * 8 / capacity_bps
            if (loss_every and count % loss_every == 0) or leaves - clock.now > 0.25:
                pending.append((seq, None))
            else:
                queue_free_at, tokens = leaves, max(0.0, left)
                pending.append((seq, int((leaves + 0.02) * 1_000_000)))
        clock.now += (1000 + PACKET_OVERHEAD) * 8 / (min(send_bps, estimator.estimate_bps) if obey else send_bps)
        if clock.now >= next_feedback:  # (on what has arrived by now, and the losses before it)
            arrived = [n for n, (_, arrival) in enumerate(pending) if arrival is not None and arrival <= clock.now * 1_000_000]
            reported = arrived[-1] + 1 if arrived else 0
            (report or estimator.feedback)(pending[:reported])
            estimates.append(estimator.estimate_bps)
            pending = pending[reported:]
            next_feedback += 0.1
    return estimates


def test_a_queue_building_up_is_overuse_and_the_estimate_falls_to_what_the_link_carries() -> None:
    clock = Clock()
    estimator = DelayEstimator(start_bps=1_000_000, clock=clock)
    run_link(estimator, clock, 3, 600_000, None)  # a good link: no overuse
    assert estimator.overused_at == float("-inf") and estimator.estimate_bps == 1_000_000  # (it grows no further alone)
    # The link falls to 300 kbit/s while 600 are sent: the queue grows 300 kbit a second.
    estimates = run_link(estimator, clock, 2, 600_000, 300_000)
    assert estimates[5] <= 300_000  # within half a second, before a 250 ms queue overflows ...
    assert max(estimates[5:]) <= 330_000  # ... and from there it probes upwards slowly
    assert min(estimates) >= 200_000  # 85% of what arrives


def test_a_link_that_falls_is_cut_by_its_queue_before_the_queue_overflows() -> None:
    # 1 Mbit/s sent, the link falls to 300 kbit/s: the queue grows 700 kbit a second, and its
    # 250 ms are full within 110 ms. A queue of 100 ms that passes under half the estimate is a
    # link that fell: cut at the second feedback, not when the delay trend has seen enough.
    clock = Clock()
    estimator = DelayEstimator(start_bps=3_000_000, clock=clock)
    run_link(estimator, clock, 3, 1_000_000, None)
    estimates = run_link(estimator, clock, 1, 1_000_000, 300_000)
    assert estimates[1] <= 300_000


def test_a_link_that_falls_behind_a_token_bucket_is_cut_to_what_comes_out_of_its_queue() -> None:
    # A phone's downlink falls from unlimited to 300 kbit/s behind a 6 kB token bucket (tbf's
    # burst, a radio's): the first 6 kB after the fall pass at 1 Mbit/s, and what arrived over the
    # last quarter second, when the queue is found, is half again the link's rate.
    clock = Clock()
    estimator = DelayEstimator(start_bps=3_000_000, clock=clock)
    run_link(estimator, clock, 3, 1_000_000, None)
    estimates = run_link(estimator, clock, 1, 1_000_000, 300_000, bucket=6_000)
    fallen = [estimate for estimate in estimates if estimate < 3_000_000]
    assert fallen and fallen[0] <= 0.9 * 300_000  # the first cut leaves the queue room to drain
    assert min(estimates) >= 200_000


def test_a_busy_receiver_s_hiccup_is_not_a_link_that_fell_when_little_is_sent() -> None:
    # A subscriber that gets little for now (its first seconds, or the small layers: 100 kbit/s
    # against a 1 Mbit/s estimate) on a perfect link, whose browser on a busy machine reads
    # nothing for 120 ms and then stamps all it read at once (Chromium beside three encoders on
    # two cores). Its queue looks 100 ms deep and passes far under half the estimate, but no
    # more than it was sent: before, that was taken for a link that fell, and the estimate went
    # from 1 Mbit/s to 80 kbit/s on loopback.
    clock = Clock()
    estimator = DelayEstimator(start_bps=1_000_000, clock=clock)
    run_link(estimator, clock, 3, 100_000, None)
    stall_start = int((clock.now + 0.5) * 1_000_000)
    stall_end = stall_start + 120_000

    def hiccup(arrivals: list[tuple[int, int | None]]) -> None:
        estimator.feedback([(seq, stall_end if at is not None and stall_start <= at < stall_end else at)
                            for seq, at in arrivals])

    run_link(estimator, clock, 2, 100_000, None, report=hiccup)
    assert estimator.estimate_bps >= 900_000 and not estimator.fell_within(2)


def test_packets_a_receiver_read_at_once_after_a_pause_are_one_group() -> None:
    # Sent 10 ms apart (two groups each), read at once after a 60 ms pause of the receiver's own
    # (1 ms apart): one group, as libwebrtc's InterArrival has it, not a delay that rose by 60
    # ms and then fell in 1 ms steps (the delay trend read such pauses as a queue).
    clock = Clock()
    estimator = DelayEstimator(clock=clock)
    estimator.log._clock = lambda: int(clock.now * 1_000_000)
    sent = []
    for _ in range(8):
        sent.append((estimator.log.next(1000), int(clock.now * 1_000_000)))
        clock.now += 0.010
    on_time = [(seq, at + 20_000) for seq, at in sent[:2]]
    read_at_once = [(seq, sent[2][1] + 80_000 + 1_000 * n) for n, (seq, _) in enumerate(sent[2:])]
    estimator.feedback(on_time + read_at_once)
    assert estimator._deltas == 1  # the first two groups; the rest is the group still open
    assert estimator._group is not None and estimator._group[1] == sent[-1][1]


def test_an_overuse_never_raises_the_estimate() -> None:
    # The estimate is under what the link carries (a loss-based cut), and the link overflows all
    # the same (what is sent does not follow the estimate at once): 85% of what arrives would be
    # more than the estimate.
    clock = Clock()
    estimator = DelayEstimator(start_bps=3_000_000, clock=clock)
    run_link(estimator, clock, 3, 1_000_000, None)
    estimator.estimate_bps = 150_000
    estimates = run_link(estimator, clock, 1, 1_000_000, 300_000, obey=False)
    assert estimator.overused_at > 100 and max(estimates) < 165_000  # (it grows a little before the queue is seen: not to 85% of 300)


def test_the_rate_out_of_a_queue_counts_every_packet_after_the_first_that_waited() -> None:
    # 1,000-byte packets arrive 26.7 ms apart (300 kbit/s) after two that a token bucket let
    # through at once; the queue's wait hovers around the threshold (5 and 12 ms by turns).
    packets = collections.deque([(0, 1000, 0), (1000, 1000, 0)])
    for n in range(1, 13):
        packets.append((1000 + int(n * 26_667), 1000, 12_000 if n % 2 else 5_000))
    assert queue_output_bps(packets, 0) == pytest.approx(300_000, rel=0.01)
    assert queue_output_bps(collections.deque(list(packets)[:5]), 0) == 0  # too few to tell


def test_a_queue_that_overflows_is_acted_on_at_once() -> None:
    # A phone's downlink falls from unlimited to 300 kbit/s while 1.5 Mbit/s is being sent: its
    # 250 ms queue is full within 70 ms, and from then on its delay no longer rises (the trend
    # shows no overuse) while whatever does not fit is dropped, voices included.
    clock = Clock()
    estimator = DelayEstimator(start_bps=3_000_000, clock=clock)
    run_link(estimator, clock, 3, 1_500_000, None)
    estimates = run_link(estimator, clock, 2, 1_500_000, 300_000)
    assert estimates[1] <= 300_000  # by the second feedback, 200 ms after the fall (the first hears of few packets)
    assert min(estimates) >= 200_000


def test_random_loss_without_a_queue_is_not_congestion() -> None:
    clock = Clock()
    estimator = DelayEstimator(start_bps=500_000, clock=clock)
    run_link(estimator, clock, 10, 400_000, None, loss_every=20)  # 5% lost, no queue
    assert estimator.overused_at == float("-inf") and 500_000 <= estimator.estimate_bps < 560_000  # held, not lowered
    assert 0.0 < estimator.loss <= 0.1
    run_link(estimator, clock, 3, 400_000, None, loss_every=100)  # 1%: it grows again
    assert estimator.estimate_bps > 600_000


def test_a_short_spell_of_heavier_loss_is_not_a_policer() -> None:
    # One second's count of random loss at 5% goes over 10% now and then; the estimate fell to
    # what arrived each time (an application-limited rate), and the hold kept it there.
    clock = Clock()
    estimator = DelayEstimator(start_bps=2_000_000, clock=clock)
    run_link(estimator, clock, 5, 400_000, None, loss_every=20)
    run_link(estimator, clock, 0.25, 400_000, None, loss_every=2)  # half lost for a quarter second
    run_link(estimator, clock, 3, 400_000, None, loss_every=20)
    assert estimator.overused_at == float("-inf") and estimator.estimate_bps >= 2_000_000


def test_heavy_loss_lowers_the_estimate() -> None:
    clock = Clock()
    estimator = DelayEstimator(start_bps=1_000_000, clock=clock)
    run_link(estimator, clock, 2, 400_000, None, loss_every=4)  # a quarter lost (a policer at 300 kbit/s)
    assert estimator.overused_at > float("-inf") and estimator.estimate_bps <= 320_000  # what arrived


def test_the_estimate_grows_past_what_arrives_only_by_a_probe() -> None:
    clock = Clock()
    estimator = DelayEstimator(start_bps=1_000_000, clock=clock)
    run_link(estimator, clock, 2, 600_000, 150_000)
    assert estimator.estimate_bps < 200_000
    # The link is free again, but only 150 kbit/s are sent: the estimate grows to half again what
    # arrives and no further (it grew without end, and now and then the next larger layer was
    # tried blind: on a steady 300 kbit/s link a fifth of a second's voices were lost each time).
    run_link(estimator, clock, 12, 150_000, 10_000_000)
    on_the_wire = 150_000 * (1000 + PACKET_OVERHEAD) / 1000
    assert 1.3 * on_the_wire < estimator.estimate_bps <= 1.5 * on_the_wire + 10_000
    # A probe at twice the estimate (padding beside the media, paced over half a second) gets
    # through: the estimate is what arrived.
    before = estimator.estimate_bps
    goal = estimator.probe_due()
    assert goal == 2 * before
    estimator.start_probe(goal)
    assert estimator.probe_due() is None  # one at a time
    run_link(estimator, clock, 1, 150_000, 10_000_000)
    assert estimator.probe is None and 0.9 * goal <= estimator.estimate_bps <= 1.2 * goal
    clock.now += 2.0
    second = estimator.probe_due()
    assert second is not None
    estimator.start_probe(second)
    run_link(estimator, clock, 1, 150_000, 10_000_000)
    assert estimator.estimate_bps >= 3 * before and estimator.probes == [2, 2]


def test_a_probe_the_link_cannot_carry_leaves_the_estimate_and_the_next_waits_longer() -> None:
    clock = Clock()
    estimator = DelayEstimator(start_bps=1_000_000, clock=clock)
    run_link(estimator, clock, 2, 600_000, 300_000)
    assert estimator.probe_due() is None  # not this soon after the estimate fell
    run_link(estimator, clock, 10, 250_000, 300_000)  # a steady 300 kbit/s link, 250 sent
    steady = estimator.estimate_bps
    assert steady <= 1.5 * 250_000 * 1.05 + 10_000
    waits = []
    for _ in range(4):
        while (goal := estimator.probe_due()) is None:
            run_link(estimator, clock, 0.5, 250_000, 300_000)
        started, before = clock.now, estimator.estimate_bps
        estimator.start_probe(goal)
        while estimator.probe is not None:
            run_link(estimator, clock, 0.1, 250_000, 300_000)
        # Not what it tried; and the overuse it caused does not lower the estimate.
        assert before <= estimator.estimate_bps < goal / 1.5
        waits.append(started)
    assert estimator.probes == [4, 0]
    gaps = [round(b - a) for a, b in zip(waits, waits[1:])]
    assert gaps[0] < gaps[-1] <= 9  # longer after each failure, up to 8 s (and 5 s after an overuse)


def test_what_arrived_counts_each_packet_with_its_headers_on_the_wire() -> None:
    # Two voices (100-byte packets, 50 a second each): 80 kbit/s of RTP, 110 on the wire, which
    # is what a 200 kbit/s link has to carry of them.
    clock = Clock()
    estimator = DelayEstimator(clock=clock)
    estimator.log._clock = lambda: int(clock.now * 1_000_000)
    arrivals: list[tuple[int, int | None]] = []
    for _ in range(100):
        clock.now += 0.01
        arrivals.append((estimator.log.next(100), int((clock.now + 0.02) * 1_000_000)))
    estimator.feedback(arrivals)
    assert PACKET_OVERHEAD >= 38
    assert estimator.acked_bps() == pytest.approx((100 + PACKET_OVERHEAD) * 8 * 100, rel=0.05)


def test_feedback_is_read_back_from_the_packets_the_receiver_sends() -> None:
    log = ArrivalLog()
    for seq, at in ((7, 1_000_000), (9, 1_004_000), (10, 1_100_000)):
        log.arrived(seq, at)
    packet = log.feedback(1, 2) or b""
    assert packet[0] & 0x20  # (padded, as libwebrtc pads)
    # In a compound with a receiver report and a NACK, as a browser sends them: aiortc's parser,
    # which refused the whole compound for the padded transport feedback, gets the rest.
    report = bytes(RtcpRrPacket(ssrc=1, reports=[RtcpReceiverInfo(ssrc=5, fraction_lost=3, packets_lost=1,
                                                                 highest_sequence=9, jitter=0, lsr=0, dlsr=0)]))
    nack = bytes(RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1, media_ssrc=5, lost=[8]))
    compound = report + packet + nack
    with pytest.raises(ValueError):
        RtcpPacket.parse(compound)
    bodies, rest = split_feedback(compound)
    assert len(bodies) == 1 and rest == report + nack
    assert [type(p).__name__ for p in RtcpPacket.parse(rest)] == ["RtcpRrPacket", "RtcpRtpfbPacket"]
    assert read_feedback(bodies[0]) == [(7, 1_000_000), (8, None), (9, 1_004_000), (10, 1_100_000)]
    assert read_feedback(b"\x00\x01") == []  # malformed: nothing
