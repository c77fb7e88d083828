"""Routes opened with a personal invite token (no login, no cookie, so no CSRF)."""
from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from disputes.models import Dispute
from foundation.errors import Forbidden
from scheduling import bookings, invites, notify
from server.http import ApiRoute, ok, transaction
from server.links import invitation_view, rules


async def show(request: Request) -> Response:
    """The invitation: who you are in which session."""
    async with transaction(request) as db:
        session, participant = await invites.open_invite(db, request.app.state.tokens, request.path_params["token"])
        return ok(invitation_view(session, participant, await db.get(Dispute, session.dispute_id), request.app.state.settings))


async def _respond(request: Request, accept: bool) -> Response:
    async with transaction(request) as db:
        session, participant = await invites.open_invite(db, request.app.state.tokens, request.path_params["token"])
        if participant.kind != "expert":
            raise Forbidden("only an invited expert can accept or decline")
        await bookings.respond(db, session.id, participant.id, accept)
        result: dict[str, Any] = invitation_view(session, participant, await db.get(Dispute, session.dispute_id), request.app.state.settings)
        if not accept:
            options = await bookings.replacement_options(db, session.id, participant.id, rules(request))
            result["replacements"] = options
            dispute = await db.get(Dispute, session.dispute_id)
            await notify.queue_decline_alert(
                db, session, participant, dispute_title=dispute.title if dispute else "",
                replacements=[o["name"] for o in options], settings=request.app.state.settings,
            )
    request.app.state.deliverer.kick()
    return ok(result)


async def accept(request: Request) -> Response:
    """An invited expert accepts."""
    return await _respond(request, True)


async def decline(request: Request) -> Response:
    """An invited expert declines; staff are alerted and offered replacements."""
    return await _respond(request, False)


routes = [
    ApiRoute("/api/join/{token}", show, methods=["GET"], tag="invitations"),
    ApiRoute("/api/join/{token}/accept", accept, methods=["POST"], tag="invitations"),
    ApiRoute("/api/join/{token}/decline", decline, methods=["POST"], tag="invitations"),
]
