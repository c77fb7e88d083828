"""Tables of booked mediation sessions and their participants."""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import JSON, ColumnElement, ForeignKey, Index, Integer, Select, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from foundation.database import Base, UTCDateTime, utcnow

# Session states that hold the experts' time.
ACTIVE_STATES = ("pending", "confirmed")
# Participant states that hold an expert's time.
HOLDING_STATES = ("invited", "accepted")


class MediationSession(Base):
    """A booked video mediation of one dispute with an expert panel."""

    __tablename__ = "mediation_sessions"
    __audited__ = True  # changes go to the audit log (audit/log.py)
    __table_args__ = (Index("ix_sessions_time", "start", "end"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dispute_id: Mapped[int] = mapped_column(ForeignKey("disputes.id"), index=True)
    office_id: Mapped[int | None] = mapped_column(ForeignKey("offices.id"), index=True)
    start: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    end: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    location_kind: Mapped[str] = mapped_column(String(16), default="remote")  # remote | onsite
    location: Mapped[str] = mapped_column(String(200), default="")
    # pending: waiting for experts to confirm (it holds the slot) | confirmed | cancelled | ended
    status: Mapped[str] = mapped_column(String(16), default="confirmed", index=True)
    cancel_reason: Mapped[str] = mapped_column(Text, default="")
    # Raised on every reschedule: the ICS SEQUENCE.
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    panel: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    room_opened_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    room_closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)

    participants: Mapped[list[Participant]] = relationship(
        cascade="all, delete-orphan", order_by="Participant.id", lazy="selectin",
        back_populates="session",
    )

    @classmethod
    def in_offices(cls, offices: Sequence[int]) -> ColumnElement[bool]:
        return cls.office_id.in_(offices)

    @property
    def standing(self) -> str:
        """Where the session stands for the office: 'expert_declined' while an expert's decline
        is not replaced, 'awaiting_experts' while an invited expert has not answered, else its status."""
        if self.status not in ACTIVE_STATES:
            return self.status
        experts = {p.status for p in self.participants if p.kind == "expert"}
        return "expert_declined" if "declined" in experts else "awaiting_experts" if "invited" in experts else self.status


class Participant(Base):
    """One invited person (or the on-site terminal) in one session, with one role."""

    __tablename__ = "participants"
    __audited__ = True  # changes go to the audit log (audit/log.py)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("mediation_sessions.id", ondelete="CASCADE"), index=True)
    # expert | party | host | onsite | observer
    kind: Mapped[str] = mapped_column(String(16))
    # The role shown in the room: the expert's role code, or party / host / onsite / observer.
    role: Mapped[str] = mapped_column(String(32))
    display_name: Mapped[str] = mapped_column(String(200))
    expert_id: Mapped[int | None] = mapped_column(ForeignKey("experts.id"), index=True, nullable=True)
    party_id: Mapped[int | None] = mapped_column(ForeignKey("parties.id"), nullable=True)
    # The staff account that holds a host link (who booked): disabling it ends the link.
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"), nullable=True)
    email: Mapped[str] = mapped_column(String(254), default="")
    phone: Mapped[str] = mapped_column(String(32), default="")
    seat: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # invited | accepted | declined | replaced | removed
    # Everyone is invited until they answer; only the host (the office itself) starts accepted.
    status: Mapped[str] = mapped_column(String(16), default="invited")
    responded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Raised when a new link is issued: older links stop working.
    link_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    session: Mapped[MediationSession] = relationship(back_populates="participants")

    @classmethod
    def in_offices(cls, offices: Sequence[int]) -> ColumnElement[bool]:
        return cls.session_id.in_(sessions_in(offices))


def sessions_in(offices: Sequence[int]) -> Select[int]:
    """The ids of the offices' sessions (for the tables that belong to a session)."""
    return select(MediationSession.id).where(MediationSession.office_id.in_(offices))
