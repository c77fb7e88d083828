"""One subscriber's sender without a network: what its receiver reports say arrived, and when a
NACKed packet is sent again."""
from __future__ import annotations

import struct
import time

from signaling.media.bandwidth import Downlink
from signaling.media.forwarding import RESEND_MAX_AGE, Subscription

NOW = [0.0]


def sender(downlink: Downlink | None = None, ssrc: int = 0xABCD) -> tuple[Subscription, list[bytes]]:
    """A voice's sender on `downlink` (default: a link of its own), and what it sent."""
    sent: list[bytes] = []
    subscription = Subscription("audio", ssrc, 111, lambda header, payload: sent.append(header + payload) or True,
                                downlink=downlink or Downlink(lambda: NOW[0]))
    return subscription, sent


def send(subscription: Subscription, count: int, size: int = 100) -> None:
    for _ in range(count):
        n = subscription.packets
        subscription.forward(bytes(size), 0, 1000 + n, 960 * n, False)


def seq(packet: bytes) -> int:
    return struct.unpack_from("!H", packet, 2)[0]


def test_delivered_bytes_come_from_the_reports() -> None:
    subscription, sent = sender()
    send(subscription, 10)
    assert subscription.delivered(seq(sent[4]), 0) is None  # the first report: a starting point
    send(subscription, 10)
    size = len(sent[0])
    assert subscription.delivered(seq(sent[14]), 0) == 10 * size  # ten more arrived
    assert subscription.delivered(seq(sent[19]), 2) == 3 * size  # five more sent, two of them lost
    assert subscription.delivered(seq(sent[19]), 2) == 0  # nothing new


def test_a_nack_is_answered_once_per_round_and_never_for_a_stale_packet() -> None:
    subscription, sent = sender()
    send(subscription, RESEND_MAX_AGE + 20)
    NOW[0] += 1  # the retransmissions' own budget fills
    recent, stale = seq(sent[-5]), seq(sent[5])
    assert subscription.retransmit(recent)
    assert not subscription.retransmit(recent)  # asked again at once: the copy is on its way
    assert not subscription.retransmit(stale)  # too old to be shown: not worth the link
    assert subscription.retransmitted == 1


def test_delivered_bytes_are_the_sizes_of_the_packets_in_the_range() -> None:
    subscription, sent = sender()
    for n in range(30):
        subscription.forward(bytes(50 + 10 * n), 0, 1000 + n, 960 * n, False)
    assert subscription.delivered(seq(sent[9]), 0) is None
    assert subscription.delivered(seq(sent[19]), 0) == sum(len(p) for p in sent[10:20])
    assert subscription.delivered(seq(sent[29]), 5) == sum(len(p) for p in sent[20:30]) // 2  # half of them lost
    send(subscription, 600)  # a report after more than the history holds: nothing to go on
    assert subscription.delivered(seq(sent[-1]), 5) is None


def test_a_sender_report_maps_wall_clock_to_rtp_time() -> None:
    subscription, sent = sender()
    assert subscription.sender_report(time.time()) is None  # nothing sent yet
    before = time.time()
    send(subscription, 1)  # RTP timestamp 0, sent now
    report = subscription.sender_report(before + 2.0)
    assert report is not None
    at, timestamp, packets, octets = report
    assert at == before + 2.0 and packets == 1 and octets == 100
    # Two seconds after the packet: 96,000 at 48 kHz, less the moment between `before` and when
    # the packet was noted.
    assert 2 * 48_000 - 2_400 <= timestamp <= 2 * 48_000, timestamp
    later = subscription.sender_report(before + 3.0)
    assert later is not None and later[1] - timestamp == 48_000


def test_a_stream_s_first_report_leaves_its_second_unmeasured_rather_than_empty() -> None:
    # Two voices at 200 kbit/s each on a link that then loses a sixth of them. A receiver's first
    # report on a stream cannot say what arrived before it (there is no earlier report to count
    # from); counted as nothing, it halved the delivered estimate the budget then held the link to.
    NOW[0] = 0.0
    downlink = Downlink(lambda: NOW[0])
    downlink.feedback(1_000_000)
    streams = [sender(downlink, ssrc) for ssrc in (1, 2)]
    lost = 0
    for fraction_lost in (0, 43):  # (43 of 256: one packet in six)
        NOW[0] += 1
        for _ in range(50):
            for subscription, _ in streams:
                subscription.forward(bytes(488), 0, 1000 + subscription.packets, 960 * subscription.packets, False)
        lost += 50 * fraction_lost // 256
        for subscription, sent in streams:
            downlink.loss(fraction_lost, subscription.delivered(seq(sent[-1]), lost))
        downlink.tick()
    arrived_bps = 2 * (50 - 8) * 500 * 8  # each second
    assert downlink.limited and downlink.estimate_bps is not None
    assert 0.95 * arrived_bps <= downlink.estimate_bps <= arrived_bps
