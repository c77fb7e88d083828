"""Dates and times an office can mean: from 1900 to 2199.

Wide enough for any register, narrow enough that converting a day to UTC or adding a week never
leaves the calendar (at 0001-01-01 and 9999-12-31 Python's datetime overflows, which was a 500).
Request models use `OfficeDate` and `OfficeTime` for every date and time they take.
"""
from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BeforeValidator

from foundation.errors import BadValue

MIN_DATE, MAX_DATE = dt.date(1900, 1, 1), dt.date(2199, 12, 31)


def in_range(day: dt.date) -> dt.date:
    """The date, if between MIN_DATE and MAX_DATE; BadValue (a ValueError) otherwise."""
    if not MIN_DATE <= day <= MAX_DATE:
        raise BadValue("{value} is not between 1900 and 2199", value=day.isoformat())
    return day


def _time_in_range(moment: dt.datetime) -> dt.datetime:
    in_range(moment.date())
    return moment


def _written_date(value: object) -> object:
    """Only a written date: pydantic would take a number as seconds since 1970 (0 was 1970-01-01)."""
    if isinstance(value, (int, float)):  # bool is an int too
        raise BadValue("write the date as YYYY-MM-DD, not as a number")
    return value


def _written_time(value: object) -> object:
    if isinstance(value, (int, float)):
        raise BadValue("write the time as YYYY-MM-DDTHH:MM with its offset (+08:00), not as a number")
    return value


OfficeDate = Annotated[dt.date, BeforeValidator(_written_date), AfterValidator(in_range)]
OfficeTime = Annotated[AwareDatetime, BeforeValidator(_written_time), AfterValidator(_time_in_range)]
