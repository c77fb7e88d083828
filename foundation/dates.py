"""Dates and times an office can mean: from 1900 to 2199.

Wide enough for any register, narrow enough that converting a day to UTC or adding a week never
leaves the calendar (at 0001-01-01 and 9999-12-31 Python's datetime overflows, which was a 500).
Request models use `OfficeDate` and `OfficeTime` for every date and time they take.
"""
from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime

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


OfficeDate = Annotated[dt.date, AfterValidator(in_range)]
OfficeTime = Annotated[AwareDatetime, AfterValidator(_time_in_range)]
