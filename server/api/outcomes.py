"""Routes for outcomes, follow-up visits, reviews and agreement templates (signing: signing.py)."""
from __future__ import annotations

import datetime as dt

from starlette.requests import Request
from starlette.responses import Response

from disputes.models import Dispute
from foundation.database import utcnow
from outcomes import agreements, review, service, statistics
from outcomes import jobs as outcome_jobs
from outcomes.schemas import FollowUpIn, OutcomeIn, ReviewIn, TemplateIn
from scheduling import bookings, invites, notify
from server.auth import require_office_admin, require_staff
from server.http import ApiRoute, ok, parse_date, path_id, query_param, read_json, transaction
from server.queries import statistics_range


async def record_outcome(request: Request) -> Response:
    """Record how a session ended; an agreement plans the follow-up visits."""
    staff = require_staff(request)
    session_id = path_id(request)
    data = await read_json(request, OutcomeIn)
    settings = request.app.state.settings
    now = utcnow()
    async with transaction(request) as db:
        result = await service.record(db, session_id, data, staff_id=staff.id, now=now, settings=settings)
        if result["kind"] == "agreement":
            session = await bookings.load_session(db, session_id)
            dispute = await db.get(Dispute, session.dispute_id)
            until = now + dt.timedelta(days=settings.agreement_confirm_days)
            await notify.queue_agreement_messages(
                db, session, dispute_title=dispute.title if dispute else "", terms=data.terms, settings=settings,
                days=settings.agreement_confirm_days,
                link_for=lambda p: invites.agreement_link(request.app.state.tokens, settings.link_base(), session, p, until),
            )
    request.app.state.deliverer.kick()
    for follow_up in result["follow_ups"]:
        outcome_jobs.schedule_follow_up(request.app.state.jobs, follow_up["id"], dt.datetime.fromisoformat(follow_up["due_at"]))
    return ok(result, 201)


async def get_outcome(request: Request) -> Response:
    """A session's outcome and who has confirmed it."""
    require_staff(request)
    async with transaction(request) as db:
        return ok(await service.view(db, await service.for_session(db, path_id(request)), request.app.state.settings))


async def party_agreement(request: Request) -> Response:
    """The agreement as a participant sees it from their own link."""
    async with transaction(request) as db:
        session, _ = await invites.open_invite(db, request.app.state.tokens, request.path_params["token"])
        return ok(await service.view(db, await service.for_session(db, session.id), request.app.state.settings))


async def list_follow_ups(request: Request) -> Response:
    """Follow-up visits; ?overdue=true lists the pending ones past their date."""
    require_staff(request)
    overdue = query_param(request, "overdue", lambda v: {"true": True, "1": True, "false": False, "0": False}[v], False)
    async with transaction(request) as db:
        return ok(await service.follow_ups(db, overdue_at=utcnow() if overdue else None))


async def record_follow_up(request: Request) -> Response:
    """What a follow-up visit found; a relapse reopens the dispute."""
    require_staff(request)
    follow_up_id = path_id(request)
    data = await read_json(request, FollowUpIn)
    async with transaction(request) as db:
        return ok(await service.record_follow_up(db, follow_up_id, data, utcnow()))


async def statistics_report(request: Request) -> Response:
    """Figures for ?from=YYYY-MM-DD to ?to=YYYY-MM-DD (office time zone) for the offices the asker
    sees, each office side by side in `offices`; ?format=csv for CSV, ?format=xlsx for a spreadsheet."""
    require_staff(request)
    first, last = statistics_range(request)
    kind = query_param(request, "format", lambda v: {"json": "json", "csv": "csv", "xlsx": "xlsx"}[v], "json")
    async with transaction(request) as db:
        figures = await statistics.statistics(db, *statistics.span(first, last, request.app.state.settings.timezone))
    name = f"tiaojie-{first}-{last}"
    if kind == "csv":
        return Response(
            "\ufeff" + statistics.to_csv(figures), media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    if kind == "xlsx":
        return Response(
            statistics.to_xlsx(figures), media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'},
        )
    return ok(figures)


async def list_reviews(request: Request) -> Response:
    """Stored weekly reviews, newest first."""
    require_staff(request)
    async with transaction(request) as db:
        return ok(await review.list_reviews(db))


async def review_rollup(request: Request) -> Response:
    """The week's reviews of every office the asker sees, side by side (?week_of=YYYY-MM-DD, any
    day of the week; default the last full week), with the totals and the early warnings."""
    require_staff(request)
    now = utcnow()
    day = query_param(request, "week_of", parse_date, None)
    week = review.week_of(day) if day else review.last_full_week(now, request.app.state.settings.timezone)
    async with transaction(request) as db:
        return ok(await review.rollup(db, week))


async def get_review(request: Request) -> Response:
    """One weekly review."""
    require_staff(request)
    async with transaction(request) as db:
        return ok(await review.get(db, path_id(request)))


async def build_review(request: Request) -> Response:
    """Build the review of a week now (for the review meeting); the weekly job also e-mails it."""
    staff = require_staff(request)
    data = await read_json(request, ReviewIn)
    settings = request.app.state.settings
    now = utcnow()
    week = review.week_of(data.week_of) if data.week_of else review.last_full_week(now, settings.timezone)
    async with transaction(request) as db:
        return ok(await review.store(db, staff.office_id or 0, await review.build(db, week, settings.timezone, now), now), 201)


async def list_templates(request: Request) -> Response:
    """The agreement template of every dispute type."""
    staff = require_staff(request)
    async with transaction(request) as db:
        return ok(await agreements.list_templates(db, staff.office_id))


async def save_template(request: Request) -> Response:
    """Replace a dispute type's agreement template with the office's own text."""
    admin = require_office_admin(request)
    data = await read_json(request, TemplateIn)
    async with transaction(request) as db:
        return ok(await agreements.save(db, admin.office_id, request.path_params["type"], data.body))


async def reset_template(request: Request) -> Response:
    """Go back to the built-in agreement template of a dispute type."""
    admin = require_office_admin(request)
    async with transaction(request) as db:
        return ok(await agreements.reset(db, admin.office_id, request.path_params["type"]))


async def agreement_draft(request: Request) -> Response:
    """The terms to start from: the session's dispute type template with names filled in."""
    require_staff(request)
    session_id = path_id(request)
    async with transaction(request) as db:
        return ok(await agreements.draft(db, session_id, request.app.state.settings.timezone))


routes = [
    ApiRoute("/api/statistics", statistics_report, methods=["GET"], tag="outcomes"),
    ApiRoute("/api/sessions/{id}/outcome", record_outcome, methods=["POST"], body=OutcomeIn, tag="outcomes"),
    ApiRoute("/api/sessions/{id}/outcome", get_outcome, methods=["GET"], tag="outcomes"),
    ApiRoute("/api/join/{token}/agreement", party_agreement, methods=["GET"], tag="outcomes"),
    ApiRoute("/api/follow-ups", list_follow_ups, methods=["GET"], tag="outcomes"),
    ApiRoute("/api/follow-ups/{id}", record_follow_up, methods=["POST"], body=FollowUpIn, tag="outcomes"),
    ApiRoute("/api/sessions/{id}/agreement-draft", agreement_draft, methods=["GET"], tag="outcomes"),
    ApiRoute("/api/agreement-templates", list_templates, methods=["GET"], tag="outcomes"),
    ApiRoute("/api/agreement-templates/{type}", save_template, methods=["PUT"], body=TemplateIn, tag="outcomes"),
    ApiRoute("/api/agreement-templates/{type}", reset_template, methods=["DELETE"], tag="outcomes"),
    ApiRoute("/api/reviews", list_reviews, methods=["GET"], tag="reviews"),
    ApiRoute("/api/reviews", build_review, methods=["POST"], body=ReviewIn, tag="reviews"),
    ApiRoute("/api/reviews/rollup", review_rollup, methods=["GET"], tag="reviews"),
    ApiRoute("/api/reviews/{id}", get_review, methods=["GET"], tag="reviews"),
]
