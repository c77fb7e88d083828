"""Personal join links: one person, one role, one session; expiring and revocable."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from accounts.models import StaffUser
from audit.log import set_actor
from experts.models import Expert
from foundation.database import utcnow
from foundation.errors import Forbidden, Gone, NotFound
from foundation.tokens import TokenSigner
from scheduling.models import MediationSession, Participant


def link_token(tokens: TokenSigner, session: MediationSession, participant: Participant, grace_s: int) -> str:
    """The participant's current join token; it expires at the session's end plus the grace."""
    return tokens.invite(
        session.id, participant.id, participant.role,
        session.end + dt.timedelta(seconds=grace_s), participant.link_version,
    )


def agreement_link(
    tokens: TokenSigner, base_url: str, session: MediationSession, participant: Participant, until: dt.datetime
) -> str:
    """A party's link to read and confirm the agreement, valid until `until` (past the session's end)."""
    token = tokens.invite(session.id, participant.id, participant.role, until, participant.link_version)
    return f"{join_url(base_url, token)}/agreement"


def join_url(base_url: str, token: str) -> str:
    """The address a participant opens."""
    return f"{base_url}/join/{token}"


def participant_link(
    tokens: TokenSigner, base_url: str, grace_s: int, session: MediationSession, participant: Participant
) -> str:
    """The participant's current personal join link."""
    return join_url(base_url, link_token(tokens, session, participant, grace_s))


async def open_invite(
    db: AsyncSession, tokens: TokenSigner, token: str, *, session_id: int | None = None,
    now: dt.datetime | None = None,
) -> tuple[MediationSession, Participant]:
    """The session and participant a token stands for, if it still opens them.

    Refused: tampered (401), expired (410), for another session than `session_id` (403),
    revoked or replaced by a newer link, or its holder's expert or staff account disabled (403),
    cancelled session (410).
    """
    invite = tokens.read_invite(token, now or utcnow())
    if session_id is not None and invite.session_id != session_id:
        raise Forbidden("this invitation is for another session")
    participant = await db.get(Participant, invite.participant_id)
    if participant is None or participant.session_id != invite.session_id:
        raise NotFound("this invitation no longer exists")
    if participant.role != invite.role:
        raise Forbidden("this invitation is not valid for that role")
    if participant.revoked_at is not None or participant.status in ("replaced", "removed"):
        raise Forbidden("this invitation has been revoked")
    if participant.link_version != invite.version:
        raise Forbidden("this invitation was replaced by a newer link")
    holder = await db.get(Expert, participant.expert_id) if participant.expert_id is not None else \
        await db.get(StaffUser, participant.staff_id) if participant.staff_id is not None else None
    if holder is not None and not holder.active:
        raise Forbidden("the account this invitation belongs to is disabled")
    session = await db.get(MediationSession, invite.session_id)
    assert session is not None  # participant rows cascade with their session
    if session.status == "cancelled":
        raise Gone("this session has been cancelled")
    set_actor(db, f"participant:{participant.id}", office_id=session.office_id)
    return session, participant


async def revoke(db: AsyncSession, session: MediationSession, participant_id: int) -> Participant:
    """Revoke a participant's link."""
    participant = _find(session, participant_id)
    participant.revoked_at = utcnow()
    await db.flush()
    return participant


async def reissue(db: AsyncSession, session: MediationSession, participant_id: int) -> Participant:
    """A new link for a participant; every older link stops working."""
    participant = _find(session, participant_id)
    if participant.status in ("replaced", "removed"):
        raise Forbidden("this participant was {status}", status=participant.status)
    participant.link_version += 1
    participant.revoked_at = None
    await db.flush()
    return participant


def _find(session: MediationSession, participant_id: int) -> Participant:
    for participant in session.participants:
        if participant.id == participant_id:
            return participant
    raise NotFound("no participant {participant_id} in session {session_id}", participant_id=participant_id, session_id=session.id)


def room_opens_at(session: MediationSession, open_before_s: int) -> dt.datetime:
    """When the room opens by itself (the host may open it earlier)."""
    return session.start - dt.timedelta(seconds=open_before_s)


def room_is_open(session: MediationSession, now: dt.datetime, open_before_s: int, close_after_s: int) -> bool:
    """Whether participants may be in the room now: from shortly before the start (or since the
    host opened it) until shortly after the end (or until it was closed)."""
    if session.room_closed_at is not None and now >= session.room_closed_at:
        return False
    if now > session.end + dt.timedelta(seconds=close_after_s):
        return False
    return now >= room_opens_at(session, open_before_s) or (session.room_opened_at is not None and now >= session.room_opened_at)


async def ended_links(db: AsyncSession, admitted: dict[int, int]) -> dict[int, str]:
    """Of these participants (each with the link version they came into their room with), those
    who may no longer be there, and why: their link revoked or replaced by a newer one, removed
    or replaced on the panel, their expert or staff account disabled, or the session cancelled."""
    if not admitted:
        return {}
    rows = await db.execute(
        select(Participant.id, Participant.link_version, Participant.revoked_at, Participant.status,
               MediationSession.status, Expert.active, StaffUser.active)
        .join(MediationSession, MediationSession.id == Participant.session_id)
        .outerjoin(Expert, Expert.id == Participant.expert_id)
        .outerjoin(StaffUser, StaffUser.id == Participant.staff_id)
        .where(Participant.id.in_(list(admitted)))
    )
    found = {participant_id: "revoked" for participant_id in admitted}  # a row that is gone: its link too
    for participant_id, version, revoked_at, status, session_status, expert_active, staff_active in rows:
        del found[participant_id]
        if revoked_at is not None or status in ("replaced", "removed"):
            found[participant_id] = "revoked"
        elif version != admitted[participant_id]:
            found[participant_id] = "reissued"
        elif expert_active is False or staff_active is False:
            found[participant_id] = "account_disabled"
        elif session_status == "cancelled":
            found[participant_id] = "cancelled"
    return found
