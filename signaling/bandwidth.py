"""Each subscriber's downlink: what its feedback (REMB) says the link can take, and the budget
that keeps what the server sends under it.

A link is limited only while its receiver reports loss (RTCP receiver reports): a healthy link
whose browser's estimate is still ramping up is left alone, so rooms on good networks lose
nothing; a link that loses packets is held to its estimate for a while after the last loss.

Audio comes first: it is always sent. The estimate is the browser's receive-side estimate (REMB),
which it makes from the packets that carry the abs-send-time extension: the video. So the
budget is video's: a video frame starts while the budget allows and is dropped otherwise (the
subscription then waits for a keyframe). Answers to NACKs come last: they are sent only while a
reserve of the budget is left, so that repairing loss never takes the place of new media on a
link that is already full (and on a link that is not limited they have a budget of their own).
When the link cannot carry even a small video stream per publisher for a while, the subscriber
gets audio only, and video is tried again now and then.

No media here: plain numbers, so that tests drive it with a fake clock.
"""
from __future__ import annotations

import time
from collections.abc import Callable

AUDIO_BPS = 40_000  # an Opus stream with its headers (what a publisher's REMB adds for it)
START_BPS = 300_000  # the NACK answers' budget on a link that is not limited
MAX_DEBT_S = 1.0  # a frame that starts within budget is sent whole, even a keyframe, up to this debt
MIN_VIDEO_BPS = 60_000  # per video stream: below this for a while, the subscriber gets audio only ...
RESUME_VIDEO_BPS = 90_000  # ... and video again from this (so that it does not flap)
AUDIO_ONLY_AFTER_S = 6.0  # how long a share must stay too small (an estimate dips, then recovers)
PROBE_EVERY_S = 10.0  # on audio only, try video again this often: the estimate only grows
#                       while video flows, so without a try it could never come back
MAX_VIDEO_BPS = 600_000  # what the room page lets a camera send
HEADROOM = 0.9  # keep a tenth of the estimate free for RTCP and the estimate's own error
BURST_S = 0.3  # the budget may run this far ahead (a keyframe is a burst)
LOSSY_FRACTION = 13  # of 256 (5%): a receiver report above this means the link is congested
CONGESTED_HOLD_S = 10.0  # the link stays limited this long after the last lossy report
RESERVE = 0.3  # retransmissions only while this share of the burst is still unspent


class Downlink:
    """One subscriber's link: the estimate, audio-only or not, and the byte budget."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.estimate_bps: int | None = None  # no feedback yet: no limit
        self.audio_only = False
        self.video_streams = 0
        self._tokens = 0.0
        self._at = clock()
        self._retransmit_tokens = 0.0  # before feedback, NACK answers have a budget of their own
        self._retransmit_at = self._at
        self._low_since: float | None = None  # when the share fell below MIN_VIDEO_BPS
        self._congested_until = -1.0
        self._audio_only_since = 0.0
        self.dropped_video = 0
        self.dropped_retransmissions = 0

    def feedback(self, bitrate_bps: int) -> bool:
        """A new estimate (REMB); True when audio-only changed."""
        self.estimate_bps = max(0, int(bitrate_bps))
        return self._decide()

    def loss(self, fraction_lost: int) -> bool:
        """A receiver report's fraction lost (of 256) for a stream this subscriber receives;
        True when audio-only changed."""
        if fraction_lost > LOSSY_FRACTION:
            self._congested_until = self._clock() + CONGESTED_HOLD_S
        return self._decide()

    @property
    def limited(self) -> bool:
        """Whether the budget holds this link to its estimate now (an estimate, and recent loss)."""
        return self.estimate_bps is not None and self._clock() < self._congested_until

    def streams(self, video: int) -> bool:
        """How many video streams the subscriber receives now; True when audio-only changed."""
        self.video_streams = video
        return self._decide()

    def video_share_bps(self) -> int | None:
        """What each video stream may take on a limited link; None: no limit."""
        if not self.limited:
            return None
        assert self.estimate_bps is not None
        return max(0, int(self.estimate_bps * HEADROOM / max(1, self.video_streams)))

    def tick(self) -> bool:
        """Called every second or so: go to audio only after a sustained low share, and try
        video again now and then; True when audio-only changed."""
        return self._decide()

    def _decide(self) -> bool:
        now = self._clock()
        share = self.video_share_bps()
        if share is None or self.video_streams == 0:
            audio_only, self._low_since = False, None
        elif self.audio_only:
            # Back to video when the estimate allows it, or to find out whether it would.
            audio_only = share < RESUME_VIDEO_BPS and now - self._audio_only_since < PROBE_EVERY_S
            if not audio_only:
                self._low_since = None
        elif share >= MIN_VIDEO_BPS:
            audio_only, self._low_since = False, None
        else:
            self._low_since = now if self._low_since is None else self._low_since
            audio_only = now - self._low_since >= AUDIO_ONLY_AFTER_S
        changed = audio_only != self.audio_only
        if changed and audio_only:
            self._audio_only_since = now
        self.audio_only = audio_only
        return changed

    def _refill(self) -> float:
        assert self.estimate_bps is not None
        now = self._clock()
        rate = self.estimate_bps * HEADROOM / 8
        burst = max(rate * BURST_S, 20_000)
        self._tokens = min(burst, self._tokens + (now - self._at) * rate)
        self._at = now
        return burst

    def start_frame(self) -> bool:
        """Whether a video frame may start now: the budget is not in debt. A frame that starts
        is sent whole (`spend`), so a keyframe larger than the budget's burst still gets through."""
        if not self.limited:
            return True
        self._refill()
        if self._tokens < 0:
            self.dropped_video += 1
            return False
        return True

    def spend(self, size: int) -> None:
        """Count a video packet that was sent (once its frame started)."""
        if not self.limited or self.estimate_bps is None:
            return
        self._refill()
        floor = -self.estimate_bps * HEADROOM / 8 * MAX_DEBT_S
        self._tokens = max(floor, self._tokens - size)

    def admit_retransmission(self, size: int) -> bool:
        """Whether a NACK may be answered now: only from what the budget has to spare (on a link
        not limited, from a budget of START_BPS: a link that loses packets NACKs them, and
        answering every NACK on it is what buries it)."""
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
        if self._tokens - size < burst * RESERVE:
            self.dropped_retransmissions += 1
            return False
        self._tokens -= size
        return True


def publisher_target_bps(shares: list[int | None]) -> int:
    """What a camera should send: the smallest share among the subscribers that get its video
    (None: a link not limited; none limited: the page's cap), never less than a watchable video."""
    known = [share for share in shares if share is not None]
    if not known:
        return MAX_VIDEO_BPS
    return max(MIN_VIDEO_BPS, min(MAX_VIDEO_BPS, min(known)))
