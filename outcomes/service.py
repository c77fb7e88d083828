"""Recording outcomes, the documents they lead to and who signed them, follow-up visits. Plain data out."""
from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from disputes.models import Dispute
from disputes.status import Status, check_move
from foundation.config import Settings
from foundation.database import iso_utc, utcnow
from foundation.errors import Conflict, Invalid, NotFound
from outcomes import agreements, documents, signing
from outcomes.models import FollowUp, Outcome, SignDocument
from outcomes.schemas import AmendIn, FollowUpIn, Kind, OutcomeIn
from scheduling.models import MediationSession

DISPUTE_AFTER = {
    Kind.AGREEMENT: Status.RESOLVED,
    Kind.NO_AGREEMENT: Status.FAILED,
    Kind.REFERRED: Status.REFERRED,
    Kind.ADJOURNED: Status.SCHEDULED,
}


async def record(
    db: AsyncSession, session_id: int, data: OutcomeIn, *, staff_id: int | None, now: dt.datetime, settings: Settings,
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
        ctx = await documents.context(db, outcome, settings.office_name, settings.timezone)
        await signing.start_document(db, outcome.id, "agreement", await documents.agreement_text(db, ctx))
        for days in settings.follow_up_days:
            db.add(FollowUp(dispute_id=dispute.id, outcome_id=outcome.id, due_at=now + dt.timedelta(days=days)))
        await db.flush()
    return await view(db, outcome, settings)


async def for_session(db: AsyncSession, session_id: int) -> Outcome:
    """A session's outcome; NotFound before one is recorded."""
    outcome = await db.scalar(select(Outcome).where(Outcome.session_id == session_id))
    if outcome is None:
        raise NotFound("no outcome has been recorded for this session yet")
    return outcome


async def view(db: AsyncSession, outcome: Outcome, settings: Settings) -> dict[str, Any]:
    """The outcome with who has signed its agreement, and whether it is complete (signed by
    every party and the mediator, and sealed)."""
    follow_ups = list(await db.scalars(select(FollowUp).where(FollowUp.outcome_id == outcome.id).order_by(FollowUp.due_at)))
    papers = await paperwork(db, outcome, settings) if outcome.kind == Kind.AGREEMENT else {}
    agreement = papers.get("agreement")
    return {
        "id": outcome.id, "session_id": outcome.session_id, "dispute_id": outcome.dispute_id,
        "kind": outcome.kind, "summary": outcome.summary, "terms": outcome.terms,
        "referral_to": outcome.referral_to, "referral_reason": outcome.referral_reason,
        "recorded_at": iso_utc(outcome.recorded_at),
        "parties": [{"participant_id": p["participant_id"], "name": p["name"], "signed_at": p["signed_at"],
                     "typed_name_at": p["typed_name_at"]}
                    for p in (agreement["signers"] if agreement else []) if p["kind"] == "party"],
        "complete": bool(agreement and agreement["complete"]),
        "documents": papers,
        "judicial_deadline": iso_utc(documents.judicial_deadline(_effective(agreement))) if agreement and agreement["complete"] else None,
        "follow_ups": [follow_up_view(f) for f in follow_ups],
    }


def _effective(agreement: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(agreement["sealed_at"])


async def texts(db: AsyncSession, outcome: Outcome, settings: Settings) -> dict[str, tuple[SignDocument, str]]:
    """Each of the outcome's documents with its text as it reads now."""
    ctx = await documents.context(db, outcome, settings.office_name, settings.timezone)
    found = {d.kind: d for d in await db.scalars(select(SignDocument).where(SignDocument.outcome_id == outcome.id))}
    result: dict[str, tuple[SignDocument, str]] = {}
    if "agreement" in found:
        result["agreement"] = (found["agreement"], await documents.agreement_text(db, ctx))
    if "application" in found:
        effective = found["agreement"].sealed_at if "agreement" in found else None
        result["application"] = (found["application"], documents.application_text(
            dataclasses.replace(ctx, court=ctx.court or "（基层人民法院）"), effective or outcome.recorded_at))
    return result


async def paperwork(db: AsyncSession, outcome: Outcome, settings: Settings) -> dict[str, dict[str, Any]]:
    """Each document's text and who has signed it."""
    session = await db.get(MediationSession, outcome.session_id)
    assert session is not None
    return {kind: {**await signing.state(db, session, doc, text), "text": text}
            for kind, (doc, text) in (await texts(db, outcome, settings)).items()}


async def changed(db: AsyncSession, session_id: int, settings: Settings) -> list[str]:
    """After an edit that a document may show: any document whose text changed moves to a new
    version and voids its signatures, each signer told. The names of those told."""
    outcome = await db.scalar(select(Outcome).where(Outcome.session_id == session_id))
    if outcome is None:
        return []
    session = await db.get(MediationSession, session_id)
    dispute = await db.get(Dispute, outcome.dispute_id)
    assert session is not None and dispute is not None
    told: list[str] = []
    for doc, text in (await texts(db, outcome, settings)).values():
        told += await signing.text_changed(db, session, doc, text, office_name=settings.office_name, title=dispute.title)
    return told


async def judicial_deadlines(db: AsyncSession, dispute_id: int) -> list[dict[str, Any]]:
    """The deadlines to apply for judicial confirmation of a dispute's sealed agreements."""
    rows = await db.execute(select(Outcome.session_id, SignDocument.sealed_at).join(SignDocument, SignDocument.outcome_id == Outcome.id)
                            .where(Outcome.dispute_id == dispute_id, SignDocument.kind == "agreement",
                                   SignDocument.sealed_at.is_not(None)))
    return [{"session_id": session_id, "deadline": iso_utc(documents.judicial_deadline(sealed_at))}
            for session_id, sealed_at in rows if sealed_at is not None]


async def amend(db: AsyncSession, session_id: int, data: AmendIn, settings: Settings) -> dict[str, Any]:
    """Correct an agreement's terms or summary: any signature of the old text is void."""
    outcome = await for_session(db, session_id)
    if data.terms is not None:
        if outcome.kind != Kind.AGREEMENT:
            raise Conflict("only an agreement has terms")
        dispute = await db.get(Dispute, outcome.dispute_id)
        assert dispute is not None
        if blanks := await agreements.blanks_left(db, dispute.office_id, dispute.dispute_type, data.terms):
            raise Invalid("fill in the agreement's blanks first: {blanks}", field="terms", blanks="、".join(blanks))
        outcome.terms = data.terms
    if data.summary is not None:
        outcome.summary = data.summary
    await db.flush()
    voided = await changed(db, session_id, settings)
    return {**await view(db, outcome, settings), "voided": voided}


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
