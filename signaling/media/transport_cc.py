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

import collections
import dataclasses
import itertools
import struct
import time
from collections.abc import Callable, Sequence

TRANSPORT_CC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
FEEDBACK_INTERVAL_S = 0.1  # libwebrtc's default (it ranges 50-250 ms by bitrate)
RTCP_RTPFB, FMT_TRANSPORT_CC = 205, 15
DELTA_US = 250  # receive deltas count quarter milliseconds
REFERENCE_US = 64_000  # the reference time counts 64 ms
MAX_STATUSES = 8191  # packets in one feedback (a longer gap starts after it)
# What an RTP packet takes on the wire besides itself: SRTP's 10-byte authentication tag, UDP's 8
# bytes and IPv4's 20. A link's rate counts them, and for a voice packet (about 100 bytes) they
# are over a quarter: uncounted, an estimate of what arrived (and a budget under it) overshot a
# 200 kbit/s link by a fifth, and the queue of a link that had just dropped never drained.
PACKET_OVERHEAD = 38
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


# ---------------------------------------------------------------- the sender's side: a subscriber's downlink

def split_feedback(compound: bytes) -> tuple[list[bytes], bytes]:
    """The transport feedback packets of an RTCP compound (each from its base sequence number on,
    padding removed), and the compound without them: aiortc's parser knows only NACKs among the
    RTP feedback formats, and a padded transport feedback makes it refuse the whole compound
    (and with it the receiver reports, NACKs and PLIs beside it)."""
    found, rest = [], []
    at = 0
    while at + 4 <= len(compound):
        first, packet_type, length = struct.unpack_from("!BBH", compound, at)
        end = at + 4 * (length + 1)
        if end > len(compound):
            break
        if packet_type == RTCP_RTPFB and first & 0x1F == FMT_TRANSPORT_CC:
            stop = end - (compound[end - 1] if first & 0x20 else 0)
            if stop - at >= 20:
                found.append(compound[at + 12:stop])
        else:
            rest.append(compound[at:end])
        at = end
    if not found:
        return found, compound  # (most compounds: nothing to cut out, nothing to copy)
    return found, b"".join(rest) + compound[at:]


def read_feedback(body: bytes) -> list[tuple[int, int | None]]:
    """Each packet a transport feedback reports: (16-bit sequence number, arrival time in
    microseconds on the receiver's clock, or None if it did not arrive). A malformed one: []."""
    try:
        base, count, word = struct.unpack_from("!HHI", body)
        reference = word >> 8
        if reference & 0x800000:
            reference -= 0x1000000
        symbols: list[int] = []
        at = 8
        while len(symbols) < count:
            chunk = struct.unpack_from("!H", body, at)[0]
            at += 2
            if not chunk & 0x8000:
                symbols += [chunk >> 13 & 3] * (chunk & 0x1FFF)
            elif not chunk & 0x4000:
                symbols += [chunk >> (13 - n) & 1 for n in range(14)]
            else:
                symbols += [chunk >> (12 - 2 * n) & 3 for n in range(7)]
        arrivals: list[tuple[int, int | None]] = []
        time_us = reference * REFERENCE_US
        for n, symbol in enumerate(symbols[:count]):
            if symbol == NOT_RECEIVED:
                arrivals.append(((base + n) & 0xFFFF, None))
                continue
            if symbol == SMALL_DELTA:
                delta = body[at]
                at += 1
            else:
                delta = struct.unpack_from("!h", body, at)[0]
                at += 2
            time_us += delta * DELTA_US
            arrivals.append(((base + n) & 0xFFFF, time_us))
        return arrivals
    except (struct.error, IndexError):
        return []


class SendLog:
    """Transport-wide sequence numbers for what the server sends one subscriber, and when each
    packet went and how large it was (for reading its feedback)."""

    SIZE = 4096

    def __init__(self, clock: Callable[[], int] = lambda: time.monotonic_ns() // 1000) -> None:
        self._clock = clock
        self._next = 0
        self.sent_us = [0] * self.SIZE
        self.sizes = [0] * self.SIZE
        self.seqs = [-1] * self.SIZE
        self.octets = 0  # sent so far, on the wire

    def next(self, size: int) -> int:
        """The sequence number for an RTP packet of this size sent now (kept with its size on the wire)."""
        seq = self._next
        self._next = (seq + 1) & 0xFFFF
        slot = seq % self.SIZE
        size += PACKET_OVERHEAD
        self.sent_us[slot], self.sizes[slot], self.seqs[slot] = self._clock(), size, seq
        self.octets += size
        return seq

    def peek(self) -> int:
        """The sequence number the next packet will get."""
        return self._next


GROUP_US = 5_000  # packets sent within this of a group's first are one group (a frame's burst) ...
# ... and so are those that arrive one after another within BURST_US, sooner than they were sent,
# for up to MAX_BURST_US: what a receiver read at once after a pause of its own (a busy machine's
# scheduling, not a queue in the link; libwebrtc's InterArrival::BelongsToBurst).
BURST_US, MAX_BURST_US = 5_000, 100_000
TRENDLINE_POINTS = 20  # the delay trend is the slope over this many groups
SMOOTHING = 0.9
TREND_GAIN = 4.0
THRESHOLD_START_MS, THRESHOLD_UP, THRESHOLD_DOWN = 12.5, 0.0087, 0.039  # GCC's adaptive threshold
OVERUSE_MS = 10.0  # a trend above the threshold this long is overuse
DECREASE = 0.85  # on overuse: this share of what arrived lately
FAST_INCREASE, SLOW_INCREASE = 1.2, 1.08  # per second without overuse: far from the last overuse, and near it
NEAR_OVERUSE_S = 5.0
HIGH_LOSS, DECREASE_EVERY_S = 0.10, 0.3  # loss above this lowers the estimate too (random loss below it does not) ...
LOSS_WINDOW_S, LOSS_MIN_PACKETS = 1.0, 20  # ... over the feedback of the last second
HIGH_LOSS_FOR_S = 1.0  # ... for this long: a short spell of random loss is not a policer
LOW_LOSS = 0.02  # between this and HIGH_LOSS the estimate holds (GCC's loss-based band)
# What arrived lately, for a decrease: a queue that has just filled passes on the link's rate,
# and over half a second the rate from before the link fell still counted (the cut fell short).
ACKED_WINDOW_US = 250_000
# A packet that waited this much longer than the quickest came out of a queue, and those after it
# one after another at the link's rate: at an overuse, the rate they arrived at (at least
# QUEUED_PACKETS of them, `queue_output_bps`) is what the link carries. The window also holds
# packets from before the link fell and those a token bucket let through at once (tbf's burst, a
# radio's): on a phone's downlink that fell to 300 kbit/s the first cut went to 415 and the queue
# kept growing for 300 ms more.
QUEUED_US, QUEUED_PACKETS = 10_000, 4
FALLEN = 0.5  # a queue over QUEUED_MS that passes less than this share of the estimate and of what it was sent: the link fell
QUEUED_MS = 100.0  # a packet this much slower than the quickest ...
BASE_WINDOW_S = 10.0  # ... of this long waited in a queue (random radio jitter of +-50 ms does not reach it)
MIN_BPS, MAX_BPS = 80_000, 10_000_000
# Without a probe, the estimate grows to at most this times what arrived lately, plus this
# (libwebrtc's AimdRateControl): past it, it would be a guess that the next larger layer fits.
THROUGHPUT_GAIN, THROUGHPUT_ADD_BPS = 1.5, 10_000
# A probe: padding beside the media so that the two together are this times the estimate, paced
# over this long. It succeeds if the link carries it: no overuse, and its packets (media and
# padding sent meanwhile) arrive at least at this share of its rate (the estimate becomes the
# rate they arrived at). Paced, not a burst: a token bucket in the link (tbf's burst, a radio's)
# passes a burst of a few kilobytes at any rate, and a burst probe found 600 kbit/s on a 300
# kbit/s link each time. (libwebrtc's ProbeController and ProbeBitrateEstimator, LiveKit's probes.)
PROBE_GAIN, PROBE_S, PROBE_TICK_S = 2.0, 0.5, 0.02
PROBE_REACHED = 0.9
PROBE_WAIT_S, PROBE_MAX_WAIT_S = 2.0, 8.0  # between probes: this, doubled after each that failed, up to this
PROBE_AFTER_OVERUSE_S = 5.0  # no probe this soon after the estimate fell (a link that has just
#                              dropped is still draining its queue: a probe at 3 s froze video in the first 5 s)


@dataclasses.dataclass
class Probe:
    """A probe in progress: the rate it tries, when it started, and its packets (transport
    sequence numbers from `first` to before `end`, once it has ended) as reported so far."""

    goal_bps: int
    estimate_bps: int  # before it
    started_at: float
    sent_octets: int  # what the log had sent when it started
    first: int
    end: int | None = None
    arrivals: list[tuple[int, int]] = dataclasses.field(default_factory=list)  # (arrival us, size)
    reported: int = -1  # the furthest of its packets reported on (from `first`)

    def read(self, arrivals: list[tuple[int, int | None]], sizes: list[int]) -> None:
        """Note a feedback's reports on the probe's packets."""
        span = ((self.end if self.end is not None else self.first + 0x8000) - self.first) & 0xFFFF
        for seq, arrival in arrivals:
            offset = (seq - self.first) & 0xFFFF
            if offset < span:
                if arrival is not None:
                    self.arrivals.append((arrival, sizes[seq % SendLog.SIZE]))
                self.reported = max(self.reported, offset)

    @property
    def reported_all(self) -> bool:
        """Whether it has ended and its last packet has been reported on."""
        return self.end is not None and self.reported >= ((self.end - self.first) & 0xFFFF) - 1

    def arrived_bps(self) -> int:
        """The rate its packets arrived at (the first one's bytes arrived before the span)."""
        if len(self.arrivals) < 2:
            return 0
        self.arrivals.sort()
        return _rate(self.arrivals) or MAX_BPS  # (all at once: a span of 0)


class DelayEstimator:
    """What a subscriber's downlink carries, from its transport feedback, as libwebrtc's
    send-side estimate (GCC) works it out: the one-way delay's trend over packet groups; a
    rising trend (a queue building up in the link) is overuse, and the estimate falls to 85% of
    the rate that came out of the queue lately, within a feedback interval or two of the queue
    starting to grow and before it overflows (a queue found overflowing, its packets late and
    many lost, is overuse too: a full queue's delay no longer rises; so is one over 100 ms that
    passes under half the estimate: the link fell); otherwise it grows (20% a second, 8% within 5 s
    of an overuse) while under 2% is lost, to at most 1.5 times what arrives (+10 kbit/s), and
    past that by a probe that the link carried (`Probe`). Loss lowers it only above 10% for a
    second (to at most what arrived: a policer drops without queueing): random loss on a radio
    link, with no queue behind it, is repaired (NACK, Opus FEC), not taken for congestion."""

    def __init__(self, start_bps: int = 1_000_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.log = SendLog()
        self.estimate_bps = start_bps
        self.overused_at = float("-inf")  # when the estimate last fell (delay or loss)
        self.loss = 0.0  # the share lost over the last second's feedback
        self._high_loss_since: float | None = None  # when it went above HIGH_LOSS, if it is
        self._clock = clock
        self._updated_at = clock()
        self._group: list[int] | None = None  # first send, last send, last arrival, first arrival (us)
        self._previous: list[int] | None = None
        self._accumulated = 0.0
        self._smoothed = 0.0
        self._points: collections.deque[tuple[float, float]] = collections.deque(maxlen=TRENDLINE_POINTS)
        self._first_arrival_us: int | None = None
        self._deltas = 0
        self._threshold = THRESHOLD_START_MS
        self._threshold_at: float | None = None
        self._overuse_ms = 0.0
        self._overuse_count = 0
        self._trend = 0.0
        self.overusing = False
        # A queue that overflows, or a link that fell: this feedback's packets waited over
        # QUEUED_MS and it lost more than HIGH_LOSS, or its queue passes less than FALLEN of the
        # estimate and of what it was sent. (The delay trend misses the first, a full queue's delay no longer rises, and
        # needs a few feedbacks for the second.)
        self.overflowing = False
        self._fastest: collections.deque[tuple[float, int]] = collections.deque()  # (when, the least one-way delay of a feedback, us)
        self._acked: collections.deque[tuple[int, int, int]] = collections.deque()  # (arrival us, size, one-way delay us) within ACKED_WINDOW_US
        self._reports: collections.deque[tuple[float, int, int]] = collections.deque()  # (when, received, lost) within LOSS_WINDOW_S
        self.probe: Probe | None = None
        self._probe_at = float("-inf")  # when the last probe went
        self._probe_wait = PROBE_WAIT_S
        self.probes = [0, 0]  # probes sent, and those that raised the estimate

    def feedback(self, arrivals: list[tuple[int, int | None]]) -> None:
        """A transport feedback's packets (sequence number, arrival or None): the groups they
        complete go into the delay trend, which is judged once per feedback."""
        received = lost = 0
        seqs, sent_us, sizes = self.log.seqs, self.log.sent_us, self.log.sizes
        acked = self._acked
        group = self._group
        send_span_us = 0
        last_arrival = latest = 0
        fastest = None  # the least one-way delay among them (us, on two clocks)
        for seq, arrival in arrivals:  # (per packet: kept lean, it runs for every packet sent)
            slot = seq % SendLog.SIZE
            if seqs[slot] != seq:
                continue
            if arrival is None:
                lost += 1
                continue
            received += 1
            send = sent_us[slot]
            last_arrival, latest = arrival, arrival - send
            acked.append((arrival, sizes[slot], latest))
            if fastest is None or latest < fastest:
                fastest = latest
            if group is None or (send - group[0] > GROUP_US and not _burst(group, send, arrival)):
                previous = self._previous
                if group is not None and previous is not None:
                    send_span_us += group[1] - previous[1]
                    self._delta(group[1] - previous[1], group[2] - previous[2], group[2])
                if group is not None:
                    self._previous = group
                group = self._group = [send, send, arrival, arrival]
            else:
                if send > group[1]:
                    group[1] = send
                if arrival > group[2]:
                    group[2] = arrival
        while acked and acked[0][0] < last_arrival - ACKED_WINDOW_US:
            acked.popleft()
        if send_span_us and len(self._points) == TRENDLINE_POINTS:
            self._detect(_slope(self._points), send_span_us / 1000)
        now = self._clock()
        reports = self._reports
        reports.append((now, received, lost))
        while reports[0][0] < now - LOSS_WINDOW_S:
            reports.popleft()
        counted = sum(r + lost for _, r, lost in reports)
        self.loss = sum(lost for _, _, lost in reports) / counted if counted >= LOSS_MIN_PACKETS else 0.0
        self.overflowing = fastest is not None and self._queued_ms(now, fastest, latest) > QUEUED_MS \
            and (lost > HIGH_LOSS * (received + lost) or self._fallen())
        if self.loss <= HIGH_LOSS:
            self._high_loss_since = None
        elif self._high_loss_since is None:
            self._high_loss_since = now
        self._control()
        if self.probe is not None:
            self._judge_probe(arrivals, now)

    def fell_within(self, seconds: float) -> bool:
        """Whether the estimate fell (overuse, or loss) in the last `seconds`."""
        return self._clock() - self.overused_at < seconds

    def probe_due(self) -> int | None:
        """The rate a probe would try now (the caller wants more than the estimate gives), or
        None: one is under way, the estimate fell lately, or the last one was too recent."""
        now = self._clock()
        if self.probe is not None or now - self.overused_at < PROBE_AFTER_OVERUSE_S or now - self._probe_at < self._probe_wait:
            return None
        return min(MAX_BPS, int(self.estimate_bps * PROBE_GAIN))

    def start_probe(self, goal_bps: int) -> None:
        """Probe at this rate from now (`probe_padding` says what to add, tick by tick)."""
        self.probe = Probe(goal_bps, self.estimate_bps, self._clock(), self.log.octets, self.log.peek())
        self._probe_at = self.probe.started_at
        self.probes[0] += 1

    def probe_padding(self) -> int:
        """How many bytes of padding to send now to keep the probe at its rate; 0 once its time
        is up."""
        probe = self.probe
        if probe is None or probe.end is not None:
            return 0
        elapsed = self._clock() - probe.started_at
        if elapsed >= PROBE_S:
            probe.end = self.log.peek()
            return 0
        return max(0, int(probe.goal_bps * elapsed / 8) - (self.log.octets - probe.sent_octets))

    def _judge_probe(self, arrivals: list[tuple[int, int | None]], now: float) -> None:
        """After each feedback during a probe: over at the first overuse (which the probe caused:
        the estimate from before it stands); once its last packet is reported on, a success if
        its packets arrived at its rate."""
        probe = self.probe
        assert probe is not None
        probe.read(arrivals, self.log.sizes)
        failed = self.overusing or self.overflowing or self.loss > LOW_LOSS or now - probe.started_at > 3 * PROBE_S
        if not failed and not probe.reported_all:
            return
        self.probe = None
        if self.overusing or self.overflowing:
            self.estimate_bps = max(self.estimate_bps, probe.estimate_bps)
        arrived = 0 if failed else probe.arrived_bps()
        if arrived >= PROBE_REACHED * probe.goal_bps:
            self.estimate_bps = max(self.estimate_bps, min(arrived, MAX_BPS))
            self.probes[1] += 1
            self._probe_wait = PROBE_WAIT_S
        else:
            self._probe_wait = min(PROBE_MAX_WAIT_S, 2 * self._probe_wait)

    def _queued_ms(self, now: float, fastest_us: int, latest_us: int) -> float:
        """How long the latest packet waited in a queue: its one-way delay (on two clocks: only
        differences count) over the least of the last BASE_WINDOW_S (kept here, this feedback's
        least added)."""
        history = self._fastest
        while history and history[-1][1] >= fastest_us:  # (a rising minimum: only the least matters)
            history.pop()
        history.append((now, fastest_us))
        while history[0][0] < now - BASE_WINDOW_S:
            history.popleft()
        return (latest_us - history[0][1]) / 1000

    def acked_bps(self) -> int:
        """What arrived over the last quarter second of feedback."""
        return _rate(self._acked)

    def _fallen(self) -> bool:
        """Whether the link passes less than FALLEN of the estimate and of what it was sent, by
        at least QUEUED_PACKETS packets of the last quarter second. A link that passes what it was
        given has not fallen, however far under the estimate that is, and two packets measure no
        rate: before, a subscriber sent little (its first seconds, or the small layers) behind a
        busy receiver's 100 ms hiccup was taken for a link that fell, and its estimate went from
        1 Mbit/s to 80 kbit/s on a perfect link."""
        acked = self._acked
        if len(acked) < QUEUED_PACKETS:
            return False
        sent_bps = _rate(sorted((arrival - delay, size) for arrival, size, delay in acked))
        return self._link_bps() < FALLEN * min(self.estimate_bps, sent_bps)

    def _link_bps(self) -> int:
        """What the link carries, at an overuse: the rate at which packets came out of its queue
        lately (`queue_output_bps`), else what arrived."""
        return (queue_output_bps(self._acked, self._fastest[0][1]) if self._fastest else 0) or self.acked_bps()

    def _delta(self, send_delta_us: int, arrival_delta_us: int, arrival_us: int) -> None:
        """One group after another: the change in one-way delay between them, into the trend."""
        if self._first_arrival_us is None:
            self._first_arrival_us = arrival_us
        self._deltas += 1
        self._accumulated += (arrival_delta_us - send_delta_us) / 1000
        self._smoothed = SMOOTHING * self._smoothed + (1 - SMOOTHING) * self._accumulated
        self._points.append(((arrival_us - self._first_arrival_us) / 1000, self._smoothed))

    def _detect(self, trend: float, send_delta_ms: float) -> None:
        modified = min(self._deltas, 60) * trend * TREND_GAIN
        if modified > self._threshold:
            self._overuse_ms += send_delta_ms if self._overuse_count else send_delta_ms / 2
            self._overuse_count += 1
            if self._overuse_ms > OVERUSE_MS and self._overuse_count > 1 and trend >= self._trend:
                self.overusing = True
                self._overuse_ms, self._overuse_count = 0.0, 0
        else:
            self.overusing = False
            self._overuse_ms, self._overuse_count = 0.0, 0
        self._trend = trend
        now = self._clock()
        if abs(modified) <= self._threshold + 15:
            elapsed_ms = min(100.0, (now - self._threshold_at) * 1000) if self._threshold_at is not None else 0.0
            k = THRESHOLD_DOWN if abs(modified) < self._threshold else THRESHOLD_UP
            self._threshold = min(600.0, max(6.0, self._threshold + k * (abs(modified) - self._threshold) * elapsed_ms))
        self._threshold_at = now

    def _control(self) -> None:
        now = self._clock()
        elapsed = min(1.0, now - self._updated_at)
        self._updated_at = now
        decrease = now - self.overused_at >= DECREASE_EVERY_S
        if (self.overusing or self.overflowing) and decrease:
            # (never up: an estimate already under what arrives stays)
            self.estimate_bps = max(MIN_BPS, min(self.estimate_bps, int(DECREASE * (self._link_bps() or self.estimate_bps))))
            self.overused_at = now
        elif self._high_loss_since is not None and now - self._high_loss_since >= HIGH_LOSS_FOR_S and decrease:
            # A link that drops what it cannot carry without queueing it first (a policer): at
            # most what arrived lately.
            self.estimate_bps = max(MIN_BPS, min(int(self.estimate_bps * (1 - self.loss / 2)), self.acked_bps() or self.estimate_bps))
            self.overused_at = now
        elif not self.overusing and self.loss <= LOW_LOSS:
            growth = SLOW_INCREASE if now - self.overused_at < NEAR_OVERUSE_S else FAST_INCREASE
            ceiling = int(THROUGHPUT_GAIN * self.acked_bps()) + THROUGHPUT_ADD_BPS
            grown = min(MAX_BPS, ceiling, int(self.estimate_bps * growth ** elapsed))
            self.estimate_bps = max(self.estimate_bps, grown)


def _burst(group: list[int], send_us: int, arrival_us: int) -> bool:
    """Whether a packet arrived in a burst with the group (first send, last send, last arrival,
    first arrival): within BURST_US of its last arrival, sooner after it than it was sent, and
    within MAX_BURST_US of its first."""
    arrival_delta = arrival_us - group[2]
    return arrival_delta <= BURST_US and arrival_delta - (send_us - group[1]) < 0 and arrival_us - group[3] < MAX_BURST_US


def queue_output_bps(packets: collections.deque[tuple[int, int, int]], base_us: int) -> int:
    """The rate (bit/s) at which these packets (arrival us, size, one-way delay us) came out of a
    queue: all of them from the first that waited QUEUED_US longer than the quickest (`base_us`)
    on, since a queue passes what it holds one after another at the link's rate (each packet after
    it counts, whatever its own wait: those of a queue that comes and goes around the threshold
    counted alone read half the rate, and a probe's queue cut a 200 kbit/s link to 89); 0 when
    fewer than QUEUED_PACKETS."""
    for n, (_, _, delay) in enumerate(packets):
        if delay - base_us >= QUEUED_US:
            return _rate(list(itertools.islice(packets, n, None))) if len(packets) - n >= QUEUED_PACKETS else 0
    return 0


def _rate(packets: Sequence[tuple[int, ...]]) -> int:
    """The rate (bit/s) at which these packets (arrival us, size, ...) arrived, 0 over no span:
    the first one's bytes arrived before the span, and do not count."""
    if len(packets) < 2:
        return 0
    span = packets[-1][0] - packets[0][0]
    return int((sum(packet[1] for packet in packets) - packets[0][1]) * 8 * 1_000_000 / span) if span > 0 else 0


def _slope(points: collections.deque[tuple[float, float]]) -> float:
    """The least-squares slope of (x, y) points."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    numerator = sum((x - mean_x) * (y - mean_y) for x, y in points)
    denominator = sum((x - mean_x) ** 2 for x, _ in points)
    return numerator / denominator if denominator else 0.0
