"""Sessions as the office and the participants see them: booking rules from the settings,
personal join links, and a participant's invitation. Shared by the JSON routes and the pages."""
from __future__ import annotations

from typing import Any

from starlette.requests import Request

from disputes.models import Dispute
from scheduling import bookings, invites
from scheduling.models import MediationSession, Participant
from scheduling.rules import Rules
from server.config import Settings
from server.database import iso_utc, utcnow


def rules(request: Request) -> Rules:
    """The office's booking rules from the settings."""
    settings: Settings = request.app.state.settings
    return Rules(gap_min=settings.booking_gap_min, notice_min=settings.booking_notice_min,
                 horizon_days=settings.booking_horizon_days, timezone=settings.timezone)



def link_for(request: Request, session: MediationSession, participant: Participant) -> str:
    """A participant's personal join link."""
    state = request.app.state
    return invites.participant_link(
        state.tokens, state.settings.base_url, state.settings.invite_grace_s, session, participant
    )



def with_links(request: Request, session: MediationSession) -> dict[str, Any]:
    """A session's view for staff: every participant with their personal join link."""
    data = bookings.session_to_dict(session)
    for view, participant in zip(data["participants"], session.participants):
        view["join_url"] = link_for(request, session, participant)
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
