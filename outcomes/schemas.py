"""Validated input for outcomes, confirmations and follow-ups."""
from __future__ import annotations

import enum
from typing import Literal

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


class AmendIn(_Strict):
    """Staff correct an agreement's terms or summary (which voids any signature of the old text)."""

    summary: str | None = Field(None, max_length=4000)
    terms: str | None = Field(None, min_length=1, max_length=8000)


class RecordIn(_Strict):
    """The host's side saves the session's record; `revision` is the one it started from."""

    text: str = Field(max_length=50_000)
    revision: int = Field(ge=0, le=10**9)


class IdentityIn(_Strict):
    """The host saw a party's identity document on camera."""

    document_type: Literal["resident_id", "passport", "hk_macau_taiwan", "other"]
    number: str = Field(min_length=4, max_length=32)


class SignIn(_Strict):
    """A signature: the hash of the text read, the drawing (a PNG data URL), the code (parties)."""

    text_sha256: str = Field(min_length=64, max_length=64)
    signature: str = Field(min_length=1, max_length=500_000)
    code: str = Field("", max_length=6)


class OfficeSigningIn(_Strict):
    """An office's signing settings: the basic court it applies to, and whether identity checks
    keep the document's full number (the last 4 characters otherwise)."""

    court: str = Field("", max_length=120)
    full_id_numbers: bool = False


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
