"""The office's booking rules, in one place: the slot search (`scheduling/slots.py`) offers
only times that booking (`scheduling/bookings.py`) accepts, because both ask this module.

- Availability: an expert's weekly windows and date overrides are days in the expert's own
  time zone (a window may cross midnight, so the day before counts too).
- Gap: an expert keeps `gap_min` minutes free before and after each of their sessions.
- Caps: a session counts toward the day and the week (Monday to Sunday) in which it starts,
  in the office's time zone; an expert takes no new session starting on a day or in a week
  that already has their maximum.
- Notice and horizon: no session starts sooner than `notice_min` after now, nor later than
  `horizon_days` ahead. Staff may book outside the availability and the notice on purpose
  (`override_availability`); overlaps, the gap and the horizon always hold.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from experts import availability
from experts.models import Expert
from experts.service import free_intervals
from foundation.errors import Part

Span = tuple[dt.datetime, dt.datetime]


@dataclasses.dataclass(frozen=True)
class Rules:
    """The office's booking rules (from the settings)."""

    gap_min: int = 15
    notice_min: int = 120
    horizon_days: int = 92
    timezone: str = "Asia/Shanghai"


def availability_days(start: dt.datetime, end: dt.datetime, zone: str) -> tuple[dt.date, dt.date]:
    """The expert-local days whose windows can cover start..end (the day before too: windows
    may run past midnight)."""
    tz = ZoneInfo(zone)
    return start.astimezone(tz).date() - dt.timedelta(days=1), end.astimezone(tz).date()


def cap_day(start: dt.datetime, zone: str) -> Span:
    """The office-local day a session starting then counts toward, as a UTC span."""
    tz = ZoneInfo(zone)
    day = start.astimezone(tz).date()
    return _local_midnight(day, tz), _local_midnight(day + dt.timedelta(days=1), tz)


def cap_week(start: dt.datetime, zone: str) -> Span:
    """The office-local week (from Monday) a session starting then counts toward, as a UTC span."""
    tz = ZoneInfo(zone)
    day = start.astimezone(tz).date()
    monday = day - dt.timedelta(days=day.weekday())
    return _local_midnight(monday, tz), _local_midnight(monday + dt.timedelta(days=7), tz)


def _local_midnight(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tz).astimezone(dt.timezone.utc)


def deciding_span(start: dt.datetime, end: dt.datetime, rules: Rules, *, check_caps: bool) -> Span:
    """The times whose sessions decide whether an expert may take start..end: those within the
    gap of it and, where the caps count, the office week it counts toward (`expert_problem`)."""
    gap = dt.timedelta(minutes=rules.gap_min)
    first, last = start - gap, end + gap
    if check_caps:
        week = cap_week(start, rules.timezone)
        first, last = min(first, week[0]), max(last, week[1])
    return first, last


def clashes(busy: Sequence[Span], start: dt.datetime, end: dt.datetime, gap_min: int) -> bool:
    """Whether start..end overlaps a session, or comes within the gap of one."""
    gap = dt.timedelta(minutes=gap_min)
    return any(s - gap < end and start < e + gap for s, e in busy)


def window_end(now: dt.datetime, rules: Rules) -> dt.datetime:
    """The latest time anything may be booked."""
    return now + dt.timedelta(days=rules.horizon_days)


def earliest_start(now: dt.datetime, rules: Rules) -> dt.datetime:
    """The earliest start the notice allows."""
    return now + dt.timedelta(minutes=rules.notice_min)


def session_problem(start: dt.datetime, end: dt.datetime, now: dt.datetime, rules: Rules, *, check_notice: bool) -> Part | None:
    """Why no session may be booked for start..end (notice, horizon), or None."""
    if end > window_end(now, rules):
        return ("sessions can be booked at most {days} days ahead", {"days": rules.horizon_days})
    if check_notice and start < earliest_start(now, rules):
        return ("a session needs {minutes} minutes' notice", {"minutes": rules.notice_min})
    return None


def expert_problem(
    expert: Expert, busy: Sequence[Span], start: dt.datetime, end: dt.datetime, rules: Rules,
    *, check_availability: bool,
) -> Part | None:
    """Why this expert cannot take start..end, or None. Overlaps and the gap always count."""
    if clashes(busy, start, end, rules.gap_min):
        return ("{name} already has a session at that time", {"name": expert.name})
    if not expert.active:
        return ("{name} is not active in the expert pool", {"name": expert.name})
    if not check_availability:
        return None
    free = free_intervals(expert, *availability_days(start, end, expert.timezone))
    if not any(s <= start and end <= e for s, e in availability.merge(free)):
        return ("{name} is not available at that time", {"name": expert.name})
    day, week = cap_day(start, rules.timezone), cap_week(start, rules.timezone)
    same_day = sum(1 for s, _ in busy if day[0] <= s < day[1])
    same_week = sum(1 for s, _ in busy if week[0] <= s < week[1])
    if same_day >= expert.max_sessions_per_day:
        return ("{name} already has {count} sessions that day", {"name": expert.name, "count": same_day})
    if same_week >= expert.max_sessions_per_week:
        return ("{name} already has {count} sessions that week", {"name": expert.name, "count": same_week})
    return None
