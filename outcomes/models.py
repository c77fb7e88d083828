"""Tables of what came out of a session: the outcome, the parties' confirmations, follow-ups."""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import JSON, ColumnElement, Date, ForeignKey, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, mapped_column

from disputes.models import disputes_in
from foundation.database import Base, UTCDateTime, utcnow


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


class Confirmation(Base):
    """A party's confirmation of an agreement, from their own link."""

    __tablename__ = "agreement_confirmations"
    __audited__ = True  # changes go to the audit log (audit/log.py)
    __table_args__ = (UniqueConstraint("outcome_id", "participant_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    outcome_id: Mapped[int] = mapped_column(ForeignKey("outcomes.id", ondelete="CASCADE"), index=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"))
    typed_name: Mapped[str] = mapped_column(String(80))
    ip_address: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(400), default="")
    confirmed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    @classmethod
    def in_offices(cls, offices: Sequence[int]) -> ColumnElement[bool]:
        return cls.outcome_id.in_(select(Outcome.id).where(Outcome.dispute_id.in_(disputes_in(offices))))


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
