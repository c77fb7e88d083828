"""Routes for reading the audit log (administrators only; there is no way to change it)."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import Response

from audit import log
from server.auth import require_admin
from server.errors import NotFound
from server.http import ApiRoute, ok, parse_count, parse_date, path_id, query_param, transaction


def audit_filter(request: Request) -> log.Filter:
    """The audit log filter from the query string (?entity, entity_id, actor, from, to, before_id, limit)."""
    tz = ZoneInfo(request.app.state.settings.timezone)

    def day_start(text: str) -> dt.datetime:
        return dt.datetime.combine(parse_date(text), dt.time(), tz)

    until = query_param(request, "to", day_start)
    return log.Filter(
        entity=request.query_params.get("entity") or None,
        entity_id=query_param(request, "entity_id", parse_count),
        actor=request.query_params.get("actor") or None,
        since=query_param(request, "from", day_start),
        until=until + dt.timedelta(days=1) if until else None,
        before_id=query_param(request, "before_id", parse_count),
        limit=query_param(request, "limit", parse_count, 100),
    )


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
