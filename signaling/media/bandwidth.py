"""Each subscriber's downlink: what its feedback says the link can take, and the budget that
keeps what the server sends under it.

A link is limited only while its receiver reports loss (RTCP receiver reports): a healthy link
whose browser's estimate is still ramping up is left alone, so rooms on good networks lose
nothing; a link that loses packets is held to its estimate for a while after the last loss.
Its estimate is what the link delivered over the last two seconds (the bytes of the packets its
receiver reports say arrived), which grows while reports show no loss, to at most half again
what was sent; until the first such second, the browser's own estimate (REMB, from the video's
abs-send-time). When the hold runs out the link is tried unlimited again (a larger
simulcast layer): if it loses packets again soon, the next hold is twice as long.

Audio comes first: it is always sent, and the video share is what remains of the estimate. A
video frame starts while the budget allows and is dropped otherwise (the subscription then waits
for a keyframe); a frame of a top temporal layer is dropped alone, and sooner. Answers to NACKs:
for video, with transport feedback, they come before new video, within the same budget (the
estimate counts them, and a lost packet of a keyframe holds up every frame after it: refused,
it froze a party's video for three seconds after its downlink dropped, until the next
keyframe); for voices, or without transport feedback (where the loss may be the congestion
itself), they come last, only while a reserve of the budget is left (and on a link that is not
limited they have a budget of their own). When the link cannot carry
even a small video stream per publisher for a while, it gets fewer videos (`video_limit`: the
peer keeps the screen share and the latest speakers, `signaling/media/peers.py`), down to audio only;
one more video comes back when the estimate has room for it, and on audio only one video is
tried again now and then.

No media here: plain numbers, so that tests drive it with a fake clock.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from signaling.media.transport_cc import PACKET_OVERHEAD, DelayEstimator

AUDIO_BPS = 50_000  # an Opus voice stream (32 kbit/s) with its RTP, SRTP, UDP and IP headers
START_BPS = 300_000  # the NACK answers' budget on a link that is not limited
MAX_DEBT_S = 1.0  # a frame that starts within budget is sent whole, even a keyframe, up to this debt ...
FRAME_DEBT_S = 0.5  # ... and new frames start until the debt is this deep (each refused one costs a keyframe)
MIN_VIDEO_BPS = 60_000  # per video stream: below this for a while (and losing), the subscriber gets fewer videos ...
RESUME_VIDEO_BPS = 90_000  # ... and one more from this (so that it does not flap)
MIN_PUBLISHER_BPS = 60_000  # a single-layer camera is never steered below this
FEWER_AFTER_S = 3.0  # how long a share must stay too small while the link loses packets
PROBE_EVERY_S = 10.0  # on audio only, try one video again this often: the estimate only grows
#                       while video flows, so without a try it could never come back
MAX_VIDEO_BPS = 600_000  # what the room page lets a camera send (its largest layer) ...
# The page's small simulcast layer (320x240 at 15 fps): what a 300 kbit/s link leaves for one video
# beside four voices must carry it (bench/media_capacity.py's weak link, rooms of five: at 70k its
# best camera got 5.6-8.4 fps, every refused frame costing a keyframe's wait; at 50k 11.5-12.1).
SMALL_LAYER_BPS = 50_000
SIMULCAST_BPS = MAX_VIDEO_BPS + SMALL_LAYER_BPS  # ... and with its small layer (web/static/room.js)
HEADROOM = 0.9  # keep a tenth of the estimate free for RTCP and the estimate's own error
BURST_S = 0.3  # the budget may run this far ahead (a keyframe is a burst)
LOSSY_FRACTION = 13  # of 256 (5%): a receiver report above this means the link is congested
REFUSED_SHARE = 0.2  # fewer videos when the budget refuses this share of the frames (while the share is low) ...
THINNED_SHARE = 1 / 3  # ... or leaves out this share of them from top temporal layers (15 fps -> 10)
LOSSY_RECENT_S = 2.0  # fewer videos need loss this recent too (reports come every second or so)
CONGESTED_HOLD_S = 120.0  # the link stays limited this long after the last lossy report ...
MAX_HOLD_S = 480.0  # ... twice that after each failed try at more, up to this (bench/weak_link.py:
#                     a failed try cost 8% of a minute's audio on a 300 kbit/s link: every layer
#                     goes up at once, and there is no gentler probe without padding)
RELAPSE_S = 120.0  # congestion again within this long after a hold ended: the try failed
WEAK_AFTER_S = 3  # seconds in a row of a struggling link before its owner is told ...
WELL_AFTER_S = 5  # ... and of a good one before the notice goes
DOWNGRADED_LOSS_S = 10.0  # smaller layers than the tiles want mean a weak link while loss is this recent
CLEAN_FRACTION = 5  # of 256 (2%): reports at or below this let the delivered estimate grow
GROWTH = 1.15  # per second without loss ...
GROWTH_CAP = 1.5  # ... up to this times what was actually sent
MIN_ESTIMATE_BPS = 80_000  # the delivered estimate goes no lower (audio, and a try at video)
RESERVE = 0.3  # retransmissions only while this share of the burst is still unspent
FREE_BPS = 3_000_000  # with transport feedback: an estimate this high carries everything a room sends one person


_NEVER = float("-inf")


class Downlink:
    """One subscriber's link: the estimate, how many videos it carries, and the byte budget."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.remb_bps: int | None = None  # the browser's estimate (REMB); None: none yet
        self.delivered_bps: int | None = None  # what the link delivered while it lost packets
        self.audio_streams = 0
        self.video_streams = 0
        self.video_limit: int | None = None  # how many of the videos the link carries (None: all)
        # Whether every video it gets is on its smallest layer already (the peer says, each
        # second): smaller layers come first, fewer videos only after.
        self.at_smallest = True
        self._tokens = 0.0
        self._at = clock()
        self._retransmit_tokens = 0.0  # before feedback, NACK answers have a budget of their own
        self._retransmit_at = self._at
        self._low_since: float | None = None  # when the share fell below MIN_VIDEO_BPS
        self._congested_until = _NEVER
        self._hold_s = CONGESTED_HOLD_S
        self._lossy_at = float("-inf")  # the last lossy report
        self._low_reports = [0, 0]  # clean and lossy reports since the share fell low
        self._sent_octets = 0  # since the last tick
        self._delivered_octets = 0  # since the last tick, by the receiver's reports
        self._last_window = (0, 0.0)  # (delivered octets, seconds) of the tick before
        self._partial = False  # a report since the last tick did not say what arrived
        self._tick_at = self._at
        self._worst_loss = 0  # the worst fraction lost reported since the last tick
        self._reports = 0
        self._lowered_at = 0.0  # when the video limit last went down
        self._refused_at = float("-inf")  # when the budget last refused a video frame ...
        self._frames = [0, 0, 0]  # ... and the frames it let start, refused and left out, since the share fell low
        self.dropped_video = 0
        self.dropped_retransmissions = 0
        self.last_loss = 0.0  # the share lost in the latest receiver report (for /metrics)
        # The delay-based estimate, where the subscriber's browser sends transport feedback.
        self.delay: DelayEstimator | None = None

    @property
    def estimate_bps(self) -> int | None:
        """What the link can take: the delay-based estimate where the subscriber's browser sends
        transport feedback; else what it delivered while it lost packets, else the browser's
        estimate. (REMB counts only the video, the packets with abs-send-time, and cannot grow
        past one and a half times what arrived: once a budget holds video down, the REMB would
        fall with it, all the way to audio only.)"""
        if self.delay is not None:
            return self.delay.estimate_bps
        return self.delivered_bps if self.delivered_bps is not None else self.remb_bps

    def transport_feedback(self, arrivals: list[tuple[int, int | None]]) -> bool:
        """The subscriber's transport feedback (see DelayEstimator); True when the video limit changed."""
        assert self.delay is not None
        fell_at = self.delay.overused_at
        self.delay.feedback(arrivals)
        if self.delay.overused_at != fell_at and self.limited:
            # What the budget saved at the old rate is not there at the new one: the link's queue
            # is full already (a burst of it on a phone's downlink that had just fallen to 300
            # kbit/s overflowed the queue and lost voices half a second after the cut).
            self._refill()
            self._tokens = min(self._tokens, 0.0)
        return self._decide()

    @property
    def _ever_congested(self) -> bool:
        """Whether the link has ever been found congested (until then it is never limited)."""
        if self.delay is not None:
            return self.delay.overused_at != _NEVER
        return self._congested_until != _NEVER

    def feedback(self, bitrate_bps: int) -> bool:
        """A new estimate (REMB); True when the video limit changed."""
        self.remb_bps = max(0, int(bitrate_bps))
        return self._decide()

    def loss(self, fraction_lost: int, delivered_octets: int | None = 0) -> bool:
        """A receiver report for a stream this subscriber receives: its fraction lost (of 256),
        and the bytes it says arrived since its last report (None: not known, as for a stream's
        first report: what arrived in this second is then not measured); True when the video
        limit changed."""
        now = self._clock()
        self._reports += 1
        if delivered_octets is None:
            self._partial = True
        else:
            self._delivered_octets += delivered_octets
        self._worst_loss = max(self._worst_loss, fraction_lost)
        self.last_loss = fraction_lost / 256
        self._low_reports[fraction_lost > LOSSY_FRACTION] += 1
        if fraction_lost > LOSSY_FRACTION:
            self._lossy_at = now
            # (With transport feedback, congestion is the delay estimate's to find: loss alone
            # may be the radio's, and is repaired.)
            if self.delay is None:
                if now >= self._congested_until:  # a new episode: did the last try at more fail?
                    relapse = now - self._congested_until < RELAPSE_S
                    self._hold_s = min(MAX_HOLD_S, self._hold_s * 2) if relapse else CONGESTED_HOLD_S
                self._congested_until = now + self._hold_s
        return self._decide()

    @property
    def limited(self) -> bool:
        """Whether the budget holds this link to its estimate now: with transport feedback, from
        the first congestion found until the estimate has grown past FREE_BPS again; without,
        while there is an estimate and loss was recent."""
        if self.delay is not None:
            return self._ever_congested and self.delay.estimate_bps < FREE_BPS
        return self.estimate_bps is not None and self._clock() < self._congested_until

    def streams(self, video: int, audio: int = 0) -> bool:
        """How many streams the subscriber receives now; True when the video limit changed."""
        self.video_streams = video
        self.audio_streams = audio
        return self._decide()

    def lost_within(self, seconds: float) -> bool:
        """Whether a receiver report showed loss in the last `seconds`."""
        return self._clock() - self._lossy_at < seconds

    def congested_within(self, seconds: float) -> bool:
        """Whether the link was found congested in the last `seconds`: a receiver report showed
        loss, or (with transport feedback) the estimate fell, a probe it could not carry
        included. (Its estimate no longer overshoots a weak link, so loss alone no longer shows
        one that is held to its small layers.)"""
        return self.lost_within(seconds) or (self.delay is not None and self.delay.fell_within(seconds))

    def probe_due(self, downgraded: bool) -> int | None:
        """The rate to probe the link at now (DelayEstimator.probe_due), where the estimate keeps
        it from what it would get: smaller layers than its tiles want, or fewer videos. At most
        FREE_BPS: a link that carries that is no longer limited."""
        if self.delay is None or not self.limited or not (downgraded or self.shown < self.video_streams):
            return None
        goal = self.delay.probe_due()
        return None if goal is None else min(goal, FREE_BPS)

    @property
    def cutting(self) -> bool:
        """Whether the budget leaves out video now (frames refused or thinned lately, or fewer
        videos): the link is too weak for what it gets. (Loss alone is not enough: a publisher's
        lossy uplink shows as loss on every subscriber's link.)"""
        return self._clock() - self._refused_at < LOSSY_RECENT_S or self.video_limit is not None

    @property
    def audio_only(self) -> bool:
        """Whether the link carries none of its videos now."""
        return self.video_limit == 0 and self.video_streams > 0

    @property
    def shown(self) -> int:
        """How many videos the subscriber gets now."""
        return self.video_streams if self.video_limit is None else min(self.video_limit, self.video_streams)

    def _video_bps(self) -> float | None:
        """What all the videos may take on a limited link (the estimate, less a reserve and the
        audio); None: no limit."""
        if not self.limited:
            return None
        assert self.estimate_bps is not None
        return max(0.0, self.estimate_bps * HEADROOM - self.audio_streams * AUDIO_BPS)

    def video_share_bps(self) -> int | None:
        """What each video the subscriber gets may take on a limited link; None: no limit."""
        video = self._video_bps()
        return None if video is None else int(video / max(1, self.shown))

    def sent(self, size: int, video: bool) -> None:
        """Count an RTP packet that was sent (for video, once its frame started); the budget
        counts it as the link does, with its headers."""
        self._sent_octets += size
        if video and self._ever_congested:  # (a link never congested is never limited)
            self.spend(size + PACKET_OVERHEAD)

    def tick(self) -> bool:
        """Called every second or so: what the link delivered, fewer videos after a sustained
        low share, and more when there is room; True when the video limit changed."""
        now = self._clock()
        elapsed = now - self._tick_at
        if elapsed > 0 and self._reports:
            sent_bps = self._sent_octets * 8 / elapsed
            # Reports come about once a second per stream, not in step with the ticks: two ticks
            # (of those whose every report said what arrived: a second counted with none of a
            # stream's bytes would halve the estimate).
            window = (0, 0.0) if self._partial else (self._delivered_octets, elapsed)
            octets, seconds = self._last_window[0] + window[0], self._last_window[1] + window[1]
            delivered_bps = octets * 8 / seconds if seconds else 0.0
            if self._worst_loss > LOSSY_FRACTION and delivered_bps:
                self.delivered_bps = max(MIN_ESTIMATE_BPS, int(delivered_bps))
            elif self.delivered_bps is not None and self._worst_loss <= CLEAN_FRACTION:
                # No loss: the link carries at least what arrived, and may carry a little more.
                grown = min(int(self.delivered_bps * GROWTH), int(sent_bps * GROWTH_CAP))
                self.delivered_bps = max(self.delivered_bps, grown, int(delivered_bps))
            self._last_window, self._partial = window, False
            self._sent_octets, self._delivered_octets, self._tick_at = 0, 0, now
            self._worst_loss, self._reports = 0, 0
        if not self.limited:
            self.delivered_bps = None
        return self._decide()

    def _decide(self) -> bool:
        now = self._clock()
        video = self._video_bps()
        limit = self.video_limit
        shown = self.shown
        if video is None or self.video_streams == 0:
            limit, self._low_since = None, None
        elif limit is not None and limit < self.video_streams and (
                video / (limit + 1) >= RESUME_VIDEO_BPS or (limit == 0 and now - self._lowered_at >= PROBE_EVERY_S)):
            # More videos when the estimate has room for them; on audio only, one now and then
            # to find out whether it would (the estimate grows only while video flows).
            limit = max(limit + 1, int(video // RESUME_VIDEO_BPS))
            self._low_since, self._low_reports, self._frames = now, [0, 0], [0, 0, 0]  # a try that fails ends as soon
        elif shown == 0 or video / shown >= MIN_VIDEO_BPS or not self.at_smallest or (
                now - self._lossy_at > LOSSY_RECENT_S and now - self._refused_at > LOSSY_RECENT_S):
            # A share that looks small on a link that is neither losing packets nor having its
            # frames refused by the budget is an estimate still growing: the video gets
            # through, so it stays. (And while a video is still on a larger layer, moving it to
            # the small one is the first remedy.)
            self._low_since = None
        else:
            if self._low_since is None:
                self._low_since, self._low_reports, self._frames = now, [0, 0], [0, 0, 0]
            # Only a link that keeps losing (half its reports or more), not one whose full use
            # shows a lossy report now and then (a keyframe that overflowed a queue once); or
            # one whose budget refuses a good share of the frames (each costs that video a
            # keyframe's wait: spread over every video, none would get a watchable frame rate),
            # or leaves out a third of them from top temporal layers (each video under 10 fps).
            clean, lossy = self._low_reports
            started, refused, thinned = self._frames
            if now - self._low_since >= FEWER_AFTER_S and (lossy >= clean or refused >= max(2, REFUSED_SHARE * started)
                                                            or thinned >= max(2, THINNED_SHARE * (started + thinned))):
                # As many videos as the estimate carries at the floor, at least one fewer, and
                # audio only from one video: the estimate may have been taken while every video
                # overflowed the link, and the speaker's alone may well fit.
                fits = min(shown - 1, int(video // MIN_VIDEO_BPS))
                limit, self._lowered_at = max(fits, 1 if shown > 1 else 0), now
                # The next step, if any, as long after.
                self._low_since, self._low_reports, self._frames = now, [0, 0], [0, 0, 0]
        if limit is not None and limit >= self.video_streams:
            limit = None
        changed = limit != self.video_limit
        self.video_limit = limit
        return changed

    def _video_rate(self) -> float:
        """Bytes per second the video may take: the estimate, less its reserve and the audio."""
        assert self.estimate_bps is not None
        return max(MIN_VIDEO_BPS, self.estimate_bps * HEADROOM - self.audio_streams * AUDIO_BPS) / 8

    def _refill(self) -> float:
        now = self._clock()
        rate = self._video_rate()
        burst = max(rate * BURST_S, 20_000)
        self._tokens = min(burst, self._tokens + (now - self._at) * rate)
        self._at = now
        return burst

    def start_frame(self, *, droppable: bool = False) -> bool:
        """Whether a video frame may start now: the budget's debt is not too deep (FRAME_DEBT_S).
        A droppable frame (of a top temporal layer) starts only while the budget is not in debt
        at all; leaving one out costs that frame alone, so these lead to fewer videos only when
        they thin the frame rate by a third (THINNED_SHARE). A frame that starts is sent whole
        (`spend`), so a keyframe larger than the budget's burst still gets through."""
        if not self._ever_congested or not self.limited:
            return True
        self._refill()
        if droppable and self._tokens < 0:
            self._frames[2] += 1
            self._refused_at = self._clock()
            return False
        if self._tokens < -self._video_rate() * FRAME_DEBT_S:
            self.dropped_video += 1
            self._frames[1] += 1
            self._refused_at = self._clock()
            return False
        self._frames[0] += 1
        return True

    def left_out(self) -> None:
        """A frame its subscription left out without asking (its temporal layer is off since the
        budget refused a frame below it): it thins the frame rate as a refused one does."""
        self._frames[2] += 1

    def spend(self, size: int) -> None:
        """Take a video packet from the budget."""
        if not self.limited or self.estimate_bps is None:
            return
        self._refill()
        floor = -self._video_rate() * MAX_DEBT_S
        self._tokens = max(floor, self._tokens - size)

    def admit_retransmission(self, size: int, video: bool = False) -> bool:
        """Whether a NACK may be answered now: on a limited link, a video packet before new
        video with transport feedback, and otherwise from what the budget has to spare (see the
        module doc); on a link not limited, from a budget of START_BPS (a link that loses packets
        NACKs them, and answering every NACK on it is what buries it)."""
        size += PACKET_OVERHEAD
        if not self.limited:
            self._retransmit_tokens = min(START_BPS / 8 * BURST_S,
                                          self._retransmit_tokens + (self._clock() - self._retransmit_at) * START_BPS / 8 * RESERVE)
            self._retransmit_at = self._clock()
            if self._retransmit_tokens < size:
                self.dropped_retransmissions += 1
                return False
            self._retransmit_tokens -= size
            return True
        burst = self._refill()
        # A video packet with transport feedback: as deep into debt as a new frame may start (so
        # that new frames give way to it). Otherwise only from a reserve: a voice resent on a link
        # the voices overflow (100 kbit/s) took the place of the next ones (52% concealed, not 27).
        floor = -self._video_rate() * FRAME_DEBT_S if video and self.delay is not None else burst * RESERVE
        if self._tokens - size < floor:
            self.dropped_retransmissions += 1
            return False
        self._tokens -= size
        return True


class LinkQuality:
    """Whether to tell someone that a link of theirs is weak, from a judgement each second (it
    loses packets, or carries fewer videos): after WEAK_AFTER_S bad seconds in a row, and well
    again after WELL_AFTER_S good ones, so that one lost burst does not flash a warning."""

    def __init__(self) -> None:
        self.weak = False
        self._run = 0  # seconds in a row that disagree with `weak`

    def second(self, bad: bool) -> bool:
        """One second's judgement; True when `weak` changed."""
        if bad == self.weak:
            self._run = 0
            return False
        self._run += 1
        if self._run < (WEAK_AFTER_S if bad else WELL_AFTER_S):
            return False
        self.weak, self._run = bad, 0
        return True


def publisher_target_bps(shares: list[int | None], *, simulcast: bool = False) -> int:
    """What a camera should send: the smallest share among the subscribers that get its video
    (None: a link not limited; none limited: the page's cap), never less than a watchable video;
    in simulcast layers, all of them (a weak subscriber gets the small layer)."""
    if simulcast:
        return SIMULCAST_BPS
    known = [share for share in shares if share is not None]
    if not known:
        return MAX_VIDEO_BPS
    return max(MIN_PUBLISHER_BPS, min(MAX_VIDEO_BPS, min(known)))
