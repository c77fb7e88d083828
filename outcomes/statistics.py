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
from foundation.database import utcnow
from foundation.vocabulary import label
from outcomes.models import FollowUp, Outcome
from scheduling.models import MediationSession, Participant
from scheduling.room_record import RoomEvent


def span(first: dt.date, last: dt.date, timezone: str) -> tuple[dt.datetime, dt.datetime]:
    """The instants from the start of `first` to the end of `last`, office time."""
    tz = ZoneInfo(timezone)
    return dt.datetime.combine(first, dt.time(), tz), dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tz)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


async def statistics(db: AsyncSession, first: dt.datetime, last: dt.datetime, now: dt.datetime | None = None) -> dict[str, Any]:
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
        "offices": await office_figures(db, first, last, now or utcnow()),
        "from": first.isoformat(), "to": last.isoformat(),
        "registered": len(disputes), "mediated": len(rows), "resolved": resolved,
        "resolution_rate": _rate(resolved, len(rows)),
        "by_type": dict(by_type), "by_office": dict(by_office),
        "by_expert": sorted(by_expert.values(), key=lambda e: (-e["sessions"], e["name"])),
        "average_days_to_first_session": round(sum(waits) / len(waits), 2) if waits else None,
        "no_show_rate": _rate(no_shows, invited),
    }


async def office_figures(db: AsyncSession, first: dt.datetime, last: dt.datetime, now: dt.datetime) -> list[dict[str, Any]]:
    """Each office this session sees, side by side (a supervisor's report): disputes registered in
    first..last by type and risk, sessions held then, their outcomes, the share that agreed, the
    days from registration to agreement, and follow-ups overdue now."""
    names = {o.id: o.name for o in await db.scalars(select(Office).where(Office.kind == "office").order_by(Office.id))}
    figures: dict[int, dict[str, Any]] = {office_id: {"office_id": office_id, "office": name, "registered": 0, "by_type": {}, "by_risk": {},
                           "sessions": 0, "outcomes": 0, "agreements": 0, "success_rate": None,
                           "average_days_to_agreement": None, "follow_ups_overdue": 0}
               for office_id, name in names.items()}

    def add(office_id: int | None, key: str, value: str | None = None) -> None:
        entry = figures.get(office_id or 0)
        if entry is None:
            return
        if value is None:
            entry[key] += 1
        else:
            entry[key][value] = entry[key].get(value, 0) + 1

    for office_id, kind, risk in await db.execute(select(Dispute.office_id, Dispute.dispute_type, Dispute.risk_level)
                                                  .where(Dispute.created_at >= first, Dispute.created_at < last)):
        add(office_id, "registered")
        add(office_id, "by_type", kind)
        add(office_id, "by_risk", risk)
    for (office_id,) in await db.execute(select(MediationSession.office_id).where(
            MediationSession.start >= first, MediationSession.start < last, MediationSession.status != "cancelled",
            MediationSession.start < now)):
        add(office_id, "sessions")
    days: dict[int, list[float]] = defaultdict(list)
    for office_id, kind, created, recorded in await db.execute(
            select(Dispute.office_id, Outcome.kind, Dispute.created_at, Outcome.recorded_at)
            .join(Dispute, Dispute.id == Outcome.dispute_id).where(Outcome.recorded_at >= first, Outcome.recorded_at < last)):
        add(office_id, "outcomes")
        if kind == "agreement":
            add(office_id, "agreements")
            days[office_id or 0].append((recorded - created).total_seconds() / 86400)
    for (office_id,) in await db.execute(select(Dispute.office_id).join(FollowUp, FollowUp.dispute_id == Dispute.id)
                                         .where(FollowUp.status == "pending", FollowUp.due_at < now)):
        add(office_id, "follow_ups_overdue")
    for office_id, entry in figures.items():
        entry["success_rate"] = _rate(entry["agreements"], entry["outcomes"])
        if days[office_id]:
            entry["average_days_to_agreement"] = round(sum(days[office_id]) / len(days[office_id]), 1)
    return list(figures.values())


OFFICE_COLUMNS = (("office", "单位"), ("registered", "登记纠纷"), ("sessions", "调解场次"), ("outcomes", "已记录结果"),
                  ("agreements", "达成协议"), ("success_rate", "调解成功率"), ("average_days_to_agreement", "平均结案天数"),
                  ("follow_ups_overdue", "逾期未回访"))


def to_xlsx(figures: dict[str, Any]) -> bytes:
    """The offices side by side as a spreadsheet (one sheet; then disputes by type and by risk per
    office), for the district's own reports."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "各单位对比"
    sheet.append([f"统计期间 {figures['from'][:10]} 至 {figures['to'][:10]}"])
    sheet.append([title for _, title in OFFICE_COLUMNS])
    for cell in sheet[2]:
        cell.font = Font(bold=True)
    for office in figures["offices"]:
        sheet.append([office[key] if office[key] is not None else "" for key, _ in OFFICE_COLUMNS])
    for group, title in (("by_type", "纠纷类型"), ("by_risk", "风险等级")):
        part = book.create_sheet(title)
        keys = sorted({k for office in figures["offices"] for k in office[group]})
        part.append([title, *(o["office"] for o in figures["offices"])])
        for key in keys:
            part.append([label(key), *(o[group].get(key, 0) for o in figures["offices"])])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


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
