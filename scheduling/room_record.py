"""The durable record of what happened in a room: joins, leaves, admissions, removals, chat.

The media engine reports events (it may run in another process); they are written here, in the
web process, so that the session's record survives a restart. A removal also revokes the
removed person's link for this session, and the end of the session closes its room.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import JSON, ColumnElement, ForeignKey, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from audit.log import SYSTEM, log_room_action, set_actor
from foundation.database import Base, UTCDateTime, iso_utc, utcnow
from scheduling.models import MediationSession, Participant, sessions_in


class RoomEvent(Base):
    """One fact from a session's room."""

    __tablename__ = "room_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("mediation_sessions.id", ondelete="CASCADE"), index=True)
    participant_id: Mapped[int | None] = mapped_column(ForeignKey("participants.id"), nullable=True)
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    @classmethod
    def in_offices(cls, offices: Sequence[int]) -> ColumnElement[bool]:
        return cls.session_id.in_(sessions_in(offices))


class Recording(Base):
    """One recorded file: one participant's audio and video while the room recorded."""

    __tablename__ = "recordings"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("mediation_sessions.id", ondelete="CASCADE"), index=True)
    participant_id: Mapped[int | None] = mapped_column(ForeignKey("participants.id"), nullable=True)
    path: Mapped[str] = mapped_column(String(500))
    size_bytes: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    @classmethod
    def in_offices(cls, offices: Sequence[int]) -> ColumnElement[bool]:
        return cls.session_id.in_(sessions_in(offices))


# Room events that are moderation (a host acting on the room or on someone): also audited.
MODERATION = frozenset({"admit", "mute", "remove", "end", "caucus_start", "caucus_end", "recording_requested"})


def participant_of(peer_id: str | None) -> int | None:
    """The participant id in a room peer id ('p12' -> 12)."""
    if not peer_id or not peer_id.startswith("p") or not (peer_id[1:].isascii() and peer_id[1:].isdigit()):
        return None
    return int(peer_id[1:])


async def write_event(db: AsyncSession, session_id: int, event: dict[str, Any]) -> None:
    """Store one room event and apply what it means for the session."""
    session = await db.get(MediationSession, session_id)
    if session is None:
        return
    participant_id = participant_of(event.get("peer_id"))
    if participant_id is not None and await db.get(Participant, participant_id) is None:
        participant_id = None
    data = {k: v for k, v in event.items() if k not in ("kind", "peer_id")}
    kind = str(event.get("kind", ""))
    db.add(RoomEvent(session_id=session_id, participant_id=participant_id, kind=kind, data=data))
    if kind in MODERATION:
        host = participant_of(event.get("by") or event.get("peer_id"))
        set_actor(db, f"participant:{host}" if host is not None else SYSTEM, office_id=session.office_id)
        log_room_action(db, session_id, kind, {"target": participant_id, **data} if "by" in event else data)
    if event.get("kind") == "remove" and event.get("revoke") and participant_id is not None:
        participant = await db.get(Participant, participant_id)
        assert participant is not None
        participant.status = "removed"
        participant.revoked_at = utcnow()
    elif event.get("kind") == "recording":
        db.add(Recording(
            session_id=session_id, participant_id=participant_id, path=str(event["file"]),
            size_bytes=int(event.get("bytes", 0)),
            started_at=dt.datetime.fromtimestamp(float(event["started"]), dt.timezone.utc),
            ended_at=dt.datetime.fromtimestamp(float(event["stopped"]), dt.timezone.utc),
        ))
    elif event.get("kind") == "end":
        session.status = "ended"
        session.room_closed_at = utcnow()


async def still_admitted(db: AsyncSession, session_id: int, participant_id: int) -> bool:
    """Whether the host admitted this participant and has not removed them since: someone admitted
    stays admitted for the rest of the session, through a reload, leaving and coming back, or a
    restart of their room (a media worker or a node died)."""
    last = await db.scalar(
        select(RoomEvent.kind)
        .where(RoomEvent.session_id == session_id, RoomEvent.participant_id == participant_id,
               RoomEvent.kind.in_(("admit", "remove")))
        .order_by(RoomEvent.id.desc()).limit(1)
    )
    return last == "admit"


async def session_record(db: AsyncSession, session_id: int) -> list[dict[str, Any]]:
    """A session's room events in order."""
    rows = await db.scalars(select(RoomEvent).where(RoomEvent.session_id == session_id).order_by(RoomEvent.id))
    return [
        {"kind": e.kind, "participant_id": e.participant_id, "data": e.data, "at": iso_utc(e.at)}
        for e in rows
    ]
