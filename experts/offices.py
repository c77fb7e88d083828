"""Offices and the levels above them (a 分局 over its 警务室): the tree a supervisor looks down."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from experts.models import Office
from foundation.errors import Conflict, Invalid, NotFound
from foundation.scoping import across_offices

KINDS = ("office", "level")


async def below(db: AsyncSession, unit_id: int | None) -> frozenset[int]:
    """The unit and every office and level under it, however deep."""
    if unit_id is None:
        return frozenset()
    children: dict[int | None, list[int]] = {}
    for office_id, parent_id in await db.execute(select(Office.id, Office.parent_id)):
        children.setdefault(parent_id, []).append(office_id)
    found, todo = {unit_id}, [unit_id]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return frozenset(found)


def office_view(office: Office) -> dict[str, Any]:
    return {"id": office.id, "name": office.name, "kind": office.kind, "parent_id": office.parent_id,
            "timezone": office.timezone}


async def list_offices(db: AsyncSession) -> list[dict[str, Any]]:
    """The offices and levels this session may see, by name."""
    return [office_view(o) for o in await db.scalars(select(Office).order_by(Office.kind.desc(), Office.name))]


async def create_office(db: AsyncSession, name: str, kind: str, parent_id: int | None) -> dict[str, Any]:
    """A new office or level, under a level (or at the top)."""
    if kind not in KINDS:
        raise Invalid("kind must be one of {kinds}", field="kind", kinds=", ".join(KINDS))
    if parent_id is not None:
        parent = await db.get(Office, parent_id)
        if parent is None:
            raise NotFound("no level with id {office_id}", office_id=parent_id, field="parent_id")
        if parent.kind != "level":
            raise Invalid("an office can only be placed under a level, not under another office", field="parent_id")
    if await db.scalar(across_offices(select(Office.id).where(Office.name == name))) is not None:
        raise Conflict("an office named '{name}' exists already", field="name", name=name)
    office = Office(name=name, kind=kind, parent_id=parent_id)
    db.add(office)
    await db.flush()
    return office_view(office)


async def first_office(db: AsyncSession, name: str) -> int:
    """The first office, made with this name if there is none (a single-office install)."""
    office_id = await db.scalar(select(Office.id).where(Office.kind == "office").order_by(Office.id).limit(1))
    if office_id is None:
        office = Office(name=name)
        db.add(office)
        await db.flush()
        office_id = office.id
    return int(office_id)
