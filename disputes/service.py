"""Dispute register services: register, read, edit, move status. They return plain data."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from disputes.models import Dispute, Party
from disputes.schemas import DisputeIn, DisputePatch, PartyIn
from disputes.status import bookable, check_move, reopenable
from foundation.database import iso_utc
from foundation.errors import NotFound


def party_to_dict(party: Party) -> dict[str, Any]:
    """The view of a party."""
    return {
        "id": party.id, "name": party.name, "side": party.side, "phone": party.phone,
        "email": party.email, "language": party.language,
    }


def dispute_to_dict(dispute: Dispute) -> dict[str, Any]:
    """The view of a dispute with its parties."""
    return {
        "id": dispute.id,
        "office_id": dispute.office_id,
        "title": dispute.title,
        "dispute_type": dispute.dispute_type,
        "cause": dispute.cause,
        "occurred_at": iso_utc(dispute.occurred_at),
        "place": dispute.place,
        "nature": dispute.nature,
        "scale": dispute.scale,
        "people_involved": dispute.people_involved,
        "development": dispute.development,
        "risk_level": dispute.risk_level,
        "status": dispute.status,
        # What staff may do next: book a session, or register the dispute again first.
        "bookable": bookable(dispute.status),
        "reopenable": reopenable(dispute.status),
        "created_at": iso_utc(dispute.created_at),
        "updated_at": iso_utc(dispute.updated_at),
        "parties": [party_to_dict(p) for p in dispute.parties],
    }


async def load_dispute(db: AsyncSession, dispute_id: int) -> Dispute:
    """The dispute with its parties; NotFound otherwise."""
    dispute = await db.get(Dispute, dispute_id)
    if dispute is None:
        raise NotFound("no dispute with id {dispute_id}", dispute_id=dispute_id)
    return dispute


async def register_dispute(db: AsyncSession, data: DisputeIn, office_id: int | None = None) -> dict[str, Any]:
    """Register a dispute (矛盾纠纷登记) with its parties."""
    fields = data.model_dump(exclude={"parties"}, exclude_none=True)
    dispute = Dispute(office_id=office_id, **fields)
    dispute.parties = [Party(**p.model_dump()) for p in data.parties]
    db.add(dispute)
    await db.flush()
    return dispute_to_dict(dispute)


async def list_disputes(
    db: AsyncSession, *, status: str | None = None, risk_level: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """Disputes, newest first, optionally filtered."""
    query = select(Dispute).order_by(Dispute.created_at.desc(), Dispute.id.desc()).limit(limit)
    if status:
        query = query.where(Dispute.status == status)
    if risk_level:
        query = query.where(Dispute.risk_level == risk_level)
    return [dispute_to_dict(d) for d in await db.scalars(query)]


async def get_dispute(db: AsyncSession, dispute_id: int) -> dict[str, Any]:
    """One dispute."""
    return dispute_to_dict(await load_dispute(db, dispute_id))


async def update_dispute(db: AsyncSession, dispute_id: int, patch: DisputePatch) -> dict[str, Any]:
    """Change the given elements of a dispute."""
    dispute = await load_dispute(db, dispute_id)
    for name, value in patch.model_dump(exclude_unset=True).items():
        if value is not None:
            setattr(dispute, name, value)
    await db.flush()
    return dispute_to_dict(dispute)


async def add_party(db: AsyncSession, dispute_id: int, data: PartyIn) -> dict[str, Any]:
    """Add a party to a dispute."""
    dispute = await load_dispute(db, dispute_id)
    party = Party(**data.model_dump())
    dispute.parties.append(party)
    await db.flush()
    return party_to_dict(party)


async def move_status(db: AsyncSession, dispute_id: int, target: str) -> dict[str, Any]:
    """Move a dispute to a new status; Conflict if the move is not allowed."""
    dispute = await load_dispute(db, dispute_id)
    dispute.status = check_move(dispute.status, target)
    await db.flush()
    return dispute_to_dict(dispute)
