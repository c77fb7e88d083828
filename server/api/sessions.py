"""Staff routes for slot search, bookings and invitations."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from scheduling import bookings, invites
from scheduling.models import MediationSession
from scheduling.schemas import BookingIn, CancelIn, ReplaceIn, RescheduleIn, SearchIn
from server.accounts import StaffUser
from server.auth import require_staff
from server.database import utcnow
from server.http import ApiRoute, ok, path_id, read_json, transaction


def rules(request: Request) -> bookings.Rules:
    """The office's booking rules from the settings."""
    settings = request.app.state.settings
    return bookings.Rules(gap_min=settings.booking_gap_min, timezone=settings.timezone)


def with_links(request: Request, session: MediationSession) -> dict[str, Any]:
    """A session's view for staff: every participant with their personal join link."""
    state = request.app.state
    data = bookings.session_to_dict(session)
    for view, participant in zip(data["participants"], session.participants):
        token = invites.link_token(state.tokens, session, participant, state.settings.invite_grace_s)
        view["join_url"] = invites.join_url(state.settings.base_url, token)
    return data


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
        result = await bookings.book(
            db, data, rules(request), staff_id=staff.id, office_id=staff.office_id,
            host_name=user.display_name if user else "",
        )
        session = await bookings.load_session(db, result["id"])
        return ok(with_links(request, session), 201)


async def get_session(request: Request) -> Response:
    """One session with its participants and their join links."""
    require_staff(request)
    async with transaction(request) as db:
        return ok(with_links(request, await bookings.load_session(db, path_id(request))))


async def reschedule(request: Request) -> Response:
    """Move a session, keeping its panel."""
    require_staff(request)
    session_id = path_id(request)
    data = await read_json(request, RescheduleIn)
    async with transaction(request) as db:
        await bookings.reschedule(db, session_id, data, rules(request))
        return ok(with_links(request, await bookings.load_session(db, session_id)))


async def cancel(request: Request) -> Response:
    """Cancel a session with a reason."""
    require_staff(request)
    session_id = path_id(request)
    data = await read_json(request, CancelIn)
    async with transaction(request) as db:
        return ok(await bookings.cancel(db, session_id, data.reason))


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
        return ok(with_links(request, await bookings.load_session(db, session_id)))


async def revoke(request: Request) -> Response:
    """Revoke one participant's join link."""
    require_staff(request)
    session_id = path_id(request)
    data = await read_json(request, ParticipantRef)
    async with transaction(request) as db:
        session = await bookings.load_session(db, session_id)
        await invites.revoke(db, session, data.participant_id)
        return ok(with_links(request, session))


async def reissue(request: Request) -> Response:
    """Give one participant a new join link (older ones stop working)."""
    require_staff(request)
    session_id = path_id(request)
    data = await read_json(request, ParticipantRef)
    async with transaction(request) as db:
        session = await bookings.load_session(db, session_id)
        await invites.reissue(db, session, data.participant_id)
        return ok(with_links(request, session))


routes = [
    ApiRoute("/api/scheduling/search", search, methods=["POST"], body=SearchIn, tag="scheduling"),
    ApiRoute("/api/sessions", book, methods=["POST"], body=BookingIn, tag="scheduling"),
    ApiRoute("/api/sessions/{id}", get_session, methods=["GET"], tag="scheduling"),
    ApiRoute("/api/sessions/{id}/reschedule", reschedule, methods=["POST"], body=RescheduleIn, tag="scheduling"),
    ApiRoute("/api/sessions/{id}/cancel", cancel, methods=["POST"], body=CancelIn, tag="scheduling"),
    ApiRoute("/api/sessions/{id}/replace", replace, methods=["POST"], body=ReplaceIn, tag="scheduling"),
    ApiRoute("/api/sessions/{id}/revoke", revoke, methods=["POST"], body=ParticipantRef, tag="scheduling"),
    ApiRoute("/api/sessions/{id}/reissue", reissue, methods=["POST"], body=ParticipantRef, tag="scheduling"),
]
