"""Recording outcomes, parties confirming agreements, follow-up visits. Plain data out."""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from disputes.models import Dispute
from disputes.status import Status, check_move
from foundation.database import iso_utc, utcnow
from foundation.errors import Conflict, Forbidden, Invalid, NotFound
from outcomes import agreements
from outcomes.models import Confirmation, FollowUp, Outcome
from outcomes.schemas import ConfirmIn, FollowUpIn, Kind, OutcomeIn
from scheduling.models import MediationSession, Participant

DISPUTE_AFTER = {
    Kind.AGREEMENT: Status.RESOLVED,
    Kind.NO_AGREEMENT: Status.FAILED,
    Kind.REFERRED: Status.REFERRED,
    Kind.ADJOURNED: Status.SCHEDULED,
}


async def record(
    db: AsyncSession, session_id: int, data: OutcomeIn, *, staff_id: int | None, now: dt.datetime,
    follow_up_days: tuple[int, ...],
) -> dict[str, Any]:
    """Record a session's outcome, move the dispute on, and plan follow-ups after an agreement."""
    session = await db.get(MediationSession, session_id)
    if session is None:
        raise NotFound("no session with id {session_id}", session_id=session_id)
    if session.status == "cancelled":
        raise Conflict("a cancelled session has no outcome")
    if await db.scalar(select(Outcome.id).where(Outcome.session_id == session_id)) is not None:
        raise Conflict("this session's outcome is already recorded")
    dispute = await db.get(Dispute, session.dispute_id)
    assert dispute is not None
    if data.kind == Kind.AGREEMENT and (blanks := await agreements.blanks_left(db, dispute.office_id, dispute.dispute_type, data.terms)):
        raise Invalid("fill in the agreement's blanks first: {blanks}", field="terms", blanks="、".join(blanks))
    if dispute.status == Status.SCHEDULED:
        dispute.status = check_move(dispute.status, Status.IN_MEDIATION)
    dispute.status = check_move(dispute.status, DISPUTE_AFTER[data.kind])
    session.status = "ended"
    outcome = Outcome(
        session_id=session_id, dispute_id=dispute.id, kind=data.kind, summary=data.summary, terms=data.terms,
        referral_to=data.referral_to or "", referral_reason=data.referral_reason, recorded_by=staff_id,
    )
    db.add(outcome)
    await db.flush()
    if data.kind == Kind.AGREEMENT:
        for days in follow_up_days:
            db.add(FollowUp(dispute_id=dispute.id, outcome_id=outcome.id, due_at=now + dt.timedelta(days=days)))
        await db.flush()
    return await view(db, outcome)


async def for_session(db: AsyncSession, session_id: int) -> Outcome:
    """A session's outcome; NotFound before one is recorded."""
    outcome = await db.scalar(select(Outcome).where(Outcome.session_id == session_id))
    if outcome is None:
        raise NotFound("no outcome has been recorded for this session yet")
    return outcome


async def view(db: AsyncSession, outcome: Outcome) -> dict[str, Any]:
    """The outcome with who confirmed and whether the agreement is complete."""
    parties = list(await db.scalars(
        select(Participant).where(Participant.session_id == outcome.session_id, Participant.kind == "party")
        .order_by(Participant.id)
    ))
    confirmations = {c.participant_id: c for c in await db.scalars(
        select(Confirmation).where(Confirmation.outcome_id == outcome.id)
    )}
    follow_ups = list(await db.scalars(select(FollowUp).where(FollowUp.outcome_id == outcome.id).order_by(FollowUp.due_at)))
    return {
        "id": outcome.id, "session_id": outcome.session_id, "dispute_id": outcome.dispute_id,
        "kind": outcome.kind, "summary": outcome.summary, "terms": outcome.terms,
        "referral_to": outcome.referral_to, "referral_reason": outcome.referral_reason,
        "recorded_at": iso_utc(outcome.recorded_at),
        "parties": [
            {"participant_id": p.id, "name": p.display_name,
             "confirmed_at": iso_utc(confirmations[p.id].confirmed_at) if p.id in confirmations else None}
            for p in parties
        ],
        "complete": outcome.kind == Kind.AGREEMENT and bool(parties) and all(p.id in confirmations for p in parties),
        "follow_ups": [follow_up_view(f) for f in follow_ups],
    }


async def confirm(
    db: AsyncSession, session: MediationSession, participant: Participant, data: ConfirmIn, *, ip: str, user_agent: str,
) -> dict[str, Any]:
    """A party confirms the agreement from their own link (typed name, ticked box)."""
    if participant.kind != "party":
        raise Forbidden("only the parties confirm an agreement")
    outcome = await for_session(db, session.id)
    if outcome.kind != Kind.AGREEMENT:
        raise Conflict("this session did not end in an agreement")
    if " ".join(data.typed_name.split()) != " ".join(participant.display_name.split()):
        raise Invalid("type your name exactly as it appears on the agreement", field="typed_name")
    exists = await db.scalar(select(Confirmation.id).where(
        Confirmation.outcome_id == outcome.id, Confirmation.participant_id == participant.id))
    if exists is not None:
        raise Conflict("you have already confirmed this agreement")
    db.add(Confirmation(outcome_id=outcome.id, participant_id=participant.id, typed_name=data.typed_name,
                        ip_address=ip[:64], user_agent=user_agent[:400]))
    await db.flush()
    return await view(db, outcome)


def follow_up_view(f: FollowUp) -> dict[str, Any]:
    """The view of a follow-up."""
    return {"id": f.id, "dispute_id": f.dispute_id, "due_at": iso_utc(f.due_at), "status": f.status,
            "note": f.note, "done_at": iso_utc(f.done_at), "overdue": f.status == "pending" and f.due_at < utcnow()}


async def follow_ups(
    db: AsyncSession, *, overdue_at: dt.datetime | None = None, pending: bool = False,
) -> list[dict[str, Any]]:
    """Follow-ups with their dispute's title, soonest first; with overdue_at, only pending ones
    due before it; with pending, only those not yet done."""
    query = select(FollowUp, Dispute.title).join(Dispute, Dispute.id == FollowUp.dispute_id).order_by(FollowUp.due_at)
    if overdue_at is not None:
        query = query.where(FollowUp.status == "pending", FollowUp.due_at < overdue_at)
    if pending:
        query = query.where(FollowUp.status == "pending")
    return [{**follow_up_view(f), "title": title} for f, title in await db.execute(query)]


async def record_follow_up(db: AsyncSession, follow_up_id: int, data: FollowUpIn, now: dt.datetime) -> dict[str, Any]:
    """What the visit found: kept, or relapsed (which reopens the dispute)."""
    follow_up = await db.get(FollowUp, follow_up_id)
    if follow_up is None:
        raise NotFound("no follow-up with id {follow_up_id}", follow_up_id=follow_up_id)
    if follow_up.status != "pending":
        raise Conflict("this follow-up was already recorded as {status}", status=follow_up.status)
    follow_up.status, follow_up.note, follow_up.done_at = data.result, data.note, now
    dispute = await db.get(Dispute, follow_up.dispute_id)
    assert dispute is not None
    if data.result == "relapsed" and dispute.status != Status.REGISTERED:
        dispute.status = check_move(dispute.status, Status.REGISTERED)
    elif data.result == "kept" and dispute.status == Status.RESOLVED:
        dispute.status = check_move(dispute.status, Status.FOLLOWED_UP)
    await db.flush()
    return follow_up_view(follow_up)
