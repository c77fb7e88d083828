"""Office pages beyond the daily work: follow-ups, agreement templates, weekly reviews,
statistics, the audit log (admins)."""
from __future__ import annotations

import json
import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from accounts import service as accounts
from accounts.models import ROLES
from audit import log
from experts import offices
from outcomes import agreements, review, statistics
from outcomes import service as outcomes
from server.auth import current_staff, require_admin
from server.http import path_id, transaction
from server.pages.render import render
from server.pages.staff import login_first
from server.queries import audit_filter, statistics_range
from web.i18n import language, local_time, translator, vocabulary_label

# A time as the audit log stores it (ISO 8601, UTC).
ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


async def audit_page(request: Request) -> Response:
    """The audit log, newest first, with filters and paging (administrators only)."""
    if (redirect := login_first(request)) is not None:
        return redirect
    require_admin(request)
    where = audit_filter(request)
    async with transaction(request) as db:
        rows = await log.entries(db, where)
    older = {k: v for k, v in request.query_params.items() if k != "before_id"}
    timezone, lang = request.app.state.settings.timezone, language(request)
    t, label = translator(lang), vocabulary_label(lang)

    def shown(value: object) -> str:
        """A changed value as staff read it: empty, yes/no, a local time, a label, else as stored."""
        if value is None or value == "":
            return t("audit.none")
        if isinstance(value, bool):
            return t("audit.yes" if value else "audit.no")
        if isinstance(value, str) and ISO_TIME.fullmatch(value):
            return local_time(value, timezone, lang)
        if isinstance(value, str):
            return label(value)
        return json.dumps(value, ensure_ascii=False) if isinstance(value, (list, dict)) else str(value)

    return render(request, "staff/audit.html", rows=rows, where=where, older=older, tz=timezone, shown=shown)


async def reviews_page(request: Request) -> Response:
    """The stored weekly reviews, and a button to build this week's now."""
    if (redirect := login_first(request)) is not None:
        return redirect
    async with transaction(request) as db:
        rows = await review.list_reviews(db)
    return render(request, "staff/reviews.html", reviews=rows, timezone=request.app.state.settings.timezone)


async def review_page(request: Request) -> Response:
    """One weekly review (每周研判)."""
    if (redirect := login_first(request)) is not None:
        return redirect
    async with transaction(request) as db:
        data = await review.get(db, path_id(request))
    return render(request, "staff/review.html", review=data, tz=request.app.state.settings.timezone)


async def statistics_page(request: Request) -> Response:
    """Figures over a date range, with the CSV download."""
    if (redirect := login_first(request)) is not None:
        return redirect
    first, last = statistics_range(request)
    async with transaction(request) as db:
        figures = await statistics.statistics(db, *statistics.span(first, last, request.app.state.settings.timezone))
    return render(request, "staff/statistics.html", figures=figures, first=first, last=last)


async def follow_ups_page(request: Request) -> Response:
    """Follow-up visits still to do, overdue first in line (soonest due first)."""
    if (redirect := login_first(request)) is not None:
        return redirect
    async with transaction(request) as db:
        rows = await outcomes.follow_ups(db, pending=True)
    return render(request, "staff/follow_ups.html", follow_ups=rows, tz=request.app.state.settings.timezone)


async def templates_page(request: Request) -> Response:
    """The agreement templates of every dispute type, for the office to edit."""
    if (redirect := login_first(request)) is not None:
        return redirect
    staff = current_staff(request)
    async with transaction(request) as db:
        rows = await agreements.list_templates(db, staff.office_id if staff else None)
    return render(request, "staff/agreement_templates.html", templates=rows)


async def accounts_page(request: Request) -> Response:
    """The staff accounts an administrator manages, with a form to add one: an office admin
    their own office's, the system administrator every account, and the offices and levels."""
    if (redirect := login_first(request)) is not None:
        return redirect
    admin = require_admin(request)
    async with transaction(request) as db:
        rows = await accounts.list_accounts(db)
        units = await offices.list_offices(db)
    roles = ROLES if admin.role == "sysadmin" else ("staff", "admin")
    return render(request, "staff/accounts.html", accounts=rows, units=units, names={u["id"]: u["name"] for u in units},
                  roles=roles)


routes = [
    Route("/accounts", accounts_page),
    Route("/follow-ups", follow_ups_page),
    Route("/agreement-templates", templates_page),
    Route("/reviews", reviews_page),
    Route("/reviews/{id}", review_page),
    Route("/statistics", statistics_page),
    Route("/audit", audit_page),
]
