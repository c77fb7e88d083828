"""Calendar data: an expert's sessions, the office's day and week, and the expert's ICS feed."""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from disputes.models import Dispute
from foundation.database import iso_utc
from scheduling import ics
from scheduling.models import ACTIVE_STATES, HOLDING_STATES, MediationSession, Participant
from scheduling.notify import panel_line


async def expert_sessions(
    db: AsyncSession, expert_id: int, since: dt.datetime, link_for: Callable[[MediationSession, Participant], str],
) -> list[dict[str, Any]]:
    """The expert's sessions ending after `since`, with their own join link."""
    rows = await db.execute(
        select(MediationSession, Participant, Dispute.title)
        .join(Participant, Participant.session_id == MediationSession.id)
        .join(Dispute, Dispute.id == MediationSession.dispute_id)
        .where(
            Participant.expert_id == expert_id,
            Participant.status.in_(HOLDING_STATES + ("declined",)),
            MediationSession.status.in_(ACTIVE_STATES),
            MediationSession.end > since,
        )
        .order_by(MediationSession.start)
    )
    return [
        {
            "session_id": s.id, "start": iso_utc(s.start), "end": iso_utc(s.end), "status": s.status,
            "standing": s.standing, "declined": [p.display_name for p in s.participants if p.status == "declined"],
            "dispute_title": title, "participant_id": p.id, "your_role": p.role, "your_status": p.status,
            "panel": panel_line(s), "join_url": link_for(s, p),
        }
        for s, p, title in rows
    ]


def local_span(day: dt.date, span: str, timezone: str) -> tuple[dt.datetime, dt.datetime]:
    """The UTC bounds of a local day, or of the Monday-to-Sunday week holding it."""
    tz = ZoneInfo(timezone)
    first = day if span == "day" else day - dt.timedelta(days=day.weekday())
    days = 1 if span == "day" else 7
    start = dt.datetime.combine(first, dt.time(), tz)
    return start, dt.datetime.combine(first + dt.timedelta(days=days), dt.time(), tz)


async def office_schedule(db: AsyncSession, first: dt.datetime, last: dt.datetime) -> list[dict[str, Any]]:
    """Every booked (not cancelled) session overlapping first..last, with its panel."""
    rows = await db.execute(
        select(MediationSession, Dispute.title)
        .join(Dispute, Dispute.id == MediationSession.dispute_id)
        .where(MediationSession.status != "cancelled", MediationSession.start < last, MediationSession.end > first)
        .order_by(MediationSession.start)
    )
    return [
        {
            "session_id": s.id, "start": iso_utc(s.start), "end": iso_utc(s.end), "status": s.status,
            "standing": s.standing, "declined": [p.display_name for p in s.participants if p.status == "declined"],
            "dispute_id": s.dispute_id, "dispute_title": title, "panel": panel_line(s),
            "location_kind": s.location_kind,
        }
        for s, title in rows
    ]


async def expert_feed(db: AsyncSession, expert_id: int, since: dt.datetime, host: str, organizer: str) -> bytes:
    """An ICS feed (no METHOD: a subscription, not an invitation) of the expert's sessions."""
    rows = await db.execute(
        select(MediationSession, Dispute.title)
        .join(Participant, Participant.session_id == MediationSession.id)
        .join(Dispute, Dispute.id == MediationSession.dispute_id)
        .where(
            Participant.expert_id == expert_id, Participant.status.in_(HOLDING_STATES),
            MediationSession.status.in_(ACTIVE_STATES), MediationSession.end > since,
        )
        .order_by(MediationSession.start)
    )
    events = [
        ics.session_event(
            uid=ics.session_uid(s.id, host), sequence=s.sequence, start=s.start, end=s.end,
            summary=f"远程调解：{title}", description=f"调解专家：{panel_line(s)}",
            location="视频调解" if s.location_kind == "remote" else s.location,
            organizer=organizer, attendees=[],
        )
        for s, title in rows
    ]
    return ics.calendar(events)
