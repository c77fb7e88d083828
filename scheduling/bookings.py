"""Booking, rescheduling, cancelling sessions and replacing experts, without double bookings.

Every change that gives an expert time runs in one transaction that first locks the experts'
rows (SELECT ... FOR UPDATE on PostgreSQL; on SQLite every transaction already holds the
database's write lock from BEGIN IMMEDIATE), then checks their sessions, then writes. Two
staff members booking the same expert at once are therefore serialized, and the second sees
the first's session.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from disputes.models import Dispute
from disputes.status import Status, check_move
from experts.models import Expert
from foundation.database import iso_utc, utcnow
from foundation.errors import Conflict, Forbidden, Invalid, NotFound
from scheduling.loading import busy_times, load_candidates
from scheduling.models import ACTIVE_STATES, HOLDING_STATES, MediationSession, Participant
from scheduling.panel import Panel, Seat, default_panel
from scheduling.rules import Rules, deciding_span, earliest_start, expert_problem, session_problem, window_end
from scheduling.schemas import BookingIn, RescheduleIn, SearchIn
from scheduling.slots import Search, find_slots

# A slot the search offers can still be booked this long afterwards: the search asks for this much
# more notice than booking does.
OFFER_HOLD_MIN = 10


def participant_to_dict(p: Participant) -> dict[str, Any]:
    """The view of a participant (without their link)."""
    return {
        "id": p.id, "kind": p.kind, "role": p.role, "display_name": p.display_name,
        "expert_id": p.expert_id, "party_id": p.party_id, "email": p.email, "seat": p.seat,
        "status": p.status, "revoked": p.revoked_at is not None,
        "responded_at": iso_utc(p.responded_at),
    }


def session_to_dict(s: MediationSession) -> dict[str, Any]:
    """The view of a session with its participants."""
    return {
        "id": s.id, "dispute_id": s.dispute_id, "start": iso_utc(s.start), "end": iso_utc(s.end),
        "location_kind": s.location_kind, "location": s.location, "status": s.status, "standing": s.standing,
        "cancel_reason": s.cancel_reason, "sequence": s.sequence, "panel": s.panel,
        "participants": [participant_to_dict(p) for p in s.participants],
    }


async def load_session(db: AsyncSession, session_id: int) -> MediationSession:
    """The session with its participants; NotFound otherwise."""
    session = await db.get(MediationSession, session_id)
    if session is None:
        raise NotFound("no session with id {session_id}", session_id=session_id)
    return session


async def _lock_experts(db: AsyncSession, expert_ids: list[int], *, with_availability: bool) -> dict[int, Expert]:
    query = select(Expert).where(Expert.id.in_(sorted(expert_ids))).order_by(Expert.id).with_for_update()
    if with_availability:
        query = query.options(selectinload(Expert.windows), selectinload(Expert.overrides))
    rows = await db.scalars(query)
    experts = {e.id: e for e in rows}
    missing = sorted(set(expert_ids) - set(experts))
    if missing:
        raise NotFound("no expert with id {expert_id}", expert_id=missing[0], field="experts")
    return experts


async def _check_experts(
    db: AsyncSession, expert_ids: list[int], start: dt.datetime, end: dt.datetime, rules: Rules,
    *, check_availability: bool, exclude_session: int | None = None, now: dt.datetime | None = None,
) -> dict[int, Expert]:
    """Lock the experts and refuse (409) if the time or any expert breaks a booking rule."""
    problem = session_problem(start, end, now or utcnow(), rules, check_notice=check_availability)
    if problem is not None:
        raise Conflict([problem], field="start")
    experts = await _lock_experts(db, expert_ids, with_availability=check_availability)
    first, last = deciding_span(start, end, rules, check_caps=check_availability)
    busy = await busy_times(db, expert_ids, first, last, exclude_session=exclude_session)
    problems = [
        problem for expert_id in expert_ids
        if (problem := expert_problem(
            experts[expert_id], busy.get(expert_id, []), start, end, rules, check_availability=check_availability,
        ))
    ]
    if problems:
        raise Conflict(problems, field="experts")
    return experts


async def search_slots(db: AsyncSession, data: SearchIn, now: dt.datetime, rules: Rules) -> list[dict[str, Any]]:
    """Candidate slots for a panel, with the experts each would get."""
    panel = data.panel
    if panel is None:
        dispute_type = None
        if data.dispute_id is not None:
            dispute = await db.get(Dispute, data.dispute_id)
            if dispute is None:
                raise NotFound("no dispute with id {dispute_id}", dispute_id=data.dispute_id, field="dispute_id")
            dispute_type = dispute.dispute_type
        panel = default_panel(dispute_type)
    # What the search offers stays bookable while the clerk chooses (the notice counts from then).
    earliest = earliest_start(now, rules) + dt.timedelta(minutes=OFFER_HOLD_MIN)
    first = max(data.window_start or now, earliest)
    last = min(data.window_end or first + dt.timedelta(days=14), window_end(now, rules))
    if data.window_end is not None and data.window_start is not None and data.window_end <= data.window_start:
        raise Invalid("the window must end after it starts", field="window_end")
    if last <= first:
        return []
    candidates = await load_candidates(
        db, first, last, roles={s.role for s in panel.seats},
        pinned={s.expert_id for s in panel.seats if s.expert_id is not None},
    )
    search = Search(
        panel=panel, window_start=first, window_end=last, now=now,
        duration_min=data.duration_min, step_min=data.step_min,
        gap_min=rules.gap_min, min_notice_min=rules.notice_min + OFFER_HOLD_MIN, limit=data.limit, timezone=rules.timezone,
        party_busy=[(int(s.start.timestamp()) // 60, -(-int(s.end.timestamp()) // 60)) for s in data.party_busy],
    )
    names = {e.id: (e.name, e.role) for e in await db.scalars(select(Expert).where(Expert.active))}

    def person(expert_id: int | None) -> dict[str, Any] | None:
        if expert_id is None:
            return None
        name, role = names[expert_id]
        return {"id": expert_id, "name": name, "role": role}

    return [
        {
            "start": iso_utc(slot.start), "end": iso_utc(slot.end), "match": slot.match,
            "seats": [
                {
                    "seat": c.seat, "role": c.role, "optional": c.optional, "match": c.match,
                    "expert": person(c.expert_id), "alternates": [person(a) for a in c.alternates],
                }
                for c in slot.seats
            ],
            "panel": panel.model_dump(mode="json"),
        }
        for slot in find_slots(search, candidates)
    ]


async def book(
    db: AsyncSession, data: BookingIn, rules: Rules, *, staff_id: int | None, office_id: int | None,
    host_name: str, now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Book a session atomically; Conflict (409) if any expert cannot take the time."""
    dispute = await db.get(Dispute, data.dispute_id)
    if dispute is None:
        raise NotFound("no dispute with id {dispute_id}", dispute_id=data.dispute_id, field="dispute_id")
    ids = [e.expert_id for e in data.experts]
    experts = await _check_experts(
        db, ids, data.start, data.end, rules, check_availability=not data.override_availability, now=now,
    )
    if dispute.status != Status.SCHEDULED:
        dispute.status = check_move(dispute.status, Status.SCHEDULED)
    session = MediationSession(
        dispute_id=dispute.id, office_id=office_id or dispute.office_id, start=data.start, end=data.end,
        location_kind=data.location_kind, location=data.location,
        status="pending" if data.require_confirmation else "confirmed",
        panel=(data.panel.model_dump(mode="json") if data.panel else {}), created_by=staff_id,
    )
    participants = [
        Participant(kind="host", role="host", display_name=data.host_name or host_name, email=data.host_email,
                    status="accepted", staff_id=staff_id)
    ]
    participants += [
        Participant(
            kind="expert", role=experts[seat.expert_id].role, display_name=experts[seat.expert_id].name,
            expert_id=seat.expert_id, email=experts[seat.expert_id].email, phone=experts[seat.expert_id].phone,
            seat=seat.seat if seat.seat is not None else n,
        )
        for n, seat in enumerate(data.experts)
    ]
    participants += [
        Participant(kind="party", role="party", display_name=p.name, party_id=p.id, email=p.email, phone=p.phone)
        for p in dispute.parties
    ]
    if data.onsite_names:
        participants.append(Participant(kind="onsite", role="onsite", display_name="、".join(data.onsite_names)))
    participants += [
        Participant(kind="observer", role="observer", display_name=o.name, email=o.email) for o in data.observers
    ]
    session.participants = participants
    db.add(session)
    await db.flush()
    return session_to_dict(session)


def _holding_experts(session: MediationSession) -> list[Participant]:
    return [p for p in session.participants if p.kind == "expert" and p.status in HOLDING_STATES]


def _require_active(session: MediationSession) -> None:
    if session.status not in ACTIVE_STATES:
        raise Conflict("session {session_id} is {status}", session_id=session.id, status=session.status, field="status")


async def reschedule(db: AsyncSession, session_id: int, data: RescheduleIn, rules: Rules) -> dict[str, Any]:
    """Move a session, keeping its panel; Conflict naming whoever cannot make the new time."""
    session = await load_session(db, session_id)
    _require_active(session)
    end = data.end or data.start + (session.end - session.start)
    if end <= data.start:
        raise Invalid("end must be after start", field="end")
    ids = [p.expert_id for p in _holding_experts(session) if p.expert_id is not None]
    await _check_experts(
        db, ids, data.start, end, rules, check_availability=not data.override_availability,
        exclude_session=session.id,
    )
    session.start, session.end = data.start, end
    session.sequence += 1
    await db.flush()
    return session_to_dict(session)


async def cancel(db: AsyncSession, session_id: int, reason: str) -> dict[str, Any]:
    """Cancel a session with a reason; the dispute returns to the register if nothing else is booked."""
    session = await load_session(db, session_id)
    _require_active(session)
    session.status = "cancelled"
    session.cancel_reason = reason
    session.sequence += 1
    dispute = await db.get(Dispute, session.dispute_id)
    others = await db.scalar(
        select(MediationSession.id).where(
            MediationSession.dispute_id == session.dispute_id,
            MediationSession.status.in_(ACTIVE_STATES),
            MediationSession.id != session.id,
        )
    )
    if dispute is not None and dispute.status == Status.SCHEDULED and others is None:
        dispute.status = Status.REGISTERED
    await db.flush()
    return session_to_dict(session)


def _expert_participant(session: MediationSession, participant_id: int) -> Participant:
    for p in session.participants:
        if p.id == participant_id:
            if p.kind != "expert":
                raise Invalid("only an expert's seat can be given to another expert", field="participant_id")
            return p
    raise NotFound("no participant {participant_id} in session {session_id}", participant_id=participant_id, session_id=session.id, field="participant_id")


async def replacement_options(db: AsyncSession, session_id: int, participant_id: int, rules: Rules) -> list[dict[str, Any]]:
    """Experts of the same role who are free for the whole session, best first."""
    session = await load_session(db, session_id)
    leaving = _expert_participant(session, participant_id)
    on_panel = {p.expert_id for p in session.participants if p.kind == "expert"}
    candidates = await load_candidates(
        db, session.start, session.end, roles={leaving.role}, pinned=set(), exclude_session=None
    )
    search = Search(
        panel=Panel(seats=[Seat(role=leaving.role)]), window_start=session.start, window_end=session.end,
        now=session.start, duration_min=int((session.end - session.start).total_seconds() // 60),
        step_min=1, gap_min=rules.gap_min, min_notice_min=0,
        limit=1, alternates=50, timezone=rules.timezone,
    )
    slots = find_slots(search, [c for c in candidates if c.expert_id not in on_panel])
    if not slots or slots[0].seats[0].expert_id is None:
        return []
    ranked = [slots[0].seats[0].expert_id, *slots[0].seats[0].alternates]
    experts = {e.id: e for e in await db.scalars(select(Expert).where(Expert.id.in_(ranked)))}
    return [{"id": i, "name": experts[i].name, "role": experts[i].role, "organisation": experts[i].organisation} for i in ranked]


async def replace_expert(
    db: AsyncSession, session_id: int, participant_id: int, expert_id: int, rules: Rules,
    *, check_availability: bool = True,
) -> dict[str, Any]:
    """Give a leaving expert's seat to another expert (their link is revoked)."""
    session = await load_session(db, session_id)
    _require_active(session)
    leaving = _expert_participant(session, participant_id)
    if leaving.status not in HOLDING_STATES and leaving.status != "declined":
        raise Conflict("that seat was already {status}", status=leaving.status, field="participant_id")
    if any(p.expert_id == expert_id for p in _holding_experts(session)):
        raise Conflict("that expert is already on this panel", field="expert_id")
    experts = await _check_experts(
        db, [expert_id], session.start, session.end, rules, check_availability=check_availability,
        exclude_session=None,
    )
    new = experts[expert_id]
    leaving.status = "replaced"
    leaving.revoked_at = utcnow()
    session.participants.append(Participant(
        kind="expert", role=new.role, display_name=new.name, expert_id=new.id, email=new.email,
        phone=new.phone, seat=leaving.seat,
    ))
    await db.flush()
    return session_to_dict(session)


async def respond(db: AsyncSession, session_id: int, participant_id: int, accept: bool) -> dict[str, Any]:
    """An expert accepts or declines; a pending session is confirmed once every expert accepted."""
    session = await load_session(db, session_id)
    _require_active(session)
    participant = next((p for p in session.participants if p.id == participant_id), None)
    if participant is None or participant.kind != "expert":
        raise Forbidden("only an invited expert can accept or decline")
    if participant.status not in ("invited", "accepted", "declined"):
        raise Conflict("your seat was {status}", status=participant.status)
    participant.status = "accepted" if accept else "declined"
    participant.responded_at = utcnow()
    if session.status == "pending" and all(p.status == "accepted" for p in _holding_experts(session)) \
            and not any(p.status == "declined" for p in session.participants if p.kind == "expert"):
        session.status = "confirmed"
    await db.flush()
    return session_to_dict(session)
