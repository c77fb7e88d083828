"""Validated input for the dispute register."""
from __future__ import annotations

import enum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from foundation.contacts import check_email, check_phone
from foundation.dates import OfficeTime
from foundation.vocabulary import DisputeType, RiskLevel


class Side(enum.StrEnum):
    """Which side a party is on."""

    APPLICANT = "applicant"
    RESPONDENT = "respondent"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PartyIn(_Strict):
    """A party to a dispute."""

    name: str = Field(min_length=1, max_length=80)
    side: Side
    phone: str = Field("", max_length=32)
    email: str = Field("", max_length=254)
    language: str = Field("普通话", max_length=32)

    _phone = field_validator("phone")(check_phone)
    _email = field_validator("email")(lambda v: v and check_email(v))


class DisputePatch(_Strict):
    """Elements of a dispute that may change (not its status: that has its own move)."""

    title: str | None = Field(None, min_length=1, max_length=200)
    dispute_type: DisputeType | None = None
    cause: str | None = Field(None, max_length=4000)
    occurred_at: OfficeTime | None = None
    place: str | None = Field(None, max_length=200)
    nature: str | None = Field(None, max_length=200)
    scale: int | None = Field(None, ge=1, le=100000)
    people_involved: str | None = Field(None, max_length=4000)
    development: str | None = Field(None, max_length=8000)
    risk_level: RiskLevel | None = None


class DisputeIn(DisputePatch):
    """A new dispute: title and type required; parties may come with it."""

    title: str = Field(min_length=1, max_length=200)
    dispute_type: DisputeType
    risk_level: RiskLevel = RiskLevel.LOW
    parties: list[PartyIn] = Field(default_factory=list, max_length=50)


class StatusMove(_Strict):
    """A requested status move."""

    status: str = Field(min_length=1, max_length=32)

