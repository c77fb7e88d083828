"""Sessions as the office and the participants see them: booking rules from the settings,
personal join links, and a participant's invitation. Shared by the JSON routes and the pages."""
from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request

from disputes.models import Dispute
from foundation.config import Settings
from foundation.database import iso_utc, utcnow
from scheduling import bookings, invites
from scheduling.models import MediationSession, Participant
from scheduling.rules import Rules


def rules(request: Request) -> Rules:
    """The office's booking rules from the settings."""
    settings: Settings = request.app.state.settings
    return Rules(gap_min=settings.booking_gap_min, notice_min=settings.booking_notice_min,
                 horizon_days=settings.booking_horizon_days, timezone=settings.timezone)



def is_loopback(host: str | None) -> bool:
    """Whether only this computer can open an address on this host."""
    try:
        return host == "localhost" or ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def site_url(request: Request) -> str:
    """Where people reach this server, for the links and QR codes on a page: TIAOJIE_BASE_URL if
    set, else the address this request came in on (behind a trusted proxy its scheme is the
    proxy's X-Forwarded-Proto: uvicorn reads it), except a loopback address, which only this
    computer can open: then the address `tiaojie serve` prints for phones, if that is not one."""
    settings: Settings = request.app.state.settings
    if settings.base_url:
        return settings.base_url.rstrip("/")
    if is_loopback(request.url.hostname) and not is_loopback(urlsplit(settings.served_url).hostname):
        return settings.served_url.rstrip("/")
    return f"{request.url.scheme}://{request.url.netloc}"


def link_for(request: Request, session: MediationSession, participant: Participant, base: str | None = None) -> str:
    """A participant's personal join link, on this page's address (`site_url`) unless `base` is given."""
    state = request.app.state
    return invites.participant_link(
        state.tokens, base or site_url(request), state.settings.invite_grace_s, session, participant
    )



def with_links(request: Request, session: MediationSession) -> dict[str, Any]:
    """A session's view for staff: every participant with their personal join link."""
    data = bookings.session_to_dict(session)
    base = site_url(request)
    for view, participant in zip(data["participants"], session.participants):
        view["join_url"] = link_for(request, session, participant, base)
    return data



def invitation_view(
    session: MediationSession, participant: Participant, dispute: Dispute | None, settings: Settings
) -> dict[str, Any]:
    """What one participant may see of their session: time, when its room opens, panel by role, and themself."""
    return {
        "session": {
            "id": session.id, "start": iso_utc(session.start), "end": iso_utc(session.end),
            "status": session.status, "location_kind": session.location_kind, "location": session.location,
            "dispute_title": dispute.title if dispute else "",
        },
        "room": {
            "opens_at": iso_utc(invites.room_opens_at(session, settings.room_open_before_s)),
            "open": invites.room_is_open(session, utcnow(), settings.room_open_before_s, settings.room_close_after_s),
        },
        "you": bookings.participant_to_dict(participant),
        "panel": [
            {"role": p.role, "display_name": p.display_name}
            for p in session.participants
            if p.kind == "expert" and p.status in ("invited", "accepted")
        ],
    }
