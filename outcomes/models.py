"""Tables of what came out of a session: the outcome, its record, the documents people sign and
their signatures, follow-ups, reviews, templates."""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    Date,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column

from disputes.models import disputes_in
from foundation.database import Base, UTCDateTime, utcnow
from scheduling.models import Participant, sessions_in


class Outcome(Base):
    """The result of one session (调解结果)."""

    __tablename__ = "outcomes"
    __audited__ = True  # changes go to the audit log (audit/log.py)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("mediation_sessions.id"), unique=True)
    dispute_id: Mapped[int] = mapped_column(ForeignKey("disputes.id"), index=True)
    # agreement | no_agreement | referred | adjourned
    kind: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(Text, default="")
    terms: Mapped[str] = mapped_column(Text, default="")
    # court | lawyer | hotline_12345 | department
    referral_to: Mapped[str] = mapped_column(String(32), default="")
    referral_reason: Mapped[str] = mapped_column(Text, default="")
    recorded_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"), nullable=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    @classmethod
    def in_offices(cls, offices: Sequence[int]) -> ColumnElement[bool]:
        return cls.dispute_id.in_(disputes_in(offices))


def _of_outcomes(column: Any, offices: Sequence[int]) -> ColumnElement[bool]:
    of_outcomes: ColumnElement[bool] = column.in_(select(Outcome.id).where(Outcome.dispute_id.in_(disputes_in(offices))))
    return of_outcomes


class SessionRecord(Base):
    """The record of a session (调解笔录) as the host's side writes it; the room's own dated
    entries (joins, caucus, consent, evidence) come from its events (scheduling/room_record.py)."""

    __tablename__ = "session_records"
    __audited__ = True  # changes go to the audit log (audit/log.py)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("mediation_sessions.id", ondelete="CASCADE"), unique=True)
    text: Mapped[str] = mapped_column(Text, default="")
    revision: Mapped[int] = mapped_column(Integer, default=0)  # one more at each save: two writers cannot overwrite each other
    updated_by: Mapped[str] = mapped_column(String(80), default="")
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    @classmethod
    def in_offices(cls, offices: Sequence[int]) -> ColumnElement[bool]:
        return cls.session_id.in_(sessions_in(offices))


class SignDocument(Base):
    """A document of an outcome that people sign: the agreement with the record (agreement), or
    the joint application for judicial confirmation (application). `version` goes up whenever
    the text changes after someone signed it, which voids every signature of the version before."""

    __tablename__ = "sign_documents"
    __audited__ = True  # changes go to the audit log (audit/log.py)
    __table_args__ = (UniqueConstraint("outcome_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    outcome_id: Mapped[int] = mapped_column(ForeignKey("outcomes.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # agreement | application
    version: Mapped[int] = mapped_column(Integer, default=1)
    text_sha256: Mapped[str] = mapped_column(String(64), default="")
    sealed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sealed_by: Mapped[str] = mapped_column(String(80), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    @classmethod
    def in_offices(cls, offices: Sequence[int]) -> ColumnElement[bool]:
        return _of_outcomes(cls.outcome_id, offices)


class IssuedPdf(Base):
    """A signed PDF as it was issued: kept, so that its download is the very file the office
    signed and its verification page can say whether a newer version superseded it."""

    __tablename__ = "issued_pdfs"

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("sign_documents.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(String(32), unique=True)  # in the QR code's address
    pdf: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    @classmethod
    def in_offices(cls, offices: Sequence[int]) -> ColumnElement[bool]:
        return cls.document_id.in_(select(SignDocument.id).where(SignDocument.in_offices(offices)))


class IdentityCheck(Base):
    """The host saw a party's identity document on camera (已核验身份)."""

    __tablename__ = "identity_checks"
    __audited__ = True  # changes go to the audit log (audit/log.py), never the full number
    __audit_secret__ = ("full_number",)

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"), unique=True)
    document_type: Mapped[str] = mapped_column(String(16))  # resident_id | passport | hk_macau_taiwan | other
    number_last4: Mapped[str] = mapped_column(String(4))
    full_number: Mapped[str] = mapped_column(String(32), default="")  # only where the office asks for it
    checked_by: Mapped[str] = mapped_column(String(80))
    checked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    @classmethod
    def in_offices(cls, offices: Sequence[int]) -> ColumnElement[bool]:
        return cls.participant_id.in_(select(Participant.id).where(Participant.session_id.in_(sessions_in(offices))))


class SigningCode(Base):
    """A one-time code sent to a party's phone before they sign (only its hash is kept; without
    an SMS gateway the code itself too, for staff to read out)."""

    __tablename__ = "signing_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("sign_documents.id", ondelete="CASCADE"), index=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    shown_code: Mapped[str] = mapped_column(String(6), default="")
    sent_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    tries: Mapped[int] = mapped_column(Integer, default=0)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)

    @classmethod
    def in_offices(cls, offices: Sequence[int]) -> ColumnElement[bool]:
        return cls.document_id.in_(select(SignDocument.id).where(SignDocument.in_offices(offices)))


class Signature(Base):
    """One person's signature on one version of a document: the drawn image and what shows it
    was theirs (the text's hash, the time, the identity check, the masked phone, address, browser)."""

    __tablename__ = "signatures"
    __audited__ = True  # changes go to the audit log (audit/log.py)
    __table_args__ = (UniqueConstraint("document_id", "version", "participant_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("sign_documents.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"))
    capacity: Mapped[str] = mapped_column(String(16))  # party | mediator | expert
    name: Mapped[str] = mapped_column(String(200))
    # handwritten | typed_name (a confirmation from before signatures: kept, never counted as signed)
    method: Mapped[str] = mapped_column(String(16), default="handwritten")
    image_png: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    text_sha256: Mapped[str] = mapped_column(String(64))
    identity: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    phone_masked: Mapped[str] = mapped_column(String(32), default="")
    ip_address: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(400), default="")
    signed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    @classmethod
    def in_offices(cls, offices: Sequence[int]) -> ColumnElement[bool]:
        return cls.document_id.in_(select(SignDocument.id).where(SignDocument.in_offices(offices)))


class OfficeSigning(Base):
    """What an office signs with: its seal image, its signing key and certificate (the key
    encrypted with the server's secret), the basic court it applies to, and whether identity
    checks keep the full document number."""

    __tablename__ = "office_signing"
    __audited__ = True  # changes go to the audit log (audit/log.py), never the key
    __audit_secret__ = ("key_pem",)

    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id"), primary_key=True)
    seal_png: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    seal_updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    key_pem: Mapped[str] = mapped_column(Text, default="")
    cert_pem: Mapped[str] = mapped_column(Text, default="")
    court: Mapped[str] = mapped_column(String(120), default="")
    full_id_numbers: Mapped[bool] = mapped_column(Boolean, default=False)

    @classmethod
    def in_offices(cls, offices: Sequence[int]) -> ColumnElement[bool]:
        return cls.office_id.in_(offices)


class FollowUp(Base):
    """A follow-up visit (回访) after an agreement."""

    __tablename__ = "follow_ups"
    __audited__ = True  # changes go to the audit log (audit/log.py)

    id: Mapped[int] = mapped_column(primary_key=True)
    dispute_id: Mapped[int] = mapped_column(ForeignKey("disputes.id"), index=True)
    outcome_id: Mapped[int] = mapped_column(ForeignKey("outcomes.id"), index=True)
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    # pending | kept | relapsed
    status: Mapped[str] = mapped_column(String(16), default="pending")
    note: Mapped[str] = mapped_column(Text, default="")
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)

    @classmethod
    def in_offices(cls, offices: Sequence[int]) -> ColumnElement[bool]:
        return cls.dispute_id.in_(disputes_in(offices))


class WeeklyReview(Base):
    """The weekly dispute review (每周研判) of one week, as built by the weekly job."""

    __tablename__ = "weekly_reviews"
    __table_args__ = (UniqueConstraint("office_id", "week_start", name="uq_weekly_reviews_office"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id"))
    week_start: Mapped[dt.date] = mapped_column(Date)  # the Monday, office time
    generated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)

    @classmethod
    def in_offices(cls, offices: Sequence[int]) -> ColumnElement[bool]:
        return cls.office_id.in_(offices)


class AgreementTemplate(Base):
    """The office's own starting text of an agreement's terms for one dispute type."""

    __tablename__ = "agreement_templates"
    __audited__ = True  # changes go to the audit log (audit/log.py)
    __table_args__ = (UniqueConstraint("office_id", "dispute_type", name="uq_agreement_templates_office"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id"))
    dispute_type: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @classmethod
    def in_offices(cls, offices: Sequence[int]) -> ColumnElement[bool]:
        return cls.office_id.in_(offices)
