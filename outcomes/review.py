"""The weekly dispute review (每周研判): what came in, what got worse, what was mediated, what is late.

`build` reads one week (Monday to Sunday, office time) and returns plain data; `store` keeps it
(one review per week, rebuilt in place); `as_text` is the e-mail version. Escalations come from
the audit log, which holds every earlier value of a dispute's risk level and status.
"""
from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from audit.models import AuditEntry
from disputes.models import Dispute, Party
from disputes.status import Status
from experts.models import Office
from foundation.config import Settings
from foundation.database import iso_utc
from foundation.errors import NotFound
from foundation.scoping import Scope, limit_to, scope_of
from foundation.vocabulary import label
from outcomes.models import FollowUp, Outcome, WeeklyReview
from scheduling import outbox
from scheduling.models import MediationSession

RISK_ORDER = {"low": 0, "medium": 1, "high": 2, "urgent": 3}
OPEN = (Status.REGISTERED, Status.SCHEDULED, Status.IN_MEDIATION, Status.FAILED)
REOPENED_FROM = (Status.RESOLVED, Status.FOLLOWED_UP, Status.FAILED, Status.REFERRED)


def week_of(day: dt.date) -> dt.date:
    """The Monday of the week that holds `day`."""
    return day - dt.timedelta(days=day.weekday())


def last_full_week(now: dt.datetime, timezone: str) -> dt.date:
    """The Monday of the last week that has ended by `now` (office time)."""
    return week_of(now.astimezone(ZoneInfo(timezone)).date()) - dt.timedelta(days=7)


def _escalations(entries: list[AuditEntry]) -> dict[int, list[str]]:
    """Dispute id -> reasons ("risk_raised", "reopened") from audit rows of dispute updates."""
    found: dict[int, list[str]] = defaultdict(list)
    for entry in entries:
        before, after = entry.before or {}, entry.after or {}
        if entry.entity_id is None:
            continue
        if RISK_ORDER.get(after.get("risk_level", ""), -1) > RISK_ORDER.get(before.get("risk_level", ""), 99):
            found[entry.entity_id].append("risk_raised")
        if after.get("status") == Status.REGISTERED and before.get("status") in REOPENED_FROM:
            found[entry.entity_id].append("reopened")
    return found


# What the review shows of a dispute: read as columns (ORM objects would load every party).
BRIEF = (Dispute.id, Dispute.title, Dispute.dispute_type, Dispute.risk_level, Dispute.status, Dispute.office_id,
         Dispute.created_at)


async def _repeat_reports(db: AsyncSession, new: Sequence[Any]) -> set[int]:
    """New disputes with a party who was already in an earlier dispute (same name and phone)."""
    created = {d.id: d.created_at for d in new}
    parties = (await db.execute(
        select(Party.dispute_id, Party.name, Party.phone).where(Party.dispute_id.in_(list(created)), Party.phone != "")
    )).all()
    if not parties:
        return set()
    earliest = {
        (name, phone): first
        for name, phone, first in await db.execute(
            select(Party.name, Party.phone, func.min(Dispute.created_at))
            .join(Dispute, Dispute.id == Party.dispute_id)
            .where(Party.phone.in_({p.phone for p in parties})).group_by(Party.name, Party.phone)
        )
    }
    return {p.dispute_id for p in parties if earliest.get((p.name, p.phone), created[p.dispute_id]) < created[p.dispute_id]}


async def build(db: AsyncSession, week_start: dt.date, timezone: str, now: dt.datetime) -> dict[str, Any]:
    """The review of the week starting on `week_start` (a Monday, office time)."""
    tz = ZoneInfo(timezone)
    first = dt.datetime.combine(week_start, dt.time(), tz)
    last = first + dt.timedelta(days=7)
    offices = {o.id: o.name for o in await db.scalars(select(Office))}

    def brief(row: Any) -> dict[str, Any]:
        return {"dispute_id": row.id, "title": row.title, "dispute_type": row.dispute_type,
                "risk_level": row.risk_level, "status": row.status, "office": offices.get(row.office_id or 0, "")}

    new = (await db.execute(
        select(*BRIEF).where(Dispute.created_at >= first, Dispute.created_at < last).order_by(Dispute.id)
    )).all()
    reasons = _escalations(list(await db.scalars(
        select(AuditEntry).where(AuditEntry.entity == "disputes", AuditEntry.action == "update",
                                 AuditEntry.at >= first, AuditEntry.at < last).order_by(AuditEntry.id)
    )))
    for dispute_id in await _repeat_reports(db, new):
        reasons[dispute_id].append("repeat_report")
    disputes = {d.id: d for d in await db.execute(select(*BRIEF).where(Dispute.id.in_(list(reasons))))}
    escalating = [{**brief(disputes[i]), "reasons": sorted(set(r))} for i, r in sorted(reasons.items()) if i in disputes]

    held = (await db.execute(
        select(MediationSession.id.label("session_id"), MediationSession.start, Outcome.kind, *BRIEF)
        .join(Dispute, Dispute.id == MediationSession.dispute_id)
        .outerjoin(Outcome, Outcome.session_id == MediationSession.id)
        .where(MediationSession.start >= first, MediationSession.start < last,
               MediationSession.status != "cancelled",
               or_(MediationSession.start < now, MediationSession.status == "ended", Outcome.id.is_not(None)))
        .order_by(MediationSession.start)
    )).all()
    sessions = [{"session_id": row.session_id, "start": iso_utc(row.start), **brief(row), "outcome": row.kind or "not_recorded"}
                for row in held]

    overdue = (await db.execute(
        select(FollowUp.id.label("follow_up_id"), FollowUp.due_at, *BRIEF).join(Dispute, Dispute.id == FollowUp.dispute_id)
        .where(FollowUp.status == "pending", FollowUp.due_at < now).order_by(FollowUp.due_at)
    )).all()

    # Early warnings: open high-risk disputes with no session booked, and every escalation.
    open_high = (await db.execute(
        select(*BRIEF).where(Dispute.status.in_([Status.REGISTERED, Status.FAILED]),
                             Dispute.risk_level.in_(["high", "urgent"])).order_by(Dispute.id)
    )).all()
    warnings: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in open_high:
        item = brief(row)
        warnings[item["office"]].append({**item, "reasons": ["high_risk_unscheduled"]})
    for item in escalating:
        if item["status"] in OPEN:
            listed = next((w for w in warnings[item["office"]] if w["dispute_id"] == item["dispute_id"]), None)
            if listed is None:
                warnings[item["office"]].append(dict(item))
            else:
                listed["reasons"] = sorted(set(listed["reasons"]) | set(item["reasons"]))

    return {
        "week_start": week_start.isoformat(), "week_end": (week_start + dt.timedelta(days=6)).isoformat(),
        "generated_at": iso_utc(now),
        "new_disputes": {
            "count": len(new),
            "by_type": dict(Counter(d.dispute_type for d in new)),
            "by_risk": dict(Counter(d.risk_level for d in new)),
            "items": [brief(d) for d in new],
        },
        "escalating": escalating,
        "sessions": {"held": len(sessions), "by_outcome": dict(Counter(s["outcome"] for s in sessions)), "items": sessions},
        "overdue_follow_ups": [
            {"follow_up_id": row.follow_up_id, "due_at": iso_utc(row.due_at), **brief(row)} for row in overdue
        ],
        "early_warnings": dict(warnings),
    }


async def store(db: AsyncSession, office_id: int, data: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    """Keep an office's review; a week reviewed again replaces its earlier version (also under races)."""
    week_start = dt.date.fromisoformat(data["week_start"])
    dialect = db.bind.dialect.name if db.bind is not None else "sqlite"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(WeeklyReview).values(office_id=office_id, week_start=week_start, generated_at=now, data=data)
    await db.execute(statement.on_conflict_do_update(
        index_elements=["office_id", "week_start"], set_={"generated_at": now, "data": data}
    ))
    review = await db.scalar(select(WeeklyReview).where(WeeklyReview.office_id == office_id, WeeklyReview.week_start == week_start)
                             .execution_options(populate_existing=True))
    assert review is not None
    return view(review)


async def review_office(db: AsyncSession, office_id: int, week_start: dt.date, timezone: str, now: dt.datetime) -> dict[str, Any]:
    """Build and keep one office's review, reading that office's data alone (foundation/scoping.py)."""
    before = scope_of(db)
    limit_to(db, Scope(frozenset({office_id})))
    try:
        return await store(db, office_id, await build(db, week_start, timezone, now), now)
    finally:
        limit_to(db, before)


async def publish(db: AsyncSession, settings: Settings, now: dt.datetime) -> list[dict[str, Any]]:
    """Build and keep every office's review of the last full week, and queue each by e-mail."""
    week = last_full_week(now, settings.timezone)
    stored = []
    for office in list(await db.scalars(select(Office).where(Office.kind == "office").order_by(Office.id))):
        review = await review_office(db, office.id, week, settings.timezone, now)
        text = as_text(review, office.name, f"{settings.link_base()}/reviews/{review['id']}")
        await outbox.queue(db, [
            dict(key=f"weekly-review:{office.id}:{week}:{recipient}", kind="weekly_review", channel="email",
                 recipient=recipient, office_id=office.id, body=text,
                 subject=f"【每周研判】{office.name} {review['week_start']} 至 {review['week_end']}")
            for recipient in settings.review_recipients or (settings.office_email or settings.smtp_from,)
        ])
        stored.append(review)
    return stored


def view(review: WeeklyReview) -> dict[str, Any]:
    """A stored review with its id and office."""
    return {"id": review.id, "office_id": review.office_id, "generated_at": iso_utc(review.generated_at), **review.data}


async def get(db: AsyncSession, review_id: int) -> dict[str, Any]:
    """One stored review."""
    review = await db.get(WeeklyReview, review_id)
    if review is None:
        raise NotFound("no weekly review with id {review_id}", review_id=review_id)
    return view(review)


def _headline(data: dict[str, Any]) -> dict[str, int]:
    return {"new_disputes": data["new_disputes"]["count"], "escalating": len(data["escalating"]),
            "sessions_held": data["sessions"]["held"], "overdue_follow_ups": len(data["overdue_follow_ups"]),
            "early_warnings": sum(len(items) for items in data["early_warnings"].values())}


async def list_reviews(db: AsyncSession, limit: int = 52) -> list[dict[str, Any]]:
    """Stored reviews of the offices this session sees, newest week first, with their headline counts."""
    offices = {o.id: o.name for o in await db.scalars(select(Office))}
    rows = await db.scalars(select(WeeklyReview).order_by(WeeklyReview.week_start.desc(), WeeklyReview.office_id).limit(limit))
    return [
        {"id": r.id, "office_id": r.office_id, "office": offices.get(r.office_id, ""), "week_start": r.data["week_start"],
         "week_end": r.data["week_end"], "generated_at": iso_utc(r.generated_at), **_headline(r.data)}
        for r in rows
    ]


async def rollup(db: AsyncSession, week_start: dt.date) -> dict[str, Any]:
    """One week's reviews of every office this session sees, side by side, with the totals and
    every office's early warnings (a supervisor's 每周研判 across offices)."""
    offices = {o.id: o.name for o in await db.scalars(select(Office))}
    rows = list(await db.scalars(select(WeeklyReview).where(WeeklyReview.week_start == week_start).order_by(WeeklyReview.office_id)))
    per_office: list[dict[str, Any]] = [{"review_id": r.id, "office_id": r.office_id, "office": offices.get(r.office_id, ""), **_headline(r.data)}
                  for r in rows]
    totals = {key: sum(o[key] for o in per_office) for key in ("new_disputes", "escalating", "sessions_held",
                                                             "overdue_follow_ups", "early_warnings")}
    warnings = {name: items for r in rows for name, items in r.data["early_warnings"].items()}
    return {"week_start": week_start.isoformat(), "week_end": (week_start + dt.timedelta(days=6)).isoformat(),
            "offices": per_office, "totals": totals, "early_warnings": warnings}


def as_text(data: dict[str, Any], office: str, link: str) -> str:
    """The review as a plain-text e-mail (Chinese, for the office's recipients)."""
    new = data["new_disputes"]
    lines = [
        f"{office} 每周矛盾纠纷研判（{data['week_start']} 至 {data['week_end']}）", "",
        f"一、新登记纠纷 {new['count']} 件。",
        *(f"    {label(kind)}：{n} 件" for kind, n in sorted(new["by_type"].items())),
        *(f"    风险等级 {label(level)}：{n} 件" for level, n in sorted(new["by_risk"].items(), key=lambda i: RISK_ORDER.get(i[0], 9))),
        f"二、升级或反复的纠纷 {len(data['escalating'])} 件。",
        *(f"    #{e['dispute_id']} {e['title']}：{'、'.join(label(r) for r in e['reasons'])}" for e in data["escalating"]),
        f"三、本周开展远程调解 {data['sessions']['held']} 场。",
        *(f"    {label(kind)}：{n} 场" for kind, n in sorted(data["sessions"]["by_outcome"].items())),
        f"四、逾期未回访 {len(data['overdue_follow_ups'])} 件。",
        *(f"    #{f['dispute_id']} {f['title']}（应于 {f['due_at'][:10]} 回访）" for f in data["overdue_follow_ups"]),
        "五、预警事项：",
        *(f"    {office_name or '未分配警务室'}：#{w['dispute_id']} {w['title']}（{'、'.join(label(r) for r in w['reasons'])}）"
          for office_name, items in sorted(data["early_warnings"].items()) for w in items),
        "", f"详情：{link}", "",
    ]
    return "\n".join(lines)
