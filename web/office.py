"""Office pages beyond the daily work: the audit log (admins)."""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from audit import log
from server.api.audit import audit_filter
from server.auth import require_admin
from server.http import transaction
from web.pages import render
from web.staff import local, login_first


async def audit_page(request: Request) -> Response:
    """The audit log, newest first, with filters and paging (administrators only)."""
    if (redirect := login_first(request)) is not None:
        return redirect
    require_admin(request)
    where = audit_filter(request)
    async with transaction(request) as db:
        rows = await log.entries(db, where)
    older = {k: v for k, v in request.query_params.items() if k != "before_id"}
    return render(request, "staff/audit.html", rows=rows, where=where, older=older, local=local,
                  tz=request.app.state.settings.timezone)


routes = [
    Route("/audit", audit_page),
]
