"""Expert pool routes."""
from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from experts import service
from experts.schemas import SELF_EDITABLE, AvailabilityIn, ExpertIn, ExpertPatch
from foundation.database import utcnow
from foundation.errors import Invalid
from foundation.vocabulary import Role
from scheduling import calendar
from server.auth import require_expert_self_or_staff, require_pool_keeper, require_staff
from server.http import ApiRoute, ok, parse_date, path_id, query_param, read_json, transaction
from server.links import link_for, site_url

MAX_RANGE_DAYS = 62


def _bool(raw: str) -> bool:
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise ValueError(raw)


async def list_experts(request: Request) -> Response:
    """Experts in the pool; filter with ?role= and ?active=."""
    require_staff(request)
    role = query_param(request, "role", lambda r: Role(r).value)
    active = query_param(request, "active", _bool)
    async with transaction(request) as db:
        return ok(await service.list_experts(db, role=role, active=active))


async def create_expert(request: Request) -> Response:
    """Add an expert to the pool, serving ?offices (default the adding clerk's office)."""
    staff = require_pool_keeper(request)
    data = await read_json(request, ExpertIn)
    async with transaction(request) as db:
        return ok(await service.create_expert(db, data, office_id=staff.office_id), 201)


async def get_expert(request: Request) -> Response:
    """One expert (staff, or the expert themself)."""
    expert_id = path_id(request)
    require_expert_self_or_staff(request, expert_id)
    async with transaction(request) as db:
        return ok(await service.get_expert(db, expert_id))


async def update_expert(request: Request) -> Response:
    """Change an expert; an expert may change only their own profile fields."""
    expert_id = path_id(request)
    staff = require_expert_self_or_staff(request, expert_id, change=True)
    patch = await read_json(request, ExpertPatch)
    allowed = None if staff else SELF_EDITABLE
    async with transaction(request) as db:
        result = await service.update_expert(db, expert_id, patch, allowed=allowed)
    if patch.active is False:
        await request.app.state.room_sockets.check()  # their places in rooms end now (other nodes: their sweep)
    return ok(result)


async def get_availability(request: Request) -> Response:
    """An expert's weekly windows and date overrides."""
    expert_id = path_id(request)
    require_expert_self_or_staff(request, expert_id)
    async with transaction(request) as db:
        return ok(await service.get_availability(db, expert_id))


async def put_availability(request: Request) -> Response:
    """Replace an expert's weekly windows and date overrides."""
    expert_id = path_id(request)
    require_expert_self_or_staff(request, expert_id, change=True)
    data = await read_json(request, AvailabilityIn)
    async with transaction(request) as db:
        return ok(await service.set_availability(db, expert_id, data))


async def free_intervals(request: Request) -> Response:
    """Concrete free intervals (UTC) from ?from=YYYY-MM-DD to ?to=YYYY-MM-DD, bookings not removed."""
    expert_id = path_id(request)
    require_expert_self_or_staff(request, expert_id)
    today = dt.date.today()
    first = query_param(request, "from", parse_date, today)
    last = query_param(request, "to", parse_date, first + dt.timedelta(days=6))
    if last < first or (last - first).days > MAX_RANGE_DAYS:
        raise Invalid("'to' must be on or after 'from' and at most {days} days later", days=MAX_RANGE_DAYS, field="to")
    async with transaction(request) as db:
        expert = await service.load_expert(db, expert_id)
        intervals = service.free_intervals(expert, first, last)
    return ok([{"start": s.isoformat(), "end": e.isoformat()} for s, e in intervals])


async def sessions(request: Request) -> Response:
    """The expert's upcoming sessions, each with the expert's own join link."""
    expert_id = path_id(request)
    require_expert_self_or_staff(request, expert_id)
    async with transaction(request) as db:
        await service.load_expert(db, expert_id)
        return ok(await calendar.expert_sessions(
            db, expert_id, utcnow(), lambda s, p: link_for(request, s, p)
        ))


async def calendar_link(request: Request) -> Response:
    """The address of the expert's calendar subscription (ICS feed)."""
    expert_id = path_id(request)
    require_expert_self_or_staff(request, expert_id)
    async with transaction(request) as db:
        await service.load_expert(db, expert_id)  # one the asking office sees
    state = request.app.state
    token = state.tokens.calendar_feed(expert_id)
    return ok({"url": f"{site_url(request)}/calendar/{token}.ics"})


async def calendar_feed(request: Request) -> Response:
    """An expert's sessions as an ICS feed that a phone calendar can subscribe to."""
    state = request.app.state
    expert_id = state.tokens.read_calendar_feed(request.path_params["token"])
    async with transaction(request) as db:
        await service.load_expert(db, expert_id)
        body = await calendar.expert_feed(
            db, expert_id, utcnow() - dt.timedelta(days=30),
            urlsplit(state.settings.base_url).hostname or "tiaojie", state.settings.smtp_from,
        )
    return Response(body, media_type="text/calendar; charset=utf-8")


routes = [
    ApiRoute("/api/experts", list_experts, methods=["GET"], tag="experts"),
    ApiRoute("/api/experts", create_expert, methods=["POST"], body=ExpertIn, tag="experts"),
    ApiRoute("/api/experts/{id}", get_expert, methods=["GET"], tag="experts"),
    ApiRoute("/api/experts/{id}", update_expert, methods=["PATCH"], body=ExpertPatch, tag="experts"),
    ApiRoute("/api/experts/{id}/availability", get_availability, methods=["GET"], tag="experts"),
    ApiRoute("/api/experts/{id}/availability", put_availability, methods=["PUT"], body=AvailabilityIn, tag="experts"),
    ApiRoute("/api/experts/{id}/free", free_intervals, methods=["GET"], tag="experts"),
    ApiRoute("/api/experts/{id}/sessions", sessions, methods=["GET"], tag="calendar"),
    ApiRoute("/api/experts/{id}/calendar-link", calendar_link, methods=["GET"], tag="calendar"),
    Route("/calendar/{token}.ics", calendar_feed),
]
