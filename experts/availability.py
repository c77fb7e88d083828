"""Expanding an expert's weekly windows and date overrides into concrete UTC intervals.

Pure functions over plain values: scheduling builds on these, and tests call them directly.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from zoneinfo import ZoneInfo

UTC = dt.timezone.utc
Interval = tuple[dt.datetime, dt.datetime]


@dataclasses.dataclass(frozen=True)
class Window:
    """A weekly window: weekday 0 = Monday; end <= start runs past midnight."""

    weekday: int
    start: dt.time
    end: dt.time


@dataclasses.dataclass(frozen=True)
class Override:
    """A date override: without times the whole day is off; with times they replace the week."""

    date: dt.date
    start: dt.time | None = None
    end: dt.time | None = None


def expand(
    windows: Iterable[Window],
    overrides: Iterable[Override],
    timezone: str,
    first_day: dt.date,
    last_day: dt.date,
) -> list[Interval]:
    """Free intervals in UTC, sorted and merged, for windows starting on first_day..last_day."""
    tz = ZoneInfo(timezone)
    by_weekday: dict[int, list[Window]] = {}
    for window in windows:
        by_weekday.setdefault(window.weekday, []).append(window)
    by_date: dict[dt.date, list[Override]] = {}
    for override in overrides:
        by_date.setdefault(override.date, []).append(override)

    intervals: list[Interval] = []
    day = first_day
    while day <= last_day:
        day_overrides = by_date.get(day)
        if day_overrides is None:
            # A weekly window that runs past midnight stops there when the next day has an
            # override: a day off (or that day's own hours) takes the whole of that date.
            next_day = day + dt.timedelta(days=1)
            stop = _local_midnight(next_day, tz) if next_day in by_date else None
            for window in by_weekday.get(day.weekday(), []):
                start, end = _local_span(day, window.start, window.end, tz)
                intervals.append((start, end if stop is None else min(end, stop)))
        elif all(o.start is not None and o.end is not None for o in day_overrides):
            intervals.extend(_local_span(day, o.start, o.end, tz) for o in day_overrides)  # type: ignore[arg-type]
        day += dt.timedelta(days=1)
    return merge(intervals)


def _local_midnight(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=tz).astimezone(UTC)


def _local_span(day: dt.date, start: dt.time, end: dt.time, tz: ZoneInfo) -> Interval:
    end_day = day if end > start else day + dt.timedelta(days=1)
    local_start = dt.datetime.combine(day, start, tzinfo=tz)
    local_end = dt.datetime.combine(end_day, end, tzinfo=tz)
    return local_start.astimezone(UTC), local_end.astimezone(UTC)


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sort and merge overlapping or touching intervals; empty ones are dropped."""
    merged: list[Interval] = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def subtract(free: list[Interval], busy: Iterable[Interval]) -> list[Interval]:
    """What remains of sorted, merged free intervals once busy ones are taken out."""
    result: list[Interval] = []
    busy_sorted = merge(busy)
    j = 0
    for start, end in free:
        cursor = start
        while j < len(busy_sorted) and busy_sorted[j][1] <= cursor:
            j += 1
        k = j
        while k < len(busy_sorted) and busy_sorted[k][0] < end:
            b_start, b_end = busy_sorted[k]
            if b_start > cursor:
                result.append((cursor, b_start))
            cursor = max(cursor, b_end)
            k += 1
        if cursor < end:
            result.append((cursor, end))
    return result
