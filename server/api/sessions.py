"""Staff routes for slot search, bookings, invitations and the outbox."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from accounts.models import StaffUser
from disputes.models import Dispute
from foundation.database import utcnow
from scheduling import bookings, calendar, invites, notify, outbox
from scheduling.models import MediationSession, Participant
from scheduling.schemas import BookingIn, CancelIn, ReplaceIn, RescheduleIn, SearchIn
from server.auth import require_staff
from server.http import ApiRoute, ok, parse_count, parse_date, path_id, query_param, read_json, transaction
from server.links import link_for, rules, with_links

M = TypeVar("M", bound=BaseModel)


async def announce(
    request: Request, db: AsyncSession, session: MediationSession, kind: str, only: Participant | None = None
) -> None:
    """Queue the messages of a session event in the current transaction."""
    dispute = await db.get(Dispute, session.dispute_id)
    settings = request.app.state.settings
    base = settings.link_base()
    await notify.queue_session_messages(
        db, session, kind, dispute_title=dispute.title if dispute else "",
        link_for=lambda p: link_for(request, session, p, base=base), settings=settings, only=only,
    )


def after_commit(request: Request, session: MediationSession) -> None:
    """Move the session's jobs to its (committed) time, or drop them, and deliver the outbox."""
    jobs = request.app.state.jobs
    if session.status in ("pending", "confirmed"):
        jobs.schedule_session(session.id, session.start, session.end)
    else:
        jobs.remove_session(session.id)
    request.app.state.deliverer.kick()


class ParticipantRef(BaseModel):
    participant_id: int = Field(ge=1)


async def search(request: Request) -> Response:
    """Candidate slots when the whole panel is free, earliest first."""
    require_staff(request)
    data = await read_json(request, SearchIn)
    async with transaction(request) as db:
        return ok(await bookings.search_slots(db, data, utcnow(), rules(request)))


async def book(request: Request) -> Response:
    """Book a session; 409 when an expert already has a session then."""
    staff = require_staff(request)
    data = await read_json(request, BookingIn)
    async with transaction(request) as db:
        user = await db.get(StaffUser, staff.id)
        # Held until the messages are queued: the database session keeps only the objects that
        # something refers to, and would read the dispute and its parties again.
        dispute = await db.get(Dispute, data.dispute_id)  # noqa: F841
        result = await bookings.book(
            db, data, rules(request), staff_id=staff.id, office_id=staff.office_id,
            host_name=user.display_name if user else "",
        )
        session = await bookings.load_session(db, result["id"])
        await announce(request, db, session, "invite")
        view = with_links(request, session)
    after_commit(request, session)
    return ok(view, 201)


async def get_session(request: Request) -> Response:
    """One session with its participants and their join links."""
    require_staff(request)
    async with transaction(request) as db:
        return ok(with_links(request, await bookings.load_session(db, path_id(request))))


async def _move(
    request: Request, model: type[M], change: Callable[[AsyncSession, int, M], Awaitable[Any]], kind: str,
) -> Response:
    """Apply a change to a session, tell everyone (`kind` message), then move its jobs."""
    require_staff(request)
    session_id = path_id(request)
    data = await read_json(request, model)
    async with transaction(request) as db:
        await change(db, session_id, data)
        session = await bookings.load_session(db, session_id)
        await announce(request, db, session, kind)
        view = with_links(request, session)
    after_commit(request, session)
    return ok(view)


async def reschedule(request: Request) -> Response:
    """Move a session, keeping its panel; everyone gets the new time and an updated invitation."""
    return await _move(
        request, RescheduleIn, lambda db, sid, data: bookings.reschedule(db, sid, data, rules(request)), "update"
    )


async def cancel(request: Request) -> Response:
    """Cancel a session with a reason; everyone is told and its jobs are removed."""
    return await _move(request, CancelIn, lambda db, sid, data: bookings.cancel(db, sid, data.reason), "cancel")


async def replace(request: Request) -> Response:
    """Replace one expert; without expert_id, list who is free to step in."""
    require_staff(request)
    session_id = path_id(request)
    data = await read_json(request, ReplaceIn)
    async with transaction(request) as db:
        if data.expert_id is None:
            options = await bookings.replacement_options(db, session_id, data.participant_id, rules(request))
            return ok({"alternates": options})
        await bookings.replace_expert(
            db, session_id, data.participant_id, data.expert_id, rules(request),
            check_availability=not data.override_availability,
        )
        session = await bookings.load_session(db, session_id)
        leaving = next(p for p in session.participants if p.id == data.participant_id)
        await announce(request, db, session, "cancel", only=leaving)
        await announce(request, db, session, "invite", only=session.participants[-1])
        view = with_links(request, session)
    after_commit(request, session)
    return ok(view)


async def _change_link(request: Request, change: Callable[..., Awaitable[Any]], reason: str) -> Response:
    """Revoke or reissue a link; whoever holds the old one leaves the room at once."""
    require_staff(request)
    session_id = path_id(request)
    data = await read_json(request, ParticipantRef)
    async with transaction(request) as db:
        session = await bookings.load_session(db, session_id)
        await change(db, session, data.participant_id)
        view = with_links(request, session)
    await request.app.state.room_sockets.end({data.participant_id: reason})  # on other nodes: their sweep
    return ok(view)


async def revoke(request: Request) -> Response:
    """Revoke one participant's join link."""
    return await _change_link(request, invites.revoke, "revoked")


async def reissue(request: Request) -> Response:
    """Give one participant a new join link (older ones stop working)."""
    return await _change_link(request, invites.reissue, "reissued")


async def schedule(request: Request) -> Response:
    """The office's sessions on ?date=YYYY-MM-DD (default today) for ?span=day or week."""
    require_staff(request)
    settings = request.app.state.settings
    today = utcnow().astimezone(ZoneInfo(settings.timezone)).date()
    day = query_param(request, "date", parse_date, today)
    span = query_param(request, "span", lambda v: {"day": "day", "week": "week"}[v], "day")
    first, last = calendar.local_span(day, span, settings.timezone)
    async with transaction(request) as db:
        return ok({"from": first.isoformat(), "to": last.isoformat(),
                   "sessions": await calendar.office_schedule(db, first, last)})


async def list_outbox(request: Request) -> Response:
    """Notifications, newest first; ?status=failed shows failed deliveries."""
    require_staff(request)
    status = query_param(request, "status", str)
    session_id = query_param(request, "session_id", parse_count)
    async with transaction(request) as db:
        return ok(await outbox.list_messages(db, status=status, session_id=session_id))


async def retry_outbox(request: Request) -> Response:
    """Queue a failed notification again."""
    require_staff(request)
    message_id = path_id(request)
    async with transaction(request) as db:
        result = await outbox.retry(db, message_id)
    request.app.state.deliverer.kick()
    return ok(result)


routes = [
    ApiRoute("/api/scheduling/search", search, methods=["POST"], body=SearchIn, tag="scheduling"),
    ApiRoute("/api/sessions", book, methods=["POST"], body=BookingIn, tag="scheduling"),
    ApiRoute("/api/sessions/{id}", get_session, methods=["GET"], tag="scheduling"),
    ApiRoute("/api/sessions/{id}/reschedule", reschedule, methods=["POST"], body=RescheduleIn, tag="scheduling"),
    ApiRoute("/api/sessions/{id}/cancel", cancel, methods=["POST"], body=CancelIn, tag="scheduling"),
    ApiRoute("/api/sessions/{id}/replace", replace, methods=["POST"], body=ReplaceIn, tag="scheduling"),
    ApiRoute("/api/sessions/{id}/revoke", revoke, methods=["POST"], body=ParticipantRef, tag="scheduling"),
    ApiRoute("/api/sessions/{id}/reissue", reissue, methods=["POST"], body=ParticipantRef, tag="scheduling"),
    ApiRoute("/api/schedule", schedule, methods=["GET"], tag="calendar"),
    ApiRoute("/api/outbox", list_outbox, methods=["GET"], tag="notifications"),
    ApiRoute("/api/outbox/{id}/retry", retry_outbox, methods=["POST"], tag="notifications"),
]
