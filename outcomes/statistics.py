"""Statistics over a date range: disputes, mediations, resolution rate, per type, office, expert."""
from __future__ import annotations

import csv
import datetime as dt
import io
from collections import defaultdict
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from disputes.models import Dispute
from experts.models import Expert, Office
from outcomes.models import Outcome
from scheduling.models import MediationSession, Participant
from scheduling.room_record import RoomEvent


def span(first: dt.date, last: dt.date, timezone: str) -> tuple[dt.datetime, dt.datetime]:
    """The instants from the start of `first` to the end of `last`, office time."""
    tz = ZoneInfo(timezone)
    return dt.datetime.combine(first, dt.time(), tz), dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tz)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


async def statistics(db: AsyncSession, first: dt.datetime, last: dt.datetime) -> dict[str, Any]:
    """Figures for disputes registered and sessions ended (with an outcome) in first..last.

    Plain column queries, with the range as a subquery (no long id lists, no ORM objects):
    a year of a city's disputes stays a fraction of a second (bench/reports.py).
    """
    in_range = (Dispute.created_at >= first) & (Dispute.created_at < last)
    disputes = (await db.execute(select(Dispute.id, Dispute.dispute_type, Dispute.office_id).where(in_range))).all()
    mediated_sessions = select(Outcome.session_id).where(Outcome.recorded_at >= first, Outcome.recorded_at < last)
    rows = (await db.execute(
        select(Outcome.kind, MediationSession.id, MediationSession.start, MediationSession.end,
               Dispute.dispute_type, Dispute.office_id)
        .join(MediationSession, MediationSession.id == Outcome.session_id)
        .join(Dispute, Dispute.id == Outcome.dispute_id)
        .where(Outcome.recorded_at >= first, Outcome.recorded_at < last)
    )).all()
    offices = {o.id: o.name for o in await db.scalars(select(Office))}
    resolved = sum(1 for row in rows if row.kind == "agreement")

    by_type: dict[str, dict[str, int]] = defaultdict(lambda: {"registered": 0, "mediated": 0, "resolved": 0})
    by_office: dict[str, dict[str, int]] = defaultdict(lambda: {"registered": 0, "mediated": 0, "resolved": 0})
    for dispute in disputes:
        by_type[dispute.dispute_type]["registered"] += 1
        by_office[offices.get(dispute.office_id or 0, "")]["registered"] += 1
    for row in rows:
        for bucket in (by_type[row.dispute_type], by_office[offices.get(row.office_id or 0, "")]):
            bucket["mediated"] += 1
            bucket["resolved"] += row.kind == "agreement"

    # Invited parties and experts of the mediated sessions, and how many never joined the room.
    came = exists().where(RoomEvent.session_id == Participant.session_id, RoomEvent.participant_id == Participant.id,
                          RoomEvent.kind == "join")
    invited, no_shows = (await db.execute(
        select(func.count(), func.coalesce(func.sum(case((came, 0), else_=1)), 0))
        .where(Participant.session_id.in_(mediated_sessions), Participant.kind.in_(["party", "expert"]),
               Participant.status.in_(["invited", "accepted"]))
    )).one()

    outcome_of = {row.id: row.kind for row in rows}
    hours = {row.id: (row.end - row.start).total_seconds() / 3600 for row in rows}
    experts = {e.id: e for e in (await db.execute(select(Expert.id, Expert.name, Expert.role))).all()}
    by_expert: dict[int, dict[str, Any]] = {}
    for expert_id, session_id in await db.execute(
        select(Participant.expert_id, Participant.session_id)
        .where(Participant.session_id.in_(mediated_sessions), Participant.kind == "expert",
               Participant.status.in_(["invited", "accepted"]), Participant.expert_id.is_not(None))
    ):
        if expert_id is None:
            continue
        expert = experts[expert_id]
        entry = by_expert.setdefault(expert_id, {
            "expert_id": expert_id, "name": expert.name, "role": expert.role,
            "sessions": 0, "hours": 0.0, "agreements": 0, "outcomes": {},
        })
        kind = outcome_of[session_id]
        entry["sessions"] += 1
        entry["hours"] += hours[session_id]
        entry["agreements"] += kind == "agreement"
        entry["outcomes"][kind] = entry["outcomes"].get(kind, 0) + 1
    for entry in by_expert.values():
        entry["hours"] = round(entry["hours"], 2)

    first_sessions = (await db.execute(
        select(Dispute.created_at, func.min(MediationSession.start))
        .join(MediationSession, MediationSession.dispute_id == Dispute.id)
        .where(in_range, MediationSession.status != "cancelled")
        .group_by(Dispute.id, Dispute.created_at)
    )).all()
    waits = [(start - created).total_seconds() / 86400 for created, start in first_sessions]
    return {
        "from": first.isoformat(), "to": last.isoformat(),
        "registered": len(disputes), "mediated": len(rows), "resolved": resolved,
        "resolution_rate": _rate(resolved, len(rows)),
        "by_type": dict(by_type), "by_office": dict(by_office),
        "by_expert": sorted(by_expert.values(), key=lambda e: (-e["sessions"], e["name"])),
        "average_days_to_first_session": round(sum(waits) / len(waits), 2) if waits else None,
        "no_show_rate": _rate(no_shows, invited),
    }


def to_csv(figures: dict[str, Any]) -> str:
    """The figures as CSV: one row per measure, then one per dispute type and per expert."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["measure", "key", "registered", "mediated", "resolved", "value"])
    for name in ("registered", "mediated", "resolved", "resolution_rate", "average_days_to_first_session", "no_show_rate"):
        writer.writerow([name, "", "", "", "", figures[name]])
    for group in ("by_type", "by_office"):
        for key, row in figures[group].items():
            writer.writerow([group, key, row["registered"], row["mediated"], row["resolved"], ""])
    for row in figures["by_expert"]:
        writer.writerow(["by_expert", row["name"], "", row["sessions"], row["agreements"], row["hours"]])
    return out.getvalue()
