"""Loading the slot search's inputs from the database, and the per-expert booking checks."""
from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Iterable
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from experts import availability
from experts.models import Expert
from experts.service import free_intervals
from scheduling.models import ACTIVE_STATES, HOLDING_STATES, MediationSession, Participant
from scheduling.slots import Candidate, to_minutes
from server.errors import Part

Busy = dict[int, list[tuple[dt.datetime, dt.datetime]]]


async def busy_times(
    db: AsyncSession, expert_ids: Iterable[int], first: dt.datetime, last: dt.datetime,
    *, exclude_session: int | None = None,
) -> Busy:
    """Each expert's sessions (that hold their time) overlapping first..last."""
    query = (
        select(Participant.expert_id, MediationSession.start, MediationSession.end)
        .join(MediationSession, Participant.session_id == MediationSession.id)
        .where(
            Participant.expert_id.in_(list(expert_ids)),
            Participant.status.in_(HOLDING_STATES),
            MediationSession.status.in_(ACTIVE_STATES),
            MediationSession.end > first,
            MediationSession.start < last,
        )
        .order_by(MediationSession.start)
    )
    if exclude_session is not None:
        query = query.where(MediationSession.id != exclude_session)
    result: Busy = defaultdict(list)
    for expert_id, start, end in await db.execute(query):
        result[expert_id].append((start, end))
    return result


async def last_booked(db: AsyncSession) -> dict[int, dt.datetime]:
    """When each expert was last booked (the creation time of their latest participation)."""
    rows = await db.execute(
        select(Participant.expert_id, func.max(Participant.created_at))
        .where(Participant.expert_id.is_not(None))
        .group_by(Participant.expert_id)
    )
    return {expert_id: at for expert_id, at in rows}


async def load_candidates(
    db: AsyncSession, first: dt.datetime, last: dt.datetime, *, roles: set[str], pinned: set[int],
    exclude_session: int | None = None,
) -> list[Candidate]:
    """Active experts of the roles (and the pinned ones) as slot-search candidates."""
    query = (
        select(Expert)
        .where(Expert.active, Expert.role.in_(roles) | Expert.id.in_(pinned))
        .options(selectinload(Expert.windows), selectinload(Expert.overrides))
    )
    experts = list(await db.scalars(query))
    # Caps count whole weeks: look a week either side for existing sessions.
    busy = await busy_times(
        db, [e.id for e in experts], first - dt.timedelta(days=7), last + dt.timedelta(days=7),
        exclude_session=exclude_session,
    )
    booked = await last_booked(db)
    first_day = first.date() - dt.timedelta(days=1)
    last_day = last.date() + dt.timedelta(days=1)
    return [
        Candidate(
            expert_id=e.id, role=e.role, free=to_minutes(free_intervals(e, first_day, last_day)),
            busy=to_minutes(busy.get(e.id, [])), priority=e.priority,
            specialties=frozenset(e.specialties), languages=frozenset(e.languages),
            last_booked=int(booked[e.id].timestamp()) // 60 if e.id in booked else None,
            max_per_day=e.max_sessions_per_day, max_per_week=e.max_sessions_per_week,
        )
        for e in experts
    ]


def time_problem(
    expert: Expert, busy: list[tuple[dt.datetime, dt.datetime]], start: dt.datetime, end: dt.datetime,
    *, gap_min: int, office_tz: str, check_availability: bool,
) -> Part | None:
    """Why this expert cannot take start..end, or None. Overlaps are always refused."""
    gap = dt.timedelta(minutes=gap_min)
    if any(s - gap < end and start < e + gap for s, e in busy):
        return ("{name} already has a session at that time", {"name": expert.name})
    if not expert.active:
        return ("{name} is not active in the expert pool", {"name": expert.name})
    if not check_availability:
        return None
    free = free_intervals(expert, start.date() - dt.timedelta(days=1), end.date())
    if not any(s <= start and end <= e for s, e in availability.merge(free)):
        return ("{name} is not available at that time", {"name": expert.name})
    tz = ZoneInfo(office_tz)
    day = start.astimezone(tz).date()
    monday = day - dt.timedelta(days=day.weekday())
    same_day = sum(1 for s, _ in busy if s.astimezone(tz).date() == day)
    same_week = sum(1 for s, _ in busy if 0 <= (s.astimezone(tz).date() - monday).days < 7)
    if same_day >= expert.max_sessions_per_day:
        return ("{name} already has {count} sessions that day", {"name": expert.name, "count": same_day})
    if same_week >= expert.max_sessions_per_week:
        return ("{name} already has {count} sessions that week", {"name": expert.name, "count": same_week})
    return None
