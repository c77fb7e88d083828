"""Tables of the expert pool: offices, experts, weekly availability and date overrides."""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    Date,
    ForeignKey,
    Integer,
    Select,
    String,
    Text,
    Time,
    UniqueConstraint,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from foundation.database import Base, UTCDateTime, utcnow


class Office(Base):
    """A community police office (警务室) that runs mediations, or a level above offices (a
    分局 or district: `kind` "level") whose supervisors see the offices below it."""

    __tablename__ = "offices"
    writable_read_only = True  # offices are changed by system administrators (server/api/offices.py)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    kind: Mapped[str] = mapped_column(String(16), default="office")  # office | level
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("offices.id"), nullable=True)

    @classmethod
    def in_offices(cls, offices: Sequence[int]) -> ColumnElement[bool]:
        return cls.id.in_(offices)


class ExpertOffice(Base):
    """An office an expert serves: the pool is shared, and each office books only its own."""

    __tablename__ = "expert_offices"

    expert_id: Mapped[int] = mapped_column(ForeignKey("experts.id", ondelete="CASCADE"), primary_key=True)
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id", ondelete="CASCADE"), primary_key=True, index=True)


def _serving(offices: Sequence[int]) -> Select[int]:
    return select(ExpertOffice.expert_id).where(ExpertOffice.office_id.in_(offices))


class Expert(Base):
    """A volunteer in the expert pool (调解专家库)."""

    __tablename__ = "experts"
    __audited__ = True  # changes go to the audit log (audit/log.py)
    # The pool is kept by the system administrator too (server/auth.py, require_pool_keeper).
    writable_read_only = True

    id: Mapped[int] = mapped_column(primary_key=True)
    # The office that registered the expert; the offices served are `served` (expert_offices).
    office_id: Mapped[int | None] = mapped_column(ForeignKey("offices.id"))
    name: Mapped[str] = mapped_column(String(80))
    role: Mapped[str] = mapped_column(String(32), index=True)
    organisation: Mapped[str] = mapped_column(String(160), default="")
    phone: Mapped[str] = mapped_column(String(32), default="")
    email: Mapped[str] = mapped_column(String(254), unique=True)
    specialties: Mapped[list[str]] = mapped_column(JSON, default=list)
    languages: Mapped[list[str]] = mapped_column(JSON, default=list)
    bio: Mapped[str] = mapped_column(Text, default="")
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # The office's own ordering within a role: lower is asked first.
    priority: Mapped[int] = mapped_column(Integer, default=100)
    max_sessions_per_week: Mapped[int] = mapped_column(Integer, default=3)
    max_sessions_per_day: Mapped[int] = mapped_column(Integer, default=2)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    windows: Mapped[list[WeeklyWindow]] = relationship(
        cascade="all, delete-orphan", order_by="(WeeklyWindow.weekday, WeeklyWindow.start)"
    )
    overrides: Mapped[list[DateOverride]] = relationship(
        cascade="all, delete-orphan", order_by="(DateOverride.date, DateOverride.start)"
    )
    served: Mapped[list[ExpertOffice]] = relationship(cascade="all, delete-orphan", lazy="selectin")

    @classmethod
    def in_offices(cls, offices: Sequence[int]) -> ColumnElement[bool]:
        return cls.id.in_(_serving(offices))

    @property
    def office_ids(self) -> list[int]:
        """The offices this expert serves."""
        return sorted(s.office_id for s in self.served)


class WeeklyWindow(Base):
    """A recurring free window on one weekday (0 = Monday), in the expert's time zone.

    An end at or before the start means the window runs past midnight into the next day.
    """

    __tablename__ = "weekly_windows"
    __audited__ = True  # changes go to the audit log (audit/log.py)
    writable_read_only = True  # as the expert's

    id: Mapped[int] = mapped_column(primary_key=True)
    expert_id: Mapped[int] = mapped_column(ForeignKey("experts.id", ondelete="CASCADE"), index=True)
    weekday: Mapped[int] = mapped_column(Integer)
    start: Mapped[dt.time] = mapped_column(Time)
    end: Mapped[dt.time] = mapped_column(Time)

    @classmethod
    def in_offices(cls, offices: Sequence[int]) -> ColumnElement[bool]:
        return cls.expert_id.in_(_serving(offices))


class DateOverride(Base):
    """A date that does not follow the weekly pattern.

    A row without times: unavailable all day. Rows with times: these hours replace the weekly
    windows on that date.
    """

    __tablename__ = "date_overrides"
    __audited__ = True  # changes go to the audit log (audit/log.py)
    writable_read_only = True  # as the expert's
    __table_args__ = (UniqueConstraint("expert_id", "date", "start"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    expert_id: Mapped[int] = mapped_column(ForeignKey("experts.id", ondelete="CASCADE"), index=True)
    date: Mapped[dt.date] = mapped_column(Date)
    start: Mapped[dt.time | None] = mapped_column(Time, nullable=True)
    end: Mapped[dt.time | None] = mapped_column(Time, nullable=True)
    note: Mapped[str] = mapped_column(String(200), default="")

    @classmethod
    def in_offices(cls, offices: Sequence[int]) -> ColumnElement[bool]:
        return cls.expert_id.in_(_serving(offices))
