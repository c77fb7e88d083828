"""Validated input for outcomes, confirmations and follow-ups."""
from __future__ import annotations

import enum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from foundation.dates import OfficeDate


class Kind(enum.StrEnum):
    AGREEMENT = "agreement"
    NO_AGREEMENT = "no_agreement"
    REFERRED = "referred"
    ADJOURNED = "adjourned"


class Referral(enum.StrEnum):
    COURT = "court"
    LAWYER = "lawyer"
    HOTLINE = "hotline_12345"
    DEPARTMENT = "department"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class OutcomeIn(_Strict):
    """What the host records when a session ends."""

    kind: Kind
    summary: str = Field("", max_length=4000)
    terms: str = Field("", max_length=8000)
    referral_to: Referral | None = None
    referral_reason: str = Field("", max_length=2000)

    @model_validator(mode="after")
    def _complete(self) -> OutcomeIn:
        if self.kind == Kind.AGREEMENT and not self.terms:
            raise ValueError("an agreement needs its terms")
        if self.kind == Kind.REFERRED and (self.referral_to is None or not self.referral_reason):
            raise ValueError("a referral says where to (referral_to) and why (referral_reason)")
        if self.referral_to is not None and self.kind not in (Kind.REFERRED, Kind.NO_AGREEMENT):
            raise ValueError("only a failed mediation is referred (kind referred or no_agreement)")
        return self


class ConfirmIn(_Strict):
    """A party confirms the agreement: their name typed, and the box ticked."""

    typed_name: str = Field(min_length=1, max_length=80)
    agree: bool

    @model_validator(mode="after")
    def _ticked(self) -> ConfirmIn:
        if not self.agree:
            raise ValueError("tick the box to confirm")
        return self


class FollowUpResult(enum.StrEnum):
    KEPT = "kept"
    RELAPSED = "relapsed"


class FollowUpIn(_Strict):
    """What a follow-up visit found."""

    result: FollowUpResult
    note: str = Field("", max_length=4000)


class ReviewIn(_Strict):
    """Build (or rebuild) the weekly review of the week holding this date; default the last full week."""

    week_of: OfficeDate | None = None


class TemplateIn(_Strict):
    """The office's own text of an agreement template."""

    body: str = Field(min_length=1, max_length=8000)
