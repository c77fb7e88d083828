"""Expert pool services: create, read, update, availability. They return plain data."""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from experts import availability
from experts.models import DateOverride, Expert, ExpertOffice, Office, WeeklyWindow
from experts.schemas import AvailabilityIn, ExpertIn, ExpertPatch
from foundation.errors import Conflict, Forbidden, Invalid, NotFound
from foundation.scoping import across_offices


def expert_to_dict(expert: Expert) -> dict[str, Any]:
    """The public view of an expert."""
    return {
        "id": expert.id,
        "office_id": expert.office_id,
        "offices": expert.office_ids,
        "name": expert.name,
        "role": expert.role,
        "organisation": expert.organisation,
        "phone": expert.phone,
        "email": expert.email,
        "specialties": list(expert.specialties),
        "languages": list(expert.languages),
        "bio": expert.bio,
        "timezone": expert.timezone,
        "active": expert.active,
        "priority": expert.priority,
        "max_sessions_per_week": expert.max_sessions_per_week,
        "max_sessions_per_day": expert.max_sessions_per_day,
    }


def availability_to_dict(expert: Expert) -> dict[str, Any]:
    """An expert's weekly windows and date overrides."""
    return {
        "expert_id": expert.id,
        "timezone": expert.timezone,
        "windows": [
            {"weekday": w.weekday, "start": w.start.strftime("%H:%M"), "end": w.end.strftime("%H:%M")}
            for w in expert.windows
        ],
        "overrides": [
            {
                "date": o.date.isoformat(),
                "start": o.start.strftime("%H:%M") if o.start else None,
                "end": o.end.strftime("%H:%M") if o.end else None,
                "note": o.note,
            }
            for o in expert.overrides
        ],
    }


async def load_expert(db: AsyncSession, expert_id: int) -> Expert:
    """The expert with availability loaded; NotFound otherwise."""
    expert = await db.scalar(
        select(Expert)
        .where(Expert.id == expert_id)
        .options(selectinload(Expert.windows), selectinload(Expert.overrides))
    )
    if expert is None:
        raise NotFound("no expert with id {expert_id}", expert_id=expert_id)
    return expert


async def _check_email_free(db: AsyncSession, email: str, expert_id: int | None = None) -> None:
    other = await db.scalar(across_offices(select(Expert.id).where(Expert.email == email)))  # unique in the pool
    if other is not None and other != expert_id:
        raise Conflict("another expert already uses {email}", email=email, field="email")


async def create_expert(db: AsyncSession, data: ExpertIn, office_id: int | None = None) -> dict[str, Any]:
    """Add an expert to the pool, serving the given offices (default the registering office)."""
    await _check_email_free(db, data.email)
    expert = Expert(office_id=office_id, served=[], **data.model_dump(exclude_none=True, exclude={"offices"}))
    await _serve(db, expert, data.offices or ([office_id] if office_id is not None else []))
    db.add(expert)
    await db.flush()
    return expert_to_dict(expert)


async def _serve(db: AsyncSession, expert: Expert, office_ids: list[int]) -> None:
    """Let the expert serve these offices among those this session sees (foundation/scoping.py);
    whether they serve offices it cannot see stays as it was."""
    wanted = set(office_ids)
    visible = {o.id: o for o in await db.scalars(select(Office).where(Office.id.in_(wanted | set(expert.office_ids))))}
    for office_id in sorted(wanted):
        if office_id not in visible or visible[office_id].kind != "office":
            raise NotFound("no office with id {office_id}", office_id=office_id, field="offices")
    kept = [s for s in expert.served if s.office_id not in visible]
    expert.served = kept + [ExpertOffice(office_id=o) for o in sorted(wanted)]
    if not expert.served:
        raise Invalid("an expert serves at least one office", field="offices")


async def list_experts(
    db: AsyncSession, *, role: str | None = None, active: bool | None = None
) -> list[dict[str, Any]]:
    """Experts in the pool, by role then name."""
    query = select(Expert).order_by(Expert.role, Expert.priority, Expert.name)
    if role is not None:
        query = query.where(Expert.role == role)
    if active is not None:
        query = query.where(Expert.active == active)
    return [expert_to_dict(e) for e in await db.scalars(query)]


async def get_expert(db: AsyncSession, expert_id: int) -> dict[str, Any]:
    """One expert."""
    return expert_to_dict(await load_expert(db, expert_id))


async def update_expert(
    db: AsyncSession, expert_id: int, patch: ExpertPatch, *, allowed: frozenset[str] | None = None
) -> dict[str, Any]:
    """Change the given fields; with `allowed`, any other field is refused."""
    changes = patch.model_dump(exclude_unset=True)
    if allowed is not None:
        refused = sorted(set(changes) - allowed)
        if refused:
            raise Forbidden("you may not change {fields}", fields=", ".join(refused), field=refused[0])
    expert = await load_expert(db, expert_id)
    if "email" in changes:
        await _check_email_free(db, changes["email"], expert_id)
    if changes.get("offices") is not None:
        await _serve(db, expert, changes.pop("offices"))
    for name, value in changes.items():
        if value is None:
            continue
        setattr(expert, name, value)
    await db.flush()
    return expert_to_dict(expert)


async def get_availability(db: AsyncSession, expert_id: int) -> dict[str, Any]:
    """An expert's weekly windows and overrides."""
    return availability_to_dict(await load_expert(db, expert_id))


async def set_availability(db: AsyncSession, expert_id: int, data: AvailabilityIn) -> dict[str, Any]:
    """Replace an expert's weekly windows and overrides."""
    expert = await load_expert(db, expert_id)
    expert.windows = [WeeklyWindow(weekday=w.weekday, start=w.start, end=w.end) for w in data.windows]
    expert.overrides = [
        DateOverride(date=o.date, start=o.start, end=o.end, note=o.note) for o in data.overrides
    ]
    await db.flush()
    return availability_to_dict(expert)


def free_intervals(expert: Expert, first_day: dt.date, last_day: dt.date) -> list[availability.Interval]:
    """An expert's free intervals (UTC) over a date range, before bookings are taken out."""
    return availability.expand(
        [availability.Window(w.weekday, w.start, w.end) for w in expert.windows],
        [availability.Override(o.date, o.start, o.end) for o in expert.overrides],
        expert.timezone,
        first_day,
        last_day,
    )
