"""Tables of the dispute register (矛盾纠纷登记)."""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import ColumnElement, ForeignKey, Integer, Select, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from foundation.database import Base, UTCDateTime, utcnow


class Dispute(Base):
    """A registered dispute with the elements the office records."""

    __tablename__ = "disputes"
    __audited__ = True  # changes go to the audit log (audit/log.py)

    id: Mapped[int] = mapped_column(primary_key=True)
    office_id: Mapped[int | None] = mapped_column(ForeignKey("offices.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    dispute_type: Mapped[str] = mapped_column(String(32), index=True)
    cause: Mapped[str] = mapped_column(Text, default="")  # 诱因
    occurred_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)  # 时间
    place: Mapped[str] = mapped_column(String(200), default="")  # 地点
    nature: Mapped[str] = mapped_column(String(200), default="")  # 性质
    scale: Mapped[int] = mapped_column(Integer, default=2)  # 规模: people involved
    people_involved: Mapped[str] = mapped_column(Text, default="")  # 人员构成
    development: Mapped[str] = mapped_column(Text, default="")  # 事态发展
    risk_level: Mapped[str] = mapped_column(String(16), default="low", index=True)
    status: Mapped[str] = mapped_column(String(16), default="registered", index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    parties: Mapped[list[Party]] = relationship(
        cascade="all, delete-orphan", order_by="Party.id", lazy="selectin"
    )

    @classmethod
    def in_offices(cls, offices: Sequence[int]) -> ColumnElement[bool]:
        return cls.office_id.in_(offices)


def disputes_in(offices: Sequence[int]) -> Select[int]:
    """The ids of the offices' disputes (for the tables that belong to a dispute)."""
    return select(Dispute.id).where(Dispute.office_id.in_(offices))


class Party(Base):
    """A party to a dispute (当事人): applicant or respondent."""

    __tablename__ = "parties"
    __audited__ = True  # changes go to the audit log (audit/log.py)

    id: Mapped[int] = mapped_column(primary_key=True)
    dispute_id: Mapped[int] = mapped_column(ForeignKey("disputes.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    phone: Mapped[str] = mapped_column(String(32), default="", index=True)
    email: Mapped[str] = mapped_column(String(254), default="")
    side: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(32), default="普通话")

    @classmethod
    def in_offices(cls, offices: Sequence[int]) -> ColumnElement[bool]:
        return cls.dispute_id.in_(disputes_in(offices))


class Evidence(Base):
    """A file given as evidence (证据材料) for a dispute, kept on disk with its checksum."""

    __tablename__ = "evidence"
    __audited__ = True  # changes go to the audit log (audit/log.py)

    id: Mapped[int] = mapped_column(primary_key=True)
    dispute_id: Mapped[int] = mapped_column(ForeignKey("disputes.id"), index=True)
    filename: Mapped[str] = mapped_column(String(200))  # as the uploader named it
    stored_as: Mapped[str] = mapped_column(String(200))  # path under the evidence folder
    content_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    uploaded_by_staff: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"), nullable=True)
    uploaded_by_participant: Mapped[int | None] = mapped_column(ForeignKey("participants.id"), nullable=True)
    # The party it came from (so it stays theirs across sessions); None for office material.
    party_id: Mapped[int | None] = mapped_column(ForeignKey("parties.id"), nullable=True)
    # Staff share a file with every party; unshared, a party sees only their own files.
    shared: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    @classmethod
    def in_offices(cls, offices: Sequence[int]) -> ColumnElement[bool]:
        return cls.dispute_id.in_(disputes_in(offices))
