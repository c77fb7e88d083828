"""Collective slot search: the earliest times when every required seat of a panel is free.

A pure function over in-memory intervals (loading them from the database is in
`scheduling/loading.py`). Times are whole minutes since the Unix epoch (UTC): the search
does integer arithmetic on a grid of candidate start times, which keeps 1,000 experts x 4
weeks within a few milliseconds.

How it works: every start time on the grid (window start, rounded up to the slot interval,
after the minimum notice) is an index k. For each expert the free intervals, minus their
sessions widened by the gap and minus start times on days or in weeks already at their cap,
become ranges of feasible k. The rules themselves (what counts as a day, a week, the gap) are
those of `scheduling/rules.py`, which booking checks too. Per role a difference array counts how many experts are free at each k; a k is a
slot when every role has at least as many free experts as it has required seats, every pinned
expert is free, and no party is busy. Only for the first `limit` slots are the experts
actually chosen and ranked.
"""
from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence

from scheduling.panel import Panel, Seat
from scheduling.rules import Span, cap_day, cap_week

Minutes = tuple[int, int]
_NEVER = -(2**62)


def to_minutes(intervals: Iterable[tuple[dt.datetime, dt.datetime]]) -> tuple[Minutes, ...]:
    """Aware datetime intervals as whole epoch minutes (start rounded up, end down)."""
    return tuple((-(-int(s.timestamp()) // 60), int(e.timestamp()) // 60) for s, e in intervals)


def minute_to_datetime(minute: int) -> dt.datetime:
    """An epoch minute as an aware UTC datetime."""
    return dt.datetime.fromtimestamp(minute * 60, dt.timezone.utc)


@dataclasses.dataclass(frozen=True)
class Candidate:
    """An expert as the search sees them; intervals are sorted epoch minutes."""

    expert_id: int
    role: str
    free: Sequence[Minutes]
    busy: Sequence[Minutes] = ()
    priority: int = 100
    specialties: frozenset[str] = frozenset()
    languages: frozenset[str] = frozenset()
    last_booked: int | None = None  # epoch minute of their latest booking
    max_per_day: int = 2
    max_per_week: int = 3


@dataclasses.dataclass(frozen=True)
class Search:
    """What to search for."""

    panel: Panel
    window_start: dt.datetime
    window_end: dt.datetime
    now: dt.datetime
    duration_min: int = 60
    step_min: int = 30
    gap_min: int = 15
    min_notice_min: int = 120
    party_busy: Sequence[Minutes] = ()
    limit: int = 5
    alternates: int = 3
    timezone: str = "Asia/Shanghai"


@dataclasses.dataclass(frozen=True)
class SeatChoice:
    """The expert chosen for one place on the panel, and who else could take it."""

    seat: int  # index into panel.seats
    role: str
    optional: bool
    expert_id: int | None  # None: an optional seat nobody could fill
    alternates: tuple[int, ...]
    match: int  # 2 = specialty and dialect, 1 = one of them, 0 = neither


@dataclasses.dataclass(frozen=True)
class Slot:
    """A time when the panel can meet, with a concrete assignment."""

    start: dt.datetime
    end: dt.datetime
    seats: tuple[SeatChoice, ...]

    @property
    def expert_ids(self) -> list[int]:
        return [c.expert_id for c in self.seats if c.expert_id is not None]

    @property
    def match(self) -> int:
        return sum(c.match for c in self.seats)


def find_slots(search: Search, candidates: Iterable[Candidate]) -> list[Slot]:
    """The earliest `search.limit` slots at which every required seat can be filled at once."""
    step, duration = search.step_min, search.duration_min
    earliest = max(_minute(search.window_start), _minute(search.now) + search.min_notice_min)
    first = -(-earliest // step) * step
    count = (_minute(search.window_end) - duration - first) // step + 1
    if count <= 0:
        return []

    seats = [(i, seat) for i, seat in enumerate(search.panel.seats) for _ in range(seat.count)]
    pinned = {seat.expert_id: n for n, (_, seat) in enumerate(seats) if seat.expert_id is not None}
    need: dict[str, int] = defaultdict(int)
    for _, seat in seats:
        if seat.expert_id is None and not seat.optional:
            need[seat.role] += 1
    roles = {seat.role for _, seat in seats if seat.expert_id is None}
    pool = [c for c in candidates if c.expert_id in pinned or c.role in roles]
    present = {c.expert_id for c in pool}
    if any(not seats[n][1].optional and expert_id not in present for expert_id, n in pinned.items()):
        return []  # a required pinned expert is not in the pool

    caps = _CapCalendar(search.timezone)
    blocked = {c.expert_id: _blocked(c, search.gap_min, caps, duration) for c in pool}
    party_ok = bytearray(b"\x01") * count
    for lo, hi in _blocked_ranges(search.party_busy, first, count, step, duration):
        party_ok[lo:hi + 1] = bytes(hi + 1 - lo)

    # Most searches find their slots in the first days: look a day ahead, then twice as far
    # each round, so the common case touches little and the worst case at most twice the work.
    ranges: dict[int, list[Minutes]] = defaultdict(list)
    slots: list[Slot] = []
    k0, size = 0, max(1, 1440 // step)
    while k0 < count and len(slots) < search.limit:
        k1 = min(count, k0 + size)
        ok = party_ok[k0:k1]
        coverage = {role: [0] * (k1 - k0 + 1) for role in need}
        for candidate in pool:
            chunk = _feasible_ranges(candidate, blocked[candidate.expert_id], first + k0 * step, k1 - k0, step, duration)
            ranges[candidate.expert_id].extend((lo + k0, hi + k0) for lo, hi in chunk)
            if candidate.expert_id in pinned:
                if not seats[pinned[candidate.expert_id]][1].optional:
                    ok = _and(ok, _mask(chunk, k1 - k0))
                continue
            diff = coverage.get(candidate.role)
            if diff is not None:
                for lo, hi in chunk:
                    diff[lo] += 1
                    diff[hi + 1] -= 1
        for role, diff in coverage.items():
            running, wanted = 0, need[role]
            for k in range(k1 - k0):
                running += diff[k]
                if running < wanted:
                    ok[k] = 0
        k = ok.find(1)
        while k != -1 and len(slots) < search.limit:
            slots.append(_assign(search, seats, k0 + k, first + (k0 + k) * step, ranges, pool))
            k = ok.find(1, k + 1)
        k0, size = k1, size * 2
    return slots


def _minute(value: dt.datetime) -> int:
    return int(value.timestamp()) // 60


class _CapCalendar:
    """The cap days and weeks of `scheduling/rules.py`, in epoch minutes. Each day and week is
    worked out through the time-zone library once per search and then found by bisection: every
    expert's sessions fall in the same few weeks (converting each session's start was 57% of a
    search at 1,000 experts)."""

    def __init__(self, zone: str) -> None:
        self.zone = zone
        self._days: list[Minutes] = []  # sorted, not overlapping
        self._weeks: list[Minutes] = []

    def day(self, minute: int) -> Minutes:
        return self._span(self._days, minute, cap_day)

    def week(self, minute: int) -> Minutes:
        return self._span(self._weeks, minute, cap_week)

    def _span(self, known: list[Minutes], minute: int, span_of: Callable[[dt.datetime, str], Span]) -> Minutes:
        i = bisect.bisect_right(known, (minute, math.inf)) - 1
        if i >= 0 and known[i][0] <= minute < known[i][1]:
            return known[i]
        span = to_minutes([span_of(minute_to_datetime(minute), self.zone)])[0]
        bisect.insort(known, span)
        return span


def _blocked(candidate: Candidate, gap: int, caps: _CapCalendar, duration: int) -> list[Minutes]:
    """Intervals a session may not overlap: sessions widened by the gap; and for a day or week
    at its cap, a span that a session overlaps exactly when it starts in that day or week."""
    if not candidate.busy:
        return []
    blocked = [(s - gap, e + gap) for s, e in candidate.busy]
    per_day: dict[Minutes, int] = defaultdict(int)
    per_week: dict[Minutes, int] = defaultdict(int)
    for start, _ in candidate.busy:
        per_day[caps.day(start)] += 1
        per_week[caps.week(start)] += 1
    capped = [span for span, n in per_day.items() if n >= candidate.max_per_day]
    capped += [span for span, n in per_week.items() if n >= candidate.max_per_week]
    # A session [t, t + duration) overlaps (lo + duration - 1, hi) exactly when lo <= t < hi.
    blocked += [(lo + duration - 1, hi) for lo, hi in capped]
    blocked.sort()
    return blocked


def _feasible_ranges(
    candidate: Candidate, blocked: list[Minutes], first: int, count: int, step: int, duration: int
) -> list[Minutes]:
    """Inclusive ranges of grid indices (from `first`, `count` long) at which the expert could start."""
    free = candidate.free
    last_start = first + (count - 1) * step
    i = bisect.bisect_right(free, first + duration - 1, key=_end)
    result: list[Minutes] = []
    b = 0
    while i < len(free) and free[i][0] <= last_start:
        free_start, free_end = free[i]
        i += 1
        cursor = free_start
        while b < len(blocked) and blocked[b][1] <= cursor:
            b += 1
        j = b
        while cursor < free_end:
            if j < len(blocked) and blocked[j][0] < free_end:
                piece_end = blocked[j][0] if blocked[j][0] < free_end else free_end
                next_cursor = blocked[j][1] if blocked[j][1] > cursor else cursor
                j += 1
            else:
                piece_end, next_cursor = free_end, free_end
            lo = -(-(cursor - first) // step)
            hi = (piece_end - duration - first) // step
            if lo < 0:
                lo = 0
            if hi >= count:
                hi = count - 1
            if lo <= hi:
                if result and result[-1][1] >= lo - 1:
                    result[-1] = (result[-1][0], hi if hi > result[-1][1] else result[-1][1])
                else:
                    result.append((lo, hi))
            cursor = next_cursor
    return result


def _end(interval: Minutes) -> int:
    return interval[1]


def _and(a: bytearray, b: bytearray) -> bytearray:
    return bytearray(x & y for x, y in zip(a, b))


def _blocked_ranges(busy: Sequence[Minutes], first: int, count: int, step: int, duration: int) -> list[Minutes]:
    """Grid index ranges whose session would overlap a busy interval."""
    result = []
    for start, end in busy:
        lo = max(0, (start - duration - first) // step + 1)
        hi = min(count - 1, -(-(end - first) // step) - 1)
        if lo <= hi:
            result.append((lo, hi))
    return result


def _mask(ranges: list[Minutes], count: int) -> bytearray:
    mask = bytearray(count)
    for lo, hi in ranges:
        mask[lo:hi + 1] = b"\x01" * (hi + 1 - lo)
    return mask


def _is_free(ranges: list[Minutes], k: int) -> bool:
    i = bisect.bisect_right(ranges, (k, 2**62)) - 1
    return i >= 0 and ranges[i][1] >= k


def _assign(
    search: Search, seats: list[tuple[int, Seat]], k: int, start: int,
    ranges: dict[int, list[Minutes]], pool: list[Candidate],
) -> Slot:
    """Choose experts for each seat at grid index k: required seats first, best-ranked first."""
    free = [c for c in pool if _is_free(ranges[c.expert_id], k)]
    pins = {seat.expert_id for _, seat in seats if seat.expert_id is not None}
    taken: set[int] = set()
    choices: dict[int, SeatChoice] = {}
    for n in sorted(range(len(seats)), key=lambda n: seats[n][1].optional):
        index, seat = seats[n]
        if seat.expert_id is not None:
            eligible = [c for c in free if c.expert_id == seat.expert_id and c.expert_id not in taken]
        else:
            eligible = sorted(
                (c for c in free if c.role == seat.role and c.expert_id not in taken and c.expert_id not in pins),
                key=lambda c: _rank(c, seat),
            )
        chosen = eligible[0] if eligible else None
        if chosen is not None:
            taken.add(chosen.expert_id)
        choices[n] = SeatChoice(
            seat=index, role=seat.role, optional=seat.optional,
            expert_id=chosen.expert_id if chosen else None,
            alternates=tuple(c.expert_id for c in eligible[1:1 + search.alternates]),
            match=_match(chosen, seat) if chosen else 0,
        )
    return Slot(
        start=minute_to_datetime(start),
        end=minute_to_datetime(start + search.duration_min),
        seats=tuple(choices[n] for n in range(len(seats))),
    )


def _match(candidate: Candidate, seat: Seat) -> int:
    return int(seat.specialty is not None and seat.specialty in candidate.specialties) + int(
        seat.dialect is not None and seat.dialect in candidate.languages
    )


def _rank(candidate: Candidate, seat: Seat) -> tuple[int, int, int]:
    """Office priority, then specialty and dialect match, then least recently booked."""
    last = candidate.last_booked if candidate.last_booked is not None else _NEVER
    return candidate.priority, -_match(candidate, seat), last
