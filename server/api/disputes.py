"""Dispute register routes."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from disputes import service
from disputes.schemas import DisputeIn, DisputePatch, PartyIn, StatusMove
from disputes.status import Status
from foundation.vocabulary import RiskLevel
from outcomes import service as outcomes
from outcomes.models import Outcome
from server.auth import require_staff
from server.http import ApiRoute, ok, path_id, query_param, read_json, transaction


async def list_disputes(request: Request) -> Response:
    """Registered disputes, newest first; filter with ?status= and ?risk_level=."""
    require_staff(request)
    status = query_param(request, "status", lambda s: Status(s).value)
    risk = query_param(request, "risk_level", lambda r: RiskLevel(r).value)
    async with transaction(request) as db:
        return ok(await service.list_disputes(db, status=status, risk_level=risk))


async def register_dispute(request: Request) -> Response:
    """Register a dispute with its elements and parties."""
    staff = require_staff(request)
    data = await read_json(request, DisputeIn)
    async with transaction(request) as db:
        return ok(await service.register_dispute(db, data, office_id=staff.office_id), 201)


async def get_dispute(request: Request) -> Response:
    """One dispute with its parties."""
    require_staff(request)
    async with transaction(request) as db:
        return ok(await service.get_dispute(db, path_id(request)))


async def update_dispute(request: Request) -> Response:
    """Change a dispute's elements."""
    require_staff(request)
    dispute_id = path_id(request)
    patch = await read_json(request, DisputePatch)
    async with transaction(request) as db:
        result = await service.update_dispute(db, dispute_id, patch)
        await _documents_changed(request, db, dispute_id)
    request.app.state.deliverer.kick()
    return ok(result)


async def add_party(request: Request) -> Response:
    """Add a party to a dispute."""
    require_staff(request)
    dispute_id = path_id(request)
    data = await read_json(request, PartyIn)
    async with transaction(request) as db:
        result = await service.add_party(db, dispute_id, data)
        await _documents_changed(request, db, dispute_id)
    request.app.state.deliverer.kick()
    return ok(result, 201)


async def _documents_changed(request: Request, db: AsyncSession, dispute_id: int) -> None:
    """The dispute's agreements show its parties and facts: a change voids their signatures now,
    and tells those who signed (outcomes/signing.py)."""
    for session_id in await db.scalars(select(Outcome.session_id).where(Outcome.dispute_id == dispute_id)):
        await outcomes.changed(db, session_id, request.app.state.settings)


async def move_status(request: Request) -> Response:
    """Move a dispute along its life cycle; an illegal move is refused with 409."""
    require_staff(request)
    dispute_id = path_id(request)
    data = await read_json(request, StatusMove)
    async with transaction(request) as db:
        return ok(await service.move_status(db, dispute_id, data.status))


routes = [
    ApiRoute("/api/disputes", list_disputes, methods=["GET"], tag="disputes"),
    ApiRoute("/api/disputes", register_dispute, methods=["POST"], body=DisputeIn, tag="disputes"),
    ApiRoute("/api/disputes/{id}", get_dispute, methods=["GET"], tag="disputes"),
    ApiRoute("/api/disputes/{id}", update_dispute, methods=["PATCH"], body=DisputePatch, tag="disputes"),
    ApiRoute("/api/disputes/{id}/parties", add_party, methods=["POST"], body=PartyIn, tag="disputes"),
    ApiRoute("/api/disputes/{id}/status", move_status, methods=["POST"], body=StatusMove, tag="disputes"),
]
