"""Validated input for slot search and bookings."""
from __future__ import annotations

import datetime as dt
import enum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from foundation.dates import OfficeTime
from scheduling.panel import Panel


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Span(_Strict):
    """A time span."""

    start: OfficeTime
    end: OfficeTime

    @model_validator(mode="after")
    def _ordered(self) -> Span:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class SearchIn(_Strict):
    """A slot search request; the panel defaults to the Yiyang three for the dispute's type."""

    dispute_id: int | None = Field(None, ge=1)
    panel: Panel | None = None
    duration_min: int = Field(60, ge=15, le=480)
    window_start: OfficeTime | None = None
    window_end: OfficeTime | None = None
    step_min: int = Field(30, ge=5, le=240)
    party_busy: list[Span] = Field(default_factory=list, max_length=200)
    limit: int = Field(5, ge=1, le=50)


class Location(enum.StrEnum):
    """Where the parties are."""

    REMOTE = "remote"
    ONSITE = "onsite"


class ExpertSeat(_Strict):
    """An expert assigned to a seat of the panel."""

    expert_id: int = Field(ge=1)
    seat: int | None = Field(None, ge=0, le=50)


class Guest(_Strict):
    """An observer or other invited person who is not in the expert pool."""

    name: str = Field(min_length=1, max_length=80)
    email: str = Field("", max_length=254)


class BookingIn(_Strict):
    """A session to book."""

    dispute_id: int = Field(ge=1)
    start: OfficeTime
    end: OfficeTime
    experts: list[ExpertSeat] = Field(min_length=1, max_length=12)
    location_kind: Location = Location.REMOTE
    location: str = Field("", max_length=200)
    host_name: str = Field("", max_length=80)
    host_email: str = Field("", max_length=254)
    onsite_names: list[str] = Field(default_factory=list, max_length=20)
    observers: list[Guest] = Field(default_factory=list, max_length=10)
    require_confirmation: bool = False
    # Book even outside the experts' stated availability or caps (agreed by phone).
    override_availability: bool = False
    panel: Panel | None = None

    @model_validator(mode="after")
    def _check(self) -> BookingIn:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.end - self.start > dt.timedelta(hours=8):
            raise ValueError("a session lasts at most 8 hours")
        ids = [e.expert_id for e in self.experts]
        if len(ids) != len(set(ids)):
            raise ValueError("the same expert is listed twice")
        return self


class RescheduleIn(_Strict):
    """A new time for a session."""

    start: OfficeTime
    end: OfficeTime | None = None
    override_availability: bool = False


class CancelIn(_Strict):
    """Why a session is cancelled."""

    reason: str = Field(min_length=1, max_length=1000)


class ReplaceIn(_Strict):
    """Replace one expert; without expert_id, the answer lists who could step in."""

    participant_id: int = Field(ge=1)
    expert_id: int | None = Field(None, ge=1)
    override_availability: bool = False
