"""Routes for reading the audit log (administrators only; there is no way to change it)."""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from audit import log
from foundation.errors import NotFound
from server.auth import require_admin
from server.http import ApiRoute, ok, path_id, transaction
from server.queries import audit_filter


async def list_entries(request: Request) -> Response:
    """Audit rows, newest first."""
    require_admin(request)
    where = audit_filter(request)
    async with transaction(request) as db:
        return ok(await log.entries(db, where))


async def get_entry(request: Request) -> Response:
    """One audit row."""
    require_admin(request)
    entry_id = path_id(request)
    async with transaction(request) as db:
        rows = await log.entries(db, log.Filter(before_id=entry_id + 1, limit=1))
    if not rows or rows[0]["id"] != entry_id:
        raise NotFound("no audit entry with id {entry_id}", entry_id=entry_id)
    return ok(rows[0])


routes = [
    ApiRoute("/api/audit", list_entries, methods=["GET"], tag="audit"),
    ApiRoute("/api/audit/{id}", get_entry, methods=["GET"], tag="audit"),
]
