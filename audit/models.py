"""The audit log table: one row per change, written once, never edited (database triggers)."""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import JSON, ColumnElement, String, and_, cast, literal, or_, select
from sqlalchemy.orm import Mapped, mapped_column

from foundation.database import Base, UTCDateTime, utcnow


class AuditEntry(Base):
    """Who changed what, when, and the values before and after."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # "staff:3", "expert:7", "participant:12" (someone with an invite link), "system"
    actor: Mapped[str] = mapped_column(String(40), index=True)
    # create | update | delete for rows; room.<kind> for moderation in a room
    action: Mapped[str] = mapped_column(String(40))
    # the table name of the changed row ("disputes", "mediation_sessions", ...)
    entity: Mapped[str] = mapped_column(String(40), index=True)
    entity_id: Mapped[int | None] = mapped_column(index=True, nullable=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # The office the change was made for (the acting staff member's, or the invite's session's).
    office_id: Mapped[int | None] = mapped_column(index=True, nullable=True)

    @classmethod
    def in_offices(cls, offices: Sequence[int]) -> ColumnElement[bool]:
        """The office's rows, and those of the experts who serve it (an expert acts for no one
        office). The table is found by name, so that the log imports none of the packages it logs."""
        serving = Base.metadata.tables["expert_offices"]
        experts = select(literal("expert:") + cast(serving.c.expert_id, String)).where(serving.c.office_id.in_(offices))
        return or_(cls.office_id.in_(offices), and_(cls.office_id.is_(None), cls.actor.in_(experts)))
