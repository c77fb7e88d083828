"""Staff console pages: sessions, dispute register, booking, a session's links, the expert pool.

Pages read through the domain services; changes go through the JSON API from
`web/static/staff.js` (with the session's CSRF token), so there is one write path. A NotFound
from a service becomes the error page (the app's error handler).
"""
from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import segno
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from audit import log as audit
from disputes import service as disputes
from experts import service as experts
from foundation.database import utcnow
from foundation.errors import NotFound
from foundation.vocabulary import DisputeType, RiskLevel, Role
from outcomes import documents, signing
from outcomes import service as outcomes
from scheduling import bookings, calendar, invites, notify, outbox
from server.auth import current_staff, require_staff
from server.http import path_id, transaction
from server.links import with_links
from server.logins import GUESSING
from server.pages.render import render
from web.i18n import local_time


def login_first(request: Request) -> Response | None:
    if current_staff(request) is None:
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
    return None


def utc_offset(timezone: str) -> str:
    """The zone's current UTC offset as '+08:00', for the pages' datetime-local inputs."""
    offset = utcnow().astimezone(ZoneInfo(timezone)).strftime("%z")
    return f"{offset[:3]}:{offset[3:]}"


async def dashboard(request: Request) -> Response:
    """Today's and this week's sessions, the newest disputes, what needs doing; for an admin,
    password guessing at the office's accounts in the last day."""
    if (redirect := login_first(request)) is not None:
        return redirect
    settings = request.app.state.settings
    today = utcnow().astimezone(ZoneInfo(settings.timezone)).date()
    async with transaction(request) as db:
        day = await calendar.office_schedule(db, *calendar.local_span(today, "day", settings.timezone))
        week = await calendar.office_schedule(db, *calendar.local_span(today, "week", settings.timezone))
        recent = await disputes.list_disputes(db, limit=10)
        overdue = await outcomes.follow_ups(db, overdue_at=utcnow())
        ahead = await calendar.office_schedule(db, utcnow(), utcnow() + dt.timedelta(days=request.app.state.settings.booking_horizon_days))
        guessing = await audit.entries(db, audit.Filter(action=GUESSING, since=utcnow() - dt.timedelta(days=1))) \
            if require_staff(request).is_admin else []
    declined = [s for s in ahead if s["standing"] == "expert_declined"]
    return render(request, "staff/dashboard.html", day=day, week=week, recent=recent, overdue=overdue, declined=declined,
                  guessing=guessing, tz=settings.timezone)


async def dispute_list(request: Request) -> Response:
    """The dispute register."""
    if (redirect := login_first(request)) is not None:
        return redirect
    async with transaction(request) as db:
        rows = await disputes.list_disputes(db)
    return render(request, "staff/disputes.html", disputes=rows, tz=request.app.state.settings.timezone)


async def dispute_form(request: Request) -> Response:
    """Register a dispute, or edit one."""
    if (redirect := login_first(request)) is not None:
        return redirect
    dispute: dict[str, Any] | None = None
    sessions: list[dict[str, Any]] = []
    deadlines: list[dict[str, Any]] = []
    if "id" in request.path_params:
        async with transaction(request) as db:
            dispute = await disputes.get_dispute(db, path_id(request))
            sessions = [s for s in await calendar.office_schedule(db, utcnow() - dt.timedelta(days=365), utcnow() + dt.timedelta(days=365))
                        if s["dispute_id"] == dispute["id"]]
            deadlines = await outcomes.judicial_deadlines(db, dispute["id"])
    return render(
        request, "staff/dispute_form.html", tz_offset=utc_offset(request.app.state.settings.timezone), dispute=dispute, sessions=sessions, deadlines=deadlines, types=list(DisputeType),
        risks=list(RiskLevel), tz=request.app.state.settings.timezone,
        evidence_limit_mb=request.app.state.settings.evidence_max_bytes // 1048576,
    )


async def book_page(request: Request) -> Response:
    """Choose the panel, see the suggested slots, book one."""
    if (redirect := login_first(request)) is not None:
        return redirect
    async with transaction(request) as db:
        dispute = await disputes.get_dispute(db, path_id(request))
    settings = request.app.state.settings
    today = utcnow().astimezone(ZoneInfo(settings.timezone)).date()
    return render(request, "staff/book.html", tz_offset=utc_offset(request.app.state.settings.timezone), dispute=dispute, roles=list(Role), today=today,
                  until=today + dt.timedelta(days=14), tz=settings.timezone)


async def session_page(request: Request) -> Response:
    """A session: participants and their links (with QR codes), notifications, changes."""
    if (redirect := login_first(request)) is not None:
        return redirect
    async with transaction(request) as db:
        session = await bookings.load_session(db, path_id(request))
        view = with_links(request, session)
        dispute = await disputes.get_dispute(db, session.dispute_id)
        messages = await outbox.list_messages(db, session_id=session.id)
        try:
            outcome: dict[str, Any] | None = await outcomes.view(db, await outcomes.for_session(db, session.id), request.app.state.settings)
        except NotFound:
            outcome = None
        record = await documents.record_view(db, session, request.app.state.settings.timezone)
        codes = await signing.codes_to_show(db, session, utcnow())
    qr = {p["id"]: segno.make(p["join_url"], error="m").svg_inline(scale=3, title=p["display_name"])
          for p in view["participants"] if p["kind"] in ("party", "onsite")}
    host = next((p for p in session.participants if p.kind == "host"), None)
    # The host signs and seals from the documents page of their own link, made fresh here (the
    # session's own link ends with the session); an address on this site, opened on this computer.
    host_signing = invites.agreement_link(request.app.state.tokens, "", session, host,
                                          utcnow() + dt.timedelta(days=1)) if host is not None and outcome else ""
    return render(request, "staff/session.html", tz_offset=utc_offset(request.app.state.settings.timezone), session=view, dispute=dispute, messages=messages, qr=qr, outcome=outcome,
                  tz=request.app.state.settings.timezone, record=record, codes=codes, host_signing=host_signing,
                  document_names=documents.DOCUMENT_NAMES)


async def agreement_page(request: Request) -> Response:
    """The printable people's mediation agreement (人民调解协议书) of a session, for staff."""
    if (redirect := login_first(request)) is not None:
        return redirect
    settings = request.app.state.settings
    async with transaction(request) as db:
        session = await bookings.load_session(db, path_id(request))
        outcome = await outcomes.view(db, await outcomes.for_session(db, session.id), settings)
        if outcome["kind"] != "agreement":
            raise NotFound("this session did not end in an agreement")
        dispute = await disputes.get_dispute(db, session.dispute_id)
        panel = notify.panel_line(session)
    tz = settings.timezone
    return render(request, "agreement.html", outcome=outcome, dispute=dispute, panel=panel, office=settings.office_name,
                  year=dt.datetime.fromisoformat(outcome["recorded_at"]).astimezone(ZoneInfo(tz)).year,
                  local=lambda value, fmt="%Y-%m-%d %H:%M": local_time(value, tz, "zh", fmt),  # the agreement is in Chinese
                  pdf_url=f"/sessions/{session.id}/documents/agreement.pdf")


async def expert_pool(request: Request) -> Response:
    """Every expert, by role."""
    if (redirect := login_first(request)) is not None:
        return redirect
    async with transaction(request) as db:
        rows = await experts.list_experts(db)
    return render(request, "staff/experts.html", experts=rows)


routes = [
    Route("/", dashboard),
    Route("/disputes", dispute_list),
    Route("/disputes/new", dispute_form),
    Route("/disputes/{id}", dispute_form),
    Route("/disputes/{id}/book", book_page),
    Route("/sessions/{id}", session_page),
    Route("/sessions/{id}/agreement", agreement_page),
    Route("/experts", expert_pool),
]
