"""Expanding weekly windows and overrides into UTC intervals."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from experts.availability import Override, Window, expand, merge, subtract

UTC = dt.timezone.utc
MON = dt.date(2026, 11, 23)  # a Monday


def t(text: str) -> dt.time:
    return dt.time.fromisoformat(text)


def utc(day: int, hour: int, minute: int = 0, month: int = 11) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=UTC)


def test_several_windows_a_day_in_shanghai_become_utc() -> None:
    windows = [Window(0, t("09:00"), t("12:00")), Window(0, t("14:00"), t("17:30"))]
    got = expand(windows, [], "Asia/Shanghai", MON, MON + dt.timedelta(days=6))
    assert got == [(utc(23, 1), utc(23, 4)), (utc(23, 6), utc(23, 9, 30))]


def test_weekly_window_repeats_each_week() -> None:
    got = expand([Window(2, t("10:00"), t("11:00"))], [], "UTC", MON, MON + dt.timedelta(days=13))
    assert got == [(utc(25, 10), utc(25, 11)), (dt.datetime(2026, 12, 2, 10, tzinfo=UTC), dt.datetime(2026, 12, 2, 11, tzinfo=UTC))]


def test_window_crossing_midnight_runs_into_next_day() -> None:
    got = expand([Window(0, t("22:00"), t("02:00"))], [], "UTC", MON, MON)
    assert got == [(utc(23, 22), utc(24, 2))]


def test_crossing_windows_on_consecutive_days_merge_with_next_morning() -> None:
    windows = [Window(0, t("22:00"), t("02:00")), Window(1, t("00:00"), t("03:00"))]
    got = expand(windows, [], "UTC", MON, MON + dt.timedelta(days=1))
    assert got == [(utc(23, 22), utc(24, 3))]


def test_day_off_override_removes_that_day_only() -> None:
    windows = [Window(d, t("09:00"), t("10:00")) for d in range(7)]
    got = expand(windows, [Override(MON + dt.timedelta(days=1))], "UTC", MON, MON + dt.timedelta(days=2))
    assert got == [(utc(23, 9), utc(23, 10)), (utc(25, 9), utc(25, 10))]


def test_override_hours_replace_the_weekly_windows() -> None:
    windows = [Window(0, t("09:00"), t("12:00"))]
    overrides = [Override(MON, t("15:00"), t("16:00")), Override(MON, t("18:00"), t("19:00"))]
    got = expand(windows, overrides, "UTC", MON, MON)
    assert got == [(utc(23, 15), utc(23, 16)), (utc(23, 18), utc(23, 19))]


def test_override_adds_hours_on_a_day_without_windows() -> None:
    got = expand([], [Override(MON + dt.timedelta(days=5), t("09:00"), t("11:00"))], "UTC", MON, MON + dt.timedelta(days=6))
    assert got == [(utc(28, 9), utc(28, 11))]


def test_daylight_saving_time_zone_keeps_local_hours() -> None:
    # Europe/Berlin leaves summer time on 2026-10-25: 09:00 local is 07:00 UTC before, 08:00 after.
    got = expand([Window(6, t("09:00"), t("10:00")), Window(5, t("09:00"), t("10:00"))], [],
                 "Europe/Berlin", dt.date(2026, 10, 24), dt.date(2026, 10, 25))
    assert got == [(utc(24, 7, month=10), utc(24, 8, month=10)), (utc(25, 8, month=10), utc(25, 9, month=10))]


def test_range_outside_windows_is_empty() -> None:
    assert expand([Window(6, t("09:00"), t("10:00"))], [], "UTC", MON, MON + dt.timedelta(days=5)) == []


def test_merge_joins_touching_and_overlapping() -> None:
    got = merge([(utc(23, 10), utc(23, 11)), (utc(23, 9), utc(23, 10)), (utc(23, 10, 30), utc(23, 12)), (utc(23, 13), utc(23, 13))])
    assert got == [(utc(23, 9), utc(23, 12))]


def test_subtract_takes_busy_time_out() -> None:
    free = [(utc(23, 9), utc(23, 12)), (utc(23, 14), utc(23, 18))]
    busy = [(utc(23, 10), utc(23, 11)), (utc(23, 11, 30), utc(23, 15)), (utc(23, 17), utc(23, 19))]
    assert subtract(free, busy) == [
        (utc(23, 9), utc(23, 10)), (utc(23, 11), utc(23, 11, 30)), (utc(23, 15), utc(23, 17)),
    ]


def test_a_day_off_also_removes_the_night_window_of_the_day_before() -> None:
    # Monday 22:00-02:00 weekly, Tuesday off (全天请假): nothing on Tuesday, Monday until midnight.
    got = expand([Window(0, t("22:00"), t("02:00"))], [Override(MON + dt.timedelta(days=1))], "Asia/Shanghai",
                 MON, MON + dt.timedelta(days=1))
    assert got == [(utc(23, 14), utc(23, 16))]  # 22:00-24:00 in Shanghai


def test_override_hours_replace_the_night_window_that_ran_into_that_day() -> None:
    got = expand([Window(0, t("22:00"), t("02:00"))], [Override(MON + dt.timedelta(days=1), t("09:00"), t("10:00"))],
                 "UTC", MON, MON + dt.timedelta(days=1))
    assert got == [(utc(23, 22), utc(24, 0)), (utc(24, 9), utc(24, 10))]


times = st.times().map(lambda time: time.replace(second=0, microsecond=0))


@given(windows=st.lists(st.builds(Window, st.integers(0, 6), times, times), max_size=6),
       days_off=st.sets(st.integers(0, 13), max_size=5),
       zone=st.sampled_from(["UTC", "Asia/Shanghai", "America/New_York", "Australia/Lord_Howe"]))
def test_nothing_is_free_on_a_day_off_whatever_day_its_windows_started(
        windows: list[Window], days_off: set[int], zone: str) -> None:
    tz = ZoneInfo(zone)
    offs = [MON + dt.timedelta(days=n) for n in days_off]
    free = expand(windows, [Override(day) for day in offs], zone, MON, MON + dt.timedelta(days=13))
    for day in offs:
        start = dt.datetime.combine(day, dt.time(0), tzinfo=tz).astimezone(UTC)
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=tz).astimezone(UTC)
        assert not [(a, b) for a, b in free if a < end and b > start], (day, free)
