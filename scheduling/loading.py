"""Loading the slot search's inputs from the database."""
from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from experts.models import Expert
from experts.service import free_intervals
from foundation.scoping import across_offices
from scheduling.models import ACTIVE_STATES, HOLDING_STATES, MediationSession, Participant
from scheduling.rules import availability_days
from scheduling.slots import Candidate, to_minutes

Busy = dict[int, list[tuple[dt.datetime, dt.datetime]]]


async def busy_times(
    db: AsyncSession, expert_ids: Iterable[int], first: dt.datetime, last: dt.datetime,
    *, exclude_session: int | None = None,
) -> Busy:
    """Each expert's sessions (that hold their time) overlapping first..last, for every office:
    an expert shared by offices has one calendar."""
    query = across_offices(
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
        if expert_id is not None:
            result[expert_id].append((start, end))
    return result


async def last_booked(db: AsyncSession) -> dict[int, dt.datetime]:
    """When each expert was last booked (the creation time of their latest participation), by
    any office: the fair pick counts across offices."""
    rows = await db.execute(across_offices(
        select(Participant.expert_id, func.max(Participant.created_at))
        .where(Participant.expert_id.is_not(None))
        .group_by(Participant.expert_id)
    ))
    return {expert_id: at for expert_id, at in rows if expert_id is not None}


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
    return [
        Candidate(
            expert_id=e.id, role=e.role, free=to_minutes(free_intervals(e, *availability_days(first, last, e.timezone))),
            busy=to_minutes(busy.get(e.id, [])), priority=e.priority,
            specialties=frozenset(e.specialties), languages=frozenset(e.languages),
            last_booked=int(booked[e.id].timestamp()) // 60 if e.id in booked else None,
            max_per_day=e.max_sessions_per_day, max_per_week=e.max_sessions_per_week,
        )
        for e in experts
    ]
