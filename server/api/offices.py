"""Offices and the levels above them: listed for every staff member (those they see), added by
the system administrator."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from experts import offices
from server.auth import require_staff, require_sysadmin
from server.http import ApiRoute, ok, read_json, transaction


class OfficeIn(BaseModel):
    name: str = Field(min_length=2, max_length=120)
    kind: Literal["office", "level"] = "office"
    parent_id: int | None = Field(None, ge=1)  # the level it sits under


async def list_offices(request: Request) -> Response:
    """The offices and levels the asker sees (a clerk: their own; a supervisor: those under them)."""
    require_staff(request)
    async with transaction(request) as db:
        return ok(await offices.list_offices(db))


async def create_office(request: Request) -> Response:
    """Add an office or a level (system administrators only)."""
    require_sysadmin(request)
    data = await read_json(request, OfficeIn)
    async with transaction(request) as db:
        return ok(await offices.create_office(db, data.name, data.kind, data.parent_id), 201)


routes = [
    ApiRoute("/api/offices", list_offices, methods=["GET"], tag="offices"),
    ApiRoute("/api/offices", create_office, methods=["POST"], body=OfficeIn, tag="offices"),
]
