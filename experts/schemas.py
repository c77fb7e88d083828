"""Validated input for the expert pool."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from foundation.contacts import check_email, check_phone
from foundation.dates import OfficeDate
from foundation.vocabulary import DisputeType, Role


def check_timezone(value: str) -> str:
    """The name if it is a known IANA time zone."""
    if len(value) > 64:  # no IANA name is this long; a longer one is not even a file name
        raise ValueError("unknown time zone")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone '{value}'") from None
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ExpertPatch(_Strict):
    """Fields of an expert that may change; all optional."""

    name: str | None = Field(None, min_length=1, max_length=80)
    role: Role | None = None
    organisation: str | None = Field(None, max_length=160)
    phone: str | None = Field(None, max_length=32)
    email: str | None = None
    specialties: list[DisputeType] | None = None
    languages: list[str] | None = Field(None, max_length=20)
    bio: str | None = Field(None, max_length=2000)
    timezone: str | None = None
    active: bool | None = None
    priority: int | None = Field(None, ge=0, le=1000)
    max_sessions_per_week: int | None = Field(None, ge=0, le=50)
    max_sessions_per_day: int | None = Field(None, ge=0, le=10)
    # The offices the expert serves (the pool is shared); offices the caller cannot see stay as they are.
    offices: list[int] | None = Field(None, min_length=1, max_length=100)

    _tz = field_validator("timezone")(lambda v: v if v is None else check_timezone(v))
    _email = field_validator("email")(lambda v: v if v is None else check_email(v))
    _phone = field_validator("phone")(lambda v: v if v is None else check_phone(v))


class ExpertIn(ExpertPatch):
    """A new expert: name, role and email are required."""

    name: str = Field(min_length=1, max_length=80)
    role: Role
    email: str


# Fields an expert may change on their own profile (not role, priority, caps or active flag).
SELF_EDITABLE = frozenset({"name", "organisation", "phone", "specialties", "languages", "bio", "timezone"})


class WindowIn(_Strict):
    """A weekly window; an end at or before the start runs past midnight."""

    weekday: int = Field(ge=0, le=6)
    start: dt.time
    end: dt.time

    @model_validator(mode="after")
    def _not_empty(self) -> WindowIn:
        if self.start == self.end:
            raise ValueError("a window needs different start and end times")
        return self


class OverrideIn(_Strict):
    """A date override: no times for a day off, or the hours that replace the week's."""

    date: OfficeDate
    start: dt.time | None = None
    end: dt.time | None = None
    note: str = Field("", max_length=200)

    @model_validator(mode="after")
    def _both_or_neither(self) -> OverrideIn:
        if (self.start is None) != (self.end is None):
            raise ValueError("give both start and end, or neither for a day off")
        if self.start is not None and self.start == self.end:
            raise ValueError("an override needs different start and end times")
        return self


class AvailabilityIn(_Strict):
    """An expert's whole availability: weekly windows and date overrides."""

    windows: list[WindowIn] = Field(default_factory=list, max_length=100)
    overrides: list[OverrideIn] = Field(default_factory=list, max_length=400)

    @model_validator(mode="after")
    def _no_duplicate_overrides(self) -> AvailabilityIn:
        seen: set[tuple[dt.date, dt.time | None]] = set()
        for override in self.overrides:
            key = (override.date, override.start)
            if key in seen:
                raise ValueError(f"two overrides for {override.date} start at the same time")
            seen.add(key)
        return self
